"""Errors on the wire: RFC 9457 problem details for every failure, nothing leaked on a 500."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError

from deployment import ConfigurationError
from documents.errors import FontsMissing
from registry.demo import sample_request
from signing.errors import KeyStorageError

CERTIFICATES = "/api/v1/certificates"
ONE_MIB = 1024 * 1024
SECRET = "postgresql://ecert:hunter2@db.internal/ecert"


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with our stable ``code``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert problem["status"] == status
    assert problem["code"] == code
    assert isinstance(problem["type"], str) and problem["type"]
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str)
    assert response.headers["Cache-Control"] == "no-store"
    return problem  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/nothing", "/api/v1/certificates/"])
def test_unknown_route_is_a_404_problem(client, path):
    assert_problem(client.get(path), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("DELETE", "/api/v1/catalog", "GET", id="delete-catalog"),
        pytest.param("GET", CERTIFICATES, "POST", id="get-certificates"),
        pytest.param("PUT", "/.well-known/jwks.json", "GET", id="put-jwks"),
        pytest.param("GET", "/api/v1/verify", "POST", id="get-verify"),
    ],
)
def test_wrong_method_is_a_405_problem_with_allow(client, method, path, allowed):
    response = client.open(path, method=method)

    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert allowed in {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.parametrize(
    "path",
    [CERTIFICATES, f"{CERTIFICATES}/DL.anything/status"],
    ids=["issue", "status"],
)
def test_body_over_one_mib_is_a_413_problem(client, office, path):
    body = b'{"type": "DL", "padding": "' + b"x" * ONE_MIB + b'"}'

    response = client.post(path, data=body, content_type="application/json", headers=office.auth)

    assert_problem(response, 413, "REQUEST_TOO_LARGE")


def test_body_just_under_one_mib_is_read(client, office):
    padding = "x" * (ONE_MIB - 4096)
    body = {**sample_request("DL"), "padding": padding}

    response = client.post(CERTIFICATES, json=body, headers=office.auth)

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert {e["field"] for e in problem["errors"]} == {"padding"}


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
    ids=["none", "text", "form", "multipart"],
)
@pytest.mark.parametrize("path", [CERTIFICATES, f"{CERTIFICATES}/DL.anything/status"], ids=["issue", "status"])
def test_body_not_declared_json_is_a_415_problem(client, office, path, content_type):
    headers = dict(office.auth)
    if content_type:
        headers["Content-Type"] = content_type

    response = client.post(path, data='{"type": "DL"}', headers=headers)

    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"type": ', id="truncated"),
        pytest.param(b"{'type': 'DL'}", id="single-quotes"),
        pytest.param(b'{"type": "DL",}', id="trailing-comma"),
        pytest.param(b'{"type": "\xff\xfe"}', id="not-utf8"),
        pytest.param(b"", id="empty"),
    ],
)
def test_malformed_json_is_a_400_problem(client, office, body):
    response = client.post(CERTIFICATES, data=body, content_type="application/json", headers=office.auth)

    assert_problem(response, 400, "MALFORMED_JSON")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        pytest.param(RuntimeError(f"cannot connect to {SECRET}"), 500, "INTERNAL", id="runtime-error"),
        pytest.param(KeyError(SECRET), 500, "INTERNAL", id="key-error"),
        pytest.param(ConfigurationError(f"bad ECERT_DATABASE_URL {SECRET}"), 500, "INTERNAL", id="configuration"),
        pytest.param(
            OperationalError("SELECT * FROM office -- hunter2", {}, Exception(SECRET)), 500, "INTERNAL", id="database"
        ),
        # The deployment's passphrase does not open its keys: unavailable, but still say nothing more.
        pytest.param(KeyStorageError(f"cannot decrypt key with {SECRET}"), 503, "KEY_STORAGE", id="key-storage"),
        # The font is not installed: operators get the path in the log, clients nothing.
        pytest.param(FontsMissing(f"/srv/{SECRET}/.fonts/x.ttf is missing"), 503, "FONTS_MISSING", id="fonts-missing"),
    ],
)
def test_unexpected_exception_is_a_problem_that_reveals_nothing(app: Flask, error, status, code):
    def explode() -> None:
        raise error

    app.add_url_rule("/test/explode", view_func=explode)

    response = app.test_client().get("/test/explode")

    problem = assert_problem(response, status, code)
    text = response.get_data(as_text=True)
    for leak in ("hunter2", "db.internal", "Traceback", type(error).__name__, "SELECT", __file__):
        assert leak not in text
    assert set(problem) == {"type", "title", "status", "detail", "code"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/api/v1/catalog", 200, id="catalog"),
        pytest.param("GET", "/.well-known/jwks.json", 200, id="jwks"),
        pytest.param("GET", "/nothing", 404, id="not-found"),
        pytest.param("DELETE", "/api/v1/catalog", 405, id="wrong-method"),
        pytest.param("POST", CERTIFICATES, 401, id="unauthenticated"),
    ],
)
def test_responses_say_nosniff(client, region, method, path, status):
    response = client.open(path, method=method)

    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_an_issued_certificate_response_says_nosniff(client, office):
    response = client.post(CERTIFICATES, json=sample_request("PQ"), headers=office.auth)

    assert response.status_code == 201
    assert response.headers["X-Content-Type-Options"] == "nosniff"
