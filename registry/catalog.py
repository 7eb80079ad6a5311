"""The certificate catalog (证照目录): certificate types as data, and field validation."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import FieldError, NotFound
from registry.models import CertificateType

REFERENCE_TYPES = ("BL", "DL", "PQ")


def reference_type_definitions() -> list[dict[str, Any]]:
    """The reference types shipped in ``registry/catalog/*.json``."""
    folder = resources.files("registry") / "catalog"
    definitions = []
    for code in REFERENCE_TYPES:
        definition = json.loads((folder / f"{code}.json").read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(definition["fields_schema"])
        definitions.append(definition)
    return definitions


def install_reference_catalog(session: Session) -> list[str]:
    """Add the reference types that are not in the catalog yet; return the codes added."""
    added = []
    for definition in reference_type_definitions():
        if session.get(CertificateType, definition["code"]) is None:
            session.add(CertificateType(version=1, **definition))
            added.append(definition["code"])
    session.flush()
    return added


def list_types(session: Session) -> list[CertificateType]:
    return list(session.scalars(select(CertificateType).order_by(CertificateType.code)))


def get_type(session: Session, code: str) -> CertificateType:
    """The catalog entry ``code``.

    Raises:
        NotFound: no such type.
    """
    certificate_type = session.get(CertificateType, code)
    if certificate_type is None:
        raise NotFound(f"certificate type {code!r} is not in the catalog")
    return certificate_type


def field_errors(certificate_type: CertificateType, fields: dict[str, Any]) -> list[FieldError]:
    """Every way ``fields`` break the type's JSON Schema, as field errors (empty if none)."""
    validator = _validator(certificate_type)
    errors = []
    for error in sorted(validator.iter_errors(fields), key=lambda e: [str(p) for p in e.absolute_path]):
        path = "/".join(["fields", *(str(p) for p in error.absolute_path)])
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            errors.append(FieldError(field=f"{path}/{missing}", message=error.message))
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            errors.extend(
                FieldError(field=f"{path}/{name}", message=f"{name!r} is not a field of this certificate type")
                for name in sorted(set(error.instance) - known)
            )
        else:
            errors.append(FieldError(field=path, message=error.message))
    return errors


# Type code → (the schema, its validator): a batch checks up to a thousand items
# against one loaded type, so its validator is built once, not per item.
_VALIDATORS: dict[str, tuple[dict[str, Any], Draft202012Validator]] = {}


def _validator(certificate_type: CertificateType) -> Draft202012Validator:
    schema = certificate_type.fields_schema
    cached = _VALIDATORS.get(certificate_type.code)
    if cached is not None and cached[0] is schema:  # the very object, not an equal one
        return cached[1]
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    _VALIDATORS[certificate_type.code] = (schema, validator)
    return validator


def field_labels(certificate_type: CertificateType) -> dict[str, tuple[str, str]]:
    """Field name → (Chinese label, English label), in schema order."""
    properties = certificate_type.fields_schema.get("properties", {})
    return {name: (spec.get("title", name), spec.get("x-label-en", name)) for name, spec in properties.items()}


def describe(certificate_type: CertificateType) -> dict[str, Any]:
    """The catalog entry as the API shows it."""
    return {
        "code": certificate_type.code,
        "name_zh": certificate_type.name_zh,
        "name_en": certificate_type.name_en,
        "holder_kind": certificate_type.holder_kind,
        "holder_id_type": certificate_type.holder_id_type,
        "default_validity_days": certificate_type.default_validity_days,
        "qr_fields": certificate_type.qr_fields,
        "fields_schema": certificate_type.fields_schema,
        "version": certificate_type.version,
    }
