"""Issuance requests, parsed at the boundary from untrusted JSON into typed values."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from registry.errors import FieldError, InvalidInput
from registry.text import clean_text, clean_tree

# Dates without a time are read in China Standard Time: valid_from starts that day,
# valid_until ends it (the certificate is valid through the day printed on it).
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
MAX_NAME_LENGTH = 100
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Visible ASCII and spaces: what an HTTP field value may hold (RFC 9110 §5.5), and all a
# database text column is sure to store (PostgreSQL refuses NUL).
_IDEMPOTENCY_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}")


@dataclass(frozen=True)
class HolderInput:
    name: str
    id_type: str
    id_number: str


@dataclass(frozen=True)
class IssuanceRequest:
    type_code: str
    holder: HolderInput
    fields: dict[str, Any]
    valid_from: datetime | None
    valid_until: datetime | None


def request_digest(body: Any) -> str:
    """A digest of a request body, independent of member order, for idempotency checks."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def is_idempotency_key(value: object) -> bool:
    """Whether ``value`` may serve as an idempotency key (header or batch item member)."""
    return isinstance(value, str) and _IDEMPOTENCY_KEY.fullmatch(value) is not None


def parse_issuance_request(body: Any) -> IssuanceRequest:
    """Check the shape of an issuance request and clean its text.

    Content rules (schema, ID check characters) are the issuer's job; this only makes
    sure every value has the right type.

    Raises:
        InvalidInput: listing every bad member.
    """
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    errors: list[FieldError] = []
    unknown = sorted(set(body) - {"type", "holder", "fields", "valid_from", "valid_until"})
    for name in unknown:
        errors.append(FieldError(name, "unknown member"))
    type_code = _required_text(body, "type", "type", errors, max_length=8)
    holder = body.get("holder")
    if not isinstance(holder, dict):
        errors.append(FieldError("holder", "an object {name, id_type, id_number} is required"))
        holder = {}
    for name in sorted(set(holder) - {"name", "id_type", "id_number"}):
        errors.append(FieldError(f"holder/{name}", "unknown member"))
    holder_input = HolderInput(
        name=_required_text(holder, "name", "holder/name", errors, max_length=MAX_NAME_LENGTH),
        id_type=_required_text(holder, "id_type", "holder/id_type", errors, max_length=16),
        id_number=_required_text(holder, "id_number", "holder/id_number", errors, max_length=64),
    )
    fields = body.get("fields", {})
    if not isinstance(fields, dict):
        errors.append(FieldError("fields", "an object is required"))
        fields = {}
    fields = clean_tree(fields, "fields", errors)
    valid_from = _optional_time(body, "valid_from", errors, end_of_day=False)
    valid_until = _optional_time(body, "valid_until", errors, end_of_day=True)
    if errors:
        raise InvalidInput("the request is not valid", errors)
    return IssuanceRequest(
        type_code=type_code.upper(),
        holder=holder_input,
        fields=fields,
        valid_from=valid_from,
        valid_until=valid_until,
    )


def _required_text(members: dict[str, Any], name: str, path: str, errors: list[FieldError], *, max_length: int) -> str:
    value = members.get(name)
    if not isinstance(value, str):
        errors.append(FieldError(path, "a string is required"))
        return ""
    try:
        value = clean_text(value)
    except ValueError as error:
        errors.append(FieldError(path, str(error)))
        return ""
    if not value or len(value) > max_length:
        errors.append(FieldError(path, f"must be 1 to {max_length} characters"))
    return value


def _optional_time(
    members: dict[str, Any], name: str, errors: list[FieldError], *, end_of_day: bool
) -> datetime | None:
    value = members.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, "an ISO 8601 date or date-time is required"))
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end_of_day:
                return datetime.combine(day + timedelta(days=1), time(), CHINA_STANDARD_TIME).astimezone(UTC)
            return datetime.combine(day, time(), CHINA_STANDARD_TIME).astimezone(UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(name, "not an ISO 8601 date or date-time"))
        return None
    if moment.tzinfo is None:
        errors.append(FieldError(name, "a date-time needs a UTC offset, e.g. 2026-01-01T00:00:00+08:00"))
        return None
    return moment.astimezone(UTC)
