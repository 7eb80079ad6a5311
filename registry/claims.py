"""The claims an ecert token carries, and their compact JSON form.

Claim names are short because the token travels in a QR code. ``docs/token.md``
documents every member; keep the two in step.

    iss  issuing region's GB/T 2260 code            "310000"
    jti  certificate identifier (GB/T 36904 form)   "BL.<credit code>.<serial>.01.<check>"
    iat  issue time, seconds since the epoch
    nbf  start of validity, seconds since the epoch
    exp  end of validity (absent: no end)
    h    holder: {"n": name, "t": ID type, "i": ID number, masked if personal}
    f    the certificate type's QR fields
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from signing.errors import TokenFormatError

MAX_FIELD_VALUE_LENGTH = 2000


@dataclass(frozen=True)
class HolderClaims:
    name: str
    id_type: str
    id_number: str


@dataclass(frozen=True)
class CertificateClaims:
    region: str
    certificate_id: str
    issued_at: int
    not_before: int
    expires: int | None
    holder: HolderClaims
    fields: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "iss": self.region,
            "jti": self.certificate_id,
            "iat": self.issued_at,
            "nbf": self.not_before,
        }
        if self.expires is not None:
            payload["exp"] = self.expires
        payload["h"] = {"n": self.holder.name, "t": self.holder.id_type, "i": self.holder.id_number}
        if self.fields:
            payload["f"] = self.fields
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> CertificateClaims:
        """Read the claims of a parsed payload.

        Raises:
            TokenFormatError: ``MALFORMED`` when a claim is missing, unknown or of the wrong type.
        """
        allowed = {"iss", "jti", "iat", "nbf", "exp", "h", "f"}
        unknown = sorted(set(payload) - allowed)
        if unknown:
            raise TokenFormatError("MALFORMED", f"unknown claims: {', '.join(unknown)}")
        holder = payload.get("h")
        if not isinstance(holder, dict) or set(holder) != {"n", "t", "i"}:
            raise TokenFormatError("MALFORMED", "claim h must be an object with n, t and i")
        fields = payload.get("f", {})
        if not isinstance(fields, dict) or not all(_is_field_value(v) for v in fields.values()):
            raise TokenFormatError("MALFORMED", "claim f must be an object of strings and numbers")
        expires = payload.get("exp")
        return cls(
            region=_string(payload, "iss"),
            certificate_id=_string(payload, "jti"),
            issued_at=_time(payload, "iat"),
            not_before=_time(payload, "nbf"),
            expires=None if expires is None and "exp" not in payload else _time(payload, "exp"),
            holder=HolderClaims(
                name=_string(holder, "n"), id_type=_string(holder, "t"), id_number=_string(holder, "i")
            ),
            fields=fields,
        )


def _string(members: dict[str, Any], name: str) -> str:
    value = members.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise TokenFormatError("MALFORMED", f"claim {name} must be a non-empty string")
    return value


def _time(members: dict[str, Any], name: str) -> int:
    value = members.get(name)
    # bool is an int in Python; a boolean time is malformed.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**40:
        raise TokenFormatError("MALFORMED", f"claim {name} must be a time in whole seconds")
    return value


def _is_field_value(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_FIELD_VALUE_LENGTH
    return isinstance(value, int | float) and not isinstance(value, bool)
