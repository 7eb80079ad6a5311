"""The audit trail: every state change records who did what to which subject, when.

Records are hash-chained: each carries SHA-256(previous chain hash || its canonical
form), and the ``audit_head`` row holds the end of the chain and the record count. Every
append locks that row (PostgreSQL ``FOR UPDATE``; SQLite's writers hold the database
lock), so concurrent transactions chain one after another and never fork. The table is
append-only in the database itself (:mod:`registry.append_only`); :func:`check_chain`
finds any record edited, removed or inserted behind the application's back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from registry.models import AuditHead, AuditRecord
from registry.times import iso_utc

GENESIS: Final = bytes(32)
HEAD_ID: Final = 1


def record(
    session: Session,
    *,
    now: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit record to the caller's transaction (it commits with the change).

    ``details`` must never hold secrets or full personal ID numbers.
    """
    subjects = [(subject_id, details or {})]
    record_many(session, now=now, actor=actor, action=action, subject_type=subject_type, subjects=subjects)


def record_many(
    session: Session,
    *,
    now: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subjects: Sequence[tuple[str, dict[str, Any]]],
) -> None:
    """One record per ``(subject_id, details)``, chained in order under one lock of the
    head and written with one bulk INSERT (batch issuance: not a statement per record)."""
    if not subjects:
        return
    head = session.scalars(select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update()).first()
    if head is None:
        head = AuditHead(id=HEAD_ID, records=0, chain_hash=GENESIS)
        session.add(head)
    rows = []
    previous = head.chain_hash
    for subject_id, details in subjects:
        previous = _link(previous, now, actor, action, subject_type, subject_id, details)
        rows.append(
            {
                "recorded_at": now,
                "actor": actor,
                "action": action,
                "subject_type": subject_type,
                "subject_id": subject_id,
                "details": details,
                "chain_hash": previous,
            }
        )
    # Rows go in in chain order, so their ids ascend along it (check_chain reads by id).
    session.execute(insert(AuditRecord), rows)
    head.chain_hash = previous
    head.records += len(rows)


def chain_hash(previous: bytes, entry: AuditRecord) -> bytes:
    """SHA-256(previous || canonical JSON of the record's content)."""
    return _link(
        previous, entry.recorded_at, entry.actor, entry.action, entry.subject_type, entry.subject_id, entry.details
    )


def _link(
    previous: bytes,
    recorded_at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    details: dict[str, Any],
) -> bytes:
    canonical = json.dumps(
        [iso_utc(recorded_at), actor, action, subject_type, subject_id, details],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(previous + canonical.encode("utf-8")).digest()


@dataclass(frozen=True)
class ChainProblem:
    record_id: int | None
    detail: str


def check_chain(session: Session, *, batch: int = 5000) -> list[ChainProblem]:
    """Recompute the audit chain from the first record; every break found (empty: intact).

    Records are read in id order, ``batch`` at a time, so memory stays flat.
    """
    problems: list[ChainProblem] = []
    previous, count, last_id = GENESIS, 0, None
    while True:
        query = select(AuditRecord).order_by(AuditRecord.id).limit(batch)
        rows = session.scalars(query if last_id is None else query.where(AuditRecord.id > last_id)).all()
        if not rows:
            break
        for row in rows:
            expected = chain_hash(previous, row)
            if row.chain_hash != expected:
                problems.append(
                    ChainProblem(
                        row.id,
                        "the record does not chain to the one before it (edited, "
                        "or a record before it was removed or inserted)",
                    )
                )
            previous = row.chain_hash or expected
            count += 1
            last_id = row.id
    head = session.get(AuditHead, HEAD_ID)
    if head is None:
        if count:
            problems.append(ChainProblem(None, "the chain's head is missing"))
    elif head.records != count or head.chain_hash != previous:
        problems.append(
            ChainProblem(
                None,
                f"the chain's head says {head.records} records, {count} found: records at the end "
                "were removed, or the head was edited",
            )
        )
    return problems
