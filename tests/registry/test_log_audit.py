"""An insider at the database (内贼暗箱操作), and what finds them: the audit trail's hash
chain (registry.audit.check_chain) and the self-audit of the registry against its
transparency log (registry.log_audit.audit_registry, the ``log audit`` command).

Every tampering here goes behind the application's back, as an operator with DDL rights
would: the append-only triggers are switched off first (SQLite: dropped; PostgreSQL:
``ALTER TABLE ... DISABLE TRIGGER USER``, re-enabled before the commit), then rows are
edited, deleted or inserted with plain SQL or the ORM. The audit then runs on a fresh
session, as the command would. Every case runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from deployment import Deployment
from registry import audit, log
from registry.append_only import APPEND_ONLY_TABLES
from registry.demo import sample_request
from registry.identifiers import CertificateId
from registry.log_audit import Finding, audit_registry
from registry.merkle import leaf_hash
from registry.models import (
    AuditHead,
    AuditRecord,
    Certificate,
    LogCheckpoint,
    LogEntry,
    LogNode,
    Region,
    SigningKey,
    StatusChange,
)
from registry.regions import current_region
from registry.status import Status, change_status
from signing.keystore import KeyRing
from signing.notes import Checkpoint, sign_note
from signing.tokens import encode_token
from tests.conftest import OFFICE_CODE
from tests.registry.builders import OFFICE_ACTOR
from tests.registry.conftest import Issue
from tests.verify.conftest import decode_parts

# ---------------------------------------------------------------- the insider's tools


@contextmanager
def insider(deployment: Deployment) -> Iterator[Session]:
    """A session with the append-only triggers off, committed at the end."""
    with deployment.session() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        for table in APPEND_ONLY_TABLES:
            if postgres:
                session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            else:
                for verb in ("update", "delete"):
                    session.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))
        yield session
        session.flush()  # ORM edits reach the tables while the triggers are still off
        if postgres:
            for table in APPEND_ONLY_TABLES:
                session.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        session.commit()


def findings_of(deployment: Deployment) -> list[Finding]:
    with deployment.read_session() as session:
        return audit_registry(session)


def chain_problems(deployment: Deployment) -> list[tuple[int | None, str]]:
    with deployment.read_session() as session:
        return [(p.record_id, p.detail) for p in audit.check_chain(session)]


def resign(token: str, key: Any, kid: str, **claims: Any) -> str:
    """``token`` with some claims changed, signed again with the office's real key."""
    _header, payload, _signature = decode_parts(token)
    payload.update(claims)
    return encode_token(payload, key, kid)


def office_key(session: Session, keyring: KeyRing, kid: str) -> Any:
    row = session.get(SigningKey, kid)
    assert row is not None
    stored = row.private_key
    return keyring.private_key(kid, lambda: stored)


def log_key(session: Session, keyring: KeyRing) -> Any:
    region = current_region(session)
    return log.ensure_log_key(session, keyring, region)


# ---------------------------------------------------------------- a registry with a history


@dataclass(frozen=True)
class History:
    """Four certificates: ``dl`` (issued, suspended), ``pq``, ``bl``, ``dl2``, issued an
    hour after the office and its key; and a checkpoint signed at the log's size.
    Positions: dl 0, pq 1, dl's suspension 2, bl 3, dl2 4."""

    dl: Certificate
    pq: Certificate
    bl: Certificate
    dl2: Certificate
    size: int


@pytest.fixture
def history(session: Session, keyring: KeyRing, clock: Any, issue: Issue) -> History:
    clock.advance(hours=1)  # the log begins an hour after the office and its key
    dl = issue(sample_request("DL")).certificate
    pq = issue(sample_request("PQ")).certificate
    change_status(session, dl, Status.SUSPENDED, "核查中", now=clock(), actor=OFFICE_ACTOR)
    session.commit()
    bl = issue(sample_request("BL")).certificate
    dl2 = issue(sample_request("DL")).certificate
    log.current_checkpoint(session, keyring, now=clock())
    session.commit()
    return History(dl=dl, pq=pq, bl=bl, dl2=dl2, size=5)


# ---------------------------------------------------------------- the audit trail's hash chain


def audit_ids(deployment: Deployment) -> list[int]:
    with deployment.read_session() as session:
        return list(session.scalars(select(AuditRecord.id).order_by(AuditRecord.id)))


def test_a_normal_history_chains_intact(deployment: Deployment, history: History) -> None:
    """Every record written through the application chains to the one before, and the head
    holds the count and the last hash."""
    assert len(audit_ids(deployment)) >= 9
    assert chain_problems(deployment) == []


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param({"actor": "cli:nobody"}, id="actor"),
        pytest.param({"details": {"from": "VALID", "to": "VALID", "reason": "无"}}, id="details"),
        pytest.param({"subject_id": "another"}, id="subject"),
    ],
)
def test_an_edited_record_breaks_the_chain_at_that_record(
    deployment: Deployment, history: History, edit: dict[str, Any]
) -> None:
    """Editing any field of a record makes its own chain hash wrong; nothing else moves."""
    edited = audit_ids(deployment)[4]
    with insider(deployment) as session:
        session.execute(update(AuditRecord).where(AuditRecord.id == edited).values(**edit))

    problems = chain_problems(deployment)
    assert [record for record, _ in problems] == [edited]
    assert "does not chain" in problems[0][1]


def test_a_record_edited_with_its_chain_hash_recomputed_breaks_the_next_one(
    deployment: Deployment, history: History
) -> None:
    """An insider who knows the algorithm and rewrites the edited record's hash too only
    moves the break to the following record."""
    ids = audit_ids(deployment)
    edited = ids[4]
    with insider(deployment) as session:
        previous = session.get(AuditRecord, ids[3])
        record = session.get(AuditRecord, edited)
        assert previous is not None and record is not None and previous.chain_hash is not None
        record.actor = "cli:nobody"
        record.chain_hash = audit.chain_hash(previous.chain_hash, record)

    assert [record for record, _ in chain_problems(deployment)] == [ids[5]]


def test_a_deleted_record_breaks_the_chain_and_the_count(deployment: Deployment, history: History) -> None:
    """A record removed from the middle: the next one no longer chains, and the head counts
    one record more than there are."""
    ids = audit_ids(deployment)
    with insider(deployment) as session:
        session.execute(delete(AuditRecord).where(AuditRecord.id == ids[4]))

    problems = chain_problems(deployment)
    assert [record for record, _ in problems] == [ids[5], None]
    assert f"says {len(ids)} records, {len(ids) - 1} found" in problems[1][1]


def test_a_removed_tail_is_found_by_the_head(deployment: Deployment, history: History) -> None:
    """The newest records removed: what remains chains, but the head says more."""
    ids = audit_ids(deployment)
    with insider(deployment) as session:
        session.execute(delete(AuditRecord).where(AuditRecord.id >= ids[-2]))

    problems = chain_problems(deployment)
    assert problems == [
        (
            None,
            f"the chain's head says {len(ids)} records, {len(ids) - 2} found: records at the end "
            "were removed, or the head was edited",
        )
    ]


@pytest.mark.xfail(
    strict=True,
    reason="GAP: audit_head is an ordinary row, anchored nowhere (not in the log, not in a "
    "checkpoint): an insider who removes the tail and rewinds the head leaves a perfect chain",
)
def test_a_removed_tail_with_the_head_rewound_is_found(deployment: Deployment, history: History) -> None:
    """The tail removed and the head set back to the last remaining record."""
    ids = audit_ids(deployment)
    with insider(deployment) as session:
        kept = session.get(AuditRecord, ids[-3])
        head = session.get(AuditHead, audit.HEAD_ID)
        assert kept is not None and kept.chain_hash is not None and head is not None
        session.execute(delete(AuditRecord).where(AuditRecord.id >= ids[-2]))
        head.records, head.chain_hash = len(ids) - 2, kept.chain_hash

    assert chain_problems(deployment) != []


def forged_record(recorded_at: datetime, previous: bytes, record_id: int | None = None) -> AuditRecord:
    record = AuditRecord(
        recorded_at=recorded_at,
        actor="cli:nobody",
        action="certificate.issue",
        subject_type="certificate",
        subject_id="never-issued",
        details={},
    )
    if record_id is not None:
        record.id = record_id
    record.chain_hash = audit.chain_hash(previous, record)
    return record


def test_a_record_slipped_in_before_later_activity_breaks_the_chain(
    deployment: Deployment, history: History, session: Session, clock: Any, issue: Issue
) -> None:
    """A forged record chained correctly onto the head, the head left alone, then the
    application goes on: its next record chains to the head, not to the forged one, so
    the chain breaks there, and the head counts one record fewer than there are."""
    with insider(deployment) as tampering:
        head = tampering.get(AuditHead, audit.HEAD_ID)
        assert head is not None
        forged = forged_record(clock(), head.chain_hash)
        tampering.add(forged)
        tampering.flush()
        forged_id = forged.id
    session.expire_all()
    issue(sample_request("PQ"))

    ids = audit_ids(deployment)
    assert ids[-2] == forged_id
    assert [record for record, _ in chain_problems(deployment)] == [ids[-1], None]


def test_a_record_inserted_before_the_others_breaks_the_chain(
    deployment: Deployment, history: History, clock: Any
) -> None:
    """Even chained correctly from the genesis hash, a record slipped in before the first
    leaves the first one chaining to the wrong predecessor."""
    ids = audit_ids(deployment)
    with insider(deployment) as session:
        session.add(forged_record(clock(), audit.GENESIS, record_id=0))

    problems = chain_problems(deployment)
    assert [record for record, _ in problems] == [ids[0], None]


def test_a_record_appended_behind_the_applications_back_is_found_by_the_head(
    deployment: Deployment, history: History, clock: Any
) -> None:
    """A record added at the end with a correct chain hash, but without the head moving."""
    with insider(deployment) as session:
        head = session.get(AuditHead, audit.HEAD_ID)
        assert head is not None
        session.add(forged_record(clock(), head.chain_hash))

    problems = chain_problems(deployment)
    assert [record for record, _ in problems] == [None]


# ---------------------------------------------------------------- log audit: insider actions


def cert(certificate: Certificate) -> str:
    return f"certificate {certificate.id}"


def _holder_name_edited(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    session.execute(update(Certificate).where(Certificate.id == h.pq.id).values(holder_name="李四"))
    return [(cert(h.pq), "differs from its signed token in holder name")]


def _validity_extended(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    assert h.dl2.valid_until is not None
    longer = h.dl2.valid_until + timedelta(days=3650)
    session.execute(update(Certificate).where(Certificate.id == h.dl2.id).values(valid_until=longer))
    return [(cert(h.dl2), "differs from its signed token in valid until")]


def _token_edited(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    header, _payload, signature = h.pq.token.split(".")
    _h, claims, _s = decode_parts(h.pq.token)
    claims["h"]["n"] = "李四"
    edited = base64.urlsafe_b64encode(json.dumps(claims, ensure_ascii=False).encode()).rstrip(b"=").decode()
    session.execute(update(Certificate).where(Certificate.id == h.pq.id).values(token=f"{header}.{edited}.{signature}"))
    return [(cert(h.pq), "signature does not verify"), (cert(h.pq), "not the one the log recorded")]


def _token_replaced_and_resigned(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    """The strongest insider: holds the office key, re-signs a consistent row and token."""
    token = resign(h.pq.token, office_key(session, keyring, h.pq.kid), h.pq.kid, h={"n": "李四", "i": "x"})
    session.execute(update(Certificate).where(Certificate.id == h.pq.id).values(token=token, holder_name="李四"))
    return [(cert(h.pq), "its token is not the one the log recorded")]


def _certificate_deleted(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    session.execute(delete(StatusChange).where(StatusChange.certificate_id == h.dl.id))
    session.execute(delete(Certificate).where(Certificate.id == h.dl.id))
    return [(cert(h.dl), "the log recorded its issuance; its row is gone")]


def insert_unlogged_certificate(session: Session, keyring: KeyRing, template_id: str, issued_at: datetime) -> str:
    """A copy of a certificate under a new identifier and status position, issued at
    ``issued_at``, its token signed with the office's real key; no log entry. Its id."""
    template = session.get(Certificate, template_id)
    assert template is not None
    new_id = str(CertificateId.new("DL", OFFICE_CODE))
    status_index = current_region(session).next_status_index + 100
    key = office_key(session, keyring, template.kid)
    moment = int(issued_at.timestamp())
    token = resign(template.token, key, template.kid, jti=new_id, s=status_index, iat=moment, nbf=moment)
    columns = {c.key: getattr(template, c.key) for c in Certificate.__table__.columns}
    changes = {
        "id": new_id,
        "token": token,
        "status_index": status_index,
        "log_index": None,
        "issued_at": issued_at,
        "valid_from": issued_at,
    }
    session.add(Certificate(**{**columns, **changes}))
    return new_id


def _certificate_inserted(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    """A genuine-looking certificate signed with the office's key, never appended."""
    new_id = insert_unlogged_certificate(session, keyring, h.dl2.id, clock().replace(microsecond=0))
    return [(f"certificate {new_id}", "it is not in the log")]


def _status_changed_in_the_row(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    session.execute(update(Certificate).where(Certificate.id == h.bl.id).values(status=Status.REVOKED.value))
    return [(cert(h.bl), "its status is 07, the log's last recorded status is 01")]


def _suspension_lifted_in_the_row(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    session.execute(update(Certificate).where(Certificate.id == h.dl.id).values(status=Status.VALID.value))
    return [(cert(h.dl), "its status is 01, the log's last recorded status is 02")]


def _status_history_forged(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    session.add(
        StatusChange(
            certificate_id=h.pq.id,
            from_status="01",
            to_status="01",
            reason="无",
            actor="cli:nobody",
            changed_at=clock(),
        )
    )
    return [(cert(h.pq), "1 status changes kept, 0 in the log")]


def _entry_data_changed(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    session.execute(update(LogEntry).where(LogEntry.position == 2).values(data=b'{"status":"01"}'))
    return [("log", "entry 2's data was changed")]


def _entry_rewritten_with_its_hash(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    """The entry and its stored leaf hash changed together: the tree above no longer matches."""
    forged = h.dl2.token.encode("ascii")
    session.execute(update(LogEntry).where(LogEntry.position == 1).values(data=forged, leaf_hash=leaf_hash(forged)))
    return [("log", "tree node (0, 1) is missing or does not match"), (cert(h.pq), "not the one the log recorded")]


def _entry_deleted(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    session.execute(delete(LogEntry).where(LogEntry.position == 3))
    return [("log", "entries 3..3 are missing"), (cert(h.bl), "it is not in the log")]


def _node_changed(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    session.execute(update(LogNode).where(LogNode.level == 2, LogNode.position == 0).values(hash=bytes(32)))
    return [("log", "tree node (2, 0) is missing or does not match"), (f"checkpoint {h.size}", "signed root is not")]


def _node_deleted(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    session.execute(delete(LogNode).where(LogNode.level == 1, LogNode.position == 1))
    return [("log", "tree node (1, 1) is missing or does not match")]


def _checkpoint_note_edited(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    kept = session.get(LogCheckpoint, h.size)
    assert kept is not None
    origin, size, _root, *rest = kept.note.split("\n")
    kept.note = "\n".join([origin, size, base64.b64encode(bytes(32)).decode(), *rest])
    return [(f"checkpoint {h.size}", "its signature does not verify")]


def _checkpoint_resigned(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    """An insider with the log key signs a checkpoint of another tree at a kept size."""
    region = current_region(session)
    assert region.log_origin is not None
    kept = session.get(LogCheckpoint, h.size)
    assert kept is not None
    other = Checkpoint(region.log_origin, h.size, bytes(32))
    kept.note = sign_note(other.text(), region.log_origin, log_key(session, keyring))
    kept.root_hash = other.root_hash
    return [(f"checkpoint {h.size}", "its signed root is not the log's root at that size")]


def _restored_from_an_older_copy(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    """The database as it was at 3 entries (before ``bl`` and ``dl2``): newest entries,
    nodes and certificates gone, the size counter reset; the checkpoint signed at 5 stays."""
    roll_back_log(session, 3, certificates=[h.bl.id, h.dl2.id])
    return [(f"checkpoint {h.size}", f"it covers {h.size} entries, the log has 3")]


def _audit_record_edited(session: Session, h: History, keyring: KeyRing, clock: Any) -> list[tuple[str, str]]:
    first = session.scalars(select(AuditRecord).order_by(AuditRecord.id)).first()
    assert first is not None
    first.actor = "cli:nobody"
    return [("audit trail", f"record {first.id}: the record does not chain")]


def roll_back_log(session: Session, size: int, *, certificates: list[str]) -> None:
    """Remove every entry from ``size`` on, the nodes they completed and ``certificates``,
    and set the size counter back: the log as an older backup of the database held it."""
    session.execute(delete(LogEntry).where(LogEntry.position >= size))
    for node in session.scalars(select(LogNode)).all():
        if (node.position + 1) << node.level > size:
            session.delete(node)
    session.execute(delete(StatusChange).where(StatusChange.certificate_id.in_(certificates)))
    session.execute(delete(Certificate).where(Certificate.id.in_(certificates)))
    session.execute(update(Region).values(log_size=size))


TAMPERINGS = [
    pytest.param(_holder_name_edited, id="certificate-holder-name-edited"),
    pytest.param(_validity_extended, id="certificate-validity-extended"),
    pytest.param(_token_edited, id="certificate-token-edited"),
    pytest.param(_token_replaced_and_resigned, id="certificate-token-replaced-and-resigned"),
    pytest.param(_certificate_deleted, id="certificate-deleted"),
    pytest.param(_certificate_inserted, id="certificate-inserted-without-entry"),
    pytest.param(_status_changed_in_the_row, id="status-changed-in-the-row"),
    pytest.param(_suspension_lifted_in_the_row, id="suspension-lifted-in-the-row"),
    pytest.param(_status_history_forged, id="status-history-row-without-entry"),
    pytest.param(_entry_data_changed, id="log-entry-data-changed"),
    pytest.param(_entry_rewritten_with_its_hash, id="log-entry-and-leaf-hash-changed"),
    pytest.param(_entry_deleted, id="log-entry-deleted"),
    pytest.param(_node_changed, id="log-node-changed"),
    pytest.param(_node_deleted, id="log-node-deleted"),
    pytest.param(_checkpoint_note_edited, id="checkpoint-note-edited"),
    pytest.param(_checkpoint_resigned, id="checkpoint-resigned-over-another-root"),
    pytest.param(_restored_from_an_older_copy, id="restored-from-an-older-copy"),
    pytest.param(_audit_record_edited, id="audit-record-edited"),
]


def test_a_clean_registry_has_no_findings(deployment: Deployment, history: History) -> None:
    """Everything written through the application agrees with the log and the chain."""
    assert findings_of(deployment) == []


@pytest.mark.parametrize("tamper", TAMPERINGS)
def test_log_audit_finds_each_insider_action(
    deployment: Deployment, history: History, keyring: KeyRing, clock: Any, tamper: Callable[..., Any]
) -> None:
    """Each direct edit of the database is reported, naming what was changed and where."""
    with insider(deployment) as session:
        expected = tamper(session, history, keyring, clock)

    found = [(f.subject, f.detail) for f in findings_of(deployment)]
    for subject, fragment in expected:
        assert any(s == subject and fragment in d for s, d in found), (subject, fragment, found)


def test_a_restored_copy_written_again_is_found_by_the_kept_checkpoint(
    deployment: Deployment, history: History, session: Session, issue: Issue
) -> None:
    """Restored to 3 entries and then written again past the old size: the checkpoint
    signed at 5 names a root the log no longer has at 5."""
    with insider(deployment) as tampering:
        roll_back_log(tampering, 3, certificates=[history.bl.id, history.dl2.id])
    session.expire_all()
    issue(sample_request("PQ"))
    issue(sample_request("PQ"))
    issue(sample_request("BL"))

    found = [(f.subject, f.detail) for f in findings_of(deployment)]
    assert (f"checkpoint {history.size}", "its signed root is not the log's root at that size") in found


def test_a_checkpoints_root_column_edited_is_found(deployment: Deployment, history: History) -> None:
    """The stored root beside the note changed (the note left alone)."""
    with insider(deployment) as session:
        session.execute(update(LogCheckpoint).where(LogCheckpoint.size == history.size).values(root_hash=bytes(32)))

    assert [f for f in findings_of(deployment) if f.subject == f"checkpoint {history.size}"] != []


def test_a_certificates_log_index_edited_is_found(deployment: Deployment, history: History) -> None:
    """The row's pointer into the log cleared: verification answers then carry no log
    evidence for it, so the audit must say the row no longer points at its entry."""
    with insider(deployment) as session:
        session.execute(update(Certificate).where(Certificate.id == history.dl2.id).values(log_index=None))

    assert [f for f in findings_of(deployment) if f.subject == cert(history.dl2)] != []


def test_a_certificate_inserted_backdated_before_the_log_began_is_found(
    deployment: Deployment, history: History, keyring: KeyRing, clock: Any
) -> None:
    """Signed with the office's real key (created an hour before the log's first entry),
    dated half an hour before that first entry, inserted without an entry."""
    backdated = (clock() - timedelta(minutes=30)).replace(microsecond=0)
    with insider(deployment) as session:
        new_id = insert_unlogged_certificate(session, keyring, history.dl2.id, backdated)

    assert [f for f in findings_of(deployment) if f.subject == f"certificate {new_id}"] != []


def delete_node_under_the_checkpoint(deployment: Deployment) -> None:
    """Node (2, 0) covers entries 0..3: the kept checkpoint's root (size 5) is made of it."""
    with insider(deployment) as session:
        session.execute(delete(LogNode).where(LogNode.level == 2, LogNode.position == 0))


def test_a_node_deleted_under_a_kept_checkpoint_is_reported(deployment: Deployment, history: History) -> None:
    """A node the kept checkpoint's root is made of, deleted: reported as a finding."""
    delete_node_under_the_checkpoint(deployment)

    found = [(f.subject, f.detail) for f in findings_of(deployment)]
    assert ("log", "tree node (2, 0) is missing or does not match") in found


# ---------------------------------------------------------------- the command


def run_log_audit(runner: FlaskCliRunner) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(args=["log", "audit", "--json"])
    return result.exit_code, json.loads(result.output.strip().splitlines()[-1])


def test_log_audit_command_exits_0_on_a_clean_registry(
    deployment: Deployment, runner: FlaskCliRunner, history: History
) -> None:
    """``log audit --json``: consistent, the size of our log, nothing found."""
    code, report = run_log_audit(runner)
    assert code == 0, report
    with deployment.read_session() as session:
        head = session.get(AuditHead, audit.HEAD_ID)
        assert head is not None
        chain = {"records": head.records, "head": head.chain_hash.hex()}
    assert report == {
        "consistent": True,
        "tree_size": history.size,
        "audit_chain": chain,
        "own": [],
        "peers": [],
        "warnings": [],
    }


def test_log_audit_command_exits_1_naming_each_finding(
    deployment: Deployment, runner: FlaskCliRunner, history: History
) -> None:
    """A deleted certificate and an edited entry: exit 1, both named in the report."""
    with insider(deployment) as session:
        _certificate_deleted(session, history, deployment.keyring, deployment.now)
        _entry_data_changed(session, history, deployment.keyring, deployment.now)

    code, report = run_log_audit(runner)
    assert code == 1
    assert report["consistent"] is False
    assert {"subject": cert(history.dl), "detail": "the log recorded its issuance; its row is gone"} in report["own"]
    assert {"subject": "log", "detail": "entry 2's data was changed (its leaf hash differs)"} in report["own"]


def test_log_audit_command_fails_on_a_node_deleted_under_a_kept_checkpoint(
    deployment: Deployment, runner: FlaskCliRunner, history: History
) -> None:
    """Whether reported as a finding or as the error that stopped the audit, the missing
    node makes the command exit 1 and is named."""
    delete_node_under_the_checkpoint(deployment)

    result = runner.invoke(args=["log", "audit", "--json"])
    assert result.exit_code == 1
    assert "(2, 0)" in result.output.strip().splitlines()[-1]
