"""Partner regions: their tokens (the same machinery as offices'), revocation, audit, CLI."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit import check_chain
from registry.errors import AlreadyExists, InvalidInput, NotAuthenticated, NotFound
from registry.models import ApiToken, AuditRecord, Partner
from registry.offices import authenticate
from registry.partners import (
    PARTNER_TOKEN_PREFIX,
    add_partner,
    authenticate_partner,
    get_partner,
    list_partners,
    new_token,
    revoke_partner,
)
from tests.conftest import FixedClock, OfficeFixture


@pytest.fixture
def guangdong(session: Session, clock: FixedClock) -> tuple[Partner, str]:
    partner, token = add_partner(session, region_code="440000", name="广东省", now=clock(), actor="test")
    session.commit()
    return partner, token


def audit_trail(session: Session, subject_id: str) -> list[tuple[str, str]]:
    records = session.scalars(select(AuditRecord).where(AuditRecord.subject_id == subject_id).order_by(AuditRecord.id))
    return [(r.action, r.subject_type) for r in records]


def test_a_partner_token_authenticates_its_partner(session: Session, guangdong: tuple[Partner, str]) -> None:
    partner, token = guangdong

    assert token.startswith(PARTNER_TOKEN_PREFIX)
    assert len(token) > len(PARTNER_TOKEN_PREFIX) + 40
    assert authenticate_partner(session, token).region_code == partner.region_code == "440000"


def test_only_the_digest_is_stored(session: Session, guangdong: tuple[Partner, str]) -> None:
    _partner, token = guangdong
    stored = session.scalars(select(ApiToken).where(ApiToken.partner_id.is_not(None))).one()

    assert stored.digest == hashlib.sha256(token.encode()).hexdigest()
    assert stored.office_id is None
    assert token not in {stored.digest, stored.prefix}
    assert token.startswith(stored.prefix)


def test_partner_and_office_tokens_never_stand_in_for_each_other(
    session: Session, office: OfficeFixture, guangdong: tuple[Partner, str]
) -> None:
    _partner, partner_token = guangdong

    with pytest.raises(NotAuthenticated):
        authenticate(session, partner_token)
    with pytest.raises(NotAuthenticated):
        authenticate_partner(session, office.token)
    # Even a partner token re-labelled with the office prefix is nobody's.
    with pytest.raises(NotAuthenticated):
        authenticate(session, "ecert_" + partner_token.removeprefix(PARTNER_TOKEN_PREFIX))


def test_revocation_ends_every_token_and_new_token_readmits(
    session: Session, clock: FixedClock, guangdong: tuple[Partner, str]
) -> None:
    partner, first = guangdong
    second = new_token(session, partner, now=clock(), actor="test")
    session.commit()

    assert revoke_partner(session, partner, now=clock(), actor="test") == 2
    session.commit()
    for token in (first, second):
        with pytest.raises(NotAuthenticated):
            authenticate_partner(session, token)
    assert list_partners(session) == [(partner, 0)]

    third = new_token(session, partner, now=clock(), actor="test")
    assert authenticate_partner(session, third) == partner
    assert revoke_partner(session, partner, now=clock(), actor="test") == 1


def test_adding_and_revoking_are_audited(session: Session, clock: FixedClock, guangdong: tuple[Partner, str]) -> None:
    partner, _token = guangdong
    revoke_partner(session, partner, now=clock(), actor="test")
    session.commit()

    assert audit_trail(session, "440000") == [
        ("partner.add", "partner"),
        ("token.issue", "partner"),
        ("token.revoke", "partner"),
    ]
    assert check_chain(session) == []


@pytest.mark.parametrize(
    ("region_code", "name", "field"),
    [
        pytest.param("044000", "广东省", "region", id="leading-zero"),
        pytest.param("44000", "广东省", "region", id="five-digits"),
        pytest.param("44000A", "广东省", "region", id="letter"),
        pytest.param("440000", "", "name", id="no-name"),
        pytest.param("440000", "省" * 101, "name", id="long-name"),
    ],
)
def test_bad_partners_are_refused(session: Session, clock: FixedClock, region_code: str, name: str, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        add_partner(session, region_code=region_code, name=name, now=clock(), actor="test")

    assert field in {e.field for e in refused.value.errors}


def test_a_region_is_a_partner_once(session: Session, clock: FixedClock, guangdong: tuple[Partner, str]) -> None:
    with pytest.raises(AlreadyExists):
        add_partner(session, region_code="440000", name="广东", now=clock(), actor="test")
    with pytest.raises(NotFound):
        get_partner(session, "320000")


# ---------------------------------------------------------------- command line


def invoke_json(runner: FlaskCliRunner, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(args=[*args, "--json"])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_cli_adds_lists_and_revokes(runner: FlaskCliRunner, session: Session) -> None:
    exit_code, added = invoke_json(runner, "partner", "add", "--region", "440000", "--name", "广东省")
    assert exit_code == 0
    assert added["api_token"].startswith(PARTNER_TOKEN_PREFIX)
    assert authenticate_partner(session, added["api_token"]).name == "广东省"
    session.rollback()  # the test's writing session must not hold SQLite's lock while the CLI writes

    assert invoke_json(runner, "partner", "list") == (
        0,
        {"partners": [{"region": "440000", "name": "广东省", "live_tokens": 1}]},
    )
    assert invoke_json(runner, "partner", "revoke", "--region", "440000") == (0, {"region": "440000", "revoked": 1})
    with pytest.raises(NotAuthenticated):
        authenticate_partner(session, added["api_token"])
    session.rollback()

    exit_code, again = invoke_json(runner, "partner", "new-token", "--region", "440000")
    assert exit_code == 0
    assert authenticate_partner(session, again["api_token"]).region_code == "440000"


def test_cli_prints_the_token_once_for_people(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["partner", "add", "--region", "440000", "--name", "广东省"])

    assert result.exit_code == 0
    assert "partner 440000 广东省 added" in result.output
    assert result.output.count(PARTNER_TOKEN_PREFIX) == 1


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param(("revoke", "--region", "320000"), "NOT_FOUND", id="revoke-unknown"),
        pytest.param(("new-token", "--region", "320000"), "NOT_FOUND", id="token-unknown"),
        pytest.param(("add", "--region", "0", "--name", "x"), "VALIDATION_FAILED", id="bad-region"),
    ],
)
def test_cli_failures_exit_non_zero(runner: FlaskCliRunner, args: tuple[str, ...], code: str) -> None:
    exit_code, failure = invoke_json(runner, "partner", *args)

    assert exit_code == 1
    assert failure["error"] == code
