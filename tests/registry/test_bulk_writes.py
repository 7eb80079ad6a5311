"""Issuance writes its rows with one bulk INSERT per table (registry/bulk.py, issue 7),
and the certificates it returns are ordinary persistent objects of the caller's session."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from registry.batch import issue_batch
from registry.demo import sample_request
from registry.models import Certificate
from registry.status import Status, change_status
from signing.keystore import KeyRing
from tests.conftest import FixedClock, OfficeFixture
from tests.registry.builders import OFFICE_ACTOR


@pytest.fixture
def inserts(session: Session) -> Iterator[Counter[str]]:
    """INSERT statements sent to the database, by table (an executemany counts once)."""
    sent: Counter[str] = Counter()

    def count(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO "):
            sent[statement.split()[2]] += 1

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    yield sent
    event.remove(engine, "before_cursor_execute", count)


def mixed_items() -> list[dict[str, Any]]:
    """Items whose rows leave different columns NULL (no expiry for some types, an
    idempotency key on some items): the ORM's own bulk INSERT would split such rows into
    many statements."""
    items: list[dict[str, Any]] = [sample_request(code) for code in ("BL", "DL", "PQ") * 4]
    items[4] = {**items[4], "idempotency_key": "order-4"}
    items[9] = {**items[9], "idempotency_key": "order-9"}
    return items


def test_a_batch_writes_each_table_with_one_insert(
    session: Session, keyring: KeyRing, clock: FixedClock, office: OfficeFixture, inserts: Counter[str]
) -> None:
    results = issue_batch(session, keyring, office.office, mixed_items(), now=clock(), actor=OFFICE_ACTOR)
    session.commit()

    assert all(r.certificate is not None for r in results)
    assert {r.certificate.valid_until is None for r in results if r.certificate} == {True, False}
    assert inserts == {"certificate": 1, "log_entry": 1, "log_node": 1, "audit_record": 1}


def test_issued_certificates_are_persistent_objects_of_the_session(
    session: Session, keyring: KeyRing, clock: FixedClock, office: OfficeFixture, deployment: Any
) -> None:
    """The session hands back the very objects, and a change to one is saved."""
    results = issue_batch(session, keyring, office.office, mixed_items(), now=clock(), actor=OFFICE_ACTOR)
    certificate = results[4].certificate
    assert certificate is not None

    assert session.get(Certificate, certificate.id) is certificate
    assert certificate.history == [] and certificate.log_index == 4 and certificate.idempotency_key == "order-4"
    change_status(session, certificate, Status.SUSPENDED, "under review", now=clock(), actor=OFFICE_ACTOR)
    session.commit()

    with deployment.session() as other:
        stored = other.get(Certificate, certificate.id)
        assert stored is not None
        assert (stored.status, stored.token, len(stored.history)) == (Status.SUSPENDED.value, certificate.token, 1)
