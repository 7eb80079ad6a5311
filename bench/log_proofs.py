"""Transparency-log proof cost as the log grows to 1,000,000 entries (issue 5).

    ./scripts/bench log [--size 1000000 | --quick] [--batch 10000] [--samples 200]
                        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Builds a real log in a real database through ``registry.log.append_many`` (one
transaction per batch) on an initialised region whose first entries are real issuances;
the other leaves are token-shaped variants of those (same length, fresh identifier and
signature bytes). At each checkpoint of growth (1k, 10k, 100k, 1M entries) it times, on a
session with an empty identity map (every node read is a SELECT), an inclusion proof for
a random leaf, a consistency proof between two random sizes and the root; counts the
node reads each proof makes; and verifies every proof with ``registry.merkle.verify_*``
against ``registry.log.root_hash`` (checked against a signed checkpoint). The baseline,
interleaved with those samples, computes the same inclusion proof from all the leaf
hashes of the tree (``inclusion_proof_from_leaves``; hashes already in memory, which
favours it), up to ``--baseline-up-to`` entries. Then, on the finished log, the same
proofs at every one of those sizes taken in turn, round by round, so that the machine's
noise during a long build cannot pass for growth. Medians and ratios; no timing asserts.

SQLite runs on a file in a temporary folder. With ``--database-url`` naming a PostgreSQL
server, a fresh database is created on it for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import TypeVar

from sqlalchemy import make_url, select, text
from sqlalchemy.orm import Session

from bench.fixtures import TYPES, bench_database, init_bench_region, open_deployment
from deployment import Deployment
from registry import log
from registry.demo import sample_request
from registry.identifiers import CertificateId
from registry.issuance import issue_certificate
from registry.merkle import (
    NodeReader,
    consistency_proof,
    inclusion_proof,
    inclusion_proof_from_leaves,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from registry.models import LogEntry
from registry.requests import parse_issuance_request

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
WARM_UP = 20
PROGRESS_EVERY = 100_000  # entries between progress lines on stderr during a long build
T = TypeVar("T")


# ---------------------------------------------------------------- the database and its region


def issue_real_tokens(deployment: Deployment) -> list[bytes]:
    """Initialise the region and issue one real certificate per type: log entries 0, 1, 2."""
    now = datetime.now(UTC)
    with deployment.session() as session:
        office = init_bench_region(session, deployment, now)
        tokens = [
            issue_certificate(
                session, deployment.keyring, office, parse_issuance_request(sample_request(t)), now=now, actor="bench"
            ).certificate.token.encode("ascii")
            for t in TYPES
        ]
        session.commit()
    return tokens


class TokenLeaves:
    """Leaf data for position ``i``: the real tokens first, then variants of them.

    A variant keeps its template's header and claims but carries a fresh certificate
    identifier (same length, valid check character) and 64 signature bytes derived from
    ``i``, so every leaf is distinct, token-sized and reproducible without the database.
    """

    def __init__(self, tokens: list[bytes]) -> None:
        self.tokens = tokens
        self.templates = []
        for token in tokens:
            header, payload, _signature = token.split(b".")
            claims = _unb64url(payload)
            identifier = _jti(claims)
            self.templates.append((header, claims, identifier, CertificateId.parse(identifier.decode())))

    def entry(self, position: int) -> tuple[str, str, bytes]:
        """``(kind, certificate_id, data)`` as ``append_many`` takes it."""
        if position < len(self.tokens):
            token = self.tokens[position]
            return log.ISSUANCE, _jti(_unb64url(token.split(b".")[1])).decode(), token
        header, claims, identifier, parsed = self.templates[position % len(self.templates)]
        digest = hashlib.sha512(position.to_bytes(8, "big")).digest()
        serial = "".join(CROCKFORD[b % 32] for b in digest[: len(parsed.serial)])
        fresh = str(CertificateId(parsed.type_code, parsed.office_code, serial, parsed.version))
        payload = _b64url(claims.replace(identifier, fresh.encode()))
        return log.ISSUANCE, fresh, b".".join((header, payload, _b64url(digest)))

    def data(self, position: int) -> bytes:
        return self.entry(position)[2]


def _jti(claims: bytes) -> bytes:
    """The certificate identifier in a token's claims (compact JSON, as signed)."""
    start = claims.index(b'"jti":"') + len(b'"jti":"')
    return claims[start : claims.index(b'"', start)]


def _unb64url(encoded: bytes) -> bytes:
    return base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))


def _b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def grow(deployment: Deployment, leaves: TokenLeaves, start: int, end: int, batch: int) -> float:
    """Append positions ``start..end-1`` in transactions of ``batch``; seconds spent appending."""
    spent = 0.0
    for first in range(start, end, batch):
        items = [leaves.entry(p) for p in range(first, min(first + batch, end))]
        started = time.perf_counter()
        with deployment.session() as session:
            appended = log.append_many(session, items, now=datetime.now(UTC))
            session.commit()
        spent += time.perf_counter() - started
        assert appended[0].position == first
        if (first + len(items)) % PROGRESS_EVERY < len(items):
            print(f"  … {first + len(items):,} entries", file=sys.stderr, flush=True)
    return spent


# ---------------------------------------------------------------- measuring at one size


@dataclass
class Row:
    """The samples taken at one tree size."""

    size: int
    build_rate: float = float("nan")
    inclusion_us: list[float] = field(default_factory=list)
    consistency_us: list[float] = field(default_factory=list)
    root_us: list[float] = field(default_factory=list)
    inclusion_reads: list[int] = field(default_factory=list)
    consistency_reads: list[int] = field(default_factory=list)
    naive_us: list[float] = field(default_factory=list)


def counted_reads(prove: Callable[..., list[bytes]], *arguments: int, reader: NodeReader) -> tuple[list[bytes], int]:
    """``prove(*arguments, reader)`` through a reader that counts the nodes read."""
    reads = 0

    def counting(level: int, position: int) -> bytes:
        nonlocal reads
        reads += 1
        return reader(level, position)

    return prove(*arguments, counting), reads


def timed_us(call: Callable[..., T], *arguments: object) -> tuple[T, float]:
    started = time.perf_counter_ns()
    result = call(*arguments)
    return result, (time.perf_counter_ns() - started) / 1000


def prove_inclusion(session: Session, leaves: TokenLeaves, index: int, size: int, root: bytes, row: Row) -> list[bytes]:
    """Time, count and verify one inclusion proof; record it in ``row``."""
    session.expunge_all()  # every node read below is a SELECT, as in a fresh request
    proof, micros = timed_us(log.inclusion, session, index, size)
    recount, reads = counted_reads(inclusion_proof, index, size, reader=log.node_reader(session))
    assert recount == proof
    hashed = leaf_hash(leaves.data(index))  # what was appended, not what the table says
    assert verify_inclusion(hashed, index, size, proof, root), f"inclusion {index}/{size} refused"
    row.inclusion_us.append(micros)
    row.inclusion_reads.append(reads)
    return proof


def prove_consistency(session: Session, older: int, newer: int, row: Row) -> None:
    """Time, count and verify one consistency proof; record it in ``row``."""
    session.expunge_all()
    proof, micros = timed_us(log.consistency, session, older, newer)
    recount, reads = counted_reads(consistency_proof, older, newer, reader=log.node_reader(session))
    assert recount == proof
    roots = log.root_hash(session, older), log.root_hash(session, newer)
    assert verify_consistency(older, newer, *roots, proof), f"consistency {older}→{newer} refused"
    row.consistency_us.append(micros)
    row.consistency_reads.append(reads)


def two_sizes(size: int, chooser: Random) -> tuple[int, int]:
    """Random ``0 < older < newer ≤ size``."""
    older = chooser.randrange(1, size)
    return older, chooser.randrange(older + 1, size + 1)


def warm_up(session: Session, size: int, chooser: Random) -> None:
    """Untimed proofs first, so statement caches and pages are warm at every size alike."""
    for _ in range(WARM_UP):
        log.inclusion(session, chooser.randrange(size), size)
        log.consistency(session, *two_sizes(size, chooser))


def measure(
    deployment: Deployment, leaves: TokenLeaves, size: int, samples: int, naive_samples: int, chooser: Random
) -> Row:
    """``samples`` proofs of each kind in the tree of ``size`` leaves, just after it was built,
    interleaved with the naive baseline for the first ``naive_samples`` of them."""
    with deployment.session() as session:
        checkpoint = log.current_checkpoint(session, deployment.keyring, now=datetime.now(UTC))
        session.commit()
    row = Row(size)
    with deployment.read_session() as session:
        root = log.root_hash(session, size)
        assert (checkpoint.size, checkpoint.root_hash) == (size, root), "checkpoint disagrees with root_hash"
        hashes: list[bytes] = []
        if naive_samples:
            hashes = list(session.scalars(select(LogEntry.leaf_hash).order_by(LogEntry.position).limit(size)))
        warm_up(session, size, chooser)
        gc.collect()
        for sample in range(samples):
            index = chooser.randrange(size)
            proof = prove_inclusion(session, leaves, index, size, root, row)
            if sample < naive_samples:
                naive, micros = timed_us(inclusion_proof_from_leaves, index, hashes)
                assert naive == proof, f"the baseline's proof of {index} differs"
                row.naive_us.append(micros)
            prove_consistency(session, *two_sizes(size, chooser), row)
            session.expunge_all()
            again, micros = timed_us(log.root_hash, session, size)
            assert again == root
            row.root_us.append(micros)
    return row


def interleaved(
    deployment: Deployment, leaves: TokenLeaves, sizes: list[int], samples: int, chooser: Random
) -> list[Row]:
    """The same proofs at every size, taken in turn round by round on the finished log, so
    that the machine's noise over the long build cannot pass for growth."""
    rows = [Row(size) for size in sizes]
    with deployment.read_session() as session:
        roots = [log.root_hash(session, size) for size in sizes]
        for size in sizes:
            warm_up(session, size, chooser)
        gc.collect()
        for _ in range(samples):
            for row, root in zip(rows, roots, strict=True):
                prove_inclusion(session, leaves, chooser.randrange(row.size), row.size, root, row)
                prove_consistency(session, *two_sizes(row.size, chooser), row)
    return rows


# ---------------------------------------------------------------- report


def median(values: list[float] | list[int]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else median(values)


HEADER = (
    f"{'entries':>10}{'append/s':>10}{'incl µs p50':>13}{'p90':>7}{'cons µs p50':>13}{'p90':>7}{'root µs':>9}"
    f"{'reads incl':>12}{'cons':>6}{'bound':>7}{'naive incl µs':>15}{'naive/ours':>12}"
)


def times(ratio: float) -> str:
    return f"{ratio:,.1f}x" if ratio < 10 else f"{ratio:,.0f}x"


def print_row(row: Row) -> None:
    bound = 2 * (row.size - 1).bit_length() + 1
    naive = f"{median(row.naive_us):15,.0f}" if row.naive_us else f"{'(not run)':>15}"
    ratio = times(median(row.naive_us) / median(row.inclusion_us)) if row.naive_us else "—"
    print(
        f"{row.size:>10,}{row.build_rate:>10,.0f}{median(row.inclusion_us):>13,.0f}{p90(row.inclusion_us):>7,.0f}"
        f"{median(row.consistency_us):>13,.0f}{p90(row.consistency_us):>7,.0f}{median(row.root_us):>9,.0f}"
        f"{f'{median(row.inclusion_reads):.0f}/{max(row.inclusion_reads)}':>12}"
        f"{f'{median(row.consistency_reads):.0f}/{max(row.consistency_reads)}':>6}{bound:>7}{naive}{ratio:>12}",
        flush=True,
    )


def print_flatness(first: Row, last: Row) -> None:
    """How much proofs slowed from the smallest size to the largest."""
    print(
        f"  from {first.size:,} to {last.size:,} entries ({times(last.size / first.size)}): "
        f"inclusion {times(median(last.inclusion_us) / median(first.inclusion_us))}, "
        f"consistency {times(median(last.consistency_us) / median(first.consistency_us))}; median node reads "
        f"{median(first.inclusion_reads):.0f} → {median(last.inclusion_reads):.0f} (inclusion), "
        f"{median(first.consistency_reads):.0f} → {median(last.consistency_reads):.0f} (consistency)",
        flush=True,
    )


def print_interleaved(rows: list[Row]) -> None:
    print(
        f"{'tree size':>10}{'incl µs p50':>13}{'cons µs p50':>13}{'reads incl':>12}{'cons':>6}"
        f"{'µs per read':>13}{'incl vs first':>15}{'cons vs first':>15}"
    )
    for row in rows:
        inclusion, consistency = median(row.inclusion_us), median(row.consistency_us)
        print(
            f"{row.size:>10,}{inclusion:>13,.0f}{consistency:>13,.0f}{median(row.inclusion_reads):>12.0f}"
            f"{median(row.consistency_reads):>6.0f}{inclusion / median(row.inclusion_reads):>13,.0f}"
            f"{times(inclusion / median(rows[0].inclusion_us)):>15}"
            f"{times(consistency / median(rows[0].consistency_us)):>15}"
        )
    print_flatness(rows[0], rows[-1])


def database_bytes(deployment: Deployment, database_url: str) -> int:
    if database_url.startswith("sqlite"):
        path = Path(make_url(database_url).database or "")
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with deployment.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def growth_sizes(top: int) -> list[int]:
    sizes = [n for n in (1_000, 10_000, 100_000, 1_000_000, 10_000_000) if n < top]
    return [*sizes, top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="entries in the log at the end")
    parser.add_argument("--quick", action="store_true", help="stop at 100,000 entries")
    parser.add_argument("--batch", type=int, default=10_000, help="entries per transaction")
    parser.add_argument("--samples", type=int, default=200, help="proofs of each kind per size")
    parser.add_argument("--baseline-up-to", type=int, default=100_000, help="largest size for the naive baseline")
    parser.add_argument("--database-url", help="a PostgreSQL server (a fresh database is made and dropped)")
    options = parser.parse_args()
    top = 100_000 if options.quick else options.size
    chooser = Random(20260301)

    with tempfile.TemporaryDirectory() as folder, bench_database(options.database_url, folder) as url:
        deployment = open_deployment(url, folder)
        try:
            leaves = TokenLeaves(issue_real_tokens(deployment))
            lengths = [len(leaves.data(p)) for p in range(100)]
            print(
                f"transparency log proofs: up to {top:,} entries on {deployment.engine.dialect.name}, "
                f"batches of {options.batch:,}, {options.samples} samples per size, "
                f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}"
            )
            print(f"leaf data: issuance tokens of {min(lengths)}–{max(lengths)} bytes (3 real, the rest variants)")
            print("\nas the log grows (each size measured just after it was built):")
            print(HEADER)
            size, appending, built = len(leaves.tokens), 0.0, len(leaves.tokens)
            rows = []
            for target in growth_sizes(top):
                seconds = grow(deployment, leaves, size, target, options.batch)
                appending += seconds
                naive = 0 if target > options.baseline_up_to else max(5, min(options.samples, 1_000_000 // target))
                row = measure(deployment, leaves, target, options.samples, naive, chooser)
                row.build_rate = (target - size) / seconds if seconds else float("nan")
                print_row(row)
                rows.append(row)
                size = target
            print_flatness(rows[0], rows[-1])
            print(f"\non the finished log of {size:,} entries, the sizes above taken in turn, round by round:")
            print_interleaved(interleaved(deployment, leaves, [r.size for r in rows], options.samples, chooser))
            stored = database_bytes(deployment, url)
        finally:
            deployment.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nappended {size - built:,} entries in {appending:.0f} s ({(size - built) / appending:,.0f}/s, "
        f"append_many + commit; leaf generation excluded); database {stored / 2**20:,.0f} MiB "
        f"({stored / size:,.0f} B per entry); peak RSS {peak_mb:,.0f} MiB"
    )
    print(
        "reads: median/max node reads per proof; bound: 2⌈log2 n⌉+1. naive: the same inclusion proof from all "
        "n leaf hashes in memory (registry.merkle.inclusion_proof_from_leaves); every proof verified"
    )


if __name__ == "__main__":
    main()
