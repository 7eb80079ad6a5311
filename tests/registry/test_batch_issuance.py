"""Batch issuance through the service layer (registry/batch.py), on SQLite and PostgreSQL:
each item answered on its own, the good ones recorded together, idempotent per item."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry import audit, log
from registry.batch import MAX_BATCH_ITEMS, ItemResult, batch_items, issue_batch
from registry.demo import sample_request
from registry.errors import BatchTooLarge, IdempotencyConflict, InvalidInput, NotAllowed
from registry.models import AuditRecord, Certificate, CertificateType, LogEntry
from registry.regions import current_region
from signing.keystore import KeyRing
from tests.conftest import OTHER_OFFICE_CODE, FixedClock, OfficeFixture, make_office
from tests.registry.builders import OFFICE_ACTOR, error_fields, with_holder
from verify.codes import Verdict
from verify.verifier import Verifier


@pytest.fixture
def batch(session: Session, keyring: KeyRing, clock: FixedClock, office: OfficeFixture) -> Any:
    """Issue ``items`` as one batch (by ``office`` unless ``by`` says otherwise) and commit."""

    def issue(items: list[Any], *, by: OfficeFixture | None = None) -> list[ItemResult]:
        results = issue_batch(session, keyring, (by or office).office, items, now=clock(), actor=OFFICE_ACTOR)
        session.commit()
        return results

    return issue


def keyed(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {**body, "idempotency_key": key}


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def issue_records(session: Session) -> list[AuditRecord]:
    query = select(AuditRecord).where(AuditRecord.action == "certificate.issue").order_by(AuditRecord.id)
    return list(session.scalars(query))


def issued(results: list[ItemResult]) -> list[Certificate]:
    return [r.certificate for r in results if r.certificate is not None and not r.replayed]


# ---------------------------------------------------------------- each item on its own


def test_mixed_items_are_answered_one_by_one(session, batch, office):
    items = [
        sample_request("DL"),
        "not an object",
        with_holder("DL", id_number="310115198506123527"),  # bad check digit
        {**sample_request("PQ"), "colour": "red"},
        {**sample_request("PQ"), "type": 7, "holder": "张伟"},
        sample_request("BL"),
    ]

    results = batch(items)

    assert [r.index for r in results] == list(range(len(items)))
    assert [r.certificate is not None for r in results] == [True, False, False, False, False, True]
    assert [type(r.error) for r in results if r.error] == [InvalidInput] * 4
    assert str(results[1].error) == "each item must be a JSON object"
    assert error_fields(results[2].error) == ["holder/id_number"]  # type: ignore[arg-type]
    assert error_fields(results[3].error) == ["colour"]  # type: ignore[arg-type]
    assert error_fields(results[4].error) == ["holder", "holder/id_number", "holder/id_type", "holder/name", "type"]  # type: ignore[arg-type]
    assert [c.type_code for c in issued(results)] == ["DL", "BL"]
    assert count(session, Certificate) == 2


def test_a_type_the_office_may_not_issue_refuses_that_item_only(session, keyring, clock, region, batch):
    other = make_office(session, keyring, clock, OTHER_OFFICE_CODE, ["DL"], name="上海市公安局交通警察总队")

    results = batch([sample_request("BL"), sample_request("DL")], by=other)

    assert isinstance(results[0].error, NotAllowed)
    assert results[1].certificate is not None and results[1].certificate.office_id == other.office.id
    assert results[1].certificate.id.startswith(f"DL.{OTHER_OFFICE_CODE}.")


def test_every_issued_token_verifies(session, batch, clock):
    results = batch([sample_request(t) for t in ("BL", "DL", "PQ", "DL")])

    verifier = Verifier(session, now=clock())
    reports = [verifier.verify(c.token) for c in issued(results)]
    assert [(r.verdict, r.code) for r in reports] == [(Verdict.VALID, "OK")] * 4


def test_log_entries_status_positions_and_audit_records_follow_item_order(session, batch, certificate):
    """After one single issuance (log position 0), the batch's certificates take the next
    positions in item order, each with its log entry and one audit record, chain intact."""
    results = batch([sample_request("PQ"), {"bad": True}, sample_request("DL"), sample_request("BL")])
    certificates = issued(results)

    assert [c.log_index for c in certificates] == [1, 2, 3]
    assert [c.status_index for c in certificates] == [1, 2, 3]
    entries = session.scalars(select(LogEntry).where(LogEntry.position >= 1).order_by(LogEntry.position)).all()
    assert [(e.certificate_id, bytes(e.data)) for e in entries] == [(c.id, c.token.encode()) for c in certificates]
    assert log.tree_size(session) == 4 and current_region(session).next_status_index == 4
    assert [r.subject_id for r in issue_records(session)] == [certificate.id, *(c.id for c in certificates)]
    assert audit.check_chain(session) == []


def test_an_item_too_large_for_a_qr_code_gives_back_its_status_position(session, keyring, clock, region, batch):
    session.add(
        CertificateType(
            code="NT",
            name_zh="备注证明",
            name_en="Annotated certificate",
            holder_kind="person",
            holder_id_type="RIC",
            fields_schema={"type": "object", "properties": {"note": {"type": "string", "maxLength": 2000}}},
            qr_fields=["note"],
            default_validity_days=None,
            version=1,
        )
    )
    session.commit()
    office = make_office(session, keyring, clock, OTHER_OFFICE_CODE, ["NT"])
    holder = {"name": "张伟", "id_type": "RIC", "id_number": "310101199003074415"}
    note = lambda text: {"type": "NT", "holder": holder, "fields": {"note": text}}  # noqa: E731

    results = batch([note("甲"), note("备" * 700), note("乙")], by=office)

    assert "too large for its QR code" in str(results[1].error)
    assert [c.status_index for c in issued(results)] == [0, 1]
    assert current_region(session).next_status_index == 2


def test_personal_id_numbers_are_stored_whole_and_signed_masked(batch):
    certificate = issued(batch([sample_request("DL")]))[0]

    payload = json.loads(base64.urlsafe_b64decode(certificate.token.split(".")[1] + "=="))
    assert certificate.holder_id_number == "310115198506123526"
    assert payload["h"]["i"] == "3101**********3526"


# ---------------------------------------------------------------- idempotency per item


def test_a_key_issued_before_replays_with_the_same_body_and_conflicts_with_another(session, batch, issue):
    first = issue(sample_request("DL"), idempotency_key="order-1")  # the single endpoint's key

    results = batch([keyed(sample_request("DL"), "order-1"), keyed(sample_request("PQ"), "order-1")])

    assert results[0].replayed and results[0].certificate is not None
    assert results[0].certificate.id == first.certificate.id
    assert isinstance(results[1].error, IdempotencyConflict)
    assert count(session, Certificate) == 1


def test_a_key_twice_in_one_batch_replays_the_first_or_conflicts(session, batch):
    results = batch(
        [
            keyed(sample_request("DL"), "k"),
            keyed(sample_request("DL"), "k"),
            keyed(sample_request("BL"), "k"),
            keyed(with_holder("PQ", id_number="bad"), "bad"),
            keyed(with_holder("PQ", id_number="bad"), "bad"),
            keyed(sample_request("PQ"), "bad"),  # the failed items did not claim the key
        ]
    )

    assert results[0].certificate is not None and not results[0].replayed
    assert results[1].replayed and results[1].certificate is results[0].certificate
    assert isinstance(results[2].error, IdempotencyConflict)
    assert isinstance(results[3].error, InvalidInput) and isinstance(results[4].error, InvalidInput)
    assert results[5].certificate is not None and not results[5].replayed
    assert count(session, Certificate) == 2


def test_sending_a_batch_again_replays_every_keyed_item(session, batch):
    items = [keyed(sample_request(t), f"order-{n}") for n, t in enumerate(("BL", "DL", "PQ"))]
    first = batch(items)
    records = len(issue_records(session))

    again = batch(items)

    assert all(r.replayed for r in again)
    assert [r.certificate.id for r in again] == [r.certificate.id for r in first]  # type: ignore[union-attr]
    assert count(session, Certificate) == 3 and len(issue_records(session)) == records


@pytest.mark.parametrize("key", ["", "x" * 256, "é", "tab\there", 17, ["k"]])
def test_a_bad_idempotency_key_refuses_its_item(batch, key):
    results = batch([{**sample_request("DL"), "idempotency_key": key}])

    assert error_fields(results[0].error) == ["idempotency_key"]  # type: ignore[arg-type]


# ---------------------------------------------------------------- limits and failures


def test_a_thousand_items_are_issued_and_one_more_is_refused(session, batch):
    items = [keyed(sample_request(("BL", "DL", "PQ")[n % 3]), f"k{n}") for n in range(MAX_BATCH_ITEMS)]

    results = batch(batch_items({"items": items}))

    assert len(issued(results)) == MAX_BATCH_ITEMS
    assert log.tree_size(session) == MAX_BATCH_ITEMS == len(issue_records(session))
    with pytest.raises(BatchTooLarge, match="at most 1000"):
        batch_items({"items": [*items, sample_request("DL")]})
    with pytest.raises(BatchTooLarge):
        batch([*items, sample_request("DL")])


@pytest.mark.parametrize(
    "body",
    [[], None, {}, {"items": {}}, {"items": []}, {"items": "x"}, {"items": [{}], "extra": 1}],
    ids=["array", "null", "empty-object", "items-object", "no-items", "items-string", "unknown-member"],
)
def test_a_body_that_is_not_a_batch_is_refused_whole(body):
    with pytest.raises(InvalidInput):
        batch_items(body)


def test_a_failed_transaction_keeps_nothing_of_the_batch(session, keyring, clock, office, certificate):
    """A row already at the log position the batch takes (a fork) makes the database refuse
    the batch: certificates, log entries, audit records and positions all roll back."""
    session.add(
        LogEntry(position=1, kind=log.ISSUANCE, certificate_id="x", data=b"x", leaf_hash=b"x" * 32, recorded_at=clock())
    )
    session.commit()
    before = (count(session, Certificate), count(session, AuditRecord), current_region(session).next_status_index)

    with pytest.raises(IntegrityError):
        issue_batch(session, keyring, office.office, [sample_request("DL")] * 3, now=clock(), actor=OFFICE_ACTOR)
    session.rollback()

    assert (count(session, Certificate), count(session, AuditRecord)) == before[:2]
    assert current_region(session).next_status_index == before[2]
    assert log.tree_size(session) == 1 and audit.check_chain(session) == []
