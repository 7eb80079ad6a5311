"""The verifier: DESIGN's ordered checks, stopping at the first failure.

Two views of one verification (as python-tuf does): :meth:`Verifier.verify` returns a
:class:`~verify.report.VerificationReport` and never raises, for answers shown to
people; :func:`require_valid` raises on anything but VALID, for code. Both are built on
the same steps, so they cannot disagree.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from registry.catalog import reference_type_definitions
from registry.claims import CertificateClaims
from registry.identifiers import CertificateId, IdentifierError
from registry.models import CertificateType
from registry.status import Status
from signing.algorithms import verify_signature
from signing.errors import TokenFormatError
from signing.tokens import MAX_TOKEN_LENGTH, parse_token
from verify.cache import uncached_view
from verify.codes import Verdict
from verify.errors import VerificationFailed
from verify.report import TypeInfo, VerificationReport, type_info
from verify.sources import Lookup, Registry, RegistryAnswer, StatusUnavailable
from verify.trust import TrustedKey, TrustedRegion, TrustStore

DEFAULT_LEEWAY = timedelta(seconds=60)


class Trust(Protocol):
    """The regions a verifier recognises, their keys, and their registries (``verify.trust``)."""

    def region(self, code: str) -> TrustedRegion | None: ...
    def key(self, region: TrustedRegion, kid: str) -> TrustedKey | None: ...
    def registry(self, region: TrustedRegion) -> Registry: ...


class Catalog(Protocol):
    def __call__(self, type_code: str) -> TypeInfo | None: ...


@dataclass(frozen=True)
class _Signed:
    """A token through steps 1 to 6: its report so far, and what step 7 asks its region."""

    report: VerificationReport
    region: TrustedRegion
    lookup: Lookup


class Verifier:
    """Checks tokens against a trust store and a registry, at a given moment."""

    def __init__(
        self,
        session: Session | None,
        *,
        now: datetime,
        leeway: timedelta = DEFAULT_LEEWAY,
        trust: Trust | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        """``session`` reads our registry; by default the trust store is our own region
        and the peers stored in that registry, without online lookups, and the catalog
        is that registry's (both read once, when first needed)."""
        self._now = now
        self._leeway = leeway
        if session is None:
            if trust is None or catalog is None:
                raise ValueError("without a registry session, pass both trust and catalog")
            self._trust, self._catalog = trust, catalog
            return
        registry = session
        view = functools.cache(lambda: uncached_view(registry))
        self._trust = trust or TrustStore(now=now, own=registry, held=lambda: view().trust)
        self._catalog = catalog or (lambda type_code: view().type_info(type_code))

    def verify(self, token: str) -> VerificationReport:
        """Run every check in order; the report names the first that failed.

        If the data a check needs cannot be read (the database is down), the answer is
        UNDETERMINED: an outage never turns into a wrong INVALID or VALID.
        """
        return self.verify_many([token])[0]

    def verify_many(self, tokens: Sequence[str]) -> list[VerificationReport]:
        """:meth:`verify` each token, in order, with the registry work done in bulk: steps
        1 to 6 token by token (they need no database), then steps 7 and 8 once per issuing
        region for all its tokens (our registry: a constant number of queries however many)."""
        outcomes = [self._until_registry(token) for token in tokens]
        by_region: dict[str, list[int]] = {}
        for position, outcome in enumerate(outcomes):
            if isinstance(outcome, _Signed):
                by_region.setdefault(outcome.region.code, []).append(position)
        reports = [outcome if isinstance(outcome, VerificationReport) else None for outcome in outcomes]
        for positions in by_region.values():
            signed = [outcome for position in positions if isinstance(outcome := outcomes[position], _Signed)]
            for position, report in zip(positions, self._registry_steps(signed), strict=True):
                reports[position] = report
        return [report for report in reports if report is not None]

    def _until_registry(self, token: str) -> VerificationReport | _Signed:
        try:
            return self._checks(token)
        except SQLAlchemyError:
            return VerificationReport(
                verdict=Verdict.UNDETERMINED,
                code="STATUS_UNAVAILABLE",
                detail="the registry cannot be read",
                checked_at=self._now,
            )

    def _checks(self, token: str) -> VerificationReport | _Signed:
        """Steps 1 to 6: the report of the first that failed, or the signed token for step 7."""
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
        if region.stale(now):
            return replace(
                unsigned,
                verdict=Verdict.UNDETERMINED,
                code="TRUSTLIST_STALE",
                detail=f"the trust list held for region {region.code} has expired (sync the peer, or use a fresh bundle)",
            )
        key = self._trust.key(region, parsed.header.kid)
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
            unsigned, claims=claims, region=region, key=key, certificate_type=self._catalog(certificate_id.type_code)
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

        lookup = Lookup(
            certificate_id=claims.certificate_id,
            token=token,
            signing_input=parsed.signing_input,
            status_index=claims.status_index,
            issued_at=issued_at,
            key_compromised=key.compromised_since is not None,
        )
        return _Signed(report=signed, region=region, lookup=lookup)

    def _registry_steps(self, tokens: list[_Signed]) -> list[VerificationReport]:
        """Steps 7 and 8 for signed tokens of one region, asked of its registry together."""
        # Step 7: the issuing registry holds exactly this token (a real key's signature
        # on a token that was never registered is a forgery: leaked key or insider).
        try:
            answers = self._trust.registry(tokens[0].region).lookup_many([signed.lookup for signed in tokens])
        except SQLAlchemyError:
            detail = "the registry cannot be read"
            return [
                replace(signed.report, verdict=Verdict.UNDETERMINED, code="STATUS_UNAVAILABLE", detail=detail)
                for signed in tokens
            ]
        return [_registry_answer(signed.report, found) for signed, found in zip(tokens, answers, strict=True)]

    def verify_qr_text(self, qr_text: str) -> VerificationReport:
        """Verify the token inside a QR text ``<public URL>/v#<token>``."""
        try:
            token = token_from_qr_text(qr_text)
        except TokenFormatError as error:
            return VerificationReport(
                verdict=Verdict.INVALID, code=error.code, detail=error.detail, checked_at=self._now
            )
        return self.verify(token)


def _registry_answer(signed: VerificationReport, found: RegistryAnswer) -> VerificationReport:
    """The end of step 7, and step 8, from what the issuing registry answered."""
    if isinstance(found, StatusUnavailable):
        detail = f"the issuing region's status cannot be checked ({found})"
        return replace(signed, verdict=Verdict.UNDETERMINED, code="STATUS_UNAVAILABLE", detail=detail)
    if found is None:
        return replace(signed, code="NOT_IN_REGISTRY", detail="the issuing registry has no record of this token")
    signed = replace(signed, status_source=found.source, log=found.log)

    # Step 8: status.
    if found.status is not Status.VALID:
        detail = f"the certificate is {found.status.name}"
        return replace(signed, code=found.status.name, detail=detail, status=found.status)
    return replace(
        signed, verdict=Verdict.VALID, code="OK", detail="genuine, registered and in force", status=found.status
    )


def reference_catalog() -> Catalog:
    """Type names and labels from the reference catalog shipped with ecert (no database)."""
    types = {d["code"]: type_info(CertificateType(version=1, **d)) for d in reference_type_definitions()}

    def lookup(type_code: str) -> TypeInfo | None:
        return types.get(type_code)

    return lookup


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
