"""This region's trust list: its offices and their keys, signed with the region's root key.

A trust list is a JWS compact token (RFC 7515) whose header is exactly ``alg`` (EdDSA),
``kid`` (the root key's RFC 7638 thumbprint) and ``typ`` (``ecert-trust-list``); the
payload names the region, a strictly increasing sequence number, its issue and expiry
times, the root and status keys, every office with every key it ever held (windows,
types, states), and the region's endpoints. Peers pin the root's thumbprint out of band
and accept nothing the root did not sign (the parser is :mod:`verify.trust_lists`).
The format is described field by field in ``docs/trust-list.md``.

A new list is published whenever an office or a key changes (see
:mod:`registry.offices`), and lazily when the newest one is near its expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry import audit
from registry.log import current_checkpoint, log_verifier_key
from registry.models import Office, Region, RootRotation, SigningKey, TrustList
from registry.regions import current_region
from registry.times import iso_utc
from signing.keystore import KeyRing
from signing.tokens import encode_token

TRUST_LIST_TYPE: Final = "ecert-trust-list"
TRUST_LIST_ALGORITHM: Final = "EdDSA"
# A list is republished once less than this share of its lifetime remains, so that peers
# syncing on a schedule never fetch one about to expire.
REFRESH_FRACTION: Final = 4

TRUST_LIST_PATH: Final = "/.well-known/ecert/trust-list"
STATUS_PATH: Final = "/api/v1/status/{id}"
STATUS_LIST_PATH: Final = "/.well-known/ecert/status-list"
VERIFY_PATH: Final = "/api/v1/verify"
LOG_PATH: Final = "/api/v1/log"


def publish_trust_list(
    session: Session, keyring: KeyRing, *, now: datetime, actor: str, lifetime: timedelta | None = None
) -> TrustList:
    """Sign a new trust list from the registry's current offices and keys, and store it.

    ``lifetime`` defaults to the region's (``region init --trust-list-lifetime``, 24 h).
    Its sequence number is the previous one plus one (1 for the first). The region row is
    locked first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's writing sessions
    already hold the database's write lock), so concurrent publishers queue and each gets
    the next number. Should two ever race past that, ``sequence`` is the primary key and
    the second commit fails with an ``IntegrityError`` rather than reuse a number.

    Raises:
        RegionNotInitialised: no region yet.
        KeyStorageError: the root key cannot be decrypted (wrong passphrase).
        ValueError: ``lifetime`` is not positive.
    """
    region = lock_region(session)
    if lifetime is None:
        lifetime = timedelta(seconds=region.trust_list_lifetime)
    if lifetime <= timedelta(0):
        raise ValueError("a trust list's lifetime must be positive")
    previous = session.scalar(select(func.max(TrustList.sequence)))
    sequence = 1 if previous is None else previous + 1
    issued_at = now.astimezone(UTC).replace(microsecond=0)
    expires_at = issued_at + timedelta(seconds=int(lifetime.total_seconds()))
    payload = trust_list_payload(session, region, sequence=sequence, issued_at=issued_at, expires_at=expires_at)
    checkpoint = current_checkpoint(session, keyring, now=now)
    payload["log"] = {
        "origin": region.log_origin,
        "verifier_key": log_verifier_key(region),
        "checkpoint": checkpoint.note,
    }
    root = keyring.private_key(region.root_kid, lambda: region.root_private_key)
    jws = encode_token(payload, root, region.root_kid, typ=TRUST_LIST_TYPE)
    published = TrustList(sequence=sequence, issued_at=issued_at, expires_at=expires_at, jws=jws)
    session.add(published)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="trust_list.publish",
        subject_type="trust_list",
        subject_id=str(sequence),
        details={
            "sequence": sequence,
            "expires_at": iso_utc(expires_at),
            "offices": len(payload["offices"]),
            "keys": sum(len(office["keys"]) for office in payload["offices"]),
        },
    )
    session.flush()
    return published


def current_trust_list(
    session: Session, keyring: KeyRing, *, now: datetime, actor: str, lifetime: timedelta | None = None
) -> TrustList:
    """The newest trust list, publishing a fresh one if there is none or it is (nearly) stale.

    "Nearly" means less than a quarter of its lifetime remains. The caller commits when a
    list was published (``session.new`` / ``session.dirty`` say so; committing always is fine).

    Raises:
        RegionNotInitialised: no region yet.
        KeyStorageError: a list must be published and the root key cannot be decrypted.
    """
    newest = newest_trust_list(session)
    if newest is not None and is_fresh(newest, now):
        return newest
    # Re-read under the lock: a concurrent caller may have just published.
    lock_region(session)
    newest = newest_trust_list(session)
    if newest is not None and is_fresh(newest, now):
        return newest
    return publish_trust_list(session, keyring, now=now, actor=actor, lifetime=lifetime)


def newest_trust_list(session: Session) -> TrustList | None:
    """The trust list with the highest sequence number, whatever its age."""
    return session.scalars(select(TrustList).order_by(TrustList.sequence.desc()).limit(1)).first()


def is_fresh(trust_list: TrustList, now: datetime) -> bool:
    """True while more than a quarter of the list's lifetime remains."""
    margin = (trust_list.expires_at - trust_list.issued_at) / REFRESH_FRACTION
    return now < trust_list.expires_at - margin


def trust_list_payload(
    session: Session, region: Region, *, sequence: int, issued_at: datetime, expires_at: datetime
) -> dict[str, Any]:
    """The JSON payload of a trust list (docs/trust-list.md), read from the registry."""
    offices = session.scalars(select(Office).order_by(Office.credit_code)).all()
    # Queried, not read from ``Office.keys``: a collection loaded earlier in this
    # transaction would not show a key added since.
    keys_by_office: dict[int, list[SigningKey]] = {}
    for key in session.scalars(select(SigningKey).order_by(SigningKey.not_before, SigningKey.kid)):
        keys_by_office.setdefault(key.office_id, []).append(key)
    status_key = (
        None
        if region.status_kid is None or region.status_public_jwk is None
        else {**region.status_public_jwk, "kid": region.status_kid}
    )
    return {
        "region": {"code": region.code, "name": region.name, "public_url": region.public_url},
        "seq": sequence,
        "iat": _epoch(issued_at),
        "exp": _epoch(expires_at),
        "root": {**region.root_public_jwk, "kid": region.root_kid},
        "root_chain": list(session.scalars(select(RootRotation.jws).order_by(RootRotation.sequence))),
        "status_key": status_key,
        "offices": [
            {
                "code": office.credit_code,
                "name": office.name,
                "types": list(office.types),
                "keys": [_key_entry(key) for key in keys_by_office.get(office.id, [])],
            }
            for office in offices
        ],
        "endpoints": {
            "trust_list": region.public_url + TRUST_LIST_PATH,
            "status": region.public_url + STATUS_PATH,
            "status_list": region.public_url + STATUS_LIST_PATH,
            "verify": region.public_url + VERIFY_PATH,
            "log": region.public_url + LOG_PATH,
        },
    }


def _key_entry(key: SigningKey) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "alg": key.algorithm,
        "jwk": dict(key.public_jwk),
        "types": list(key.types),
        "not_before": _epoch(key.not_before),
        "not_after": None if key.not_after is None else _epoch(key.not_after),
        "state": key.state,
        "compromised_since": None if key.compromised_since is None else _epoch(key.compromised_since),
    }


def lock_region(session: Session) -> Region:
    """This region's row, locked for the rest of the transaction (PostgreSQL: ``FOR
    UPDATE``; SQLite's writing sessions already hold the database's write lock)."""
    region = current_region(session)
    session.execute(select(Region.id).where(Region.id == region.id).with_for_update())
    return region


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())
