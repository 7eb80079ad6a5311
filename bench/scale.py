"""A registry of 1,000,000 certificates on PostgreSQL, against a small one (issue 7).

    ./scripts/bench scale [--certificates 1000000 | --quick] [--samples 1000] [--rounds 5]
                          [--stop-at HH:MM] [--database-url URL]

Two fresh databases on one PostgreSQL server (``--database-url``, default
ECERT_BENCH_POSTGRES_URL or the local test server; both dropped afterwards), each a
region with the demo office and its own deployment (its own per-process caches): a small
registry of 1,000 certificates, and a big one grown to ``--certificates`` through
``registry.batch.issue_batch`` in batches of 1000 while the small one stays open.

As built: the small registry is measured before the build, the big one right after it.
Compared: then both are measured in ``--rounds`` interleaved rounds (small, big, small,
big, ...), so load drift on a shared machine falls on both alike. Each round verifies
``--samples / --rounds`` tokens per registry, each as ``POST /api/v1/verify`` does (a fresh
read session and ``verify.live.live_verifier`` with the deployment's caches), then issues
one batch of 1000 into each. Tokens: the big registry's are a uniform sample of its
whole registry (reservoir sampling over every token issued during the build, not the
newest), drawn without replacement, different ones in the as-built pass and the
interleaved rounds, so its node and checkpoint caches get no repeats; the small one's
are its first 1,000, the same in both passes (a log that size fits its node cache
whole, as it would in any deployment). Both deployments are warmed by 50 verifications
of tokens outside the measured set first.
Goal: at most 1.5x slower. ``--quick`` builds 20,000; ``--stop-at`` (UTC) ends the build
early at that time and measures the size reached. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from bench.fixtures import POSTGRES_URL, bench_database, init_bench_region, open_deployment
from bench.issuance import issue_one_batch
from bench.verify_inprocess import verify_one
from deployment import Deployment
from registry.models import Certificate, Office

BATCH = 1000
SMALL = 1000
SAMPLE_POOL = 5000  # tokens kept from the build, drawn uniformly (reservoir sampling)
WARM_UP = 50
PROGRESS_EVERY = 50_000


@dataclass
class Registry:
    name: str
    deployment: Deployment
    office: Office
    tokens: list[str]  # measured tokens, each verified once
    warm_up: list[str]

    def count(self) -> int:
        with self.deployment.session() as session:
            return session.scalar(select(func.count()).select_from(Certificate)) or 0

    def size_bytes(self) -> int:
        with self.deployment.engine.connect() as connection:
            return connection.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0


@dataclass(frozen=True)
class Figures:
    certificates: int
    verify_p50_ms: float
    verify_p99_ms: float
    batch_per_second: float


def verify_timed(registry: Registry, tokens: list[str]) -> list[float]:
    latencies = []
    for token in tokens:
        started = time.perf_counter()
        report = verify_one(registry.deployment, token)
        latencies.append((time.perf_counter() - started) * 1000)
        if report.code != "OK":
            raise RuntimeError(f"a registry token did not verify: {report.code} {report.detail}")
    return latencies


def issue_timed(registry: Registry) -> float:
    started = time.perf_counter()
    issue_one_batch(registry.deployment, registry.office, BATCH)
    return BATCH / (time.perf_counter() - started)


def figures(certificates: int, latencies: list[float], rates: list[float]) -> Figures:
    p99 = statistics.quantiles(latencies, n=100)[98]
    return Figures(certificates, statistics.median(latencies), p99, statistics.median(rates))


def measure_alone(registry: Registry, tokens: list[str], batches: int) -> Figures:
    """As built: one registry on its own, ``tokens`` verified, then ``batches`` batches."""
    certificates = registry.count()
    latencies = verify_timed(registry, tokens)
    rates = [issue_timed(registry) for _ in range(batches)]
    return figures(certificates, latencies, rates)


def measure_interleaved(small: Registry, big: Registry, rounds: int) -> tuple[Figures, Figures, list[float]]:
    """Rounds of small then big: a share of each one's tokens, then one batch into each."""
    counts = {r.name: r.count() for r in (small, big)}
    latencies: dict[str, list[float]] = {small.name: [], big.name: []}
    rates: dict[str, list[float]] = {small.name: [], big.name: []}
    per_round = len(small.tokens) // rounds
    ratios = []
    for i in range(rounds):
        for registry in (small, big):
            share = registry.tokens[i * per_round : (i + 1) * per_round]
            latencies[registry.name] += verify_timed(registry, share)
        for registry in (small, big):
            rates[registry.name].append(issue_timed(registry))
        ratios.append(rates[small.name][-1] / rates[big.name][-1])
    return (
        figures(counts[small.name], latencies[small.name], rates[small.name]),
        figures(counts[big.name], latencies[big.name], rates[big.name]),
        ratios,
    )


def grow(registry: Registry, target: int, pool: list[str], deadline: float | None) -> tuple[int, float]:
    """Issue batches until ``target`` (or ``deadline``); a uniform sample of every token in ``pool``."""
    chooser = random.Random(7)
    count = seen = registry.count()
    started, last_report = time.perf_counter(), count
    while count < target and (deadline is None or time.time() < deadline):
        for token in issue_one_batch(registry.deployment, registry.office, min(BATCH, target - count)):
            seen += 1
            if len(pool) < SAMPLE_POOL:
                pool.append(token)
            elif (slot := chooser.randrange(seen)) < SAMPLE_POOL:
                pool[slot] = token
        count += min(BATCH, target - count)
        if count - last_report >= PROGRESS_EVERY or count >= target:
            elapsed = time.perf_counter() - started
            print(f"  {count:,} certificates, {elapsed:.0f} s, {count / elapsed:.0f}/s", file=sys.stderr, flush=True)
            last_report = count
    return count, time.perf_counter() - started


def open_registry(stack: ExitStack, name: str, server: str) -> Registry:
    folder = stack.enter_context(tempfile.TemporaryDirectory())
    url = stack.enter_context(bench_database(server, folder))
    deployment = open_deployment(url, folder)
    stack.callback(deployment.dispose)
    with deployment.session() as session:
        office = init_bench_region(session, deployment, datetime.now(UTC))
    return Registry(name, deployment, office, [], [])


def deadline_from(stop_at: str | None) -> float | None:
    if stop_at is None:
        return None
    hour, minute = (int(part) for part in stop_at.split(":"))
    now = datetime.now(UTC)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="build 20,000 certificates")
    parser.add_argument("--samples", type=int, default=1000, help="verifications per registry (at most 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (a batch of 1000 each)")
    parser.add_argument("--stop-at", help="UTC HH:MM: end the build then and measure the size reached")
    parser.add_argument("--database-url", default=POSTGRES_URL)
    options = parser.parse_args()
    target = 20_000 if options.quick else options.certificates
    samples = min(options.samples, SMALL - WARM_UP)
    shuffler = random.Random(20261128)

    with ExitStack() as stack:
        small = open_registry(stack, "small", options.database_url)
        small_tokens = issue_one_batch(small.deployment, small.office, SMALL)
        shuffler.shuffle(small_tokens)
        small.warm_up, small.tokens = small_tokens[:WARM_UP], small_tokens[WARM_UP : WARM_UP + samples]
        verify_timed(small, small.warm_up)
        before = measure_alone(small, small.tokens, options.rounds)

        big = open_registry(stack, "big", options.database_url)
        pool: list[str] = []
        built, built_in = grow(big, target, pool, deadline_from(options.stop_at))
        shuffler.shuffle(pool)
        big.warm_up, big.tokens = pool[:WARM_UP], pool[WARM_UP : WARM_UP + samples]
        after_build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        verify_timed(big, big.warm_up)
        as_built = measure_alone(big, big.tokens, options.rounds)
        # Fresh samples for the interleaved rounds: the as-built pass has cached these proofs.
        big.tokens = pool[WARM_UP + samples : WARM_UP + 2 * samples]
        small.tokens = small_tokens[WARM_UP : WARM_UP + samples]
        small.tokens.reverse()  # all of the small registry's fit its caches anyway
        small_now, big_now, issuance_ratios = measure_interleaved(small, big, options.rounds)
        sizes = {r.name: r.size_bytes() for r in (small, big)}
        with big.deployment.engine.connect() as connection:
            version = connection.exec_driver_sql("SHOW server_version").scalar()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    print(
        f"scale on PostgreSQL {version}: {samples} in-process verifications per registry (a read session and "
        f"live_verifier with the deployment's caches per token, after {WARM_UP} warm-up ones), batches of {BATCH}"
    )
    print(
        f"tokens: big registry's drawn uniformly from all {built:,} built (reservoir of {SAMPLE_POOL:,}), "
        f"none verified twice; small's from its first {SMALL:,}, the same in both passes"
    )
    if built < target:
        print(f"build stopped at --stop-at {options.stop_at}: {built:,} of {target:,}")
    print(f"{'':<34}{'certificates':>13}{'verify p50 ms':>15}{'p99 ms':>9}{'batch issuance/s':>18}")
    rows = (
        ("as built: small, before the build", before),
        ("as built: big, after the build", as_built),
        (f"interleaved ({options.rounds} rounds): small", small_now),
        (f"interleaved ({options.rounds} rounds): big", big_now),
    )
    for label, row in rows:
        print(
            f"{label:<34}{row.certificates:>13,}{row.verify_p50_ms:>15.2f}{row.verify_p99_ms:>9.2f}"
            f"{row.batch_per_second:>18.0f}"
        )
    for label, small_row, big_row in (("as built", before, as_built), ("interleaved", small_now, big_now)):
        print(
            f"{label}: big vs small verification p50 {big_row.verify_p50_ms / small_row.verify_p50_ms:.2f}x, "
            f"p99 {big_row.verify_p99_ms / small_row.verify_p99_ms:.2f}x, batch issuance "
            f"{small_row.batch_per_second / big_row.batch_per_second:.2f}x slower (goal <= 1.5x)"
        )
    print("issuance small/big per round: " + ", ".join(f"{r:.2f}" for r in issuance_ratios))
    print(
        f"built {built:,} certificates through issue_batch in {built_in:.0f} s ({built / built_in:.0f}/s); "
        f"database {sizes['big'] / 2**20:,.0f} MiB ({sizes['big'] / big_now.certificates:,.0f} B per certificate, "
        f"all tables; small {sizes['small'] / 2**20:,.0f} MiB); peak RSS {after_build_rss / 1024:,.0f} MiB "
        f"after the build, {peak_rss / 1024:,.0f} MiB at the end"
    )


if __name__ == "__main__":
    main()
