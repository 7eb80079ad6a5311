"""The verifier: DESIGN's ordered checks, stopping at the first failure.

Two views of one verification (as python-tuf does): :meth:`Verifier.verify` returns a
:class:`~verify.report.VerificationReport` and never raises, for answers shown to
people; :func:`require_valid` raises on anything but VALID, for code. Both are built on
the same steps, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from registry.catalog import field_labels
from registry.claims import CertificateClaims
from registry.identifiers import CertificateId, IdentifierError
from registry.models import CertificateType
from registry.status import Status
from signing.algorithms import verify_signature
from signing.errors import TokenFormatError
from signing.tokens import MAX_TOKEN_LENGTH, parse_token
from verify.codes import Verdict
from verify.errors import VerificationFailed
from verify.report import TypeInfo, VerificationReport
from verify.sources import OwnRegistry, RegistryRecord
from verify.trust import OwnRegionTrust, TrustedKey, TrustedRegion

DEFAULT_LEEWAY = timedelta(seconds=60)


class Trust(Protocol):
    def region(self, code: str) -> TrustedRegion | None: ...
    def key(self, kid: str) -> TrustedKey | None: ...


class Registry(Protocol):
    def lookup(self, certificate_id: str) -> RegistryRecord | None: ...


class Verifier:
    """Checks tokens against a trust store and a registry, at a given moment."""

    def __init__(
        self,
        session: Session,
        *,
        now: datetime,
        leeway: timedelta = DEFAULT_LEEWAY,
        trust: Trust | None = None,
        registry: Registry | None = None,
    ) -> None:
        self._session = session
        self._now = now
        self._leeway = leeway
        self._trust = trust or OwnRegionTrust(session)
        self._registry = registry or OwnRegistry(session)

    def verify(self, token: str) -> VerificationReport:
        """Run every check in order; the report names the first that failed.

        If the data a check needs cannot be read (the database is down), the answer is
        UNDETERMINED: an outage never turns into a wrong INVALID or VALID.
        """
        try:
            return self._checks(token)
        except SQLAlchemyError:
            return VerificationReport(
                verdict=Verdict.UNDETERMINED,
                code="STATUS_UNAVAILABLE",
                detail="the registry cannot be read",
                checked_at=self._now,
            )

    def _checks(self, token: str) -> VerificationReport:
        now = self._now
        unsigned = VerificationReport(verdict=Verdict.INVALID, code="", detail="", checked_at=now)

        # Step 1: size and syntax (strict parser; claims and identifier well-formed).
        try:
            parsed = parse_token(token, MAX_TOKEN_LENGTH)
            claims = CertificateClaims.from_payload(parsed.payload)
            certificate_id = CertificateId.parse(claims.certificate_id)
        except TokenFormatError as error:
            return replace(unsigned, code=error.code, detail=error.detail)
        except IdentifierError as error:
            return replace(unsigned, code="MALFORMED", detail=str(error))

        # Step 2: issuer known: a recognised region, and the kid in its trust list.
        region = self._trust.region(claims.region)
        if region is None:
            return replace(
                unsigned, code="REGION_NOT_RECOGNISED", detail=f"region {claims.region} is not recognised here"
            )
        key = self._trust.key(parsed.header.kid)
        if key is None:
            return replace(
                unsigned, code="KEY_UNKNOWN", detail="no key with this kid in the issuing region's trust list"
            )

        # Step 3: the algorithm registered for the key, never the token's own claim.
        if parsed.header.alg != key.algorithm:
            detail = f"key {key.kid} is registered for {key.algorithm}, not {parsed.header.alg}"
            return replace(unsigned, code="ALG_NOT_ALLOWED", detail=detail)

        # Step 4: signature.
        if not verify_signature(key.algorithm, key.public_key, parsed.signing_input, parsed.signature):
            return replace(
                unsigned, code="SIG_INVALID", detail="the signature does not verify under the registered key"
            )

        # From here on the claims are signed data and may be shown.
        signed = replace(
            unsigned, claims=claims, region=region, key=key, certificate_type=self._type_info(certificate_id)
        )

        # Step 5: the key was entitled to sign this certificate when it was issued.
        issued_at = datetime.fromtimestamp(claims.issued_at, UTC)
        if certificate_id.office_code != key.office_code:
            return replace(signed, code="ISSUER_MISMATCH", detail="the identifier names another office than the key's")
        if certificate_id.type_code not in key.types:
            return replace(
                signed, code="TYPE_MISMATCH", detail=f"key {key.kid} may not sign {certificate_id.type_code}"
            )
        if key.compromised_since is not None and issued_at >= key.compromised_since:
            return replace(signed, code="KEY_COMPROMISED", detail="issued after the key was compromised")
        if issued_at < key.not_before or (key.not_after is not None and issued_at > key.not_after):
            return replace(signed, code="KEY_NOT_VALID_AT_IAT", detail="issued outside the key's validity window")

        # Step 6: validity window, with leeway for clock skew.
        latest_acceptable = (now + self._leeway).timestamp()
        if claims.valid_from > latest_acceptable or claims.issued_at > latest_acceptable:
            return replace(signed, code="NOT_YET_VALID", detail="the certificate is not valid yet")
        if claims.expires is not None and claims.expires <= (now - self._leeway).timestamp():
            return replace(signed, code="EXPIRED", detail="the certificate's validity has ended")

        # Step 7: the issuing registry holds exactly this token (a real key's signature
        # on a token that was never registered is a forgery: leaked key or insider).
        try:
            record = self._registry.lookup(claims.certificate_id)
        except SQLAlchemyError:
            detail = "the registry cannot be read"
            return replace(signed, verdict=Verdict.UNDETERMINED, code="STATUS_UNAVAILABLE", detail=detail)
        if record is None or record.signing_input != parsed.signing_input:
            return replace(signed, code="NOT_IN_REGISTRY", detail="the issuing registry has no record of this token")

        # Step 8: status.
        if record.status is not Status.VALID:
            detail = f"the certificate is {record.status.name}"
            return replace(signed, code=record.status.name, detail=detail, status=record.status)
        return replace(
            signed, verdict=Verdict.VALID, code="OK", detail="genuine, registered and in force", status=record.status
        )

    def verify_qr_text(self, qr_text: str) -> VerificationReport:
        """Verify the token inside a QR text ``<public URL>/v#<token>``."""
        try:
            token = token_from_qr_text(qr_text)
        except TokenFormatError as error:
            return VerificationReport(
                verdict=Verdict.INVALID, code=error.code, detail=error.detail, checked_at=self._now
            )
        return self.verify(token)

    def _type_info(self, certificate_id: CertificateId) -> TypeInfo | None:
        certificate_type = self._session.get(CertificateType, certificate_id.type_code)
        if certificate_type is None:
            return None
        return TypeInfo(
            code=certificate_type.code,
            name_zh=certificate_type.name_zh,
            name_en=certificate_type.name_en,
            holder_id_type=certificate_type.holder_id_type,
            qr_fields=tuple(certificate_type.qr_fields),
            labels=field_labels(certificate_type),
        )


def require_valid(verifier: Verifier, token: str) -> VerificationReport:
    """Verify ``token`` and return its report only if it is VALID.

    Raises:
        VerificationFailed: the verdict is INVALID or UNDETERMINED; ``.report`` says why.
    """
    report = verifier.verify(token)
    if not report.valid:
        raise VerificationFailed(report)
    return report


def token_from_qr_text(qr_text: str) -> str:
    """The token in a QR text ``<public URL>/v#<token>``.

    Raises:
        TokenFormatError: ``MALFORMED`` if the text has no ``/v#`` fragment.
    """
    base, separator, token = qr_text.partition("/v#")
    if not separator or not base.startswith(("http://", "https://")):
        raise TokenFormatError("MALFORMED", "QR text must be <public URL>/v#<token>")
    return token
