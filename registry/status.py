"""Certificate lifecycle: the national status codes and the transitions between them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from sqlalchemy.orm import Session

from registry import audit, log
from registry.errors import FieldError, InvalidInput, StatusTransitionRefused
from registry.identifiers import mask_resident_ids_in_text
from registry.models import Certificate, StatusChange
from registry.text import clean_text


class Status(Enum):
    """Lifecycle states with their national codes (value) and Chinese names."""

    VALID = "01"
    SUSPENDED = "02"
    WITHDRAWN = "03"
    CANCELLED = "04"
    EXPIRED = "05"
    TRANSFERRED = "06"
    REVOKED = "07"

    @property
    def name_zh(self) -> str:
        return _NAMES_ZH[self]

    @classmethod
    def parse(cls, text: str) -> Status:
        """A status from its name (``SUSPENDED``) or national code (``02``).

        Raises:
            ValueError: neither.
        """
        for status in cls:
            if text in (status.name, status.value):
                return status
        raise ValueError(f"unknown status {text!r}; use one of {', '.join(s.name for s in cls)}")


_NAMES_ZH = {
    Status.VALID: "有效",
    Status.SUSPENDED: "暂扣",
    Status.WITHDRAWN: "撤销",
    Status.CANCELLED: "注销",
    Status.EXPIRED: "失效",
    Status.TRANSFERRED: "转出",
    Status.REVOKED: "吊销",
}

FINAL_STATES = frozenset({Status.WITHDRAWN, Status.CANCELLED, Status.EXPIRED, Status.TRANSFERRED, Status.REVOKED})
MAX_REASON_LENGTH = 500


def allowed_transitions(current: Status) -> frozenset[Status]:
    """Where a certificate may go from ``current``: only SUSPENDED returns to VALID."""
    if current in FINAL_STATES:
        return frozenset()
    return frozenset(Status) - {current}


def change_status(
    session: Session, certificate: Certificate, new: Status, reason: str, *, now: datetime, actor: str
) -> StatusChange:
    """Move ``certificate`` to ``new``, keeping the change in its history and the audit trail.

    Raises:
        InvalidInput: the reason is missing, too long or holds forbidden characters.
        StatusTransitionRefused: the lifecycle does not allow the change.
    """
    try:
        reason = mask_resident_ids_in_text(clean_text(reason))
    except ValueError as error:
        raise InvalidInput("bad reason", [FieldError("reason", str(error))]) from error
    if not reason or len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(
            "bad reason", [FieldError("reason", f"give a reason of 1 to {MAX_REASON_LENGTH} characters")]
        )
    current = Status(certificate.status)
    if new not in allowed_transitions(current):
        raise StatusTransitionRefused(f"a certificate that is {current.name} cannot become {new.name}")
    change = StatusChange(
        certificate_id=certificate.id,
        from_status=current.value,
        to_status=new.value,
        reason=reason,
        actor=actor,
        changed_at=now,
    )
    certificate.status = new.value
    session.add(change)
    leaf = log.status_leaf(
        certificate.id, to_status=new.value, from_status=current.value, reason=reason, changed_at=now, actor=actor
    )
    log.append(session, kind=log.STATUS_CHANGE, certificate_id=certificate.id, data=leaf, now=now)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="certificate.status",
        subject_type="certificate",
        subject_id=certificate.id,
        details={"from": current.name, "to": new.name, "reason": reason},
    )
    session.flush()
    return change
