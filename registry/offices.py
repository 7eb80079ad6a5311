"""Issuing offices (发证机构), their signing keys and their API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import api_tokens, audit
from registry.catalog import get_type
from registry.errors import AlreadyExists, FieldError, InvalidInput, KeyUnavailable, NotAuthenticated, NotFound
from registry.identifiers import IdentifierError, normalise_credit_code
from registry.models import Office, SigningKey, TrustList
from registry.regions import current_region
from registry.text import clean_text
from registry.times import iso_utc
from registry.trust_list import publish_trust_list
from signing.algorithms import Algorithm, generate_private_key
from signing.jwk import key_id, public_jwk
from signing.keystore import KeyRing

ACTIVE = "active"
RETIRED = "retired"
COMPROMISED = "compromised"

API_TOKEN_PREFIX = api_tokens.OFFICE_PREFIX


def get_office(session: Session, credit_code: str) -> Office:
    """The office with this credit code.

    Raises:
        NotFound: no such office.
    """
    try:
        canonical = normalise_credit_code(credit_code)
    except IdentifierError as error:
        raise NotFound(f"no office with credit code {credit_code!r}") from error
    office = session.scalars(select(Office).where(Office.credit_code == canonical)).first()
    if office is None:
        raise NotFound(f"no office with credit code {credit_code!r}")
    return office


def add_office(
    session: Session,
    keyring: KeyRing,
    *,
    credit_code: str,
    name: str,
    types: list[str],
    algorithm: Algorithm,
    now: datetime,
    actor: str,
) -> tuple[Office, SigningKey, str]:
    """Create an office, its first signing key and an API token (returned in clear, once),
    and publish a trust list that names them.

    Raises:
        RegionNotInitialised: no region yet.
        InvalidInput: bad credit code (GB 32100 check character), name or types.
        AlreadyExists: an office with this credit code exists.
    """
    current_region(session)
    errors = []
    try:
        credit_code = normalise_credit_code(credit_code)
    except IdentifierError as error:
        errors.append(FieldError("code", str(error)))
    try:
        name = clean_text(name)
    except ValueError as error:
        errors.append(FieldError("name", str(error)))
    if not name:
        errors.append(FieldError("name", "the office needs a name"))
    types = sorted({t.strip().upper() for t in types if t.strip()})
    if not types:
        errors.append(FieldError("types", "an office issues at least one certificate type"))
    for code in types:
        try:
            get_type(session, code)
        except NotFound as error:
            errors.append(FieldError("types", error.detail))
    if errors:
        raise InvalidInput("the office cannot be created", errors)
    if session.scalars(select(Office).where(Office.credit_code == credit_code)).first() is not None:
        raise AlreadyExists(f"an office with credit code {credit_code} already exists")
    office = Office(credit_code=credit_code, name=name, types=types, created_at=now)
    session.add(office)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=actor,
        action="office.add",
        subject_type="office",
        subject_id=credit_code,
        details={"name": name, "types": types},
    )
    key = _new_signing_key(session, keyring, office, algorithm, now=now, actor=actor)
    token = issue_api_token(session, office, now=now, actor=actor)
    publish_trust_list(session, keyring, now=now, actor=actor)
    return office, key, token


def _new_signing_key(
    session: Session, keyring: KeyRing, office: Office, algorithm: Algorithm, *, now: datetime, actor: str
) -> SigningKey:
    # Prove the passphrase opens the region's root key before encrypting anything new
    # with it: a mistyped passphrase must not leave keys under two passphrases.
    region = current_region(session)
    keyring.private_key(region.root_kid, lambda: region.root_private_key)
    private = generate_private_key(algorithm)
    kid = key_id(private.public_key())
    key = SigningKey(
        kid=kid,
        office_id=office.id,
        algorithm=algorithm,
        public_jwk=public_jwk(private.public_key()),
        private_key=keyring.encrypt(private, kid),
        types=list(office.types),
        state=ACTIVE,
        # Whole seconds: tokens carry iat in whole seconds, and a token signed in the
        # key's first second must fall inside its window.
        not_before=now.replace(microsecond=0),
        not_after=None,
        compromised_since=None,
        created_at=now,
    )
    session.add(key)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=actor,
        action="key.create",
        subject_type="key",
        subject_id=kid,
        details={"office": office.credit_code, "algorithm": algorithm, "types": key.types},
    )
    return key


def active_key(session: Session, office: Office) -> SigningKey | None:
    return session.scalars(
        select(SigningKey).where(SigningKey.office_id == office.id, SigningKey.state == ACTIVE)
    ).first()


def signing_key_for(session: Session, office: Office, type_code: str) -> SigningKey:
    """The office's active key, if it may sign ``type_code``.

    Raises:
        KeyUnavailable: no active key, or it may not sign this type.
    """
    key = active_key(session, office)
    if key is None or type_code not in key.types:
        raise KeyUnavailable(f"office {office.credit_code} has no active key for type {type_code}")
    return key


def rotate_key(
    session: Session, keyring: KeyRing, office: Office, *, algorithm: Algorithm | None, now: datetime, actor: str
) -> tuple[SigningKey | None, SigningKey]:
    """Retire the active key (it keeps verifying what it signed), make a new one, and
    publish a trust list that shows both.

    The new key uses ``algorithm``, or the retired key's algorithm when None.

    Raises:
        KeyStorageError: the root key cannot be decrypted (wrong passphrase).
    """
    old, new = _retire_and_replace(session, keyring, office, algorithm=algorithm, now=now, actor=actor)
    publish_trust_list(session, keyring, now=now, actor=actor)
    return old, new


def _retire_and_replace(
    session: Session, keyring: KeyRing, office: Office, *, algorithm: Algorithm | None, now: datetime, actor: str
) -> tuple[SigningKey | None, SigningKey]:
    old = active_key(session, office)
    if old is not None:
        old.state = RETIRED
        old.not_after = now
        audit.record(
            session,
            now=now,
            actor=actor,
            action="key.retire",
            subject_type="key",
            subject_id=old.kid,
            details={"office": office.credit_code},
        )
    chosen: Algorithm = algorithm or (old.algorithm if old is not None else "EdDSA")  # type: ignore[assignment]
    new = _new_signing_key(session, keyring, office, chosen, now=now, actor=actor)
    return old, new


@dataclass(frozen=True)
class Compromise:
    """What :func:`mark_key_compromised` did."""

    key: SigningKey
    replacement: SigningKey | None  # the office's new active key, when the compromised one was active
    trust_list: TrustList


def mark_key_compromised(
    session: Session, keyring: KeyRing, kid: str, since: datetime, *, now: datetime, actor: str
) -> Compromise:
    """Record that key ``kid`` has been compromised since ``since``, and publish a trust list.

    The key never signs again. Certificates it signed at or after ``since`` verify as
    ``KEY_COMPROMISED`` (here at once, in peers after their next sync); earlier ones stay
    valid if the registry holds them. ``since`` is stored in whole seconds, rounded down
    (tokens carry whole-second ``iat``; rounding down never spares a suspect certificate).
    If the key was the office's active key, the office gets a new one (same algorithm) so
    it can keep issuing. Marking a compromised key again can only move ``since`` earlier.

    Raises:
        InvalidInput: ``since`` has no time zone or lies in the future.
        NotFound: no key with this kid.
        KeyStorageError: the root key cannot be decrypted (wrong passphrase).
    """
    if since.tzinfo is None or since.utcoffset() is None:
        raise InvalidInput(
            "the compromise time needs a time zone", [FieldError("since", "an ISO 8601 time with an offset or Z")]
        )
    if since > now:
        raise InvalidInput("the compromise time lies in the future", [FieldError("since", "not after now")])
    key = session.get(SigningKey, kid) if isinstance(kid, str) and kid else None
    if key is None:
        raise NotFound(f"no signing key with kid {kid!r}")
    since = since.replace(microsecond=0)
    previous = key.compromised_since if key.state == COMPROMISED else None
    replacement = None
    if key.state == ACTIVE:
        _old, replacement = _retire_and_replace(session, keyring, key.office, algorithm=None, now=now, actor=actor)
    key.state = COMPROMISED
    key.compromised_since = since if previous is None else min(previous, since)
    keyring.forget(key.kid)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="key.compromise",
        subject_type="key",
        subject_id=key.kid,
        details={
            "office": key.office.credit_code,
            "since": iso_utc(key.compromised_since),
            "previous_since": None if previous is None else iso_utc(previous),
            "replacement": None if replacement is None else replacement.kid,
        },
    )
    session.flush()
    published = publish_trust_list(session, keyring, now=now, actor=actor)
    return Compromise(key=key, replacement=replacement, trust_list=published)


def issue_api_token(session: Session, office: Office, *, now: datetime, actor: str) -> str:
    """A new API token for ``office``; only its SHA-256 digest is stored. Shown once."""
    return api_tokens.issue_token(session, office, now=now, actor=actor)


def revoke_api_tokens(session: Session, office: Office, *, now: datetime, actor: str) -> int:
    """Revoke every live API token of ``office``; return how many."""
    return api_tokens.revoke_tokens(session, office, now=now, actor=actor)


def authenticate(session: Session, bearer: str) -> Office:
    """The office holding this live API token (never a partner region's token).

    Raises:
        NotAuthenticated: unknown, malformed or revoked token, or not an office's.
    """
    record = api_tokens.find_live_token(session, bearer, api_tokens.OFFICE_PREFIX)
    if record.office is None:
        raise NotAuthenticated("invalid API token")
    return record.office
