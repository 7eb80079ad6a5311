"""Sustained mixed load (issue 7): verifications, issuances, status changes, PDFs, and
batches of issuances and of verifications, from several clients at once for
``ECERT_LOAD_SECONDS`` (default 120), through gunicorn with two workers on each database.

Every answer must be the expected one: ``201`` with a token for an issuance, ``201`` for
every item of an issuance batch, ``200`` with the new status for a change, ``200`` and a
PDF for a PDF, and for a verification, alone or in a batch, the verdict of the status the
client last set. Memory must stay flat: the resident size of each worker is sampled from
/proc throughout, and its growth from the first third of the run (after the fonts are
loaded and the caches warm) to the end must stay under :data:`GROWTH_LIMIT`: a leak
check, not a timing. No worker may die or be replaced. Afterwards the registry is whole
and ``log audit`` passes. A longer run:
``ECERT_LOAD_SECONDS=600 pytest -s tests/e2e/test_integrity_load.py``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from registry.status import Status
from tests.e2e.integrity import (
    KINDS,
    MIB,
    TYPES,
    Issuer,
    change_status,
    database_kind,
    expected_verdict,
    fetch_pdf,
    half_written,
    issue,
    issue_batch,
    live_deployment,
    log_audit,
    provision,
    read_registry,
    verify,
    verify_batch,
    worker_sizes,
)
from tests.e2e.live import LiveDeployment, Server

pytestmark = pytest.mark.e2e

LOAD_SECONDS = float(os.environ.get("ECERT_LOAD_SECONDS") or 120)
CLIENTS = 4
WORKERS = 2
SAMPLES = 40  # resident-size samples per worker over the run
GROWTH_LIMIT = 50 * MIB
MIX = {"verify": 6, "issue": 2, "status": 2, "pdf": 1, "verify batch": 1, "issue batch": 1}  # relative weights
BATCH = 5  # certificates per issuance batch; a verification batch holds up to twice as many tokens


@pytest.fixture(scope="module", params=KINDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDeployment]:
    yield from live_deployment(request.param, tmp_path_factory)


@dataclass
class LoadClient:
    """One client: its certificates with the status it last set, and its tally."""

    issuer: Issuer
    held: dict[str, tuple[str, Status]] = field(default_factory=dict)  # id -> (token, status)
    requests: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def run(self, url: str, until: float, rng: random.Random) -> None:
        requests: dict[str, Callable[[str, random.Random], str | None]] = {
            "verify": self.verify,
            "issue": self.issue,
            "status": self.change_status,
            "pdf": self.pdf,
            "verify batch": self.verify_batch,
            "issue batch": self.issue_batch,
        }
        while time.monotonic() < until:
            kind = rng.choices(list(MIX), weights=list(MIX.values()))[0] if self.held else "issue"
            try:
                error = requests[kind](url, rng)
            except OSError as failure:  # urllib's errors included: no answer at all
                error = f"{type(failure).__name__}: {failure}"
            self.requests[kind] += 1
            if error is not None:
                self.errors.append(f"{kind}: {error}")

    def issue(self, url: str, rng: random.Random) -> str | None:
        answer = issue(url, self.issuer, rng.choice(TYPES))
        if answer.status != 201:
            return f"{answer.status} {answer.body}"
        self.held[answer.body["id"]] = (answer.body["token"], Status.VALID)
        return None

    def verify(self, url: str, rng: random.Random) -> str | None:
        certificate_id = rng.choice(list(self.held))
        token, status = self.held[certificate_id]
        answer = verify(url, token)
        if answer.status != 200:
            return f"{answer.status} {answer.body}"
        got = (answer.body["verdict"], answer.body["code"], answer.body["certificate"]["id"])
        expected = (*expected_verdict(status), certificate_id)
        return None if got == expected else f"{certificate_id}: {got}, expected {expected}"

    def issue_batch(self, url: str, rng: random.Random) -> str | None:
        answer = issue_batch(url, self.issuer, [rng.choice(TYPES) for _ in range(BATCH)])
        if answer.status != 200 or [r["status"] for r in answer.body["results"]] != [201] * BATCH:
            return f"{answer.status} {answer.body}"
        for result in answer.body["results"]:
            self.held[result["certificate"]["id"]] = (result["certificate"]["token"], Status.VALID)
        return None

    def verify_batch(self, url: str, rng: random.Random) -> str | None:
        chosen = rng.sample(list(self.held), min(2 * BATCH, len(self.held)))
        answer = verify_batch(url, [self.held[certificate_id][0] for certificate_id in chosen])
        if answer.status != 200:
            return f"{answer.status} {answer.body}"
        got = [(a["verdict"], a["code"], a["certificate"]["id"]) for a in answer.body["answers"]]
        expected = [(*expected_verdict(self.held[i][1]), i) for i in chosen]
        return None if got == expected else f"{got}, expected {expected}"

    def change_status(self, url: str, rng: random.Random) -> str | None:
        certificate_id = rng.choice(list(self.held))
        token, status = self.held[certificate_id]
        target = Status.SUSPENDED if status is Status.VALID else Status.VALID
        answer = change_status(url, self.issuer, certificate_id, target)
        if answer.status != 200 or answer.body["status"] != target.name:
            return f"{certificate_id} -> {target.name}: {answer.status} {answer.body}"
        self.held[certificate_id] = (token, target)
        return None

    def pdf(self, url: str, rng: random.Random) -> str | None:
        certificate_id = rng.choice(list(self.held))
        status, content_type, body = fetch_pdf(url, self.issuer, certificate_id)
        if (status, content_type, body[:5]) != (200, "application/pdf", b"%PDF-"):
            return f"{certificate_id}: {status} {content_type} {body[:200]!r}"
        return None


def sample_workers(server: Server, until: float, samples: list[dict[int, int]]) -> None:
    """Every worker's resident size, :data:`SAMPLES` times until ``until``."""
    interval = LOAD_SECONDS / SAMPLES
    while time.monotonic() < until:
        samples.append(worker_sizes(server))
        time.sleep(interval)


def growth(series: list[int]) -> int:
    """From the highest of the first third of the samples to the last one."""
    return series[-1] - max(series[: max(1, len(series) // 3)])


def test_sustained_mixed_load_answers_correctly_in_flat_memory(live: LiveDeployment) -> None:
    issuers = provision(live, offices=2)
    server = live.start_server(workers=WORKERS)
    seed = random.randrange(2**32)
    clients = [LoadClient(issuers[n % len(issuers)]) for n in range(CLIENTS)]
    samples: list[dict[int, int]] = []
    started = time.monotonic()
    until = started + LOAD_SECONDS
    threads = [
        threading.Thread(target=c.run, args=(server.url, until, random.Random(seed + n)), daemon=True)
        for n, c in enumerate(clients)
    ]
    threads.append(threading.Thread(target=sample_workers, args=(server, until, samples), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 60)
    elapsed = time.monotonic() - started

    requests = sum((c.requests for c in clients), Counter[str]())
    series = {pid: [sample.get(pid, 0) for sample in samples] for pid in samples[0]}
    print(
        f"\n[{database_kind(live)}] seed {seed}: {sum(requests.values())} requests in {elapsed:.0f}s "
        f"({sum(requests.values()) / elapsed:.0f}/s): {dict(requests)}"
    )
    for pid, sizes in series.items():
        shown = " ".join(f"{size / MIB:.0f}" for size in sizes[:: max(1, len(sizes) // 10)])
        print(f"  worker {pid} RSS MiB: {shown} ... {sizes[-1] / MIB:.0f}; growth {growth(sizes) / MIB:+.1f} MiB")

    assert not any(thread.is_alive() for thread in threads)
    assert [c.errors[:5] for c in clients] == [[] for _ in clients]
    assert set(requests) == set(MIX)
    assert len(samples) >= SAMPLES // 2
    assert all(set(sample) == set(series) for sample in samples), "a worker died or was replaced"
    assert {pid: growth(sizes) < GROWTH_LIMIT for pid, sizes in series.items()} == dict.fromkeys(series, True)

    rows = read_registry(live.database_url)
    assert half_written(rows) == []
    held = {i: status for c in clients for i, (_, status) in c.held.items()}
    assert rows.statuses == held
    exit_code, output = log_audit(live)
    assert exit_code == 0, output
