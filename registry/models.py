"""The registry's tables (SQLAlchemy 2.0 typed declarative style).

A naming convention on the metadata keeps constraint names stable, so Alembic
revisions compare cleanly on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, LargeBinary, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from registry import generation
from registry.append_only import APPEND_ONLY_TABLES, install_on_create
from registry.columns import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - read by SQLAlchemy
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        dict[str, Any] | None: JSON(),
        list[str]: JSON(),
    }


class Region(Base):
    """This deployment's region (one row): its code, name, public URL and root key."""

    __tablename__ = "region"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    public_url: Mapped[str] = mapped_column(String(500))
    root_kid: Mapped[str] = mapped_column(String(64))
    root_public_jwk: Mapped[dict[str, Any]]
    root_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The status key signs status answers and status lists; the root signs only trust
    # lists. Published in the trust list. (Nullable for regions made before it existed.)
    status_kid: Mapped[str | None] = mapped_column(String(64))
    status_public_jwk: Mapped[dict[str, Any] | None]
    status_private_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Next position in the status list; taken with UPDATE ... RETURNING at issuance.
    next_status_index: Mapped[int] = mapped_column(default=0, server_default="0")
    # How long a trust list and a status list stay current, in seconds (region init sets them).
    # The transparency log (issue 5): its origin line, Ed25519 key (private part
    # encrypted), and size, taken with UPDATE ... RETURNING by each append.
    log_origin: Mapped[str | None] = mapped_column(String(255))
    log_public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    log_private_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    log_size: Mapped[int] = mapped_column(default=0, server_default="0")
    # From when every certificate must be in the log: the region's creation, or, for a
    # region made before the log existed, the migration that added it.
    log_started_at: Mapped[datetime | None]
    trust_list_lifetime: Mapped[int] = mapped_column(default=86400, server_default="86400")
    status_list_lifetime: Mapped[int] = mapped_column(default=3600, server_default="3600")
    created_at: Mapped[datetime]


class TrustList(Base):
    """A signed trust list this region published: strictly increasing sequence numbers."""

    __tablename__ = "trust_list"

    sequence: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    jws: Mapped[str] = mapped_column(Text)


class RootRotation(Base):
    """A change of this region's root key: a statement the old root signed, naming the new
    one. Every later trust list carries all of them, so a peer that pinned any earlier
    root can follow the chain to the current one (as TUF's root N+1 signed by root N)."""

    __tablename__ = "root_rotation"

    # The sequence number of the first trust list the new root signs.
    sequence: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    old_kid: Mapped[str] = mapped_column(String(64))
    new_kid: Mapped[str] = mapped_column(String(64), unique=True)
    jws: Mapped[str] = mapped_column(Text)
    rotated_at: Mapped[datetime]


class Peer(Base):
    """Another region this one recognises: its pinned root, and the newest good copies of
    its signed trust list and status list (byte for byte as the peer's keys signed them)."""

    __tablename__ = "peer"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_code: Mapped[str] = mapped_column(String(6), unique=True)
    region_name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(500))
    # The fingerprint an administrator pinned out of band, and the root reached from it
    # by following root rotations (the same until the peer rotates its root).
    pinned_fingerprint: Mapped[str] = mapped_column(String(64))
    root_fingerprint: Mapped[str] = mapped_column(String(64))
    root_public_jwk: Mapped[dict[str, Any]]
    sequence: Mapped[int]
    trust_list: Mapped[str] = mapped_column(Text)
    trust_list_expires_at: Mapped[datetime]
    trust_list_fetched_at: Mapped[datetime]
    status_list: Mapped[str | None] = mapped_column(Text)
    status_list_expires_at: Mapped[datetime | None]
    status_list_fetched_at: Mapped[datetime | None]
    # The outcome of the last sync attempt: no code means it succeeded.
    last_attempt_at: Mapped[datetime | None]
    last_error_code: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(500))
    # When an unknown kid last made us refetch the trust list (rate limit).
    key_refresh_at: Mapped[datetime | None]
    # The peer's log as last witnessed: its newest checkpoint that was consistent with
    # every earlier one we saw, and that checkpoint with our log key's cosignature added.
    log_size: Mapped[int | None]
    log_root: Mapped[bytes | None] = mapped_column(LargeBinary)
    log_checkpoint: Mapped[str | None] = mapped_column(Text)
    log_cosigned: Mapped[str | None] = mapped_column(Text)
    # The API token the peer issued us as its partner (``ecertp_...``), sealed with our
    # key passphrase (signing.sealed, context ``peer-token:<region>``); presented only
    # on the online status requests to the peer's own URL. None: we ask anonymously.
    partner_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    added_at: Mapped[datetime]


class CertificateType(Base):
    """A catalog entry (证照类型): what a certificate of this type holds and how it is shown."""

    __tablename__ = "certificate_type"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(200))
    holder_kind: Mapped[str] = mapped_column(String(16))
    holder_id_type: Mapped[str] = mapped_column(String(16))
    fields_schema: Mapped[dict[str, Any]]
    qr_fields: Mapped[list[str]]
    default_validity_days: Mapped[int | None]
    version: Mapped[int]


class Office(Base):
    """An issuing office (发证机构), identified by its unified social credit code."""

    __tablename__ = "office"

    id: Mapped[int] = mapped_column(primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    types: Mapped[list[str]]
    created_at: Mapped[datetime]

    keys: Mapped[list[SigningKey]] = relationship(back_populates="office", order_by="SigningKey.not_before")


class SigningKey(Base):
    """An office's signing key: validity window, allowed types, state; private part encrypted."""

    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    office_id: Mapped[int] = mapped_column(ForeignKey("office.id"), index=True)
    algorithm: Mapped[str] = mapped_column(String(8))
    public_jwk: Mapped[dict[str, Any]]
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    types: Mapped[list[str]]
    state: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime | None]
    compromised_since: Mapped[datetime | None]
    created_at: Mapped[datetime]

    office: Mapped[Office] = relationship(back_populates="keys")


class Partner(Base):
    """Another region's system, admitted to verify here under its own, higher rate limit."""

    __tablename__ = "partner"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_code: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class ApiToken(Base):
    """An API bearer token of an office or of a partner (exactly one), stored only as its
    SHA-256 digest."""

    __tablename__ = "api_token"
    __table_args__ = (CheckConstraint("(office_id IS NULL) <> (partner_id IS NULL)", name="one_holder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    office_id: Mapped[int | None] = mapped_column(ForeignKey("office.id"), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partner.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    office: Mapped[Office | None] = relationship()
    partner: Mapped[Partner | None] = relationship()


class Certificate(Base):
    """One issued certificate (电子证照) and the token that was signed for it."""

    __tablename__ = "certificate"
    __table_args__ = (UniqueConstraint("office_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type_code: Mapped[str] = mapped_column(ForeignKey("certificate_type.code"))
    office_id: Mapped[int] = mapped_column(ForeignKey("office.id"), index=True)
    kid: Mapped[str] = mapped_column(ForeignKey("signing_key.kid"))
    holder_name: Mapped[str] = mapped_column(String(200))
    holder_id_type: Mapped[str] = mapped_column(String(16))
    holder_id_number: Mapped[str] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]]
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    issued_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(2))
    token: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_digest: Mapped[str | None] = mapped_column(String(64))
    status_index: Mapped[int | None] = mapped_column(unique=True)
    # The transparency-log entry of its issuance (None for certificates issued before the log).
    log_index: Mapped[int | None] = mapped_column(unique=True)

    office: Mapped[Office] = relationship()
    certificate_type: Mapped[CertificateType] = relationship()
    history: Mapped[list[StatusChange]] = relationship(order_by="StatusChange.id")


class StatusChange(Base):
    """One change of a certificate's status, kept for ever."""

    __tablename__ = "status_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificate.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(2))
    to_status: Mapped[str] = mapped_column(String(2))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime]


class AuditRecord(Base):
    """Who changed what, when. Written by every state change; never updated or deleted."""

    __tablename__ = "audit_record"
    __table_args__ = (Index("ix_audit_record_subject", "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recorded_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]]
    # SHA-256(previous record's chain_hash || this record's canonical form): an edited,
    # removed or inserted record breaks the chain (``log audit`` checks it).
    chain_hash: Mapped[bytes | None] = mapped_column(LargeBinary, unique=True)


class AuditHead(Base):
    """The end of the audit hash chain (one row), locked by every append so the chain
    never forks under concurrency."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    records: Mapped[int]
    chain_hash: Mapped[bytes] = mapped_column(LargeBinary)


class LogEntry(Base):
    """One leaf of this region's transparency log (RFC 6962): an issuance (the token's
    ASCII bytes) or a status change (a canonical JSON statement). Append-only."""

    __tablename__ = "log_entry"

    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    certificate_id: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    recorded_at: Mapped[datetime]


class LogNode(Base):
    """The hash of a perfect subtree: ``level`` 0 are leaf hashes; node (level, position)
    covers leaves [position·2^level, (position+1)·2^level). Proofs read O(log n) of them."""

    __tablename__ = "log_node"

    level: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class LogCheckpoint(Base):
    """A signed checkpoint (C2SP tlog-checkpoint note) of this region's log."""

    __tablename__ = "log_checkpoint"

    size: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime]


class CacheGeneration(Base):
    """One row: a counter the database bumps (by triggers, :mod:`registry.generation`) when
    the region's name or URL, an office, a signing key, the catalog or a peer changes;
    processes that cache those rebuild when it moves."""

    __tablename__ = "cache_generation"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int]


for _name in APPEND_ONLY_TABLES:
    install_on_create(Base.metadata.tables[_name])
for _name in generation.WATCHED_TABLES:
    generation.install_on_create(Base.metadata.tables[_name])
