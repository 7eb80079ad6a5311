"""The catalog: reference types installed with the region, and field validation against their schemas."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from registry.catalog import REFERENCE_TYPES, field_errors, get_type, install_reference_catalog, list_types
from registry.demo import sample_request
from registry.errors import NotFound
from registry.identifiers import ID_TYPES
from tests.registry.builders import with_fields

NAMES_ZH = {"BL": "营业执照", "DL": "机动车驾驶证", "PQ": "职业资格证书"}


def test_region_init_installs_the_three_reference_types(session, region):
    assert [t.code for t in list_types(session)] == ["BL", "DL", "PQ"]
    assert {t.code: t.name_zh for t in list_types(session)} == NAMES_ZH


@pytest.mark.parametrize("code", REFERENCE_TYPES)
def test_reference_type_is_well_formed(session, region, code):
    certificate_type = get_type(session, code)
    Draft202012Validator.check_schema(certificate_type.fields_schema)
    properties = certificate_type.fields_schema["properties"]
    assert certificate_type.fields_schema["additionalProperties"] is False
    assert set(certificate_type.fields_schema["required"]) <= set(properties)
    assert certificate_type.qr_fields
    assert set(certificate_type.qr_fields) <= set(properties)
    assert certificate_type.holder_id_type in ID_TYPES
    assert certificate_type.name_en
    # Every field has a Chinese label for the certificate and the verification page.
    assert all(spec.get("title") for spec in properties.values())


def test_installing_again_adds_nothing(session, region):
    assert install_reference_catalog(session) == []
    assert len(list_types(session)) == 3


def test_unknown_type_is_not_found(session, region):
    with pytest.raises(NotFound, match="'XX' is not in the catalog"):
        get_type(session, "XX")


@pytest.mark.parametrize("code", REFERENCE_TYPES)
def test_sample_requests_validate_cleanly(session, region, code):
    assert field_errors(get_type(session, code), sample_request(code)["fields"]) == []


@pytest.mark.parametrize(
    ("code", "changes", "bad_field"),
    [
        pytest.param("DL", {"sex": None}, "fields/sex", id="missing-required"),
        pytest.param("DL", {"sex": "M"}, "fields/sex", id="not-in-enum"),
        pytest.param("PQ", {"level": "大师"}, "fields/level", id="level-not-in-enum"),
        pytest.param("DL", {"date_of_birth": "1985-13-45"}, "fields/date_of_birth", id="impossible-date"),
        pytest.param("BL", {"established_on": "2019-02-30"}, "fields/established_on", id="30-february"),
        pytest.param("PQ", {"evaluated_on": "20240630"}, "fields/evaluated_on", id="basic-date-format"),
        pytest.param("PQ", {"evaluated_on": "2024-6-30"}, "fields/evaluated_on", id="unpadded-month"),
        pytest.param("DL", {"vehicle_class": "Z9"}, "fields/vehicle_class", id="vehicle-class-pattern"),
        pytest.param("DL", {"file_number": "31001234567"}, "fields/file_number", id="file-number-11-digits"),
        pytest.param("BL", {"registered_capital": "五百万"}, "fields/registered_capital", id="capital-pattern"),
        pytest.param("PQ", {"score": "88"}, "fields/score", id="score-as-string"),
        pytest.param("PQ", {"score": True}, "fields/score", id="score-as-boolean"),
        pytest.param("PQ", {"score": 101}, "fields/score", id="score-above-maximum"),
        pytest.param("BL", {"address": "上"}, "fields/address", id="address-too-short"),
        pytest.param("DL", {"nationality": 86}, "fields/nationality", id="number-for-string"),
    ],
)
def test_each_kind_of_bad_field_is_reported_at_its_path(session, region, code, changes, bad_field):
    errors = field_errors(get_type(session, code), with_fields(code, **changes)["fields"])
    assert [error.field for error in errors] == [bad_field]
    assert all(error.message for error in errors)


def test_every_bad_field_is_listed_at_once(session, region):
    fields = with_fields(
        "DL", sex="M", nationality=None, date_of_birth="1985-13-45", vehicle_class="Z9", file_number="12"
    )["fields"]
    errors = field_errors(get_type(session, "DL"), fields)
    assert sorted(error.field for error in errors) == [
        "fields/date_of_birth",
        "fields/file_number",
        "fields/nationality",
        "fields/sex",
        "fields/vehicle_class",
    ]


def test_every_missing_required_field_is_listed(session, region):
    errors = field_errors(get_type(session, "BL"), {})
    assert sorted(error.field for error in errors) == sorted(
        f"fields/{name}" for name in get_type(session, "BL").fields_schema["required"]
    )


def test_extra_property_is_refused(session, region):
    errors = field_errors(get_type(session, "DL"), with_fields("DL", blood_type="O")["fields"])
    assert len(errors) == 1
    assert "blood_type" in errors[0].message


def test_each_extra_property_is_reported_at_its_own_path(session, region):
    errors = field_errors(get_type(session, "DL"), with_fields("DL", blood_type="O", height=180)["fields"])
    assert sorted(error.field for error in errors) == ["fields/blood_type", "fields/height"]


def test_fields_must_be_an_object(session, region):
    assert [error.field for error in field_errors(get_type(session, "BL"), [])] == ["fields"]
