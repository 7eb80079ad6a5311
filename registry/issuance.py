"""Issuing certificates: validate, sign, record, audit, all in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import audit, log
from registry.bulk import insert_new
from registry.catalog import field_errors, get_type
from registry.claims import CertificateClaims, HolderClaims
from registry.errors import FieldError, IdempotencyConflict, InvalidInput, NotAllowed, NotFound
from registry.identifiers import CertificateId, IdentifierError, mask_id_number, normalise_id_number
from registry.models import Certificate, CertificateType, Office, Region, SigningKey
from registry.offices import signing_key_for
from registry.regions import current_region, take_status_index
from registry.requests import IssuanceRequest
from registry.status import Status
from signing.keystore import KeyRing
from signing.tokens import MAX_TOKEN_LENGTH, encode_token

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The most a QR code holds in byte mode at error correction level M (version 40,
# ISO/IEC 18004 table 7): a certificate whose QR text is longer could never be printed.
MAX_QR_TEXT_BYTES = 2331


@dataclass(frozen=True)
class Issued:
    certificate: Certificate
    replayed: bool


def find_by_idempotency_key(session: Session, office: Office, key: str, digest: str) -> Certificate | None:
    """The certificate an earlier request with this Idempotency-Key created, if any.

    Raises:
        IdempotencyConflict: the key was used before with a different body.
    """
    existing = session.scalars(
        select(Certificate).where(Certificate.office_id == office.id, Certificate.idempotency_key == key)
    ).first()
    if existing is not None and existing.request_digest != digest:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request body")
    return existing


def issue_certificate(
    session: Session,
    keyring: KeyRing,
    office: Office,
    request: IssuanceRequest,
    *,
    now: datetime,
    actor: str,
    idempotency_key: str | None = None,
    digest: str | None = None,
) -> Issued:
    """Validate ``request``, sign its token and add the certificate to the session.

    The caller commits; a token is only handed out after that commit succeeds, so no
    client holds a token the registry lacks.

    Raises:
        InvalidInput: every bad field, listed.
        NotAllowed: the office may not issue this type.
        IdempotencyConflict: ``idempotency_key`` was used with another body.
        KeyUnavailable: the office has no active key for the type.
        KeyStorageError: the key cannot be decrypted.
    """
    if idempotency_key is not None:
        if digest is None:
            raise ValueError("an Idempotency-Key needs the request's digest")
        existing = find_by_idempotency_key(session, office, idempotency_key, digest)
        if existing is not None:
            return Issued(existing, replayed=True)
    approved = approve(session, office, request, now=now)
    region = current_region(session)
    certificate = sign_certificate(
        keyring,
        region,
        office,
        approved,
        status_index=take_status_index(session, region),
        now=now,
        idempotency_key=idempotency_key,
        digest=digest,
    )
    record_issued(session, [certificate], now=now, actor=actor)
    return Issued(certificate, replayed=False)


@dataclass(frozen=True)
class Approved:
    """A request that passed every check: signing it needs only a status-list position."""

    request: IssuanceRequest
    certificate_type: CertificateType
    key: SigningKey
    id_number: str  # normalised
    valid_from: datetime
    valid_until: datetime | None


def approve(
    session: Session,
    office: Office,
    request: IssuanceRequest,
    *,
    now: datetime,
    key_for: Callable[[str], SigningKey] | None = None,
) -> Approved:
    """Check ``request`` against the catalog and the office; nothing is written.

    ``key_for(type_code)`` finds the signing key (default: :func:`signing_key_for`; a
    batch passes a cached one).

    Raises:
        InvalidInput: every bad field, listed.
        NotAllowed: the office may not issue this type.
        KeyUnavailable: the office has no active key for the type.
    """
    try:
        certificate_type = get_type(session, request.type_code)
    except NotFound as error:
        raise InvalidInput("unknown certificate type", [FieldError("type", error.detail)]) from error
    if certificate_type.code not in office.types:
        raise NotAllowed(f"office {office.credit_code} may not issue {certificate_type.code} certificates")
    id_number, valid_from, valid_until = _validate(certificate_type, request, now)
    key = key_for(certificate_type.code) if key_for else signing_key_for(session, office, certificate_type.code)
    return Approved(request, certificate_type, key, id_number, valid_from, valid_until)


def sign_certificate(
    keyring: KeyRing,
    region: Region,
    office: Office,
    approved: Approved,
    *,
    status_index: int,
    now: datetime,
    idempotency_key: str | None,
    digest: str | None,
) -> Certificate:
    """Sign an approved request into a new certificate, not yet added to any session.

    Raises:
        InvalidInput: the signed token would not fit in a QR code.
        KeyStorageError: the key cannot be decrypted.
    """
    request, certificate_type, key = approved.request, approved.certificate_type, approved.key
    certificate_id = str(CertificateId.new(certificate_type.code, office.credit_code))
    issued_at = now.replace(microsecond=0)
    claims = CertificateClaims(
        region=region.code,
        certificate_id=certificate_id,
        issued_at=int(issued_at.timestamp()),
        not_before=int(approved.valid_from.timestamp()),
        expires=None if approved.valid_until is None else int(approved.valid_until.timestamp()),
        holder=HolderClaims(
            name=request.holder.name, id_number=mask_id_number(request.holder.id_type, approved.id_number)
        ),
        fields=tuple(request.fields.get(name) for name in certificate_type.qr_fields),
        status_index=status_index,
    )
    token = _sign(keyring, key, claims)
    if len(token) > MAX_TOKEN_LENGTH or len(f"{region.public_url}/v#{token}".encode()) > MAX_QR_TEXT_BYTES:
        # Refuse now rather than hand out a certificate that can never verify.
        qr = [FieldError(f"fields/{name}", "too long for the QR code") for name in certificate_type.qr_fields]
        raise InvalidInput("the certificate's signed data is too large for its QR code", qr)
    return Certificate(
        id=certificate_id,
        type_code=certificate_type.code,
        office_id=office.id,
        kid=key.kid,
        holder_name=request.holder.name,
        holder_id_type=request.holder.id_type,
        holder_id_number=approved.id_number,
        fields=request.fields,
        valid_from=approved.valid_from.replace(microsecond=0),
        valid_until=None if approved.valid_until is None else approved.valid_until.replace(microsecond=0),
        issued_at=issued_at,
        status=Status.VALID.value,
        token=token,
        idempotency_key=idempotency_key,
        request_digest=digest if idempotency_key is not None else None,
        status_index=status_index,
        history=[],  # a new certificate has none; saying so spares a query per answer
    )


def record_issued(session: Session, certificates: list[Certificate], *, now: datetime, actor: str) -> None:
    """Store newly signed certificates with their log entries (in list order) and audit
    records in the caller's transaction, a bulk INSERT for each."""
    entries = log.append_many(session, [(log.ISSUANCE, c.id, c.token.encode("ascii")) for c in certificates], now=now)
    for certificate, entry in zip(certificates, entries, strict=True):
        certificate.log_index = entry.position
    insert_new(session, certificates)
    audit.record_many(
        session,
        now=now,
        actor=actor,
        action="certificate.issue",
        subject_type="certificate",
        subjects=[(c.id, {"type": c.type_code, "kid": c.kid}) for c in certificates],
    )
    session.flush()


def _validate(
    certificate_type: CertificateType, request: IssuanceRequest, now: datetime
) -> tuple[str, datetime, datetime | None]:
    errors: list[FieldError] = []
    id_number = request.holder.id_number
    if request.holder.id_type != certificate_type.holder_id_type:
        errors.append(
            FieldError(
                "holder/id_type", f"{certificate_type.code} holders are identified by {certificate_type.holder_id_type}"
            )
        )
    else:
        try:
            id_number = normalise_id_number(request.holder.id_type, request.holder.id_number)
        except IdentifierError as error:
            errors.append(FieldError("holder/id_number", str(error)))
    errors.extend(field_errors(certificate_type, request.fields))
    valid_from = request.valid_from or now
    valid_until = request.valid_until
    if valid_until is None and certificate_type.default_validity_days is not None:
        valid_until = valid_from + timedelta(days=certificate_type.default_validity_days)
    if valid_from < EPOCH:
        errors.append(FieldError("valid_from", "must not be before 1970-01-01"))
    if valid_until is not None and valid_until <= valid_from:
        errors.append(FieldError("valid_until", "must be later than valid_from"))
    if errors:
        raise InvalidInput("the certificate cannot be issued", errors)
    return id_number, valid_from, valid_until


def _sign(keyring: KeyRing, key: SigningKey, claims: CertificateClaims) -> str:
    private_key = keyring.private_key(key.kid, lambda: key.private_key)
    return encode_token(claims.to_payload(), private_key, key.kid)


def get_office_certificate(session: Session, office: Office, certificate_id: str) -> Certificate:
    """A certificate of ``office``; another office's certificate is reported as not found.

    Raises:
        NotFound: no such certificate for this office (whether or not it exists elsewhere).
    """
    if "\x00" in certificate_id:  # no identifier holds it, and PostgreSQL text cannot
        raise NotFound("no such certificate")
    certificate = session.get(Certificate, certificate_id)
    if certificate is None or certificate.office_id != office.id:
        raise NotFound("no such certificate")
    return certificate
