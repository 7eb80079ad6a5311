"""Security headers on every route of the application, answers and errors alike.

The route table is read from ``app.url_map``, so a route added later is checked too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from registry.demo import sample_request
from tests.conftest import FixedClock, OfficeFixture, make_app
from tests.databases import sqlite_with_schema
from web.audiences import Audience, audience_of
from web.headers import API_POLICY, HSTS, PAGE_POLICY

PAGE_BLUEPRINTS = {"pages"}
ARGUMENT = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    # Headers do not depend on the database; SQLite only keeps the table cheap.
    return sqlite_with_schema(str(tmp_path / "ecert.db"))


@pytest.fixture
def certificate_id(client: FlaskClient, office: OfficeFixture) -> str:
    issued = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth)
    assert issued.status_code == 201 and issued.json is not None, issued.data
    return str(issued.json["id"])


def concrete_path(rule: Rule, certificate_id: str) -> str:
    values = {"certificate_id": certificate_id, "filename": "verify.css"}
    return ARGUMENT.sub(lambda m: values.get(m.group(1), "x"), rule.rule)


def requests_for_every_route(app: Flask) -> list[tuple[Rule, str]]:
    return [
        (rule, method)
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]


def assert_baseline(response: Any, *, page: bool, personal: bool, label: str) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff", label
    assert headers["Referrer-Policy"] == "no-referrer", label
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], label
    assert headers["Content-Security-Policy"] == (PAGE_POLICY if page else API_POLICY), label
    if page:
        assert headers["X-Frame-Options"] == "DENY", label
    assert "Strict-Transport-Security" not in headers, label  # plain HTTP
    if personal:
        assert headers["Cache-Control"] == "no-store", label


def test_every_route_with_and_without_credentials(
    app: Flask, client: FlaskClient, office: OfficeFixture, certificate_id: str
) -> None:
    table = requests_for_every_route(app)
    assert len(table) >= 20  # the scan sees the application's routes

    for rule, method in table:
        path = concrete_path(rule, certificate_id)
        audience = audience_of(rule.endpoint, rule.rule)
        body = {"token": "not a token"} if audience is Audience.VERIFICATION else {}
        for auth in ({}, office.auth):
            response = client.open(path, method=method, json=body if method == "POST" else None, headers=auth)
            page = rule.endpoint.split(".")[0] in PAGE_BLUEPRINTS or response.mimetype == "text/html"
            label = f"{method} {path} {'with' if auth else 'without'} credentials -> {response.status_code}"
            assert_baseline(response, page=page, personal=audience is not Audience.PUBLIC, label=label)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/nothing", 404, id="unknown-route"),
        pytest.param("GET", "/api/v1/nothing", 404, id="unknown-api-route"),
        pytest.param("GET", "/static/page/missing.js", 404, id="missing-asset"),
        pytest.param("GET", "/api/v1/verify", 405, id="wrong-method"),
        pytest.param("POST", "/api/v1/certificates", 401, id="no-credentials"),
        pytest.param("GET", "/api/v1/certificates/DL.x", 401, id="no-credentials-lookup"),
        pytest.param("POST", "/api/v1/verify", 415, id="verify-not-json"),
    ],
)
def test_error_answers_carry_the_headers(client: FlaskClient, method: str, path: str, status: int) -> None:
    response = client.open(path, method=method)

    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"
    assert_baseline(response, page=path.startswith("/static/page/"), personal=True, label=path)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("POST", "/api/v1/verify", 200, id="verify"),
        pytest.param("GET", "/api/v1/status/{id}", 200, id="status-answer"),
        pytest.param("GET", "/api/v1/certificates/{id}", 200, id="certificate"),
        pytest.param("POST", "/api/v1/certificates/{id}/status", 200, id="status-change"),
    ],
)
def test_verification_and_personal_answers_are_never_stored(
    client: FlaskClient, office: OfficeFixture, certificate_id: str, method: str, path: str, status: int
) -> None:
    body = {"token": "x"} if "verify" in path else {"status": "SUSPENDED", "reason": "test"}
    auth = office.auth if path.startswith("/api/v1/certificates") else {}
    response = client.open(
        path.format(id=certificate_id), method=method, json=body if method == "POST" else None, headers=auth
    )

    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


def test_issuance_answer_is_never_stored(client: FlaskClient, office: OfficeFixture) -> None:
    response = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth)

    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "cache_control"),
    [
        pytest.param("/.well-known/jwks.json", "public, max-age=300", id="jwks"),
        pytest.param("/.well-known/ecert/trust-list", "public, max-age=300", id="trust-list"),
        pytest.param("/.well-known/ecert/status-list", "public, max-age=60", id="status-list"),
        pytest.param("/api/v1/log/checkpoint", "no-cache", id="checkpoint"),
        pytest.param("/api/v1/log/entries?start=0&end=1", "public, max-age=60", id="log-entries"),
    ],
)
def test_public_documents_keep_their_cache_headers(
    client: FlaskClient, certificate_id: str, path: str, cache_control: str
) -> None:
    response = client.get(path)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == cache_control
    assert response.headers["Content-Security-Policy"] == API_POLICY


@pytest.fixture
def app_behind_proxy(database_url: str, clock: FixedClock) -> Iterator[Flask]:
    application = make_app(database_url, clock, ECERT_TRUSTED_PROXIES="1")
    yield application
    application.extensions["ecert"].dispose()


@pytest.mark.parametrize("path", ["/v", "/api/v1/catalog", "/nothing"])
def test_hsts_only_over_https(client: FlaskClient, app_behind_proxy: Flask, path: str) -> None:
    forwarded = {"X-Forwarded-Proto": "https"}
    proxied = app_behind_proxy.test_client()

    assert client.get(path, base_url="https://ecert.sh.example").headers["Strict-Transport-Security"] == HSTS
    assert "Strict-Transport-Security" not in client.get(path).headers
    # Without trusted proxies a client cannot claim HTTPS; behind a trusted one it can.
    assert "Strict-Transport-Security" not in client.get(path, headers=forwarded).headers
    assert proxied.get(path, headers=forwarded).headers["Strict-Transport-Security"] == HSTS
    assert "Strict-Transport-Security" not in proxied.get(path).headers
