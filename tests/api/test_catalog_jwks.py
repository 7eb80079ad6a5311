"""Public, unauthenticated documents: the certificate catalog and the JWK Set of office keys."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from registry.demo import sample_request
from registry.identifiers import make_credit_code
from tests.conftest import OfficeFixture, make_office

JWKS = "/.well-known/jwks.json"
ES256_OFFICE_CODE = make_credit_code("12310000425012345")
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
REFERENCE_TYPES = {
    "BL": ("营业执照", "Business licence"),
    "DL": ("机动车驾驶证", "Motor vehicle driving licence"),
    "PQ": ("职业资格证书", "Professional qualification certificate"),
}


@pytest.fixture
def es256_office(region, session, keyring, clock) -> OfficeFixture:
    return make_office(session, keyring, clock, ES256_OFFICE_CODE, ["DL", "PQ"], algorithm="ES256", name="示范局")


def rfc7638_thumbprint(jwk: dict[str, str]) -> str:
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("crv", "kty", "x")
    canonical = json.dumps({m: jwk[m] for m in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def keys_by_kid(client: Any) -> dict[str, dict[str, Any]]:
    response = client.get(JWKS)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return {key["kid"]: key for key in response.json["keys"]}


# ---------------------------------------------------------------- catalog


def test_catalog_lists_the_reference_types_with_their_names(client, region):
    response = client.get("/api/v1/catalog")

    assert response.status_code == 200
    types = {t["code"]: t for t in response.json["types"]}
    assert {code: (t["name_zh"], t["name_en"]) for code, t in types.items()} == REFERENCE_TYPES


@pytest.mark.parametrize("type_code", sorted(REFERENCE_TYPES))
def test_catalog_schemas_are_json_schemas_that_accept_the_samples(client, region, type_code):
    entry = next(t for t in client.get("/api/v1/catalog").json["types"] if t["code"] == type_code)

    schema = entry["fields_schema"]
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    assert list(validator.iter_errors(sample_request(type_code)["fields"])) == []
    assert list(validator.iter_errors({})), "an empty record must not satisfy the schema"
    assert set(entry["qr_fields"]) <= set(schema["properties"])
    assert entry["holder_id_type"] in {"RIC", "USCC"}


def test_catalog_needs_no_credentials(client, region):
    response = client.get("/api/v1/catalog", headers={"Authorization": "Bearer nonsense"})

    assert response.status_code == 200
    assert len(response.json["types"]) == 3


# ---------------------------------------------------------------- JWKS


def test_jwks_lists_an_ed25519_and_a_p256_key_with_public_members_only(client, office, es256_office):
    keys = keys_by_kid(client)

    assert set(keys) == {office.kid, es256_office.kid}
    assert {k: v for k, v in keys[office.kid].items() if k != "x"} == {
        "kid": office.kid,
        "alg": "EdDSA",
        "kty": "OKP",
        "crv": "Ed25519",
        "use": "sig",
    }
    assert {k: v for k, v in keys[es256_office.kid].items() if k not in ("x", "y")} == {
        "kid": es256_office.kid,
        "alg": "ES256",
        "kty": "EC",
        "crv": "P-256",
        "use": "sig",
    }
    for key in keys.values():
        assert not PRIVATE_MEMBERS & set(key)
        assert rfc7638_thumbprint(key).startswith(key["kid"])


@pytest.mark.parametrize("fixture", ["office", "es256_office"])
def test_jwks_key_verifies_the_offices_tokens(client, request, fixture):
    issuer: OfficeFixture = request.getfixturevalue(fixture)
    token = client.post("/api/v1/certificates", json=sample_request("DL"), headers=issuer.auth).json["token"]
    jwk = keys_by_kid(client)[issuer.kid]

    payload = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], options={"verify_exp": False})

    assert payload["iss"] == "310000"
    assert payload["jti"].startswith(f"DL.{issuer.code}.")


def test_jwks_does_not_publish_the_region_root_key(client, region, office):
    root_x = region.root_public_jwk["x"]

    assert all(key["x"] != root_x for key in keys_by_kid(client).values())


def test_jwks_is_empty_before_any_office_exists(client, region):
    response = client.get(JWKS)

    assert response.status_code == 200
    assert response.json == {"keys": []}


def test_jwks_lists_both_keys_after_rotation(app, runner, client, office):
    with app.app_context():  # see test_cli.py: the commands need an app context the test runner lacks
        result = runner.invoke(args=["office", "rotate-key", "--code", office.code, "--json"])
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.stdout.strip().splitlines()[-1])

    keys = keys_by_kid(client)

    assert set(keys) == {office.kid, rotated["kid"]}
    assert rotated["retired_kid"] == office.kid
