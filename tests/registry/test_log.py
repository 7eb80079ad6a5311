"""This region's transparency log as the registry writes it (registry.log): what each
issuance and status change appends, at which position, and what the database refuses.

Positions come from ``UPDATE region SET log_size = log_size + n RETURNING`` in the
caller's transaction, so a rolled-back change takes its position with it; the log
tables are append-only in the database itself (registry.append_only). Every case runs
on SQLite and on PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from registry import log
from registry.demo import sample_request
from registry.issuance import issue_certificate
from registry.merkle import leaf_hash, root_from_leaves
from registry.models import Base, Certificate, LogCheckpoint, LogEntry, LogNode
from registry.regions import current_region
from registry.requests import parse_issuance_request
from registry.status import Status, change_status
from registry.times import iso_utc
from signing.keystore import KeyRing
from signing.notes import open_note, parse_checkpoint, parse_verifier_key
from tests.registry.builders import OFFICE_ACTOR
from tests.registry.conftest import Issue

APPEND_ONLY_TABLES = ["audit_record", "log_entry", "log_node", "log_checkpoint"]


def log_entries(session: Session) -> list[LogEntry]:
    return list(session.scalars(select(LogEntry).order_by(LogEntry.position)))


def row_count(session: Session, table: str) -> int:
    return session.scalar(select(func.count()).select_from(Base.metadata.tables[table])) or 0


def set_status(session: Session, certificate: Certificate, status: Status, reason: str, clock: Any) -> None:
    change_status(session, certificate, status, reason, now=clock(), actor=OFFICE_ACTOR)
    session.commit()


# ---------------------------------------------------------------- what is appended, where


def test_issuances_and_status_changes_take_positions_0_to_n_minus_1(session: Session, issue: Issue, clock: Any) -> None:
    """Every issuance and every status change appends one entry, in the order they were
    committed, at the next position: 0..N-1, and the region's size counter says N."""
    first = issue(sample_request("DL")).certificate
    set_status(session, first, Status.SUSPENDED, "核查中", clock)
    second = issue(sample_request("PQ")).certificate
    set_status(session, first, Status.VALID, "核查完毕", clock)
    set_status(session, second, Status.REVOKED, "吊销", clock)

    entries = log_entries(session)
    assert [e.position for e in entries] == [0, 1, 2, 3, 4]
    assert [(e.kind, e.certificate_id) for e in entries] == [
        (log.ISSUANCE, first.id),
        (log.STATUS_CHANGE, first.id),
        (log.ISSUANCE, second.id),
        (log.STATUS_CHANGE, first.id),
        (log.STATUS_CHANGE, second.id),
    ]
    assert log.tree_size(session) == log.count_entries(session) == 5


def test_a_certificates_log_index_is_its_issuance_entry_holding_the_tokens_ascii_bytes(
    session: Session, issue: Issue
) -> None:
    """``certificate.log_index`` names the entry of its issuance, whose leaf data is the
    token's ASCII bytes, so anyone holding the token computes the leaf hash."""
    certificates = [issue(sample_request(code)).certificate for code in ("DL", "PQ", "BL")]

    for certificate in certificates:
        entry = session.get(LogEntry, certificate.log_index)
        assert entry is not None
        assert (entry.kind, entry.certificate_id) == (log.ISSUANCE, certificate.id)
        assert bytes(entry.data) == certificate.token.encode("ascii")
        assert bytes(entry.leaf_hash) == leaf_hash(certificate.token.encode("ascii"))
        assert log.entry_for_issuance(session, certificate.id) == entry
    assert [c.log_index for c in certificates] == [0, 1, 2]


def test_a_status_entry_is_a_canonical_json_statement(session: Session, certificate: Certificate, clock: Any) -> None:
    """A status change's leaf data is JSON with sorted keys, no spaces and UTF-8 text
    (not ``\\u`` escapes): identifier, old and new status, reason, time and actor."""
    clock.advance(hours=2)
    set_status(session, certificate, Status.SUSPENDED, "核查中", clock)

    entry = log_entries(session)[-1]
    data = bytes(entry.data)
    statement = json.loads(data)
    assert statement == {
        "type": log.STATUS_STATEMENT,
        "id": certificate.id,
        "from": Status.VALID.value,
        "status": Status.SUSPENDED.value,
        "reason": "核查中",
        "time": iso_utc(clock()),
        "actor": OFFICE_ACTOR,
    }
    canonical = json.dumps(statement, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    assert data == canonical
    assert "核查中".encode() in data
    assert (entry.kind, entry.certificate_id, entry.position) == (log.STATUS_CHANGE, certificate.id, 1)


def test_a_rolled_back_issuance_leaves_no_gap(
    session: Session, keyring: KeyRing, clock: Any, office: Any, issue: Issue
) -> None:
    """An issuance whose transaction is rolled back (the request failed after the
    append) takes its position back: the next issuance gets it, and no entry, node or
    certificate of the abandoned one remains."""
    kept = issue(sample_request("DL")).certificate
    abandoned = issue_certificate(
        session, keyring, office.office, parse_issuance_request(sample_request("PQ")), now=clock(), actor=OFFICE_ACTOR
    ).certificate
    assert abandoned.log_index == 1
    abandoned_id = abandoned.id
    session.rollback()

    after = issue(sample_request("BL")).certificate

    assert (kept.log_index, after.log_index) == (0, 1)
    assert [(e.position, e.certificate_id) for e in log_entries(session)] == [(0, kept.id), (1, after.id)]
    assert log.tree_size(session) == 2
    assert session.get(Certificate, abandoned_id) is None
    assert session.scalar(select(func.count()).select_from(LogNode).where(LogNode.level == 0)) == 2


def test_a_rolled_back_status_change_leaves_no_gap(session: Session, certificate: Certificate, clock: Any) -> None:
    """The same for a status change: rolled back, its position goes to the next entry."""
    change_status(session, certificate, Status.SUSPENDED, "误操作", now=clock(), actor=OFFICE_ACTOR)
    session.rollback()
    session.refresh(certificate)

    set_status(session, certificate, Status.REVOKED, "吊销", clock)

    entries = log_entries(session)
    assert [e.position for e in entries] == [0, 1]
    assert json.loads(bytes(entries[1].data))["status"] == Status.REVOKED.value


def test_a_batch_append_takes_consecutive_positions_and_keeps_the_tree_whole(
    session: Session, certificate: Certificate, clock: Any
) -> None:
    """``append_many`` reserves its positions in one update; the stored nodes then give the
    RFC 6962 root of every prefix, equal to the root computed from the leaves alone."""
    items = [(log.STATUS_CHANGE, certificate.id, f"batch {n}".encode()) for n in range(6)]

    appended = log.append_many(session, items, now=clock())
    session.commit()

    assert [e.position for e in appended] == [1, 2, 3, 4, 5, 6]
    leaves = [bytes(e.leaf_hash) for e in log_entries(session)]
    for size in range(1, len(leaves) + 1):
        assert log.root_hash(session, size) == root_from_leaves(leaves[:size])


def test_the_database_refuses_a_second_entry_at_a_taken_position(
    session: Session, certificate: Certificate, clock: Any
) -> None:
    """A fork, two entries at one position, is refused by the primary key."""
    session.add(
        LogEntry(
            position=certificate.log_index,
            kind=log.ISSUANCE,
            certificate_id=certificate.id,
            data=b"another history",
            leaf_hash=leaf_hash(b"another history"),
            recorded_at=clock(),
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


# ---------------------------------------------------------------- checkpoints


def test_a_checkpoint_is_signed_once_per_size_and_verifies_under_the_published_key(
    session: Session, keyring: KeyRing, issue: Issue, clock: Any
) -> None:
    """``current_checkpoint`` keeps the checkpoint of the current size and signs a new one
    only when the log grew; each verifies under the region's verifier key and carries
    the root of the entries it covers."""
    issue(sample_request("DL"))
    issue(sample_request("PQ"))
    sizes_before = set(session.scalars(select(LogCheckpoint.size)))

    first = log.current_checkpoint(session, keyring, now=clock())
    session.commit()
    again = log.current_checkpoint(session, keyring, now=clock())
    issue(sample_request("BL"))
    grown = log.current_checkpoint(session, keyring, now=clock())
    session.commit()

    assert again.size == first.size == 2
    assert again.note == first.note
    assert grown.size == 3
    assert set(session.scalars(select(LogCheckpoint.size))) == sizes_before | {2, 3}
    verifier = log.log_verifier_key(current_region(session))
    assert verifier is not None
    name, key = parse_verifier_key(verifier)
    leaves = [bytes(e.leaf_hash) for e in log_entries(session)]
    for kept in (first, grown):
        signed = parse_checkpoint(open_note(kept.note, {name: key})[0])
        assert (signed.origin, signed.size, signed.root_hash) == (
            name,
            kept.size,
            root_from_leaves(leaves[: kept.size]),
        )


# ---------------------------------------------------------------- append-only in the database


@pytest.fixture
def history(session: Session, certificate: Certificate, clock: Any) -> Certificate:
    """A certificate issued and suspended: rows in every append-only table (the office
    fixture's trust list kept a checkpoint)."""
    set_status(session, certificate, Status.SUSPENDED, "核查中", clock)
    return certificate


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE {table} SET {column} = {column}", id="update"),
        pytest.param("DELETE FROM {table}", id="delete"),
    ],
)
def test_the_database_refuses_update_and_delete_of_append_only_rows(
    session: Session, history: Certificate, table: str, statement: str
) -> None:
    """Raw SQL, as an operator at a database prompt would type it: the table's trigger
    refuses the UPDATE (even one that changes nothing) and the DELETE, and every row
    stays as it was."""
    column = {"audit_record": "actor", "log_entry": "kind", "log_node": "hash", "log_checkpoint": "note"}[table]
    before = row_count(session, table)
    assert before > 0

    with pytest.raises(DBAPIError, match=f"{table} is append-only"):
        session.execute(text(statement.format(table=table, column=column)))
    session.rollback()

    assert row_count(session, table) == before


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_postgres_refuses_truncate_of_append_only_tables(session: Session, history: Certificate, table: str) -> None:
    """PostgreSQL's row triggers do not fire on TRUNCATE: a statement trigger refuses it.
    (SQLite has no TRUNCATE; its DELETE without WHERE is refused above.)"""
    with pytest.raises(DBAPIError, match=f"{table} is append-only"):
        session.execute(text(f"TRUNCATE {table} CASCADE"))
    session.rollback()
    assert row_count(session, table) > 0
