"""The verifier: DESIGN's ordered checks, stopping at the first failure.

Two views of one verification (as python-tuf does): :meth:`Verifier.verify` returns a
:class:`~verify.report.VerificationReport` and never raises, for answers shown to
people; :func:`require_valid` raises on anything but VALID, for code. Both are built on
the same steps, so they cannot disagree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
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
        """Run every check in order; the report names the first that failed."""
        now = self._now

        def fail(code: str, detail: str, verdict: Verdict = Verdict.INVALID, **known: object) -> VerificationReport:
            return VerificationReport(verdict=verdict, code=code, detail=detail, checked_at=now, **known)  # type: ignore[arg-type]

        # Step 1: size and syntax (strict parser; claims and identifier well-formed).
        try:
            parsed = parse_token(token, MAX_TOKEN_LENGTH)
            claims = CertificateClaims.from_payload(parsed.payload)
            certificate_id = CertificateId.parse(claims.certificate_id)
        except TokenFormatError as error:
            return fail(error.code, error.detail)
        except IdentifierError as error:
            return fail("MALFORMED", str(error))

        # Step 2: issuer known: a recognised region, and the kid in its trust list.
        region = self._trust.region(claims.region)
        if region is None:
            return fail("REGION_NOT_RECOGNISED", f"region {claims.region} is not recognised here")
        key = self._trust.key(parsed.header.kid)
        if key is None:
            return fail("KEY_UNKNOWN", "no key with this kid in the issuing region's trust list")

        # Step 3: the algorithm registered for the key, never the token's own claim.
        if parsed.header.alg != key.algorithm:
            return fail("ALG_NOT_ALLOWED", f"key {key.kid} is registered for {key.algorithm}, not {parsed.header.alg}")

        # Step 4: signature.
        if not verify_signature(key.algorithm, key.public_key, parsed.signing_input, parsed.signature):
            return fail("SIG_INVALID", "the signature does not verify under the registered key")

        # From here the claims are signed data and may be shown.
        signed = {"claims": claims, "region": region, "key": key, "certificate_type": self._type_info(certificate_id)}

        # Step 5: the key was entitled to sign this certificate when it was issued.
        issued_at = datetime.fromtimestamp(claims.issued_at, now.tzinfo)
        if certificate_id.office_code != key.office_code:
            return fail("ISSUER_MISMATCH", "the identifier names another office than the key's", **signed)
        if certificate_id.type_code not in key.types:
            return fail("TYPE_MISMATCH", f"key {key.kid} may not sign {certificate_id.type_code}", **signed)
        if key.compromised_since is not None and issued_at >= key.compromised_since:
            return fail("KEY_COMPROMISED", "issued after the key was compromised", **signed)
        if issued_at < key.not_before or (key.not_after is not None and issued_at > key.not_after):
            return fail("KEY_NOT_VALID_AT_IAT", "issued outside the key's validity window", **signed)

        # Step 6: validity window, with leeway for clock skew.
        if claims.not_before > (now + self._leeway).timestamp() or claims.issued_at > (now + self._leeway).timestamp():
            return fail("NOT_YET_VALID", "the certificate is not valid yet", **signed)
        if claims.expires is not None and claims.expires <= (now - self._leeway).timestamp():
            return fail("EXPIRED", "the certificate's validity has ended", **signed)

        # Step 7: the issuing registry holds exactly this token (a real key's signature
        # on a token that was never registered is a forgery: leaked key or insider).
        try:
            record = self._registry.lookup(claims.certificate_id)
        except SQLAlchemyError:
            return fail("STATUS_UNAVAILABLE", "the registry cannot be read", Verdict.UNDETERMINED, **signed)
        if record is None or record.signing_input != parsed.signing_input:
            return fail("NOT_IN_REGISTRY", "the issuing registry has no record of this token", **signed)

        # Step 8: status.
        if record.status is not Status.VALID:
            return fail(record.status.name, f"the certificate is {record.status.name}", status=record.status, **signed)
        return VerificationReport(
            verdict=Verdict.VALID, code="OK", detail="genuine, registered and in force",
            checked_at=now, status=record.status, **signed,  # type: ignore[arg-type]
        )

    def verify_qr_text(self, qr_text: str) -> VerificationReport:
        """Verify the token inside a QR text ``<public URL>/v#<token>``."""
        try:
            token = token_from_qr_text(qr_text)
        except TokenFormatError as error:
            return VerificationReport(verdict=Verdict.INVALID, code=error.code, detail=error.detail, checked_at=self._now)
        return self.verify(token)

    def _type_info(self, certificate_id: CertificateId) -> TypeInfo | None:
        certificate_type = self._session.get(CertificateType, certificate_id.type_code)
        if certificate_type is None:
            return None
        return TypeInfo(
            code=certificate_type.code,
            name_zh=certificate_type.name_zh,
            name_en=certificate_type.name_en,
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
