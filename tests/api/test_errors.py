"""Errors on the wire: RFC 9457 problem details for every failure, nothing leaked on a 500."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from deployment import ConfigurationError
from documents.errors import FontsMissing
from documents.reading import MAX_PDF_BYTES
from registry.api import MAX_BATCH_BYTES
from registry.demo import sample_request
from signing.errors import KeyStorageError
from tests.conftest import OFFICE_CODE, FixedClock, init_test_region, make_app, make_office
from tests.databases import sqlite_with_schema

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


# ---------------------------------------------------------------- hostile request bodies
#
# Every endpoint that reads a body, against every way a body can be hostile: too large,
# not declared as what the endpoint reads, or not strictly parseable. Reading requests
# touches no data, so one SQLite deployment serves the whole table.


@dataclass(frozen=True)
class BodyEndpoint:
    path: str
    authenticated: bool


BODY_ENDPOINTS = {
    "issue": BodyEndpoint(CERTIFICATES, authenticated=True),
    "issue-batch": BodyEndpoint(f"{CERTIFICATES}/batch", authenticated=True),
    "status": BodyEndpoint(f"{CERTIFICATES}/DL.anything/status", authenticated=True),
    "verify": BodyEndpoint("/api/v1/verify", authenticated=False),
    "verify-batch": BodyEndpoint("/api/v1/verify/batch", authenticated=False),
    "verify-pdf": BodyEndpoint("/api/v1/verify/pdf", authenticated=False),
}
JSON_ENDPOINTS = ("issue", "issue-batch", "status", "verify", "verify-batch")
BOUNDARY = "ecert-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(content: bytes, field: str = "file") -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="c.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


# (content type or None for no header, body) → expected status and code, per kind of endpoint.
JSON_BODIES: dict[str, tuple[str | None, bytes, int, str]] = {
    "over-1-mib": ("application/json", b'{"token": "' + b"x" * ONE_MIB + b'"}', 413, "REQUEST_TOO_LARGE"),
    "over-1-mib-undeclared": (None, b"x" * (ONE_MIB + 1), 415, "UNSUPPORTED_MEDIA_TYPE"),
    "no-content-type": (None, b'{"token": "x"}', 415, "UNSUPPORTED_MEDIA_TYPE"),
    "text-plain": ("text/plain", b'{"token": "x"}', 415, "UNSUPPORTED_MEDIA_TYPE"),
    "form": ("application/x-www-form-urlencoded", b"token=x", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "multipart": (MULTIPART, multipart(b"{}"), 415, "UNSUPPORTED_MEDIA_TYPE"),
    "xml": ("application/xml", b"<token>x</token>", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "json-lookalike": ("application/jsonx", b'{"token": "x"}', 415, "UNSUPPORTED_MEDIA_TYPE"),
    "empty": ("application/json", b"", 400, "MALFORMED_JSON"),
    "truncated": ("application/json", b'{"token": ', 400, "MALFORMED_JSON"),
    "single-quotes": ("application/json", b"{'token': 'x'}", 400, "MALFORMED_JSON"),
    "trailing-comma": ("application/json", b'{"token": "x",}', 400, "MALFORMED_JSON"),
    "two-values": ("application/json", b"{} {}", 400, "MALFORMED_JSON"),
    "not-utf8": ("application/json", b'{"token": "\xff\xfe"}', 400, "MALFORMED_JSON"),
    "utf16-declared": ("application/json; charset=utf-16", '{"token": "x"}'.encode("utf-16"), 400, "MALFORMED_JSON"),
    "utf8-bom": ("application/json", b'\xef\xbb\xbf{"token": "x"}', 400, "MALFORMED_JSON"),
    "duplicate-member": ("application/json", b'{"token": "a", "token": "b"}', 400, "MALFORMED_JSON"),
    "duplicate-nested": ("application/json", b'{"holder": {"name": "a", "name": "b"}}', 400, "MALFORMED_JSON"),
    "nan": ("application/json", b'{"token": NaN}', 400, "MALFORMED_JSON"),
    "infinity": ("application/json", b'{"token": Infinity}', 400, "MALFORMED_JSON"),
    "minus-infinity": ("application/json", b'{"token": -Infinity}', 400, "MALFORMED_JSON"),
    "overflowing-number": ("application/json", b'{"token": 1e400}', 400, "MALFORMED_JSON"),
    "deep-nesting": ("application/json", b"[" * 100_000 + b"]" * 100_000, 400, "MALFORMED_JSON"),
}
PDF_BODIES: dict[str, tuple[str | None, bytes, int, str]] = {
    "over-4-mib": (MULTIPART, multipart(b"%PDF-1.7\n" + b"%" * (MAX_PDF_BYTES + 1)), 413, "PDF_TOO_LARGE"),
    "no-content-type": (None, b"%PDF-1.7\n", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "json": ("application/json", b'{"token": "x"}', 415, "UNSUPPORTED_MEDIA_TYPE"),
    "raw-pdf": ("application/pdf", b"%PDF-1.7\n", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "text-plain": ("text/plain", b"%PDF-1.7\n", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "form": ("application/x-www-form-urlencoded", b"file=x", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "over-4-mib-undeclared": ("application/pdf", b"%" * (MAX_PDF_BYTES + 1), 415, "UNSUPPORTED_MEDIA_TYPE"),
    "no-boundary": ("multipart/form-data", multipart(b"%PDF-1.7\n"), 400, "BAD_REQUEST"),
    "garbage-multipart": (MULTIPART, b"garbage", 400, "BAD_REQUEST"),
    "truncated-multipart": (MULTIPART, multipart(b"%PDF-1.7\n")[:-20], 400, "BAD_REQUEST"),
    "wrong-field": (MULTIPART, multipart(b"%PDF-1.7\n", field="pdf"), 400, "BAD_REQUEST"),
}
# The batch endpoint reads up to 4 MiB (registry.api.MAX_BATCH_BYTES): its own size case.
BATCH_TOO_LARGE = ("application/json", b'{"items": ["' + b"x" * MAX_BATCH_BYTES + b'"]}', 413, "REQUEST_TOO_LARGE")
HOSTILE_BODIES = (
    [
        pytest.param(endpoint, *case, id=f"{endpoint}-{name}")
        for endpoint in JSON_ENDPOINTS
        for name, case in JSON_BODIES.items()
        if (endpoint, name) not in {("issue-batch", "over-1-mib"), ("verify-batch", "over-1-mib")}
    ]
    + [pytest.param("issue-batch", *BATCH_TOO_LARGE, id="issue-batch-over-4-mib")]
    # So does the verification batch (verify.api.MAX_BATCH_BYTES).
    + [pytest.param("verify-batch", *BATCH_TOO_LARGE, id="verify-batch-over-4-mib")]
    + [pytest.param("verify-pdf", *case, id=f"verify-pdf-{name}") for name, case in PDF_BODIES.items()]
)


@dataclass(frozen=True)
class HostileTarget:
    client: FlaskClient
    auth: dict[str, str]


@pytest.fixture(scope="module")
def hostile_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileTarget]:
    clock = FixedClock()
    database = sqlite_with_schema(str(tmp_path_factory.mktemp("hostile") / "ecert.db"))
    application = make_app(database, clock)
    running = application.extensions["ecert"]
    with running.session() as session:
        init_test_region(session, running.keyring, clock)
        office = make_office(session, running.keyring, clock, OFFICE_CODE, ["BL", "DL", "PQ"])
    yield HostileTarget(application.test_client(), office.auth)
    running.dispose()


def test_the_hostile_table_covers_every_endpoint_that_reads_a_body(app: Flask) -> None:
    with_body = {
        rule.rule.replace("<path:certificate_id>", "DL.anything")
        for rule in app.url_map.iter_rules()
        if rule.methods and rule.methods & {"POST", "PUT", "PATCH"}
    }

    assert with_body == {endpoint.path for endpoint in BODY_ENDPOINTS.values()}


@pytest.mark.parametrize(("endpoint", "content_type", "body", "status", "code"), HOSTILE_BODIES)
def test_hostile_bodies_get_a_problem_with_a_stable_code(
    hostile_target: HostileTarget, endpoint: str, content_type: str | None, body: bytes, status: int, code: str
) -> None:
    target = BODY_ENDPOINTS[endpoint]
    headers = dict(hostile_target.auth) if target.authenticated else {}
    if content_type is not None:
        headers["Content-Type"] = content_type

    response = hostile_target.client.post(target.path, data=body, headers=headers)

    problem = assert_problem(response, status, code)
    assert set(problem) <= {"type", "title", "status", "detail", "code"}
    assert problem["type"] == f"urn:ecert:problem:{code.lower().replace('_', '-')}"
