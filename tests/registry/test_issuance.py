"""Issuing certificates through the service layer: what is signed, what is refused, replays."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import jwt
import pytest
from sqlalchemy import func, select

from registry.catalog import REFERENCE_TYPES, get_type
from registry.demo import sample_request
from registry.errors import IdempotencyConflict, InvalidInput, NotAllowed
from registry.identifiers import SERIAL_LENGTH, CertificateId
from registry.models import AuditRecord, Certificate, SigningKey
from tests.conftest import OFFICE_CODE, make_office
from tests.registry.builders import error_fields, with_fields, with_holder

CLAIM_ORDER = ["iss", "jti", "iat", "nbf", "exp", "h", "f", "s"]
DL_DEFAULT_DAYS = 2191
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))


def _segments(token: str) -> tuple[dict, bytes]:
    header_b64, payload_b64, _signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    return header, base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))


def _verified_payload(token: str, key: SigningKey) -> dict:
    """The payload, after PyJWT itself checked the signature with the key's public JWK."""
    public_key = jwt.PyJWK(key.public_jwk, algorithm=key.algorithm).key
    return json.loads(jwt.PyJWS().decode(token, public_key, algorithms=[key.algorithm]))


def _payload(certificate: Certificate) -> dict:
    return json.loads(_segments(certificate.token)[1])


def _certificate_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Certificate))


def _issue_records(session) -> int:
    return session.scalar(
        select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "certificate.issue")
    )


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# ---------------------------------------------------------------- what is issued


@pytest.mark.parametrize("type_code", REFERENCE_TYPES)
def test_each_reference_type_issues(session, issue, office, clock, type_code):
    issued = issue(sample_request(type_code))
    certificate = session.get(Certificate, issued.certificate.id)
    assert not issued.replayed
    assert (certificate.type_code, certificate.status, certificate.kid) == (type_code, "01", office.kid)
    assert certificate.office_id == office.office.id
    assert certificate.issued_at == clock()
    assert certificate.fields == sample_request(type_code)["fields"]


@pytest.mark.parametrize("type_code", REFERENCE_TYPES)
def test_token_verifies_with_the_offices_key_and_no_other(session, issue, office, other_office, type_code):
    token = issue(sample_request(type_code)).certificate.token
    payload = _verified_payload(token, session.get(SigningKey, office.kid))
    assert payload["jti"].startswith(f"{type_code}.{OFFICE_CODE}.")
    with pytest.raises(jwt.InvalidSignatureError):
        _verified_payload(token, session.get(SigningKey, other_office.kid))


def test_tampered_payload_does_not_verify(session, issue, office):
    token = issue(sample_request("PQ")).certificate.token
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["f"][1] = "一级/高级技师"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        _verified_payload(f"{header}.{forged_payload}.{signature}", session.get(SigningKey, office.kid))


def test_header_is_exactly_alg_kid_typ(session, issue, office):
    header, _payload_bytes = _segments(issue(sample_request("DL")).certificate.token)
    assert header == {"alg": "EdDSA", "kid": office.kid, "typ": "ecert"}


def test_es256_office_issues_es256_tokens(session, keyring, clock, region, issue):
    es256 = make_office(session, keyring, clock, "123100004250061179", ["DL"], algorithm="ES256")
    certificate = issue(sample_request("DL"), by=es256).certificate
    header, _payload_bytes = _segments(certificate.token)
    assert header == {"alg": "ES256", "kid": es256.kid, "typ": "ecert"}
    assert _verified_payload(certificate.token, session.get(SigningKey, es256.kid))["jti"] == certificate.id
    # JWS ES256 signatures are raw r || s (RFC 7518 §3.4), not DER.
    signature = certificate.token.split(".")[2]
    assert len(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))) == 64


@pytest.mark.parametrize("type_code", REFERENCE_TYPES)
def test_identifier_has_the_right_structure(session, issue, office, type_code):
    certificate = issue(sample_request(type_code)).certificate
    parsed = CertificateId.parse(certificate.id)
    assert (parsed.type_code, parsed.office_code, parsed.version) == (type_code, OFFICE_CODE, "01")
    assert len(parsed.serial) == SERIAL_LENGTH
    payload = _payload(certificate)
    assert (payload["iss"], payload["jti"]) == ("310000", certificate.id)


def test_identifiers_are_unique(issue):
    identifiers = {issue(sample_request("PQ")).certificate.id for _ in range(5)}
    assert len(identifiers) == 5


# ---------------------------------------------------------------- who may issue what


@pytest.mark.parametrize("type_code", ["BL", "PQ"])
def test_office_may_issue_only_its_own_types(session, issue, other_office, type_code):
    with pytest.raises(NotAllowed, match=f"may not issue {type_code}"):
        issue(sample_request(type_code), by=other_office)
    session.rollback()
    assert _certificate_count(session) == 0
    assert _issue_records(session) == 0


def test_office_with_the_type_issues_it(issue, other_office):
    assert issue(sample_request("DL"), by=other_office).certificate.kid == other_office.kid


# ---------------------------------------------------------------- refused requests


@pytest.mark.parametrize(
    ("body", "bad_fields"),
    [
        pytest.param(with_holder("DL", id_number="310115198506123527"), ["holder/id_number"], id="ric-check-digit"),
        pytest.param(with_holder("DL", id_number="31011519850230352X"), ["holder/id_number"], id="ric-birth-date"),
        pytest.param(with_holder("BL", id_number="91310115MA1K3YJ2X6"), ["holder/id_number"], id="uscc-check-char"),
        pytest.param(
            with_holder("DL", id_type="USCC", id_number="91310115MA1K3YJ2X5"), ["holder/id_type"], id="dl-with-uscc"
        ),
        pytest.param(
            with_holder("BL", id_type="RIC", id_number="310115198506123526"), ["holder/id_type"], id="bl-with-ric"
        ),
        pytest.param(with_holder("PQ", id_type="PASSPORT"), ["holder/id_type"], id="unknown-id-type"),
        pytest.param(with_holder("PQ", id_type="ric"), ["holder/id_type"], id="lower-case-id-type"),
        pytest.param(sample_request("DL", type="XX"), ["type"], id="unknown-type"),
        pytest.param(with_fields("DL", sex="M"), ["fields/sex"], id="schema-enum"),
        pytest.param(with_fields("DL", file_number=None), ["fields/file_number"], id="schema-required"),
        pytest.param(with_fields("PQ", score=-1), ["fields/score"], id="schema-minimum"),
        pytest.param(
            sample_request("DL", valid_from="2026-03-10", valid_until="2026-03-09"), ["valid_until"], id="until-before"
        ),
        pytest.param(
            sample_request("PQ", valid_from="2026-03-10T00:00:00+08:00", valid_until="2026-03-10T00:00:00+08:00"),
            ["valid_until"],
            id="until-equal-from",
        ),
        pytest.param(sample_request("PQ", valid_until="2026-02-01"), ["valid_until"], id="until-before-now"),
        pytest.param(
            sample_request("PQ", valid_from="1969-12-31T00:00:00Z", valid_until="2030-01-01"),
            ["valid_from"],
            id="from-before-1970",
        ),
        pytest.param(
            with_holder("DL", id_number="310115198506123527")
            | {"fields": with_fields("DL", sex="M")["fields"], "valid_until": "2020-01-01"},
            ["fields/sex", "holder/id_number", "valid_until"],
            id="several-at-once",
        ),
    ],
)
def test_invalid_content_lists_every_bad_field_and_issues_nothing(session, issue, body, bad_fields):
    with pytest.raises(InvalidInput) as refused:
        issue(body)
    session.rollback()
    assert error_fields(refused.value) == bad_fields
    assert _certificate_count(session) == 0
    assert _issue_records(session) == 0


# ---------------------------------------------------------------- text hygiene


def test_holder_name_and_fields_are_nfc_normalised(session, issue):
    body = with_fields("BL", legal_representative="Jose\u0301 李") | {
        "holder": {"name": " Cafe\u0301 上海 ", "id_type": "USCC", "id_number": "91310115ma1k3yj2x5"}
    }
    certificate = issue(body).certificate
    assert certificate.holder_name == "Café 上海"
    assert certificate.holder_id_number == "91310115MA1K3YJ2X5"
    assert certificate.fields["legal_representative"] == "José 李"
    payload = _payload(certificate)
    assert payload["h"] == {"n": "Café 上海", "i": "91310115MA1K3YJ2X5"}
    assert payload["f"] == ["José 李"]


@pytest.mark.parametrize(
    ("body", "bad_field"),
    [
        pytest.param(with_holder("DL", name="王\u202e红小"), "holder/name", id="name-bidi-override"),
        pytest.param(with_holder("DL", name="王\u200b小红"), "holder/name", id="name-zero-width-space"),
        pytest.param(with_holder("DL", name="王小红\x00"), "holder/name", id="name-nul"),
        pytest.param(with_holder("DL", id_number="310115198506123526\n"), "holder/id_number", id="id-newline"),
        pytest.param(with_fields("DL", address="上海市\n浦东新区"), "fields/address", id="field-newline"),
        pytest.param(with_fields("DL", vehicle_class="C1\u200b"), "fields/vehicle_class", id="qr-field-zwsp"),
        pytest.param(sample_request("DL", type="D\u200bL"), "type", id="type-zwsp"),
    ],
)
def test_control_and_format_characters_are_refused(issue, body, bad_field):
    with pytest.raises(InvalidInput) as refused:
        issue(body)
    assert bad_field in error_fields(refused.value)
    assert all("forbidden character" in e.message for e in refused.value.errors if e.field == bad_field)


# ---------------------------------------------------------------- idempotency


def test_same_key_and_body_replays_the_same_certificate(session, issue):
    first = issue(sample_request("DL"), idempotency_key="order-1")
    again = issue(sample_request("DL"), idempotency_key="order-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.certificate.id == first.certificate.id
    assert again.certificate.token == first.certificate.token
    assert _certificate_count(session) == 1
    assert _issue_records(session) == 1


def test_replay_ignores_member_order(issue):
    body = sample_request("PQ")
    reordered = dict(reversed(list(body.items())))
    reordered["fields"] = dict(reversed(list(body["fields"].items())))
    first = issue(body, idempotency_key="k")
    assert issue(reordered, idempotency_key="k").certificate.id == first.certificate.id


@pytest.mark.parametrize(
    "other_body",
    [
        pytest.param(with_fields("DL", vehicle_class="A1"), id="other-field-value"),
        pytest.param(sample_request("PQ"), id="other-type"),
        pytest.param(sample_request("DL", valid_from="2026-04-01"), id="extra-member"),
    ],
)
def test_same_key_with_a_different_body_is_a_conflict(session, issue, other_body):
    issue(sample_request("DL"), idempotency_key="order-1")
    with pytest.raises(IdempotencyConflict, match="different request body"):
        issue(other_body, idempotency_key="order-1")
    assert _certificate_count(session) == 1


def test_idempotency_keys_belong_to_one_office(session, issue, other_office):
    mine = issue(sample_request("DL"), idempotency_key="order-1")
    theirs = issue(sample_request("DL"), by=other_office, idempotency_key="order-1")
    assert not theirs.replayed
    assert theirs.certificate.id != mine.certificate.id
    assert theirs.certificate.office_id == other_office.office.id


def test_without_a_key_every_request_issues(session, issue):
    issue(sample_request("DL"))
    issue(sample_request("DL"))
    assert _certificate_count(session) == 2


def test_replay_happens_after_the_clock_moves_on(session, issue, clock):
    first = issue(sample_request("DL"), idempotency_key="order-1")
    clock.advance(hours=5)
    again = issue(sample_request("DL"), idempotency_key="order-1")
    assert again.replayed
    assert again.certificate.issued_at == first.certificate.issued_at


# ---------------------------------------------------------------- validity


def test_driving_licence_defaults_to_2191_days_from_issue(issue, clock):
    certificate = issue(sample_request("DL")).certificate
    assert certificate.valid_from == clock()
    assert certificate.valid_until == clock() + timedelta(days=DL_DEFAULT_DAYS)
    payload = _payload(certificate)
    assert "nbf" not in payload  # equal to iat, so omitted
    assert payload["exp"] == payload["iat"] + DL_DEFAULT_DAYS * 86400


def test_driving_licence_default_runs_from_an_explicit_start(issue):
    certificate = issue(sample_request("DL", valid_from="2026-04-01")).certificate
    assert certificate.valid_from == _utc(2026, 3, 31, 16)
    assert certificate.valid_until == _utc(2026, 3, 31, 16) + timedelta(days=DL_DEFAULT_DAYS)


@pytest.mark.parametrize("type_code", ["BL", "PQ"])
def test_types_without_default_validity_have_no_end(issue, type_code):
    certificate = issue(sample_request(type_code)).certificate
    assert certificate.valid_until is None
    assert "exp" not in _payload(certificate)


def test_explicit_end_is_signed_as_exp(issue):
    certificate = issue(sample_request("PQ", valid_until="2030-06-30")).certificate
    assert _payload(certificate)["exp"] == int(_utc(2030, 6, 30, 16).timestamp())


@pytest.mark.parametrize(
    ("valid_from", "valid_until", "start", "end"),
    [
        pytest.param("2026-03-10", "2026-03-20", _utc(2026, 3, 9, 16), _utc(2026, 3, 20, 16), id="dates"),
        pytest.param("2026-03-10", "2026-03-10", _utc(2026, 3, 9, 16), _utc(2026, 3, 10, 16), id="one-day"),
        pytest.param("2026-01-01", "2026-12-31", _utc(2025, 12, 31, 16), _utc(2026, 12, 31, 16), id="year-boundary"),
        pytest.param(
            "2026-03-10T09:30:00+08:00", "2026-03-20T00:00:00Z", _utc(2026, 3, 10, 1, 30), _utc(2026, 3, 20), id="times"
        ),
    ],
)
def test_dates_are_china_standard_time_day_boundaries(issue, valid_from, valid_until, start, end):
    certificate = issue(sample_request("PQ", valid_from=valid_from, valid_until=valid_until)).certificate
    assert (certificate.valid_from, certificate.valid_until) == (start, end)
    payload = _payload(certificate)
    assert (payload["nbf"], payload["exp"]) == (int(start.timestamp()), int(end.timestamp()))


def test_date_only_window_is_the_days_printed_in_china(issue):
    certificate = issue(sample_request("PQ", valid_from="2026-03-01", valid_until="2026-03-31")).certificate
    # Valid from the first moment of 1 March to the end of 31 March, Beijing time (end exclusive).
    assert certificate.valid_from.astimezone(CHINA_STANDARD_TIME) == datetime(2026, 3, 1, tzinfo=CHINA_STANDARD_TIME)
    assert certificate.valid_until.astimezone(CHINA_STANDARD_TIME) == datetime(2026, 4, 1, tzinfo=CHINA_STANDARD_TIME)
    # 00:00 in Shanghai is still the previous day in UTC.
    assert certificate.valid_from == _utc(2026, 2, 28, 16)


# ---------------------------------------------------------------- the signed payload


@pytest.mark.parametrize("type_code", REFERENCE_TYPES)
def test_payload_is_compact_utf8_json(issue, type_code):
    certificate = issue(sample_request(type_code)).certificate
    _header, raw = _segments(certificate.token)
    payload = json.loads(raw)
    assert raw == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert b"\\u" not in raw
    assert sample_request(type_code)["holder"]["name"].encode("utf-8") in raw
    assert [claim for claim in CLAIM_ORDER if claim in payload] == list(payload)


@pytest.mark.parametrize("type_code", REFERENCE_TYPES)
def test_payload_carries_only_the_types_qr_fields(session, issue, type_code):
    certificate = issue(sample_request(type_code)).certificate
    qr_fields = get_type(session, type_code).qr_fields
    payload = _payload(certificate)
    assert payload["f"] == [sample_request(type_code)["fields"][name] for name in qr_fields]
    _header, raw = _segments(certificate.token)
    for name, value in sample_request(type_code)["fields"].items():
        assert name.encode() not in raw
        if name not in qr_fields:
            assert json.dumps(value, ensure_ascii=False).encode("utf-8") not in raw, f"{name} leaked into the token"


@pytest.mark.parametrize(
    ("type_code", "shown"),
    [("DL", "3101**********3526"), ("PQ", "3101**********4415"), ("BL", "91310115MA1K3YJ2X5")],
)
def test_holder_id_is_masked_in_the_token_for_persons_only(issue, type_code, shown):
    body = sample_request(type_code)
    certificate = issue(body).certificate
    payload = _payload(certificate)
    assert payload["h"] == {"n": body["holder"]["name"], "i": shown}
    assert certificate.holder_id_number == body["holder"]["id_number"]  # the registry keeps the full number
    if type_code != "BL":
        assert body["holder"]["id_number"] not in certificate.token
        assert body["holder"]["id_number"].encode() not in _segments(certificate.token)[1]


def test_payload_times_are_whole_seconds(issue, clock):
    clock.advance(microseconds=654321)
    certificate = issue(sample_request("PQ", valid_from="2026-03-02")).certificate
    payload = _payload(certificate)
    assert payload["iat"] == int(clock().timestamp())
    assert certificate.issued_at == clock().replace(microsecond=0)
    assert all(isinstance(payload[claim], int) for claim in ("iat", "nbf"))


def test_a_certificate_whose_qr_text_no_qr_code_can_hold_is_refused(session, keyring, clock, region, issue):
    """A QR field long enough to push the QR text past version 40-M's 2,331 bytes (while
    the token stays under the verifier's 4,096 characters) would make an unprintable
    certificate: issuance refuses it and names the field."""
    from registry.models import CertificateType

    session.add(
        CertificateType(
            code="NT",
            name_zh="备注证明",
            name_en="Annotated certificate",
            holder_kind="person",
            holder_id_type="RIC",
            fields_schema={
                "type": "object",
                "additionalProperties": False,
                "properties": {"note": {"type": "string", "maxLength": 2000, "title": "备注"}},
            },
            qr_fields=["note"],
            default_validity_days=None,
            version=1,
        )
    )
    session.commit()
    office = make_office(session, keyring, clock, "11310000MB03195470", ["NT"])
    body = {"type": "NT", "holder": {"name": "张伟", "id_type": "RIC", "id_number": "310101199003074415"}}

    printable = issue({**body, "fields": {"note": "备" * 300}}, by=office)
    assert printable.certificate.token
    with pytest.raises(InvalidInput, match="too large for its QR code") as refused:
        issue({**body, "fields": {"note": "备" * 700}}, by=office)

    assert error_fields(refused.value) == ["fields/note"]
    session.rollback()
    assert _certificate_count(session) == 1
