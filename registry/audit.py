"""The audit trail: every state change records who did what to which subject, when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from registry.models import AuditRecord


def record(
    session: Session,
    *,
    now: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """Add an audit record to the caller's transaction (it commits with the change).

    ``details`` must never hold secrets or full personal ID numbers.
    """
    entry = AuditRecord(
        recorded_at=now,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        details=details or {},
    )
    session.add(entry)
    return entry
