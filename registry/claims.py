"""The claims an ecert token carries, and their compact JSON form.

Claim names are short and values positional where a catalog can name them, because
the token travels in a QR code that a phone must read from paper. ``docs/token.md``
documents every member; keep the two in step.

    iss  issuing region's GB/T 2260 code            "310000"
    jti  certificate identifier (GB/T 36904 form)   "BL.<credit code>.<serial>.01.<check>"
    iat  issue time, seconds since the epoch
    nbf  start of validity (absent: the same as iat)
    exp  end of validity (absent: no end)
    h    holder: {"n": name, "i": ID number, masked if personal}; the ID type is the
         certificate type's (catalog ``holder_id_type``)
    f    values of the type's QR fields, in catalog ``qr_fields`` order, null where
         absent (absent altogether when the type has no QR fields)
    s    the certificate's position in its region's status list (absent in tokens
         issued before positions existed: such tokens need the online status answer)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signing.errors import TokenFormatError

MAX_FIELD_VALUE_LENGTH = 2000
MAX_QR_FIELDS = 16
MAX_STATUS_POSITION = 1 << 26  # registry.status_list.MAX_POSITIONS; a list holds no more
LATEST_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold
FieldValue = str | int | float | None


@dataclass(frozen=True)
class HolderClaims:
    name: str
    id_number: str


@dataclass(frozen=True)
class CertificateClaims:
    region: str
    certificate_id: str
    issued_at: int
    not_before: int | None
    expires: int | None
    holder: HolderClaims
    fields: tuple[FieldValue, ...] = ()
    status_index: int | None = None

    @property
    def valid_from(self) -> int:
        """Start of validity: ``nbf``, or ``iat`` when the token omits ``nbf``."""
        return self.issued_at if self.not_before is None else self.not_before

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"iss": self.region, "jti": self.certificate_id, "iat": self.issued_at}
        if self.not_before is not None and self.not_before != self.issued_at:
            payload["nbf"] = self.not_before
        if self.expires is not None:
            payload["exp"] = self.expires
        payload["h"] = {"n": self.holder.name, "i": self.holder.id_number}
        if self.fields:
            payload["f"] = list(self.fields)
        if self.status_index is not None:
            payload["s"] = self.status_index
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> CertificateClaims:
        """Read the claims of a parsed payload.

        Raises:
            TokenFormatError: ``MALFORMED`` when a claim is missing, unknown or of the wrong type.
        """
        unknown = sorted(set(payload) - {"iss", "jti", "iat", "nbf", "exp", "h", "f", "s"})
        if unknown:
            raise TokenFormatError("MALFORMED", f"unknown claims: {', '.join(unknown)}")
        holder = payload.get("h")
        if not isinstance(holder, dict) or set(holder) != {"n", "i"}:
            raise TokenFormatError("MALFORMED", "claim h must be an object with n and i")
        fields = payload.get("f", [])
        if not isinstance(fields, list) or len(fields) > MAX_QR_FIELDS or not all(_is_field_value(v) for v in fields):
            raise TokenFormatError("MALFORMED", "claim f must be a short array of strings, numbers and nulls")
        return cls(
            region=_string(payload, "iss"),
            certificate_id=_string(payload, "jti"),
            issued_at=_time(payload, "iat"),
            not_before=_time(payload, "nbf") if "nbf" in payload else None,
            expires=_time(payload, "exp") if "exp" in payload else None,
            holder=HolderClaims(name=_string(holder, "n"), id_number=_string(holder, "i")),
            fields=tuple(fields),
            status_index=_position(payload) if "s" in payload else None,
        )


def _string(members: dict[str, Any], name: str) -> str:
    value = members.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise TokenFormatError("MALFORMED", f"claim {name} must be a non-empty string")
    return value


def _time(members: dict[str, Any], name: str) -> int:
    value = members.get(name)
    # bool is an int in Python; a boolean time is malformed.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= LATEST_TIME:
        raise TokenFormatError("MALFORMED", f"claim {name} must be a time in whole seconds")
    return value


def _position(members: dict[str, Any]) -> int:
    value = members.get("s")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_STATUS_POSITION:
        raise TokenFormatError("MALFORMED", "claim s must be a status-list position")
    return value


def _is_field_value(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return len(value) <= MAX_FIELD_VALUE_LENGTH
    return isinstance(value, int | float) and not isinstance(value, bool)
