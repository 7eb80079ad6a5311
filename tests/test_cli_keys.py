"""Keys and trust lists from the administrators' CLI: every office or key change publishes
a new list, ``region show`` names its sequence, ``office key-compromised`` marks a key."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from registry.demo import sample_request
from registry.identifiers import make_credit_code
from signing.jwk import b64url
from tests.test_cli import assert_failed, last_json
from verify.trust_lists import read_trust_list

OFFICE_CODE = make_credit_code("12310000425012345")
SECOND_OFFICE_CODE = make_credit_code("12310000425006117")


@pytest.fixture
def invoke(app: Flask, runner: FlaskCliRunner) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        return runner.invoke(args=list(args))

    return run


@pytest.fixture
def initialised(invoke) -> dict[str, Any]:
    result = invoke("region", "init", "--code", "310000", "--name", "上海市", "--json")
    assert result.exit_code == 0, result.output
    return last_json(result)


@pytest.fixture
def added(invoke, initialised) -> dict[str, Any]:
    result = invoke("office", "add", "--code", OFFICE_CODE, "--name", "示范局", "--types", "BL,DL", "--json")
    assert result.exit_code == 0, result.output
    return last_json(result)


def shown_sequence(invoke) -> int | None:
    return last_json(invoke("region", "show", "--json"))["trust_list_sequence"]  # type: ignore[no-any-return]


def served_payload(client) -> tuple[str, dict[str, Any]]:
    jws = client.get("/.well-known/ecert/trust-list").get_data(as_text=True)
    payload = jws.split(".")[1]
    return jws, json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_region_init_publishes_the_first_list_verifiable_from_show_s_fingerprint(invoke, client, initialised):
    fingerprint = last_json(invoke("region", "show", "--json"))["root_fingerprint"]
    jws, payload = served_payload(client)
    root = {k: payload["root"][k] for k in ("crv", "kty", "x")}

    assert initialised["trust_list_sequence"] == 1
    assert shown_sequence(invoke) == 1
    # The fingerprint is the RFC 7638 thumbprint of the root JWK the list carries...
    canonical = json.dumps(root, separators=(",", ":"), sort_keys=True).encode("ascii")
    assert b64url(hashlib.sha256(canonical).digest()) == fingerprint
    # ...and the list verifies under that root.
    assert read_trust_list(jws, fingerprint=fingerprint).sequence == 1


def test_each_office_and_key_command_publishes_the_next_list(invoke, client, added):
    assert shown_sequence(invoke) == 2
    invoke("office", "add", "--code", SECOND_OFFICE_CODE, "--name", "第二局", "--types", "PQ", "--json")
    assert shown_sequence(invoke) == 3
    rotated = last_json(invoke("office", "rotate-key", "--code", OFFICE_CODE, "--json"))
    assert shown_sequence(invoke) == 4
    compromised = invoke(
        "office", "key-compromised", "--kid", rotated["retired_kid"], "--since", "2026-03-01T07:00:00Z", "--json"
    )
    assert compromised.exit_code == 0, compromised.output
    assert last_json(compromised)["trust_list_sequence"] == 5
    assert shown_sequence(invoke) == 5

    _jws, payload = served_payload(client)
    states = {k["kid"]: k["state"] for o in payload["offices"] for k in o["keys"]}
    assert payload["seq"] == 5
    assert states[rotated["retired_kid"]] == "compromised"
    assert states[rotated["kid"]] == "active"


def test_compromising_the_active_key_reports_its_replacement_which_then_signs(invoke, client, added):
    result = invoke(
        "office", "key-compromised", "--kid", added["kid"], "--since", "2026-03-01T15:30:00+08:00", "--json"
    )

    assert result.exit_code == 0, result.output
    answer = last_json(result)
    assert answer == {
        "kid": added["kid"],
        "office": OFFICE_CODE,
        "state": "compromised",
        "compromised_since": "2026-03-01T07:30:00Z",
        "replacement_kid": answer["replacement_kid"],
        "trust_list_sequence": 3,
    }
    assert answer["replacement_kid"] not in (None, added["kid"])
    issued = client.post(
        "/api/v1/certificates", json=sample_request("DL"), headers={"Authorization": f"Bearer {added['api_token']}"}
    )
    assert issued.status_code == 201, issued.json
    assert issued.json["kid"] == answer["replacement_kid"]


@pytest.mark.parametrize(
    ("kid", "since", "code"),
    [
        pytest.param("AAAAAAAA", "2026-03-01T07:00:00Z", "NOT_FOUND", id="unknown-kid"),
        pytest.param(None, "2026-03-01T07:00:00", "VALIDATION_FAILED", id="no-time-zone"),
        pytest.param(None, "2026-03-01T08:00:01Z", "VALIDATION_FAILED", id="in-the-future"),
        pytest.param(None, "yesterday", "VALIDATION_FAILED", id="not-iso-8601"),
        pytest.param(None, "", "VALIDATION_FAILED", id="empty"),
    ],
)
def test_key_compromised_refuses_bad_input_and_publishes_nothing(invoke, added, kid, since, code):
    result = invoke("office", "key-compromised", "--kid", kid or added["kid"], "--since", since, "--json")

    answer = assert_failed(result, code)
    assert ("since" in answer["detail"]) == (code == "VALIDATION_FAILED")
    assert shown_sequence(invoke) == 2


def test_region_show_names_no_sequence_before_any_list(invoke, region):
    result = invoke("region", "show")

    assert last_json(invoke("region", "show", "--json"))["trust_list_sequence"] is None
    assert "trust list sequence: (none yet)" in result.stdout
