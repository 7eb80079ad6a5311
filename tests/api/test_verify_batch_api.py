"""``POST /api/v1/verify/batch``: up to 1000 tokens, one answer each, in order, each the
answer ``POST /api/v1/verify`` gives; 400 for a body that is not ``{"tokens": [str, ...]}``,
413 for more than 1000 tokens. (Per-token rate limiting: tests/api/test_rate_limits.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from registry.demo import sample_request
from tests.verify.conftest import decode_parts, with_signature

BATCH = "/api/v1/verify/batch"
RESIDENT_ID = "310115198506123526"  # the DL sample holder's full ID number


def issue(client: FlaskClient, office: Any, type_code: str) -> dict[str, Any]:
    response = client.post("/api/v1/certificates", json=sample_request(type_code), headers=office.auth)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def single_answer(client: FlaskClient, token: str) -> dict[str, Any]:
    response = client.post("/api/v1/verify", json={"token": token})
    assert response.status_code == 200
    return response.json  # type: ignore[no-any-return]


def test_each_token_gets_the_single_answer_in_order(client: FlaskClient, office: Any) -> None:
    licence, permit = issue(client, office, "DL"), issue(client, office, "PQ")
    suspended = issue(client, office, "BL")
    changed = client.post(
        f"/api/v1/certificates/{suspended['id']}/status", json={"status": "02", "reason": "核查"}, headers=office.auth
    )
    assert changed.status_code == 200
    header, payload, signature = decode_parts(licence["token"])
    forged = with_signature(header, {**payload, "h": {**payload["h"], "n": "李四"}}, signature)
    tokens = [permit["token"], "garbage", licence["token"], forged, suspended["token"], permit["token"]]

    response = client.post(BATCH, json={"tokens": tokens})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    answers = response.json["answers"]
    assert [a["code"] for a in answers] == ["OK", "MALFORMED", "OK", "SIG_INVALID", "SUSPENDED", "OK"]
    assert answers == [single_answer(client, token) for token in tokens]
    assert answers[2]["certificate"]["holder"]["id_number"] == "3101**********3526"
    assert RESIDENT_ID not in response.get_data(as_text=True)


def test_a_full_batch_is_answered(client: FlaskClient, office: Any) -> None:
    token = issue(client, office, "DL")["token"]

    response = client.post(BATCH, json={"tokens": [token] * 999 + ["x"]})

    assert response.status_code == 200
    codes = [a["code"] for a in response.json["answers"]]
    assert codes == ["OK"] * 999 + ["MALFORMED"]


def test_more_than_1000_tokens_are_refused_whole(client: FlaskClient, region: Any) -> None:
    response = client.post(BATCH, json={"tokens": ["x"] * 1001})

    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "REQUEST_TOO_LARGE"
    assert "1000" in response.json["detail"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"tokens": []}, id="empty-list"),
        pytest.param({"tokens": "x"}, id="not-a-list"),
        pytest.param({"tokens": ["x", 1]}, id="a-number"),
        pytest.param({"tokens": ["x", None]}, id="a-null"),
        pytest.param({"tokens": [["x"]]}, id="a-list"),
        pytest.param({"tokens": [{"token": "x"}]}, id="an-object"),
        pytest.param({"tokens": ["x"], "qr": "y"}, id="extra-member"),
        pytest.param({"token": "x"}, id="single-verify-body"),
        pytest.param({}, id="empty-object"),
        pytest.param(["x"], id="bare-list"),
        pytest.param(None, id="null"),
        pytest.param("x", id="string"),
    ],
)
def test_a_body_that_is_not_a_list_of_tokens_is_a_400_problem(client: FlaskClient, region: Any, body: Any) -> None:
    response = client.post(BATCH, data=json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "BAD_REQUEST"
    assert "tokens" in response.json["detail"]
