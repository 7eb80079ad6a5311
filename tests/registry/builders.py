"""Request bodies and readers shared by the registry tests (plain functions, not fixtures)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.demo import sample_request
from registry.errors import InvalidInput
from registry.models import AuditRecord

OFFICE_ACTOR = "office:test"


def with_fields(type_code: str, **changes: Any) -> dict[str, Any]:
    """The sample request for ``type_code`` with some fields changed (``None`` removes one)."""
    body = sample_request(type_code)
    body["fields"].update(changes)
    body["fields"] = {name: value for name, value in body["fields"].items() if value is not None}
    return body


def with_holder(type_code: str, **changes: Any) -> dict[str, Any]:
    body = sample_request(type_code)
    body["holder"].update(changes)
    return body


def error_fields(error: InvalidInput) -> list[str]:
    return sorted(field_error.field for field_error in error.errors)


def audit_trail(session: Session) -> list[AuditRecord]:
    return list(session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


def audit_actions(session: Session) -> list[str]:
    return [entry.action for entry in audit_trail(session)]
