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

import functools
import re
import secrets
from dataclasses import dataclass
from typing import Final

from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError
from stdnum.iso7064 import mod_37_36
from stdnum.util import isdigits

CREDIT_CODE: Final = "USCC"
RESIDENT_ID: Final = "RIC"
ID_TYPES: Final = (CREDIT_CODE, RESIDENT_ID)

SERIAL_LENGTH: Final = 13
_CREDIT_CODE: Final = re.compile(r"[0-9A-HJ-NP-RTUWXY]{2}[0-9]{6}[0-9A-HJ-NP-RTUWXY]{10}")
_IDENTIFIER: Final = re.compile(
    r"(?P<type>(?=[A-Z0-9]{0,7}[A-Z])[A-Z0-9]{1,8})\.(?P<office>[0-9A-Z]{18})\.(?P<serial>[0-9A-HJKMNP-TV-Z]{13})"
    r"\.(?P<version>[0-9]{2})\.(?P<check>[0-9A-Z])"
)
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class IdentifierError(ValueError):
    """A credit code, ID number or certificate identifier is not well-formed."""


def normalise_credit_code(code: str) -> str:
    """The credit code in canonical form (upper case, no spaces).

    Raises:
        IdentifierError: wrong length, characters outside GB 32100's alphabet, or a bad
            check character.
    """
    compact = "".join(code.split()).upper()
    # GB 32100 §4: registration authority (1-9, A, N, Y, ...), organisation category,
    # 6-digit GB/T 2260 region, 9-character organisation code, check character; the
    # alphabet omits I, O, S, V and Z. (python-stdnum's validate() insists on digits in
    # the first two places, which refuses genuine codes such as Y1..., so only its check
    # character calculation is used.)
    if not _CREDIT_CODE.fullmatch(compact):
        raise IdentifierError(
            "not a valid unified social credit code: 18 characters of 0-9 and A-Y without I, O, S, V, Z"
        )
    if compact[-1] != uscc.calc_check_digit(compact):
        raise IdentifierError("not a valid unified social credit code: the check character does not match")
    return compact


def normalise_resident_id(number: str) -> str:
    """The resident ID number in canonical form.

    Raises:
        IdentifierError: wrong length, unknown region or birth date, or a bad check character.
    """
    try:
        compact = ric.compact(number)
        if len(compact) != 18:
            raise InvalidLength()
        if not isdigits(compact[:-1]):
            raise InvalidFormat()
        if compact[-1] != ric.calc_check_digit(compact):
            raise InvalidChecksum()
        ric.get_birth_date(compact)
        if not _known_birth_place(compact[:6]):
            raise InvalidComponent()
    except ValidationError as error:
        raise IdentifierError(f"not a valid resident ID number: {error}") from error
    return compact


@functools.lru_cache(maxsize=4096)
def _known_birth_place(region_code: str) -> bool:
    """Whether GB/T 2260 lists ``region_code``. python-stdnum scans its whole table for
    each lookup (about 2 ms), so the few thousand codes there are stay cached; with the
    checks before it, this is ``ric.validate``."""
    try:
        ric.get_birth_place(region_code)
    except ValidationError:
        return False
    return True


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


_RESIDENT_ID_LIKE: Final = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


def mask_resident_ids_in_text(text: str) -> str:
    """``text`` with every valid resident ID number in it masked (free text such as a
    status reason must not carry a full personal ID into records and audit trails)."""

    def mask(match: re.Match[str]) -> str:
        number = match.group(0)
        try:
            normalise_resident_id(number)
        except IdentifierError:
            return number
        return mask_id_number(RESIDENT_ID, number.upper())

    return _RESIDENT_ID_LIKE.sub(mask, text)


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
        # One draw of 65 bits, 5 per character: the same uniform serial as 13 separate
        # secrets.choice calls, at a thirteenth of the calls to the CSPRNG.
        bits = secrets.randbits(5 * SERIAL_LENGTH)
        serial = "".join(_CROCKFORD[(bits >> (5 * place)) & 31] for place in range(SERIAL_LENGTH))
        return cls(type_code=type_code, office_code=office_code, serial=serial, version=f"{version:02d}")

    @classmethod
    def parse(cls, text: str) -> CertificateId:
        """Parse and check an identifier.

        Raises:
            IdentifierError: wrong structure or check character.
        """
        # The pattern admits only canonical ASCII spellings, so the check below sees
        # nothing but characters of ISO 7064's alphabet.
        match = _IDENTIFIER.fullmatch(text)
        if match is None:
            raise IdentifierError("not a certificate identifier: TYPE.CREDITCODE.SERIAL.VERSION.CHECK")
        if normalise_credit_code(match["office"]) != match["office"]:
            raise IdentifierError("bad office code in identifier")
        parsed = cls(
            type_code=match["type"], office_code=match["office"], serial=match["serial"], version=match["version"]
        )
        if match["check"] != _check_character(text.rsplit(".", 1)[0]):
            raise IdentifierError("identifier check character does not match")
        return parsed


def _check_character(body: str) -> str:
    return str(mod_37_36.calc_check_digit(body.replace(".", "")))


def make_credit_code(prefix17: str) -> str:
    """Complete 17 characters into a valid credit code (for demo data and tests)."""
    return prefix17 + str(uscc.calc_check_digit(prefix17))
