"""This deployment's region and its root key."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry import audit
from registry.catalog import install_reference_catalog
from registry.errors import AlreadyExists, FieldError, InvalidInput, RegionNotInitialised
from registry.models import Region
from registry.text import clean_text
from signing.algorithms import generate_private_key
from signing.jwk import key_id, load_public_jwk, public_jwk, thumbprint
from signing.keystore import KeyRing

DEFAULT_TRUST_LIST_LIFETIME = timedelta(hours=24)
DEFAULT_STATUS_LIST_LIFETIME = timedelta(hours=1)
_REGION_CODE = re.compile(r"[1-9][0-9]{5}")


def current_region(session: Session) -> Region:
    """The region this deployment serves.

    Raises:
        RegionNotInitialised: ``region init`` has not run.
    """
    region = session.scalars(select(Region)).first()
    if region is None:
        raise RegionNotInitialised("the region is not initialised; run `flask --app app region init`")
    return region


def find_region(session: Session) -> Region | None:
    return session.scalars(select(Region)).first()


def init_region(
    session: Session,
    keyring: KeyRing,
    *,
    code: str,
    name: str,
    public_url: str,
    now: datetime,
    actor: str,
    trust_list_lifetime: timedelta = DEFAULT_TRUST_LIST_LIFETIME,
    status_list_lifetime: timedelta = DEFAULT_STATUS_LIST_LIFETIME,
) -> Region:
    """Create the region, its Ed25519 root key and the reference catalog.

    Raises:
        AlreadyExists: the region was initialised before.
        InvalidInput: bad code (GB/T 2260: six digits), name or URL.
    """
    if find_region(session) is not None:
        raise AlreadyExists("the region is already initialised")
    errors = []
    if not _REGION_CODE.fullmatch(code):
        errors.append(FieldError("code", "a GB/T 2260 region code is six digits, e.g. 310000"))
    try:
        name = clean_text(name)
    except ValueError as error:
        errors.append(FieldError("name", str(error)))
    if not name:
        errors.append(FieldError("name", "the region needs a name"))
    url = urlsplit(public_url)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment or url.username:
        errors.append(FieldError("public_url", "an http(s) URL without credentials, query or fragment is required"))
    if not timedelta(minutes=0) < trust_list_lifetime <= timedelta(days=31):
        errors.append(FieldError("trust_list_lifetime", "from 1 second to 31 days"))
    if not timedelta(minutes=0) < status_list_lifetime <= timedelta(days=7):
        errors.append(FieldError("status_list_lifetime", "from 1 second to 7 days"))
    if errors:
        raise InvalidInput("the region cannot be created", errors)
    root = generate_private_key("EdDSA")
    fingerprint = thumbprint(root.public_key())
    status = generate_private_key("EdDSA")
    status_kid = key_id(status.public_key())
    region = Region(
        code=code,
        name=name,
        public_url=public_url.rstrip("/"),
        root_kid=fingerprint,
        root_public_jwk=public_jwk(root.public_key()),
        root_private_key=keyring.encrypt(root, fingerprint),
        status_kid=status_kid,
        status_public_jwk=public_jwk(status.public_key()),
        status_private_key=keyring.encrypt(status, status_kid),
        next_status_index=0,
        log_started_at=now,
        trust_list_lifetime=int(trust_list_lifetime.total_seconds()),
        status_list_lifetime=int(status_list_lifetime.total_seconds()),
        created_at=now,
    )
    session.add(region)
    added = install_reference_catalog(session)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="region.init",
        subject_type="region",
        subject_id=code,
        details={
            "name": name,
            "public_url": region.public_url,
            "root_fingerprint": fingerprint,
            "status_kid": status_kid,
            "catalog": added,
        },
    )
    session.flush()
    return region


def take_status_index(session: Session, region: Region, count: int = 1) -> int:
    """The next free position in the region's status list (the first of ``count``
    consecutive ones).

    One atomic UPDATE ... RETURNING: concurrent issuers get distinct, gap-free positions
    (the row lock serialises them until commit, on PostgreSQL and SQLite).
    """
    taken = session.execute(
        update(Region)
        .where(Region.id == region.id)
        .values(next_status_index=Region.next_status_index + count)
        .returning(Region.next_status_index)
    ).scalar_one()
    return int(taken) - count


def give_back_status_indexes(session: Session, region: Region, count: int) -> None:
    """Return the last ``count`` positions this transaction took and did not use.

    Safe only in the transaction that took them: its row lock keeps every other issuer
    from taking positions after them, so the list stays gap-free.
    """
    if count:
        session.execute(
            update(Region).where(Region.id == region.id).values(next_status_index=Region.next_status_index - count)
        )


def root_fingerprint(region: Region) -> str:
    """The RFC 7638 thumbprint of the region's root public key, as peers pin it."""
    return thumbprint(load_public_jwk(region.root_public_jwk))
