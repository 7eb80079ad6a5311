"""The audit trail: one record per state change, with actor, time and action; no secrets in it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from registry.demo import sample_request
from registry.identifiers import make_credit_code
from registry.models import AuditRecord
from registry.offices import add_office, issue_api_token, mark_key_compromised, revoke_api_tokens, rotate_key
from registry.status import Status, change_status
from tests.conftest import OFFICE_CODE
from tests.registry.builders import OFFICE_ACTOR, audit_trail

ADMIN = "cli:admin"
THIRD_OFFICE_CODE = make_credit_code("12310000425006117")
RESIDENT_IDS = [sample_request("DL")["holder"]["id_number"], sample_request("PQ")["holder"]["id_number"]]


def _records_after(session, last_id: int) -> list[AuditRecord]:
    return list(session.scalars(select(AuditRecord).where(AuditRecord.id > last_id).order_by(AuditRecord.id)))


def _last_id(session) -> int:
    trail = audit_trail(session)
    return trail[-1].id if trail else 0


def test_region_init_writes_one_record(session, region, clock):
    (entry,) = audit_trail(session)
    assert (entry.action, entry.actor, entry.recorded_at) == ("region.init", "test", clock())
    assert (entry.subject_type, entry.subject_id) == ("region", "310000")
    assert entry.details["root_fingerprint"] == region.root_kid
    assert entry.details["catalog"] == ["BL", "DL", "PQ"]


def _add_office(session, keyring, clock, office, issue):
    _office, key, _token = add_office(
        session,
        keyring,
        credit_code=THIRD_OFFICE_CODE,
        name="浦东新区市场监督管理局",
        types=["BL"],
        algorithm="EdDSA",
        now=clock(),
        actor=ADMIN,
    )
    return [
        ("office.add", ADMIN, "office", THIRD_OFFICE_CODE),
        ("key.create", ADMIN, "key", key.kid),
        ("token.issue", ADMIN, "office", THIRD_OFFICE_CODE),
        ("trust_list.publish", ADMIN, "trust_list", "2"),
    ]


def _rotate_key(session, keyring, clock, office, issue):
    old, new = rotate_key(session, keyring, office.office, algorithm=None, now=clock(), actor=ADMIN)
    return [
        ("key.retire", ADMIN, "key", old.kid),
        ("key.create", ADMIN, "key", new.kid),
        ("trust_list.publish", ADMIN, "trust_list", "2"),
    ]


def _mark_key_compromised(session, keyring, clock, office, issue):
    compromise = mark_key_compromised(session, keyring, office.kid, clock(), now=clock(), actor=ADMIN)
    assert compromise.replacement is not None
    return [
        ("key.retire", ADMIN, "key", office.kid),
        ("key.create", ADMIN, "key", compromise.replacement.kid),
        ("key.compromise", ADMIN, "key", office.kid),
        ("trust_list.publish", ADMIN, "trust_list", "2"),
    ]


def _issue_token(session, keyring, clock, office, issue):
    issue_api_token(session, office.office, now=clock(), actor=ADMIN)
    return [("token.issue", ADMIN, "office", OFFICE_CODE)]


def _revoke_tokens(session, keyring, clock, office, issue):
    issue_api_token(session, office.office, now=clock(), actor=ADMIN)
    revoke_api_tokens(session, office.office, now=clock(), actor=ADMIN)
    # One record per token revoked: the fixture's token and the one just issued.
    return [("token.issue", ADMIN, "office", OFFICE_CODE)] + [("token.revoke", ADMIN, "office", OFFICE_CODE)] * 2


def _issue_certificate(session, keyring, clock, office, issue):
    certificate = issue(sample_request("DL")).certificate
    return [("certificate.issue", OFFICE_ACTOR, "certificate", certificate.id)]


def _replay_certificate(session, keyring, clock, office, issue):
    issue(sample_request("DL"), idempotency_key="order-1")
    return []


def _change_status(session, keyring, clock, office, issue):
    certificate = issue(sample_request("PQ")).certificate
    change_status(session, certificate, Status.SUSPENDED, "核查中", now=clock(), actor=OFFICE_ACTOR)
    return [
        ("certificate.issue", OFFICE_ACTOR, "certificate", certificate.id),
        ("certificate.status", OFFICE_ACTOR, "certificate", certificate.id),
    ]


@pytest.mark.parametrize(
    "operation",
    [_add_office, _rotate_key, _mark_key_compromised, _issue_token, _revoke_tokens, _issue_certificate, _change_status],
    ids=lambda operation: operation.__name__.strip("_"),
)
def test_each_state_change_writes_exactly_one_record(session, keyring, clock, office, issue, operation):
    before = _last_id(session)
    clock.advance(hours=1)
    expected = operation(session, keyring, clock, office, issue)
    session.commit()
    written = _records_after(session, before)
    assert [(r.action, r.actor, r.subject_type, r.subject_id) for r in written] == expected
    assert {r.recorded_at for r in written} == {clock()}


def test_office_fixture_left_one_record_per_change(session, office):
    assert [(r.action, r.subject_id) for r in audit_trail(session)] == [
        ("region.init", "310000"),
        ("office.add", OFFICE_CODE),
        ("key.create", office.kid),
        ("token.issue", OFFICE_CODE),
        ("trust_list.publish", "1"),
    ]


def test_replayed_issuance_writes_nothing(session, issue):
    issue(sample_request("DL"), idempotency_key="order-1")
    before = _last_id(session)
    assert issue(sample_request("DL"), idempotency_key="order-1").replayed
    assert _records_after(session, before) == []


def test_status_record_names_the_transition_and_reason(session, clock, certificate):
    change_status(session, certificate, Status.REVOKED, "吊销", now=clock(), actor=OFFICE_ACTOR)
    session.commit()
    entry = audit_trail(session)[-1]
    assert entry.details == {"from": "VALID", "to": "REVOKED", "reason": "吊销"}


def _everything_as_text(session) -> str:
    rows = session.execute(select(AuditRecord)).scalars()
    return "\n".join(
        json.dumps([r.actor, r.action, r.subject_type, r.subject_id, r.details, str(r.recorded_at)], ensure_ascii=False)
        for r in rows
    )


def test_no_record_holds_an_api_token_or_a_full_resident_id(session, keyring, clock, office, other_office, issue):
    fresh = issue_api_token(session, office.office, now=clock(), actor=ADMIN)
    revoke_api_tokens(session, other_office.office, now=clock(), actor=ADMIN)
    rotate_key(session, keyring, office.office, algorithm=None, now=clock(), actor=ADMIN)
    session.commit()
    for type_code in ("DL", "PQ", "BL"):
        certificate = issue(sample_request(type_code)).certificate
        change_status(session, certificate, Status.SUSPENDED, "暂扣", now=clock(), actor=OFFICE_ACTOR)
    session.commit()
    text = _everything_as_text(session)
    assert len(audit_trail(session)) >= 15
    for token in (office.token, other_office.token, fresh):
        assert token not in text
        assert token.removeprefix("ecert_") not in text
    for number in RESIDENT_IDS:
        assert number not in text


def test_a_reason_quoting_the_holders_id_does_not_put_it_in_the_audit_trail(session, clock, certificate):
    number = sample_request("DL")["holder"]["id_number"]
    change_status(
        session, certificate, Status.CANCELLED, f"持证人（{number}）申请注销", now=clock(), actor=OFFICE_ACTOR
    )
    session.commit()
    assert number not in _everything_as_text(session)
