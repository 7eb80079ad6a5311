"""``POST /api/v1/verify`` and ``flask --app app verify``: one answer, two front ends.

The API answers 200 for every token, however broken (the verdict says what is wrong);
400 only when the request is not ``{token}`` or ``{qr_text}``, 415 when it is not JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner

from registry.demo import sample_request
from registry.identifiers import CertificateId
from tests.verify.conftest import decode_parts, with_signature

ANSWER_MEMBERS = {"verdict", "code", "message", "detail", "certificate", "issuer", "status_source", "log", "checked_at"}
RESIDENT_ID = "310115198506123526"  # the DL sample holder's full ID number


@pytest.fixture
def issued(client: FlaskClient, office: Any) -> dict[str, Any]:
    """A genuine DL certificate, as the issuing API returns it."""
    response = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def tampered(token: str) -> str:
    header, payload, signature = decode_parts(token)
    return with_signature(header, {**payload, "h": {**payload["h"], "n": "李四"}}, signature)


def test_genuine_token_is_valid(client: FlaskClient, issued: dict[str, Any], office: Any) -> None:
    response = client.post("/api/v1/verify", json={"token": issued["token"]})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert set(body) == ANSWER_MEMBERS
    assert (body["verdict"], body["code"]) == ("VALID", "OK")
    assert body["certificate"]["id"] == issued["id"]
    assert body["certificate"]["holder"] == {"name": "王小红", "id_type": "RIC", "id_number": "3101**********3526"}
    assert body["issuer"]["office"] == office.code
    assert body["checked_at"] == "2026-03-01T08:00:00Z"
    assert RESIDENT_ID not in response.get_data(as_text=True)


def test_qr_text_gets_the_same_answer_as_its_token(client: FlaskClient, issued: dict[str, Any]) -> None:
    from_token = client.post("/api/v1/verify", json={"token": issued["token"]})
    from_qr = client.post("/api/v1/verify", json={"qr_text": issued["qr_text"]})

    assert from_qr.status_code == 200
    assert from_qr.json == from_token.json
    assert from_qr.json["verdict"] == "VALID"


def test_verification_needs_no_office_credentials(client: FlaskClient, issued: dict[str, Any]) -> None:
    response = client.post(
        "/api/v1/verify", json={"token": issued["token"]}, headers={"Authorization": "Bearer ecert_wrong"}
    )

    assert response.status_code == 200
    assert response.json["verdict"] == "VALID"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({"token": ""}, "MALFORMED", id="empty-token"),
        pytest.param({"token": "not a token"}, "MALFORMED", id="garbage-token"),
        pytest.param({"token": "a" * 5000}, "TOO_LARGE", id="oversized-token"),
        pytest.param({"qr_text": "ecert.sh.example/verify?token=abc"}, "MALFORMED", id="qr-text-without-v-fragment"),
        pytest.param({"qr_text": ""}, "MALFORMED", id="empty-qr-text"),
    ],
)
def test_broken_token_is_answered_invalid_not_rejected(
    body: dict[str, str], code: str, client: FlaskClient, region: Any
) -> None:
    response = client.post("/api/v1/verify", json=body)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert (response.json["verdict"], response.json["code"]) == ("INVALID", code)
    assert response.json["certificate"] is None


def test_tampered_token_is_sig_invalid_without_certificate_data(client: FlaskClient, issued: dict[str, Any]) -> None:
    response = client.post("/api/v1/verify", json={"token": tampered(issued["token"])})

    assert response.status_code == 200
    assert (response.json["verdict"], response.json["code"]) == ("INVALID", "SIG_INVALID")
    assert response.json["certificate"] is None
    assert response.json["issuer"] is None
    assert "李四" not in response.get_data(as_text=True)


def test_kid_with_nul_character_is_invalid_on_every_database(client: FlaskClient, office: Any) -> None:
    header = {"alg": "EdDSA", "kid": "\u0000", "typ": "ecert"}
    payload = {
        "iss": "310000",
        "jti": str(CertificateId.new("DL", office.code)),
        "iat": 1772352000,
        "h": {"n": "王小红", "i": "3101**********3526"},
    }

    response = client.post("/api/v1/verify", json={"token": with_signature(header, payload, bytes(64))})

    assert response.status_code == 200
    assert response.json["verdict"] == "INVALID"
    assert response.json["code"] in {"KEY_UNKNOWN", "MALFORMED"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param([], "BAD_REQUEST", id="array"),
        pytest.param("eyJhbGciOiJFZERTQSJ9.e30.", "BAD_REQUEST", id="bare-string"),
        pytest.param(42, "BAD_REQUEST", id="number"),
        pytest.param({}, "BAD_REQUEST", id="empty-object"),
        pytest.param({"token": "x", "qr_text": "https://a/v#x"}, "BAD_REQUEST", id="both-token-and-qr-text"),
        pytest.param({"token": "x", "extra": 1}, "BAD_REQUEST", id="token-and-unknown-member"),
        pytest.param({"tokn": "x"}, "BAD_REQUEST", id="misspelt-member"),
        pytest.param({"token": 5}, "BAD_REQUEST", id="token-number"),
        pytest.param({"token": None}, "BAD_REQUEST", id="token-null"),
        pytest.param({"token": ["x"]}, "BAD_REQUEST", id="token-array"),
        pytest.param({"qr_text": {"token": "x"}}, "BAD_REQUEST", id="qr-text-object"),
        pytest.param(None, "BAD_REQUEST", id="json-null"),
    ],
)
def test_request_that_is_not_a_verification_request_is_400(
    body: Any, code: str, client: FlaskClient, region: Any
) -> None:
    response = client.post("/api/v1/verify", data=json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == code
    assert response.json["status"] == 400
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param('{"token": ', id="truncated"),
        pytest.param('{"token": "x", "token": "y"}', id="duplicate-member"),
        pytest.param('{"token": NaN}', id="nan"),
        pytest.param(b'{"token": "\xff"}', id="not-utf-8"),
    ],
)
def test_unparseable_json_is_400(data: str | bytes, client: FlaskClient, region: Any) -> None:
    response = client.post("/api/v1/verify", data=data, content_type="application/json")

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "MALFORMED_JSON"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        pytest.param('{"token": "x"}', "text/plain", id="json-sent-as-text-plain"),
        pytest.param("token=x", "application/x-www-form-urlencoded", id="form"),
        pytest.param('{"token": "x"}', None, id="no-content-type"),
    ],
)
def test_body_that_is_not_json_is_415(data: str, content_type: str | None, client: FlaskClient, region: Any) -> None:
    response = client.post("/api/v1/verify", data=data, content_type=content_type)

    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "UNSUPPORTED_MEDIA_TYPE"


# ---------------------------------------------------------------- the CLI gives the same answer


def _revoked(client: FlaskClient, office: Any, issued: dict[str, Any]) -> str:
    response = client.post(
        f"/api/v1/certificates/{issued['id']}/status",
        json={"status": "REVOKED", "reason": "违法记分满12分"},
        headers=office.auth,
    )
    assert response.status_code == 200, response.json
    return issued["token"]  # type: ignore[no-any-return]


CLI_CASES = [
    pytest.param(lambda client, office, issued: issued["token"], "VALID", "OK", 0, id="valid-token"),
    pytest.param(lambda client, office, issued: issued["qr_text"], "VALID", "OK", 0, id="valid-qr-text"),
    pytest.param(_revoked, "INVALID", "REVOKED", 1, id="revoked"),
    pytest.param(lambda client, office, issued: tampered(issued["token"]), "INVALID", "SIG_INVALID", 1, id="tampered"),
    pytest.param(lambda client, office, issued: "garbage", "INVALID", "MALFORMED", 1, id="garbage"),
]


@pytest.mark.parametrize(("make_input", "verdict", "code", "exit_code"), CLI_CASES)
def test_cli_json_answer_equals_the_api_answer(
    make_input: Any,
    verdict: str,
    code: str,
    exit_code: int,
    client: FlaskClient,
    runner: FlaskCliRunner,
    office: Any,
    issued: dict[str, Any],
) -> None:
    text = make_input(client, office, issued)
    member = "qr_text" if "/v#" in text else "token"

    api = client.post("/api/v1/verify", json={member: text})
    cli = runner.invoke(args=["verify", text, "--json"])

    assert api.status_code == 200
    assert cli.exit_code == exit_code, cli.output
    cli_answer = json.loads(cli.stdout.strip().splitlines()[-1])
    assert cli_answer == api.json
    assert (cli_answer["verdict"], cli_answer["code"]) == (verdict, code)
