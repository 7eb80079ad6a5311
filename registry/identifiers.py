"""Identifiers: offices' credit codes, holders' ID numbers, certificate identifiers.

* Unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters with a
  check character; checked with python-stdnum.
* Resident identity card number (居民身份证号码, GB 11643-1999): 18 characters, ISO 7064
  MOD 11-2 check; checked with python-stdnum.
* Certificate identifier, following the structure of GB/T 36904-2018: certificate type
  code, issuing office's credit code, serial, version, check character, joined by dots:
  ``BL.91310000MA1FL8XQ3B.5KQ2V7M1XW8D9.01.7``. The serial is 13 Crockford base32
  characters from the CSPRNG (65 bits), so identifiers cannot be enumerated. The check
  character is ISO 7064 MOD 37,36 (GB/T 17710) over every other character.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_37_36

CREDIT_CODE: Final = "USCC"
RESIDENT_ID: Final = "RIC"
ID_TYPES: Final = (CREDIT_CODE, RESIDENT_ID)

SERIAL_LENGTH: Final = 13
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class IdentifierError(ValueError):
    """A credit code, ID number or certificate identifier is not well-formed."""


def normalise_credit_code(code: str) -> str:
    """The credit code in canonical form (upper case, no spaces).

    Raises:
        IdentifierError: wrong length, characters outside GB 32100's alphabet, or a bad
            check character.
    """
    try:
        return str(uscc.validate(code))
    except ValidationError as error:
        raise IdentifierError(f"not a valid unified social credit code: {error}") from error


def normalise_resident_id(number: str) -> str:
    """The resident ID number in canonical form.

    Raises:
        IdentifierError: wrong length, unknown region or birth date, or a bad check character.
    """
    try:
        return str(ric.validate(number))
    except ValidationError as error:
        raise IdentifierError(f"not a valid resident ID number: {error}") from error


def normalise_id_number(id_type: str, number: str) -> str:
    """Validate ``number`` as an ID of ``id_type`` (one of :data:`ID_TYPES`).

    Raises:
        IdentifierError: unknown type, or the number is not valid for it.
    """
    if id_type == CREDIT_CODE:
        return normalise_credit_code(number)
    if id_type == RESIDENT_ID:
        return normalise_resident_id(number)
    raise IdentifierError(f"unknown ID type {id_type!r}; use one of {', '.join(ID_TYPES)}")


def mask_id_number(id_type: str, number: str) -> str:
    """What may be shown of an ID number.

    Personal ID numbers keep their first 4 and last 4 characters (birth date and
    sequence hidden); credit codes identify organisations, are public, and stay whole.
    """
    if id_type == CREDIT_CODE:
        return number
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


@dataclass(frozen=True)
class CertificateId:
    """A parsed certificate identifier (see the module docstring for the structure)."""

    type_code: str
    office_code: str
    serial: str
    version: str

    def __str__(self) -> str:
        body = f"{self.type_code}.{self.office_code}.{self.serial}.{self.version}"
        return f"{body}.{_check_character(body)}"

    @classmethod
    def new(cls, type_code: str, office_code: str, version: int = 1) -> CertificateId:
        serial = "".join(secrets.choice(_CROCKFORD) for _ in range(SERIAL_LENGTH))
        return cls(type_code=type_code, office_code=office_code, serial=serial, version=f"{version:02d}")

    @classmethod
    def parse(cls, text: str) -> CertificateId:
        """Parse and check an identifier.

        Raises:
            IdentifierError: wrong structure or check character.
        """
        parts = text.split(".")
        if len(parts) != 5:
            raise IdentifierError("a certificate identifier has 5 dot-separated parts")
        type_code, office_code, serial, version, check = parts
        if not (type_code.isascii() and type_code.isalnum() and type_code.isupper() and 1 <= len(type_code) <= 8):
            raise IdentifierError("bad certificate type code in identifier")
        if len(serial) != SERIAL_LENGTH or any(c not in _CROCKFORD for c in serial):
            raise IdentifierError("bad serial in identifier")
        if len(version) != 2 or not version.isdigit():
            raise IdentifierError("bad version in identifier")
        normalise_credit_code(office_code)
        parsed = cls(type_code=type_code, office_code=office_code, serial=serial, version=version)
        if str(parsed) != text or check != _check_character(text.rsplit(".", 1)[0]):
            raise IdentifierError("identifier check character does not match")
        return parsed


def _check_character(body: str) -> str:
    return str(mod_37_36.calc_check_digit(body.replace(".", "")))


def make_credit_code(prefix17: str) -> str:
    """Complete 17 characters into a valid credit code (for demo data and tests)."""
    return prefix17 + str(uscc.calc_check_digit(prefix17))
