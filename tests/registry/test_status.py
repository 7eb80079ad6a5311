"""The certificate lifecycle: national status codes, allowed transitions, reasons, history."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from registry.errors import InvalidInput, StatusTransitionRefused
from registry.models import Certificate, StatusChange
from registry.status import FINAL_STATES, MAX_REASON_LENGTH, Status, allowed_transitions, change_status
from tests.registry.builders import audit_actions, error_fields

CLERK = "office:clerk-7"
NON_FINAL = [Status.VALID, Status.SUSPENDED]

Change = Callable[..., StatusChange]


@pytest.fixture
def change(session, clock) -> Change:
    """Change a certificate's status as an office clerk would, and commit."""

    def change_(certificate: Certificate, new: Status, reason: str = "依当事人申请") -> StatusChange:
        made = change_status(session, certificate, new, reason, now=clock(), actor=CLERK)
        session.commit()
        return made

    return change_


def _history(session, certificate: Certificate) -> list[tuple[str, str]]:
    rows = session.scalars(
        select(StatusChange).where(StatusChange.certificate_id == certificate.id).order_by(StatusChange.id)
    )
    return [(row.from_status, row.to_status) for row in rows]


# ---------------------------------------------------------------- codes


@pytest.mark.parametrize(
    ("status", "code", "name_zh"),
    [
        (Status.VALID, "01", "有效"),
        (Status.SUSPENDED, "02", "暂扣"),
        (Status.WITHDRAWN, "03", "撤销"),
        (Status.CANCELLED, "04", "注销"),
        (Status.EXPIRED, "05", "失效"),
        (Status.TRANSFERRED, "06", "转出"),
        (Status.REVOKED, "07", "吊销"),
    ],
    ids=lambda value: value.name if isinstance(value, Status) else None,
)
def test_national_codes_and_names(status, code, name_zh):
    assert (status.value, status.name_zh) == (code, name_zh)
    assert Status.parse(code) is status
    assert Status.parse(status.name) is status


@pytest.mark.parametrize("text", ["suspended", "2", "08", "", " SUSPENDED", "暂扣"])
def test_unknown_status_names_are_refused(text):
    with pytest.raises(ValueError, match="unknown status"):
        Status.parse(text)


# ---------------------------------------------------------------- the transition table


@pytest.mark.parametrize("current", list(Status), ids=lambda s: s.name)
def test_only_suspended_may_return_to_valid(current):
    assert (Status.VALID in allowed_transitions(current)) is (current is Status.SUSPENDED)


@pytest.mark.parametrize("current", list(Status), ids=lambda s: s.name)
def test_no_status_may_transition_to_itself(current):
    assert current not in allowed_transitions(current)


def test_final_states_are_every_state_but_valid_and_suspended():
    assert frozenset(Status) - FINAL_STATES == {Status.VALID, Status.SUSPENDED}
    assert all(allowed_transitions(final) == frozenset() for final in FINAL_STATES)


# ---------------------------------------------------------------- changes on real certificates


@pytest.mark.parametrize("new", sorted(set(Status) - {Status.VALID}, key=lambda s: s.value), ids=lambda s: s.name)
def test_valid_may_become_any_other_status(session, certificate, change, new):
    change(certificate, new)
    assert session.get(Certificate, certificate.id).status == new.value
    assert _history(session, certificate) == [("01", new.value)]


@pytest.mark.parametrize("new", sorted(set(Status) - {Status.SUSPENDED}, key=lambda s: s.value), ids=lambda s: s.name)
def test_suspended_may_become_any_other_status(session, certificate, change, new):
    change(certificate, Status.SUSPENDED)
    change(certificate, new)
    assert session.get(Certificate, certificate.id).status == new.value
    assert _history(session, certificate) == [("01", "02"), ("02", new.value)]


@pytest.mark.parametrize("new", list(Status), ids=lambda s: s.name)
@pytest.mark.parametrize("final", sorted(FINAL_STATES, key=lambda s: s.value), ids=lambda s: s.name)
def test_final_states_refuse_every_change(session, certificate, change, final, new):
    change(certificate, final)
    with pytest.raises(StatusTransitionRefused, match=f"is {final.name} cannot become {new.name}"):
        change(certificate, new)
    session.rollback()
    assert session.get(Certificate, certificate.id).status == final.value
    assert _history(session, certificate) == [("01", final.value)]


@pytest.mark.parametrize("current", NON_FINAL, ids=lambda s: s.name)
def test_same_status_is_refused(session, certificate, change, current):
    if current is not Status.VALID:
        change(certificate, current)
    history = _history(session, certificate)
    with pytest.raises(StatusTransitionRefused, match=f"is {current.name} cannot become {current.name}"):
        change(certificate, current)
    assert _history(session, certificate) == history


# ---------------------------------------------------------------- reasons


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("违" * (MAX_REASON_LENGTH + 1), id="too-long"),
        pytest.param("酒后驾驶\x00", id="nul"),
        pytest.param("酒后驾驶\n扣证", id="newline"),
        pytest.param("\u202e证扣驶驾后酒", id="bidi-override"),
        pytest.param("酒后\u200b驾驶", id="zero-width-space"),
    ],
)
def test_bad_reasons_are_refused_and_change_nothing(session, certificate, change, reason):
    with pytest.raises(InvalidInput) as refused:
        change(certificate, Status.SUSPENDED, reason)
    session.rollback()
    assert error_fields(refused.value) == ["reason"]
    assert session.get(Certificate, certificate.id).status == "01"
    assert _history(session, certificate) == []
    assert "certificate.status" not in audit_actions(session)


def test_reason_of_maximum_length_is_accepted(certificate, change):
    assert change(certificate, Status.SUSPENDED, "违" * MAX_REASON_LENGTH).reason == "违" * MAX_REASON_LENGTH


def test_reason_is_nfc_normalised_and_trimmed(certificate, change):
    assert change(certificate, Status.SUSPENDED, "  Cafe\u0301 扣证 ").reason == "Café 扣证"


# ---------------------------------------------------------------- history


def test_history_keeps_every_change_in_order(session, certificate, change, clock):
    steps = [
        (Status.SUSPENDED, "酒后驾驶，暂扣六个月"),
        (Status.VALID, "暂扣期满，发还"),
        (Status.SUSPENDED, "再次违法"),
        (Status.REVOKED, "吊销驾驶证"),
    ]
    moments = []
    for new, reason in steps:
        clock.advance(days=30)
        moments.append(clock())
        change(certificate, new, reason)
    session.expire_all()
    history = session.get(Certificate, certificate.id).history
    assert [(row.from_status, row.to_status) for row in history] == [
        ("01", "02"),
        ("02", "01"),
        ("01", "02"),
        ("02", "07"),
    ]
    assert [row.reason for row in history] == [reason for _new, reason in steps]
    assert [row.changed_at for row in history] == moments
    assert {row.actor for row in history} == {CLERK}
    assert session.get(Certificate, certificate.id).status == "07"
