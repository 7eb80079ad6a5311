"""The administrators' CLI (``flask --app app ...``): region, office, demo and verify.

Every command runs against a real database through Flask's CLI runner. With ``--json``
a command prints one JSON object on its last stdout line; a failure exits non-zero
with a one-line reason on stderr.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.demo import sample_request
from registry.identifiers import make_credit_code
from registry.models import Certificate

NEW_OFFICE_CODE = make_credit_code("12310000425012345")  # 12310000425012345C
WRONG_CHECK_CODE = NEW_OFFICE_CODE[:-1] + ("D" if NEW_OFFICE_CODE[-1] != "D" else "E")
FINGERPRINT = re.compile(r"[A-Za-z0-9_-]{43}")


@pytest.fixture
def public_url(deployment: Any) -> str:
    return deployment.settings.public_url  # type: ignore[no-any-return]


def last_json(result: Result) -> dict[str, Any]:
    """The JSON object on the last stdout line, checking it is the only one printed."""
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {result.stderr!r}"
    document = json.loads(lines[-1])
    assert isinstance(document, dict)
    for line in lines[:-1]:
        assert not line.lstrip().startswith("{"), f"more than one JSON object printed: {result.stdout!r}"
    return document


def assert_failed(result: Result, code: str) -> dict[str, Any]:
    """The command failed with ``code``: non-zero exit, one-line reason on stderr, JSON error."""
    assert result.exit_code != 0, result.stdout
    assert isinstance(result.exception, SystemExit), result.exception
    reason = result.stderr.strip()
    assert len(reason.splitlines()) == 1, reason
    assert code in reason
    answer = last_json(result)
    assert answer["error"] == code
    assert answer["detail"]
    return answer


@pytest.fixture
def invoke(app: Flask, runner: FlaskCliRunner) -> Callable[..., Result]:
    """Run a command as ``flask --app app ...`` would (the commands push their own app context)."""

    def run(*args: str) -> Result:
        return runner.invoke(args=list(args))

    return run


def issue(client: Any, token: str, type_code: str = "BL") -> Any:
    return client.post(
        "/api/v1/certificates", json=sample_request(type_code), headers={"Authorization": f"Bearer {token}"}
    )


def count_certificates(session: Session) -> int:
    count = session.scalar(select(func.count()).select_from(Certificate))
    # End the read: on SQLite every transaction holds the write lock until it ends.
    session.rollback()
    return count or 0


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---------------------------------------------------------------- region


def test_region_init_creates_the_region_and_show_prints_the_same_fingerprint(invoke):
    init = invoke(
        "region", "init", "--code", "310000", "--name", "上海市", "--public-url", "https://x.example", "--json"
    )

    assert init.exit_code == 0, init.output
    created = last_json(init)
    assert {k: created[k] for k in ("code", "name", "public_url")} == {
        "code": "310000",
        "name": "上海市",
        "public_url": "https://x.example",
    }
    assert FINGERPRINT.fullmatch(created["root_fingerprint"])

    show = invoke("region", "show", "--json")
    assert show.exit_code == 0, show.output
    assert last_json(show) == created


def test_region_init_uses_the_configured_public_url_by_default(invoke, public_url):
    result = invoke("region", "init", "--code", "310000", "--name", "上海市", "--json")

    assert result.exit_code == 0, result.output
    assert last_json(result)["public_url"] == public_url


def test_region_init_drops_a_trailing_slash_from_the_public_url(invoke):
    result = invoke(
        "region", "init", "--code", "310000", "--name", "上海市", "--public-url", "https://x.example/", "--json"
    )

    assert last_json(result)["public_url"] == "https://x.example"


def test_region_init_twice_fails_and_keeps_the_first_region(invoke):
    first = invoke("region", "init", "--code", "310000", "--name", "上海市", "--json")
    second = invoke("region", "init", "--code", "320000", "--name", "江苏省", "--json")

    assert_failed(second, "ALREADY_EXISTS")
    assert last_json(invoke("region", "show", "--json")) == last_json(first)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("31000", id="five-digits"),
        pytest.param("3100000", id="seven-digits"),
        pytest.param("010000", id="leading-zero"),
        pytest.param("31000A", id="letter"),
        pytest.param("", id="empty"),
    ],
)
def test_region_init_refuses_a_bad_region_code(invoke, code):
    result = invoke("region", "init", "--code", code, "--name", "上海市", "--json")

    answer = assert_failed(result, "VALIDATION_FAILED")
    assert "code" in answer["detail"]
    assert_failed(invoke("region", "show", "--json"), "REGION_NOT_INITIALISED")


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("ftp://x.example", id="not-http"),
        pytest.param("https://x.example/?q=1", id="query"),
        pytest.param("https://x.example/#frag", id="fragment"),
        pytest.param("x.example", id="no-scheme"),
    ],
)
def test_region_init_refuses_a_bad_public_url(invoke, url):
    result = invoke("region", "init", "--code", "310000", "--name", "上海市", "--public-url", url, "--json")

    assert "public_url" in assert_failed(result, "VALIDATION_FAILED")["detail"]


def test_region_show_before_init_fails(invoke):
    assert_failed(invoke("region", "show", "--json"), "REGION_NOT_INITIALISED")


def test_region_show_without_json_prints_lines_for_a_person(invoke, region):
    result = invoke("region", "show")

    assert result.exit_code == 0, result.output
    assert "root fingerprint:" in result.stdout
    assert not any(line.startswith("{") for line in result.stdout.splitlines())


# ---------------------------------------------------------------- office


def test_office_add_creates_an_office_whose_token_works_at_once(invoke, client, region):
    result = invoke("office", "add", "--code", NEW_OFFICE_CODE, "--name", "示范局", "--types", "BL,DL", "--json")

    assert result.exit_code == 0, result.output
    office = last_json(result)
    assert office["code"] == NEW_OFFICE_CODE
    assert office["name"] == "示范局"
    assert office["types"] == ["BL", "DL"]
    assert office["alg"] == "EdDSA"
    assert office["kid"]
    issued = issue(client, office["api_token"], "BL")
    assert issued.status_code == 201, issued.json
    assert f".{NEW_OFFICE_CODE}." in issued.json["id"]
    assert issue(client, office["api_token"], "PQ").status_code == 403
    jwks = client.get("/.well-known/jwks.json").json
    assert office["kid"] in {k["kid"] for k in jwks["keys"]}


def test_office_add_with_es256(invoke, client, region):
    result = invoke(
        "office",
        "add",
        "--code",
        NEW_OFFICE_CODE,
        "--name",
        "示范局",
        "--types",
        "DL",
        "--alg",
        "ES256",
        "--json",
    )

    assert result.exit_code == 0, result.output
    office = last_json(result)
    assert office["alg"] == "ES256"
    issued = issue(client, office["api_token"], "DL")
    assert issued.status_code == 201, issued.json
    header = json.loads(_b64url_decode(issued.json["token"].split(".")[0]))
    assert header["alg"] == "ES256"
    assert header["kid"] == office["kid"]


def test_office_add_normalises_types(invoke, region):
    result = invoke("office", "add", "--code", NEW_OFFICE_CODE, "--name", "示范局", "--types", "dl, bl,DL", "--json")

    assert result.exit_code == 0, result.output
    assert last_json(result)["types"] == ["BL", "DL"]


@pytest.mark.parametrize(
    ("options", "mentions"),
    [
        pytest.param(["--code", WRONG_CHECK_CODE], "code", id="bad-check-character"),
        pytest.param(["--code", NEW_OFFICE_CODE[:-1]], "code", id="seventeen-characters"),
        pytest.param(["--code", "91310000MA1FL8XQ3O"], "code", id="letter-outside-the-alphabet"),
        pytest.param(["--types", "BL,XX"], "XX", id="unknown-type"),
        pytest.param(["--types", ","], "types", id="no-type"),
        pytest.param(["--name", "  "], "name", id="blank-name"),
        pytest.param(["--name", "示范\u202e局"], "name", id="bidi-override-in-name"),
    ],
)
def test_office_add_refuses_bad_input(invoke, region, options, mentions):
    arguments = {"--code": NEW_OFFICE_CODE, "--name": "示范局", "--types": "BL,DL"}
    arguments.update(dict(zip(options[::2], options[1::2], strict=True)))

    result = invoke("office", "add", *[part for pair in arguments.items() for part in pair], "--json")

    assert mentions in assert_failed(result, "VALIDATION_FAILED")["detail"]
    assert_failed(invoke("office", "new-token", "--code", NEW_OFFICE_CODE, "--json"), "NOT_FOUND")


def test_office_add_refuses_an_unknown_algorithm(invoke, region):
    result = invoke("office", "add", "--code", NEW_OFFICE_CODE, "--name", "示范局", "--types", "BL", "--alg", "HS256")

    assert result.exit_code != 0
    assert "HS256" in result.stderr


def test_office_add_twice_fails(invoke, office):
    result = invoke("office", "add", "--code", office.code, "--name", "再来一次", "--types", "BL", "--json")

    assert_failed(result, "ALREADY_EXISTS")


def test_office_add_before_region_init_fails(invoke):
    result = invoke("office", "add", "--code", NEW_OFFICE_CODE, "--name", "示范局", "--types", "BL", "--json")

    assert_failed(result, "REGION_NOT_INITIALISED")


def test_office_rotate_key_retires_the_old_key_and_signs_with_the_new_one(invoke, client, clock, office):
    before = issue(client, office.token, "DL").json
    clock.advance(minutes=5)

    result = invoke("office", "rotate-key", "--code", office.code, "--json")

    assert result.exit_code == 0, result.output
    rotated = last_json(result)
    assert rotated["retired_kid"] == office.kid
    assert rotated["kid"] != office.kid
    assert rotated["alg"] == "EdDSA"
    clock.advance(minutes=5)
    after = issue(client, office.token, "DL").json
    assert client.get(after["links"]["self"], headers=office.auth).json["kid"] == rotated["kid"]
    # The retired key keeps verifying what it signed.
    verified = invoke("verify", before["token"], "--json")
    assert verified.exit_code == 0, verified.output
    assert last_json(verified)["verdict"] == "VALID"


def test_office_rotate_key_can_change_the_algorithm(invoke, office):
    result = invoke("office", "rotate-key", "--code", office.code, "--alg", "ES256", "--json")

    assert result.exit_code == 0, result.output
    assert last_json(result)["alg"] == "ES256"


def test_office_rotate_key_for_an_unknown_office_fails(invoke, region):
    assert_failed(invoke("office", "rotate-key", "--code", NEW_OFFICE_CODE, "--json"), "NOT_FOUND")


def test_office_new_token_adds_a_working_token(invoke, client, office):
    result = invoke("office", "new-token", "--code", office.code, "--json")

    assert result.exit_code == 0, result.output
    created = last_json(result)
    assert created["code"] == office.code
    assert created["api_token"] != office.token
    assert issue(client, created["api_token"]).status_code == 201
    assert issue(client, office.token).status_code == 201


def test_office_revoke_tokens_stops_every_token_at_once(invoke, client, office):
    second = last_json(invoke("office", "new-token", "--code", office.code, "--json"))["api_token"]
    assert issue(client, second).status_code == 201

    result = invoke("office", "revoke-tokens", "--code", office.code, "--json")

    assert result.exit_code == 0, result.output
    assert last_json(result) == {"code": office.code, "revoked": 2}
    for token in (office.token, second):
        refused = issue(client, token)
        assert refused.status_code == 401
        assert refused.json["code"] == "UNAUTHENTICATED"
    again = last_json(invoke("office", "revoke-tokens", "--code", office.code, "--json"))
    assert again["revoked"] == 0


# ---------------------------------------------------------------- demo


def test_demo_on_an_empty_database_creates_verifiable_samples(invoke, client, public_url):
    result = invoke("demo", "--json")

    assert result.exit_code == 0, result.output
    demo = last_json(result)
    assert demo["created"] is True
    assert sorted(c["type"] for c in demo["certificates"]) == ["BL", "DL", "PQ"]
    for sample in demo["certificates"]:
        assert sample["qr_text"].startswith(f"{public_url}/v#")
        answer = client.post("/api/v1/verify", json={"qr_text": sample["qr_text"]}).json
        assert (answer["verdict"], answer["code"], answer["certificate"]["id"]) == ("VALID", "OK", sample["id"])
    own = client.get(f"/api/v1/certificates/{demo['certificates'][0]['id']}", headers=_bearer(demo["api_token"]))
    assert own.status_code == 200
    assert last_json(invoke("region", "show", "--json"))["code"] == "310000"


def test_demo_twice_creates_nothing_new_but_prints_a_fresh_working_token(invoke, client, session):
    first = last_json(invoke("demo", "--json"))

    result = invoke("demo", "--json")

    assert result.exit_code == 0, result.output
    second = last_json(result)
    assert second["created"] is False
    assert second["office"] == first["office"]
    assert second["certificates"] == first["certificates"]
    assert count_certificates(session) == 3
    assert second["api_token"] != first["api_token"]
    own = client.get(f"/api/v1/certificates/{first['certificates'][0]['id']}", headers=_bearer(second["api_token"]))
    assert own.status_code == 200


def test_demo_on_a_database_with_another_region_fails_and_creates_nothing(invoke, session, region):
    result = invoke("demo", "--json")

    assert_failed(result, "NOT_FOUND")
    assert count_certificates(session) == 0


# ---------------------------------------------------------------- verify


@pytest.mark.parametrize("form", ["token", "qr_text"])
def test_verify_a_valid_certificate_exits_zero(invoke, client, office, form):
    issued = issue(client, office.token, "PQ").json

    result = invoke("verify", issued[form], "--json")

    assert result.exit_code == 0, result.output
    answer = last_json(result)
    assert (answer["verdict"], answer["code"]) == ("VALID", "OK")
    assert answer["certificate"]["id"] == issued["id"]


def test_verify_without_json_prints_the_verdict(invoke, client, office):
    issued = issue(client, office.token, "PQ").json

    result = invoke("verify", issued["token"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("VALID OK")


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("garbage", id="word"),
        pytest.param("a.b.c", id="three-segments"),
        pytest.param("https://ecert.sh.example/v#not-a-token", id="qr-text"),
    ],
)
def test_verify_garbage_exits_one_with_an_invalid_answer(invoke, office, garbage):
    result = invoke("verify", garbage, "--json")

    assert result.exit_code == 1, result.output
    answer = last_json(result)
    assert answer["verdict"] == "INVALID"
    assert answer["code"] == "MALFORMED"
    assert answer["certificate"] is None


def test_verify_a_revoked_certificate_exits_one(invoke, client, office):
    issued = issue(client, office.token, "DL").json
    revoke = {"status": "REVOKED", "reason": "吊销"}
    assert client.post(f"{issued['links']['self']}/status", json=revoke, headers=office.auth).status_code == 200

    result = invoke("verify", issued["token"], "--json")

    assert result.exit_code == 1
    assert (last_json(result)["verdict"], last_json(result)["code"]) == ("INVALID", "REVOKED")


# ---------------------------------------------------------------- the --json convention


COMMANDS = [
    pytest.param(["region", "show"], 0, id="region-show"),
    pytest.param(["region", "init", "--code", "310000", "--name", "上海市"], 1, id="region-init-again"),
    pytest.param(["office", "add", "--code", NEW_OFFICE_CODE, "--name", "局", "--types", "PQ"], 0, id="office-add"),
    pytest.param(
        ["office", "add", "--code", WRONG_CHECK_CODE, "--name", "局", "--types", "PQ"], 1, id="office-add-bad"
    ),
    pytest.param(["office", "rotate-key", "--code", "{office}"], 0, id="office-rotate-key"),
    pytest.param(["office", "rotate-key", "--code", NEW_OFFICE_CODE], 1, id="office-rotate-key-unknown"),
    pytest.param(["office", "new-token", "--code", "{office}"], 0, id="office-new-token"),
    pytest.param(["office", "revoke-tokens", "--code", "{office}"], 0, id="office-revoke-tokens"),
    pytest.param(["demo"], 0, id="demo"),
    pytest.param(["verify", "{token}"], 0, id="verify"),
    pytest.param(["verify", "garbage"], 1, id="verify-garbage"),
]


@pytest.mark.parametrize(("arguments", "exit_code"), COMMANDS)
def test_every_command_with_json_prints_one_object_on_its_last_line(invoke, client, office, arguments, exit_code):
    token = issue(client, office.token, "DL").json["token"]
    arguments = [a.format(office=office.code, token=token) for a in arguments]

    result = invoke(*arguments, "--json")

    assert result.exit_code == exit_code, result.output
    assert len(result.stdout.strip().splitlines()) == 1, result.stdout
    last_json(result)
    if exit_code:
        assert len(result.stderr.strip().splitlines()) <= 1, result.stderr


def test_commands_run_under_the_plain_test_cli_runner(runner):
    result = runner.invoke(args=["region", "init", "--code", "310000", "--name", "上海市", "--json"])

    assert result.exit_code == 0, result.exception
    assert last_json(result)["code"] == "310000"
