"""The transparency log under concurrent writers (issue 5): many threads issuing, each on
its own session and committing after every certificate, as requests do.

Whatever the interleaving, the log must come out as if written by one writer: positions
exactly 0..N-1 with no gap and no duplicate, one issuance entry per certificate holding
its token, a root recomputed from the entries alone equal to the root of a checkpoint
signed afterwards, an intact audit chain and a clean ``log audit``. On PostgreSQL the
region row's lock queues appenders; on SQLite, BEGIN IMMEDIATE does.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from deployment import Deployment
from registry import audit, log
from registry.database import make_engine, make_session_factory
from registry.demo import sample_request
from registry.issuance import issue_certificate
from registry.log_audit import audit_registry
from registry.merkle import leaf_hash, root_from_leaves
from registry.models import Certificate, LogEntry, Office
from registry.regions import current_region
from registry.requests import parse_issuance_request
from registry.status import Status, change_status
from signing.notes import open_note, parse_checkpoint, parse_verifier_key
from tests.test_concurrency import run_together

WORKLOADS = [
    pytest.param("sqlite", 4, 25, id="sqlite-4x25"),
    pytest.param("postgresql", 16, 100, id="postgresql-16x100", marks=pytest.mark.postgres),
]
SUSPEND_EVERY = 10  # every tenth certificate a thread issues it also suspends: status entries interleave


def issue_from_threads(deployment: Deployment, office_id: int, threads: int, per_thread: int) -> tuple[int, list[str]]:
    """Each thread issues ``per_thread`` certificates (committing each) and suspends every
    tenth; returns the number of status changes made and every identifier issued."""
    request = parse_issuance_request(sample_request("DL"))
    # A pool with a connection per thread: the default (5 + 10 overflow) would make the
    # sixteenth thread wait for a connection, and time out on a busy machine.
    engine = make_engine(deployment.settings.database_url, pool_size=threads, max_overflow=0)
    sessions = make_session_factory(engine)

    def work(worker: int) -> tuple[int, list[str]]:
        issued, suspended = [], 0
        with sessions() as own:
            own_office = own.get(Office, office_id)
            assert own_office is not None
            for number in range(per_thread):
                actor = f"thread:{worker}"
                result = issue_certificate(
                    own, deployment.keyring, own_office, request, now=deployment.now(), actor=actor
                )
                own.commit()
                issued.append(result.certificate.id)
                if number % SUSPEND_EVERY == 0:
                    change_status(own, result.certificate, Status.SUSPENDED, "核查", now=deployment.now(), actor=actor)
                    own.commit()
                    suspended += 1
        return suspended, issued

    try:
        results = run_together(threads, work)
    finally:
        engine.dispose()
    return sum(s for s, _ in results), [i for _, batch in results for i in batch]


def signed_root(deployment: Deployment) -> tuple[int, bytes]:
    """Size and root of a checkpoint signed now, read back through the published verifier key."""
    with deployment.session() as writing:
        checkpoint = log.current_checkpoint(writing, deployment.keyring, now=deployment.now())
        writing.commit()
        verifier = log.log_verifier_key(current_region(writing))
    assert verifier is not None
    name, key = parse_verifier_key(verifier)
    parsed = parse_checkpoint(open_note(checkpoint.note, {name: key})[0])
    return parsed.size, parsed.root_hash


@pytest.mark.parametrize(("database_url", "threads", "per_thread"), WORKLOADS, indirect=["database_url"])
def test_concurrent_issuance_yields_one_gapless_log(
    deployment: Deployment, office: Any, threads: int, per_thread: int
) -> None:
    """Threads × issuances (plus interleaved suspensions), each committed on its own:
    positions are exactly 0..N-1, every certificate has exactly one issuance entry (its
    ``log_index``, holding its token), every suspension one status entry, the root
    recomputed from the entries equals a freshly signed checkpoint's, and neither the
    audit chain nor ``log audit`` finds anything."""
    suspensions, identifiers = issue_from_threads(deployment, office.office.id, threads, per_thread)
    issued = threads * per_thread
    total = issued + suspensions

    with deployment.read_session() as session:
        entries = list(session.scalars(select(LogEntry).order_by(LogEntry.position)))
        assert [e.position for e in entries] == list(range(total))
        assert log.tree_size(session) == total

        issuances = [e for e in entries if e.kind == log.ISSUANCE]
        assert sorted(e.certificate_id for e in issuances) == sorted(identifiers)
        assert len(set(identifiers)) == issued
        certificates = {c.id: c for c in session.scalars(select(Certificate))}
        assert len(certificates) == issued
        for entry in issuances:
            certificate = certificates[entry.certificate_id]
            assert certificate.log_index == entry.position
            assert bytes(entry.data) == certificate.token.encode("ascii")
        status_entries = [e for e in entries if e.kind == log.STATUS_CHANGE]
        assert len(status_entries) == suspensions
        assert all(certificates[e.certificate_id].status == Status.SUSPENDED.value for e in status_entries)

        recomputed = root_from_leaves(leaf_hash(bytes(e.data)) for e in entries)
    assert signed_root(deployment) == (total, recomputed)

    with deployment.read_session() as session:
        assert audit_registry(session) == []  # first in its session: it sets the snapshot's isolation
    with deployment.read_session() as session:
        assert audit.check_chain(session) == []
