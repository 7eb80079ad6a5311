"""Self-audit of this region's registry against its transparency log (``log audit``).

Finds what an insider could do behind the application's back, directly in the database:

* a log entry changed (its leaf hash no longer matches its data), missing (a gap), or the
  size counter off; a stored tree node that does not match the leaves below it; a kept
  checkpoint whose signature or root does not match the log;
* a certificate row changed (its token no longer verifies with its key, or the row says
  other than its signed token), deleted (an issuance entry without its certificate), or
  added without an entry; a status changed without its log entry (the row's status is
  not the last status the log recorded);
* the audit trail's hash chain broken (:func:`registry.audit.check_chain`).

Each finding names what is wrong and where. The whole log is read once, in order, in
batches; the perfect-subtree hashes are recomputed level by level from the leaves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry import audit
from registry.claims import CertificateClaims
from registry.log import ISSUANCE, STATUS_CHANGE, LogCorrupted, log_verifier_key, node_reader
from registry.merkle import leaf_hash, node_hash, root
from registry.models import Certificate, LogCheckpoint, LogEntry, LogNode, SigningKey, StatusChange
from registry.regions import current_region
from signing.algorithms import require_algorithm, verify_signature
from signing.errors import SigningError
from signing.jwk import load_public_jwk
from signing.notes import NoteError, open_note, parse_checkpoint, parse_verifier_key
from signing.tokens import MAX_TOKEN_LENGTH, parse_token

BATCH = 5000


@dataclass(frozen=True)
class Finding:
    """One inconsistency: what (``subject``) and how."""

    subject: str
    detail: str


def audit_registry(session: Session) -> list[Finding]:
    """Every inconsistency between the registry, its log and its audit trail.

    Reads one snapshot: on PostgreSQL the session's transaction is made REPEATABLE READ
    (call this first in a fresh session), so issuance running meanwhile cannot look
    like tampering; a SQLite read transaction is a snapshot already.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
    findings: list[Finding] = []
    leaves = _check_entries(session, findings)
    _check_nodes(session, leaves, findings)
    _check_checkpoints(session, findings)
    _check_certificates(session, findings)
    findings.extend(
        Finding("audit trail", p.detail if p.record_id is None else f"record {p.record_id}: {p.detail}")
        for p in audit.check_chain(session)
    )
    return findings


def _entries(session: Session) -> Iterator[LogEntry]:
    """Every log entry in order, a batch at a time (keyset pagination: flat cost per batch)."""
    after = -1
    while True:
        rows = session.scalars(
            select(LogEntry).where(LogEntry.position > after).order_by(LogEntry.position).limit(BATCH)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].position


def _certificates(session: Session) -> Iterator[Certificate]:
    after = ""
    while True:
        rows = session.scalars(
            select(Certificate).where(Certificate.id > after).order_by(Certificate.id).limit(BATCH)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id


def _check_entries(session: Session, findings: list[Finding]) -> list[bytes]:
    size = current_region(session).log_size
    leaves: list[bytes] = []
    for entry in _entries(session):
        if entry.position != len(leaves):
            findings.append(Finding("log", f"entries {len(leaves)}..{entry.position - 1} are missing"))
            leaves.extend(b"" for _ in range(entry.position - len(leaves)))
        hashed = leaf_hash(bytes(entry.data))
        if hashed != bytes(entry.leaf_hash):
            findings.append(Finding("log", f"entry {entry.position}'s data was changed (its leaf hash differs)"))
        leaves.append(hashed)
    if len(leaves) != size:
        findings.append(Finding("log", f"the log should hold {size} entries, it holds {len(leaves)}"))
    return leaves


def _check_nodes(session: Session, leaves: list[bytes], findings: list[Finding]) -> None:
    """Recompute every perfect subtree from the leaves and compare it with the stored node."""
    level, row = 0, leaves
    while row:
        stored = {n.position: bytes(n.hash) for n in session.scalars(select(LogNode).where(LogNode.level == level))}
        for position, hashed in enumerate(row):
            if stored.pop(position, None) != hashed:
                findings.append(Finding("log", f"tree node ({level}, {position}) is missing or does not match"))
        if stored:
            findings.append(Finding("log", f"tree level {level} holds {len(stored)} nodes beyond the log"))
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        level += 1


def _check_checkpoints(session: Session, findings: list[Finding]) -> None:
    region = current_region(session)
    verifier = log_verifier_key(region)
    known: dict[str, ed25519.Ed25519PublicKey] = {}
    if verifier is not None:
        name, key = parse_verifier_key(verifier)
        known[name] = key
    reader = node_reader(session)
    for kept in session.scalars(select(LogCheckpoint).order_by(LogCheckpoint.size)):
        subject = f"checkpoint {kept.size}"
        try:
            checkpoint = parse_checkpoint(open_note(kept.note, known)[0])
        except NoteError as error:
            findings.append(Finding(subject, f"its signature does not verify: {error}"))
            continue
        if checkpoint.size != kept.size or checkpoint.root_hash != bytes(kept.root_hash):
            findings.append(Finding(subject, "its size or root columns differ from its signed note"))
        if kept.size > region.log_size:
            findings.append(Finding(subject, f"it covers {kept.size} entries, the log has {region.log_size}"))
            continue
        try:
            matches = checkpoint.root_hash == root(kept.size, reader)
        except LogCorrupted as error:
            findings.append(Finding(subject, f"its root cannot be recomputed: {error}"))
            continue
        if not matches:
            findings.append(Finding(subject, "its signed root is not the log's root at that size"))


def _check_certificates(session: Session, findings: list[Finding]) -> None:
    keys = {k.kid: k for k in session.scalars(select(SigningKey))}
    issued: dict[str, bytes] = {}
    issued_at_position: dict[str, int] = {}
    statuses: dict[str, list[str]] = {}
    for entry in _entries(session):
        if entry.kind == ISSUANCE:
            issued[entry.certificate_id] = bytes(entry.leaf_hash)
            issued_at_position[entry.certificate_id] = entry.position
        elif entry.kind == STATUS_CHANGE:
            statuses.setdefault(entry.certificate_id, []).append(_status_of(entry))
    changes = dict(
        session.execute(select(StatusChange.certificate_id, func.count()).group_by(StatusChange.certificate_id))
        .tuples()
        .all()
    )
    log_began = current_region(session).log_started_at
    seen: set[str] = set()
    for row in _certificates(session):
        seen.add(row.id)
        subject = f"certificate {row.id}"
        problem = _row_against_token(row, keys.get(row.kid))
        if problem:
            findings.append(Finding(subject, problem))
        if row.log_index is None and row.id not in issued and log_began is not None and row.issued_at < log_began:
            # Issued before this registry had a log (a deployment upgraded by migration
            # 0004, which recorded when): only its token can be checked.
            continue
        logged = issued.get(row.id)
        if logged is None:
            findings.append(Finding(subject, "it is not in the log: added behind the application's back"))
        elif logged != leaf_hash(row.token.encode("ascii")):
            findings.append(Finding(subject, "its token is not the one the log recorded"))
        if logged is not None and row.log_index != issued_at_position.get(row.id):
            findings.append(
                Finding(
                    subject, f"its log_index is {row.log_index}, its issuance is entry {issued_at_position[row.id]}"
                )
            )
        history = statuses.get(row.id, [])
        last = history[-1] if history else "01"
        if row.status != last:
            findings.append(Finding(subject, f"its status is {row.status}, the log's last recorded status is {last}"))
        if changes.get(row.id, 0) != len(history):
            findings.append(
                Finding(subject, f"{changes.get(row.id, 0)} status changes kept, {len(history)} in the log")
            )
    for certificate_id in sorted(set(issued) - seen):
        findings.append(Finding(f"certificate {certificate_id}", "the log recorded its issuance; its row is gone"))


def _status_of(entry: LogEntry) -> str:
    try:
        status = json.loads(bytes(entry.data))["status"]
    except (ValueError, KeyError, TypeError):
        return "??"
    return str(status)


def _row_against_token(row: Certificate, key: SigningKey | None) -> str | None:
    """Why the row disagrees with its signed token, or None."""
    if key is None:
        return f"its signing key {row.kid} is missing"
    try:
        parsed = parse_token(row.token, MAX_TOKEN_LENGTH)
        claims = CertificateClaims.from_payload(parsed.payload)
        algorithm = require_algorithm(key.algorithm)
        genuine = verify_signature(algorithm, load_public_jwk(key.public_jwk), parsed.signing_input, parsed.signature)
    except SigningError as error:
        return f"its token is unreadable: {error}"
    if not genuine:
        return "its token's signature does not verify: the token was edited"
    differences = [
        name
        for name, signed, kept in (
            ("id", claims.certificate_id, row.id),
            ("holder name", claims.holder.name, row.holder_name),
            ("issue time", claims.issued_at, int(row.issued_at.timestamp())),
            ("valid from", claims.valid_from, int(row.valid_from.timestamp())),
            ("valid until", claims.expires, None if row.valid_until is None else int(row.valid_until.timestamp())),
            ("status position", claims.status_index, row.status_index),
        )
        if signed != kept
    ]
    if differences:
        return f"the row differs from its signed token in {', '.join(differences)}: the row was edited"
    return None
