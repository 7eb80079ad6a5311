"""Identifiers: credit codes (GB 32100), resident ID numbers (GB 11643), masking, and
certificate identifiers (GB/T 36904 structure with an ISO 7064 MOD 37,36 check character)."""

from __future__ import annotations

import math

import pytest
from stdnum.iso7064 import mod_11_2, mod_37_36

from registry.demo import DEMO_OFFICE_CODE, SAMPLE_REQUESTS
from registry.identifiers import (
    CREDIT_CODE,
    RESIDENT_ID,
    SERIAL_LENGTH,
    CertificateId,
    IdentifierError,
    make_credit_code,
    mask_id_number,
    normalise_credit_code,
    normalise_id_number,
    normalise_resident_id,
)
from tests.conftest import OFFICE_CODE, OTHER_OFFICE_CODE

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def _with_check(body: str) -> str:
    """``body`` with the check character of its characters that MOD 37,36 can digest."""
    digestible = "".join(c for c in body.upper() if c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return f"{body}.{mod_37_36.calc_check_digit(digestible)}"


def _replace_check(identifier: str, check: str) -> str:
    return identifier.rsplit(".", 1)[0] + "." + check


# ---------------------------------------------------------------- credit codes


@pytest.mark.parametrize(
    "code",
    [
        OFFICE_CODE,
        OTHER_OFFICE_CODE,
        DEMO_OFFICE_CODE,
        SAMPLE_REQUESTS["BL"]["holder"]["id_number"],
        make_credit_code("12310000425006117"),
        # GB 32100 allows letters in the first two places (python-stdnum's validate() does not).
        make_credit_code("Y1310000MA1FL8XQ3"),
        make_credit_code("N2310000MA1FL8XQ3"),
    ],
)
def test_valid_credit_codes_are_accepted_unchanged(code):
    assert normalise_credit_code(code) == code


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("11310000002418960m", "11310000002418960M"),
        ("91310115ma1k3yj2x5", "91310115MA1K3YJ2X5"),
        (" 11310000002418960M ", "11310000002418960M"),
    ],
    ids=["lower-check-char", "lower-everywhere", "surrounding-spaces"],
)
def test_credit_codes_are_normalised_to_upper_case(given, canonical):
    assert normalise_credit_code(given) == canonical


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("11310000002418960N", id="wrong-check-char"),
        pytest.param("11310000MB03195471", id="wrong-check-digit"),
        pytest.param("11310000002418960", id="17-chars"),
        pytest.param("11310000002418960MM", id="19-chars"),
        pytest.param("", id="empty"),
        pytest.param("I1310000002418960M", id="letter-I-outside-alphabet"),
        pytest.param("11310000002418960Ｍ", id="fullwidth-check-char"),
        pytest.param("1131000000241896OM", id="letter-O-outside-alphabet"),
        pytest.param("11310000-002418960M", id="dash"),
        pytest.param("11AB0000002418960M", id="letters-in-region-code"),
    ],
)
def test_bad_credit_codes_are_refused(code):
    with pytest.raises(IdentifierError, match="unified social credit code"):
        normalise_credit_code(code)


# ---------------------------------------------------------------- resident ID numbers


@pytest.mark.parametrize("number", ["310115198506123526", "310101199003074415", "11010519491231002X"])
def test_valid_resident_ids_are_accepted(number):
    assert normalise_resident_id(number) == number


def test_resident_id_check_character_x_is_normalised_to_upper_case():
    assert normalise_resident_id("11010519491231002x") == "11010519491231002X"


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("310115198506123527", id="bad-check-digit"),
        pytest.param("11010519491231002Y", id="check-char-not-digit-or-X"),
        pytest.param("11010519491231002", id="17-digits"),
        # 30 February 1985, with a check character that is right for the other 17 digits:
        pytest.param("31011519850230352X", id="impossible-birth-date"),
        pytest.param("310115198513013520", id="month-13"),
        pytest.param("31011519850612352", id="too-short"),
    ],
)
def test_bad_resident_ids_are_refused(number):
    with pytest.raises(IdentifierError, match="resident ID number"):
        normalise_resident_id(number)


def test_impossible_birth_date_case_has_a_correct_check_character():
    """Guard for the table above: the 30 February number fails on its date, not its check character."""
    assert mod_11_2.calc_check_digit("31011519850230352") == "X"


@pytest.mark.parametrize(
    ("id_type", "number"),
    [(CREDIT_CODE, "310115198506123526"), (RESIDENT_ID, OFFICE_CODE), ("PASSPORT", "E12345678")],
    ids=["ric-as-uscc", "uscc-as-ric", "unknown-type"],
)
def test_id_numbers_are_checked_against_their_declared_type(id_type, number):
    with pytest.raises(IdentifierError):
        normalise_id_number(id_type, number)


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("310115198506123526", "3101**********3526"),
        ("11010519491231002X", "1101**********002X"),
    ],
)
def test_resident_ids_keep_only_first_and_last_four_characters(number, masked):
    shown = mask_id_number(RESIDENT_ID, number)
    assert shown == masked
    assert number[4:14] not in shown


def test_credit_codes_are_shown_whole():
    assert mask_id_number(CREDIT_CODE, OFFICE_CODE) == OFFICE_CODE


@pytest.mark.parametrize("number", ["12345678", "1234", ""])
def test_short_personal_numbers_are_masked_entirely(number):
    assert mask_id_number(RESIDENT_ID, number) == "*" * len(number)


# ---------------------------------------------------------------- certificate identifiers


@pytest.mark.parametrize("type_code", ["BL", "DL", "PQ"])
def test_new_identifier_round_trips_through_parse(type_code):
    identifier = CertificateId.new(type_code, OFFICE_CODE)
    text = str(identifier)
    assert CertificateId.parse(text) == identifier
    type_part, office_part, serial, version, check = text.split(".")
    assert (type_part, office_part, serial, version) == (type_code, OFFICE_CODE, identifier.serial, "01")
    assert check == mod_37_36.calc_check_digit(text.rsplit(".", 1)[0].replace(".", ""))
    assert mod_37_36.is_valid(text.replace(".", ""))


def test_worked_example_from_the_identifier_docs_parses():
    parsed = CertificateId.parse("DL.11310000002418960M.ZWJZ4H7SP7JA3.01.T")
    assert parsed == CertificateId(type_code="DL", office_code=OFFICE_CODE, serial="ZWJZ4H7SP7JA3", version="01")


def test_version_is_two_digits():
    assert str(CertificateId.new("DL", OFFICE_CODE, version=3)).split(".")[3] == "03"


def test_serial_has_at_least_64_bits_of_crockford_base32():
    assert SERIAL_LENGTH * math.log2(len(CROCKFORD)) >= 64
    serial = CertificateId.new("DL", OFFICE_CODE).serial
    assert len(serial) == SERIAL_LENGTH
    assert set(serial) <= CROCKFORD


def test_serials_are_distinct_over_1000_draws():
    serials = {CertificateId.new("DL", OFFICE_CODE).serial for _ in range(1000)}
    assert len(serials) == 1000
    # Every Crockford character turns up somewhere: the serial is not drawn from a narrow range.
    assert set("".join(serials)) == CROCKFORD


@pytest.fixture
def identifier() -> str:
    return str(CertificateId.new("BL", OFFICE_CODE))


def _malformed(identifier: str, part: int, value: str) -> str:
    parts = identifier.split(".")[:4]
    parts[part] = value
    return _with_check(".".join(parts))


@pytest.mark.parametrize(
    ("part", "value"),
    [
        pytest.param(0, "bl", id="type-lower-case"),
        pytest.param(0, "", id="type-empty"),
        pytest.param(0, "ABCDEFGHI", id="type-too-long"),
        pytest.param(0, "B-L", id="type-punctuation"),
        pytest.param(1, "11310000002418960N", id="office-bad-check-char"),
        pytest.param(1, "1131000000241896", id="office-too-short"),
        pytest.param(2, "0" * (SERIAL_LENGTH - 1), id="serial-too-short"),
        pytest.param(2, "0" * (SERIAL_LENGTH + 1), id="serial-too-long"),
        pytest.param(2, "I" + "0" * (SERIAL_LENGTH - 1), id="serial-letter-I-not-crockford"),
        pytest.param(2, "u" + "0" * (SERIAL_LENGTH - 1), id="serial-lower-case"),
        pytest.param(3, "1", id="version-one-digit"),
        pytest.param(3, "001", id="version-three-digits"),
        pytest.param(3, "0A", id="version-not-digits"),
    ],
)
def test_each_malformed_part_is_refused(identifier, part, value):
    with pytest.raises(IdentifierError):
        CertificateId.parse(_malformed(identifier, part, value))


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s + ".X", id="six-parts"),
        pytest.param(lambda s: s.rsplit(".", 1)[0], id="four-parts"),
        pytest.param(lambda s: s.replace(".", "", 1), id="missing-dot"),
        pytest.param(lambda s: "", id="empty"),
        pytest.param(lambda s: s + " ", id="trailing-space"),
        pytest.param(lambda s: _replace_check(s, ""), id="empty-check"),
        pytest.param(lambda s: s + "0", id="two-char-check"),
        pytest.param(lambda s: _replace_check(s, "*"), id="check-outside-alphabet"),
        pytest.param(lambda s: _replace_check(s, "q"), id="check-lower-case"),
    ],
)
def test_wrong_structure_is_refused(identifier, mangle):
    with pytest.raises(IdentifierError):
        CertificateId.parse(mangle(identifier))


def test_every_wrong_check_character_is_refused(identifier):
    right = identifier.rsplit(".", 1)[1]
    for wrong in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".replace(right, ""):
        with pytest.raises(IdentifierError, match="check character"):
            CertificateId.parse(_replace_check(identifier, wrong))


def test_a_changed_serial_character_is_caught_by_the_check_character(identifier):
    type_code, office_code, serial, version, check = identifier.split(".")
    other = "1" if serial[0] != "1" else "2"
    forged = ".".join([type_code, office_code, other + serial[1:], version, check])
    with pytest.raises(IdentifierError, match="check character"):
        CertificateId.parse(forged)


@pytest.mark.parametrize(
    "office_code",
    [pytest.param("11310000002418960m", id="lower-case"), pytest.param("1131-0000002418960M", id="with-dash")],
)
def test_non_canonical_office_code_is_refused_as_identifier_error(identifier, office_code):
    """Regression: these once escaped as a bare ValueError, a 500 from the public verify endpoint."""
    forged = identifier.replace(OFFICE_CODE, office_code)
    with pytest.raises(IdentifierError):
        CertificateId.parse(forged)


def test_type_code_without_a_letter_is_refused(identifier):
    with pytest.raises(IdentifierError):
        CertificateId.parse(_malformed(identifier, 0, "12"))
