"""What a certificate document shows, assembled from the registry, and how values print."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from registry.catalog import field_labels
from registry.identifiers import CREDIT_CODE, mask_id_number
from registry.models import Certificate, Region
from registry.requests import CHINA_STANDARD_TIME

ID_LABELS = {CREDIT_CODE: ("统一社会信用代码", "Unified social credit code")}
DEFAULT_ID_LABEL = ("公民身份号码", "Resident ID number")
NO_END = ("长期", "No expiry")


@dataclass(frozen=True)
class Line:
    label_zh: str
    label_en: str
    value: str


@dataclass(frozen=True)
class CertificateDocument:
    identifier: str
    title_zh: str
    title_en: str
    holder_name: str
    holder_id: Line
    fields: tuple[Line, ...]
    valid_from: str
    valid_until: str
    office_name: str
    issued_on: str
    region_name: str
    qr_text: str
    token: str


def print_date(moment: datetime) -> str:
    """A date as printed on certificates: the day in China Standard Time."""
    return moment.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d")


def print_value(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def valid_until_text(moment: datetime | None) -> str:
    # valid_until is exclusive (midnight after the last day), so print the day before.
    return NO_END[0] if moment is None else print_date(moment - timedelta(seconds=1))


def document_for(certificate: Certificate, region: Region) -> CertificateDocument:
    """Everything the PDF shows for ``certificate`` (ID number masked)."""
    certificate_type = certificate.certificate_type
    labels = field_labels(certificate_type)
    id_label = ID_LABELS.get(certificate.holder_id_type, DEFAULT_ID_LABEL)
    return CertificateDocument(
        identifier=certificate.id,
        title_zh=certificate_type.name_zh,
        title_en=certificate_type.name_en,
        holder_name=certificate.holder_name,
        holder_id=Line(*id_label, mask_id_number(certificate.holder_id_type, certificate.holder_id_number)),
        fields=tuple(
            Line(zh, en, print_value(certificate.fields[name]))
            for name, (zh, en) in labels.items()
            if name in certificate.fields
        ),
        valid_from=print_date(certificate.valid_from),
        valid_until=valid_until_text(certificate.valid_until),
        office_name=certificate.office.name,
        issued_on=print_date(certificate.issued_at),
        region_name=region.name,
        qr_text=f"{region.public_url}/v#{certificate.token}",
        token=certificate.token,
    )
