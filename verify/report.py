"""Verification reports, and the answer a verifier shows (an explicit allowlist of fields)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from registry.catalog import field_labels
from registry.claims import CertificateClaims
from registry.identifiers import CertificateId, mask_id_number
from registry.models import CertificateType
from registry.status import Status
from registry.times import iso_from_epoch, iso_utc
from verify.codes import REASONS, Verdict
from verify.sources import LogEvidence
from verify.trust import TrustedKey, TrustedRegion


@dataclass(frozen=True)
class TypeInfo:
    """What the catalog says about a certificate type, to name the token's fields."""

    code: str
    name_zh: str
    name_en: str
    holder_id_type: str
    qr_fields: tuple[str, ...]
    labels: dict[str, tuple[str, str]]


def type_info(certificate_type: CertificateType) -> TypeInfo:
    """What a catalog entry says to name a token's fields."""
    return TypeInfo(
        code=certificate_type.code,
        name_zh=certificate_type.name_zh,
        name_en=certificate_type.name_en,
        holder_id_type=certificate_type.holder_id_type,
        qr_fields=tuple(certificate_type.qr_fields),
        labels=field_labels(certificate_type),
    )


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of one verification. Never raised; see ``verify.verifier.require_valid``.

    ``claims`` is set only once the signature has verified, so nothing unsigned is ever
    shown as certificate data.
    """

    verdict: Verdict
    code: str
    detail: str
    checked_at: datetime
    claims: CertificateClaims | None = None
    certificate_type: TypeInfo | None = None
    region: TrustedRegion | None = None
    key: TrustedKey | None = None
    status: Status | None = None
    # Who answered steps 7 and 8: "registry" (ours), "issuer" (online), "status-list".
    status_source: str | None = None
    log: LogEvidence | None = None

    @property
    def valid(self) -> bool:
        return self.verdict is Verdict.VALID


# Signed by a real key but not the registry's: a forgery (leaked key, insider). Its
# content is not shown beside the verdict, so nobody can read it as a certificate.
WITHHELD = frozenset({"NOT_IN_REGISTRY"})


def answer(report: VerificationReport) -> dict[str, Any]:
    """The JSON answer for API, CLI and page: only what a verifier needs, IDs masked."""
    english, chinese = REASONS.get(report.code, (report.detail, report.detail))
    return {
        "verdict": report.verdict.value,
        "code": report.code,
        "message": {"en": english, "zh": chinese},
        "detail": report.detail,
        "certificate": _certificate(report),
        "issuer": _issuer(report),
        "status_source": report.status_source,
        "log": _log(report.log),
        "checked_at": iso_utc(report.checked_at),
    }


def _log(evidence: LogEvidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    return {
        "index": evidence.index,
        "tree_size": evidence.tree_size,
        "inclusion_proof": [base64.b64encode(step).decode("ascii") for step in evidence.inclusion_proof],
        "checkpoint": evidence.checkpoint,
    }


def _certificate(report: VerificationReport) -> dict[str, Any] | None:
    claims = report.claims
    if claims is None or report.code in WITHHELD:
        return None
    ctype = report.certificate_type
    labels = ctype.labels if ctype else {}
    names = ctype.qr_fields if ctype else ()
    # Without the catalog entry the ID type is unknown: mask as if personal.
    id_type = ctype.holder_id_type if ctype else "UNKNOWN"
    return {
        "id": claims.certificate_id,
        "type": {
            "code": CertificateId.parse(claims.certificate_id).type_code,
            "name_zh": ctype.name_zh if ctype else None,
            "name_en": ctype.name_en if ctype else None,
        },
        "holder": {
            "name": claims.holder.name,
            "id_type": id_type,
            "id_number": mask_id_number(id_type, claims.holder.id_number),
        },
        "fields": [
            {
                "name": name,
                "label_zh": labels.get(name, (name, name))[0],
                "label_en": labels.get(name, (name, name))[1],
                "value": value,
            }
            for name, value in zip(names, claims.fields, strict=False)
            if value is not None
        ],
        "issued_at": iso_from_epoch(claims.issued_at),
        "valid_from": iso_from_epoch(claims.valid_from),
        "valid_until": iso_from_epoch(claims.expires),
        "status": None
        if report.status is None
        else {"code": report.status.value, "name": report.status.name, "name_zh": report.status.name_zh},
    }


def _issuer(report: VerificationReport) -> dict[str, Any] | None:
    if report.key is None or report.region is None or report.claims is None:
        return None
    return {
        "region": report.region.code,
        "region_name": report.region.name,
        "office": report.key.office_code,
        "office_name": report.key.office_name,
        "kid": report.key.kid,
    }
