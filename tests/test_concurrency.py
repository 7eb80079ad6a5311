"""Concurrent writers: many threads issuing for one office, and racing Idempotency-Keys.

On PostgreSQL the database arbitrates; on SQLite, WAL and BEGIN IMMEDIATE must queue
writers on the busy timeout instead of failing with "database is locked".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from deployment import Deployment
from registry.demo import sample_request
from registry.issuance import issue_certificate
from registry.models import AuditRecord, Certificate, Office
from registry.requests import parse_issuance_request
from verify.codes import Verdict
from verify.verifier import Verifier

T = TypeVar("T")

WORKLOADS = [
    pytest.param("sqlite", 4, 25, id="sqlite-4x25"),
    pytest.param("postgresql", 8, 50, id="postgresql-8x50", marks=pytest.mark.postgres),
]


def run_together(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0..count-1)`` on ``count`` threads released at once; re-raise any failure."""
    barrier = threading.Barrier(count, timeout=30)

    def start(index: int) -> T:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(start, index) for index in range(count)]
        return [future.result(timeout=120) for future in futures]


@pytest.mark.parametrize(("database_url", "threads", "per_thread"), WORKLOADS, indirect=["database_url"])
def test_concurrent_issuance_for_one_office(
    deployment: Deployment, session: Session, office: Any, threads: int, per_thread: int
) -> None:
    request = parse_issuance_request(sample_request("DL"))
    office_id = office.office.id

    def issue_many(worker: int) -> list[str]:
        issued = []
        with deployment.session() as own:
            own_office = own.get(Office, office_id)
            assert own_office is not None
            for _ in range(per_thread):
                result = issue_certificate(
                    own, deployment.keyring, own_office, request, now=deployment.now(), actor=f"thread:{worker}"
                )
                own.commit()
                issued.append(result.certificate.id)
        return issued

    identifiers = [i for batch in run_together(threads, issue_many) for i in batch]

    total = threads * per_thread
    assert len(set(identifiers)) == len(identifiers) == total
    assert session.scalar(select(func.count()).select_from(Certificate)) == total
    audited = session.scalars(select(AuditRecord.subject_id).where(AuditRecord.action == "certificate.issue")).all()
    assert sorted(audited) == sorted(identifiers)
    # Status-list positions: one each, no gaps, no duplicates.
    positions = session.scalars(select(Certificate.status_index)).all()
    assert sorted(positions) == list(range(total))
    verifier = Verifier(session, now=deployment.now())
    verdicts = {
        (report.verdict, report.code)
        for report in (verifier.verify(token) for token in session.scalars(select(Certificate.token)))
    }
    assert verdicts == {(Verdict.VALID, "OK")}


IDEMPOTENT_CALLERS = 8


def post_from_threads(app: Flask, office: Any, bodies: list[dict[str, Any]], key: str) -> list[Any]:
    """POST ``bodies[i]`` from thread i, all with Idempotency-Key ``key``, each with its own client."""

    def post(index: int) -> Any:
        headers = {**office.auth, "Idempotency-Key": key}
        return app.test_client().post("/api/v1/certificates", json=bodies[index], headers=headers)

    return run_together(len(bodies), post)


def test_racing_identical_idempotent_requests_create_one_certificate(app: Flask, office: Any, session: Session) -> None:
    responses = post_from_threads(app, office, [sample_request("DL")] * IDEMPOTENT_CALLERS, "race-identical")

    assert [r.status_code for r in responses] == [201] * IDEMPOTENT_CALLERS, [r.json for r in responses]
    assert len({r.json["id"] for r in responses}) == 1
    assert len({r.json["token"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == IDEMPOTENT_CALLERS - 1
    assert session.scalar(select(func.count()).select_from(Certificate)) == 1
    assert (
        session.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "certificate.issue"))
        == 1
    )


def test_racing_idempotent_requests_with_different_bodies_conflict(app: Flask, office: Any, session: Session) -> None:
    first = sample_request("DL")
    second = sample_request("DL", fields={**first["fields"], "vehicle_class": "A1"})
    bodies = [first, second] * (IDEMPOTENT_CALLERS // 2)

    responses = post_from_threads(app, office, bodies, "race-different")

    created = [(body, r) for body, r in zip(bodies, responses, strict=True) if r.status_code == 201]
    refused = [(body, r) for body, r in zip(bodies, responses, strict=True) if r.status_code != 201]
    winners = {r.json["id"] for _, r in created}
    assert len(winners) == 1
    winning_body = created[0][0]
    assert all(body == winning_body for body, _ in created)
    assert refused, "the other body must be refused, not issued"
    assert all(body != winning_body for body, _ in refused)
    assert {(r.status_code, r.json["code"]) for _, r in refused} == {(409, "IDEMPOTENCY_CONFLICT")}
    assert session.scalars(select(Certificate.id)).all() == list(winners)
