"""Issuance requests parsed at the boundary: shape, types and text of every member, times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from registry.demo import sample_request
from registry.errors import InvalidInput
from registry.requests import parse_issuance_request, request_digest
from tests.registry.builders import error_fields, with_holder


def test_sample_request_parses_into_typed_values():
    parsed = parse_issuance_request(sample_request("DL", type="dl"))
    assert parsed.type_code == "DL"
    assert (parsed.holder.name, parsed.holder.id_type, parsed.holder.id_number) == (
        "王小红",
        "RIC",
        "310115198506123526",
    )
    assert parsed.fields == sample_request("DL")["fields"]
    assert (parsed.valid_from, parsed.valid_until) == (None, None)


@pytest.mark.parametrize(
    ("body", "bad_fields"),
    [
        pytest.param({k: v for k, v in sample_request("DL").items() if k != "type"}, ["type"], id="type-missing"),
        pytest.param(sample_request("DL", type=7), ["type"], id="type-not-a-string"),
        pytest.param(sample_request("DL", type="DRIVINGLIC"), ["type"], id="type-too-long"),
        pytest.param(
            {k: v for k, v in sample_request("DL").items() if k != "holder"},
            ["holder", "holder/id_number", "holder/id_type", "holder/name"],
            id="holder-missing",
        ),
        pytest.param(
            sample_request("DL", holder="王小红"),
            ["holder", "holder/id_number", "holder/id_type", "holder/name"],
            id="holder-not-an-object",
        ),
        pytest.param(with_holder("DL", name=None), ["holder/name"], id="holder-name-null"),
        pytest.param(with_holder("DL", name=["王小红"]), ["holder/name"], id="holder-name-list"),
        pytest.param(with_holder("DL", name=""), ["holder/name"], id="holder-name-empty"),
        pytest.param(with_holder("DL", name="  "), ["holder/name"], id="holder-name-blank"),
        pytest.param(with_holder("DL", name="王" * 101), ["holder/name"], id="holder-name-101-chars"),
        pytest.param(with_holder("DL", id_number=310115198506123526), ["holder/id_number"], id="id-number-integer"),
        pytest.param(with_holder("DL", id_type=None), ["holder/id_type"], id="id-type-null"),
        pytest.param(with_holder("DL", birthday="1985-06-12"), ["holder/birthday"], id="holder-unknown-member"),
        pytest.param(sample_request("DL", status="01"), ["status"], id="unknown-member"),
        pytest.param(sample_request("DL", id="DL.X", kid="k"), ["id", "kid"], id="two-unknown-members"),
        pytest.param(sample_request("DL", fields=["C1"]), ["fields"], id="fields-not-an-object"),
        pytest.param(sample_request("DL", valid_from=20260301), ["valid_from"], id="valid-from-number"),
        pytest.param(sample_request("DL", valid_from="2026-03-01T08:00:00"), ["valid_from"], id="naive-date-time"),
        pytest.param(sample_request("DL", valid_until="2026-02-30"), ["valid_until"], id="impossible-date"),
        pytest.param(sample_request("DL", valid_until="next year"), ["valid_until"], id="not-a-date"),
        pytest.param(
            {"type": 1, "holder": {"name": None, "id_type": "RIC", "id_number": 1}, "fields": {}, "extra": True},
            ["extra", "holder/id_number", "holder/name", "type"],
            id="several-at-once",
        ),
    ],
)
def test_badly_shaped_requests_list_every_bad_member(body, bad_fields):
    with pytest.raises(InvalidInput) as refused:
        parse_issuance_request(body)
    assert error_fields(refused.value) == bad_fields


@pytest.mark.parametrize("body", [[], "DL", None, 1], ids=["list", "string", "null", "number"])
def test_request_must_be_an_object(body):
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_issuance_request(body)


@pytest.mark.parametrize(
    ("given", "moment"),
    [
        pytest.param("2026-03-10", datetime(2026, 3, 9, 16, tzinfo=UTC), id="date-is-midnight-in-china"),
        pytest.param("2026-03-10T09:30:00+08:00", datetime(2026, 3, 10, 1, 30, tzinfo=UTC), id="offset"),
        pytest.param("2026-03-10T01:30:00Z", datetime(2026, 3, 10, 1, 30, tzinfo=UTC), id="zulu"),
        pytest.param("2026-03-10T01:30:00-05:00", datetime(2026, 3, 10, 6, 30, tzinfo=UTC), id="negative-offset"),
    ],
)
def test_valid_from_is_read_as_a_utc_moment(given, moment):
    parsed = parse_issuance_request(sample_request("PQ", valid_from=given))
    assert parsed.valid_from == moment
    assert parsed.valid_from.utcoffset().total_seconds() == 0


def test_date_only_valid_until_is_the_end_of_that_day_in_china():
    parsed = parse_issuance_request(sample_request("PQ", valid_until="2026-03-31"))
    assert parsed.valid_until == datetime(2026, 3, 31, 16, tzinfo=UTC)


def test_null_times_mean_absent():
    parsed = parse_issuance_request(sample_request("PQ", valid_from=None, valid_until=None))
    assert (parsed.valid_from, parsed.valid_until) == (None, None)


def test_request_digest_ignores_member_order_only():
    body = sample_request("PQ")
    reordered = dict(reversed(list(body.items())))
    reordered["fields"] = dict(reversed(list(body["fields"].items())))
    assert request_digest(reordered) == request_digest(body)
    assert request_digest(sample_request("PQ", valid_until="2030-01-01")) != request_digest(body)
    assert request_digest(with_holder("PQ", name="张伟 ")) != request_digest(body)
    assert len(request_digest(body)) == 64
