"""The OpenAPI document: valid OpenAPI 3.1, exactly the routes the app has, every error a
route answers documented with its status and body, and a docs page that shows it all.

Schemathesis checks the same document against a live server with generated requests
(tests/e2e/test_schemathesis.py); here each documented error is provoked on purpose, so
the rare ones (409, 413, 415, 429, 503) are certain to be checked.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from markupsafe import escape
from werkzeug.routing import Rule

from app import HTTP_STATUS
from registry.demo import sample_request
from tests.conftest import FixedClock, make_app
from verify.codes import REASONS
from web.openapi import HTTP_METHODS, openapi_document

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "web" / "openapi.json"
SCHEMAS = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))["components"]["schemas"]
DOCUMENTED_PREFIXES = ("/api", "/.well-known", "/v")
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
# Codes no documented operation answers: ALREADY_EXISTS is the CLI's; METHOD_NOT_ALLOWED
# answers the methods a path does not have, which the document does not list.
CODES_WITHOUT_AN_OPERATION = {"ALREADY_EXISTS", "METHOD_NOT_ALLOWED"}
ONE_MIB = 1024 * 1024


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))


def documented_operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method.upper(), item[method]


def resolve(document: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in spec:
        kind, name = spec["$ref"].removeprefix("#/components/").split("/", 1)
        spec = document["components"][kind][name]
    return spec


def openapi_path(rule: Rule) -> str:
    """``/api/v1/status/<path:certificate_id>`` → ``/api/v1/status/{certificate_id}``."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)


def app_operations(app: Flask) -> set[tuple[str, str]]:
    return {
        (openapi_path(rule), method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(DOCUMENTED_PREFIXES)
        for method in (rule.methods or set()) - IMPLICIT_METHODS
    }


# ---------------------------------------------------------------- the document itself


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    loaded = schemathesis.openapi.from_dict(document)

    loaded.validate()  # the OpenAPI 3.1 meta-schema
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["version"]
    assert document["servers"] == [{"url": "/", "description": document["servers"][0]["description"]}]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_is_valid_json_schema_2020_12(name: str) -> None:
    Draft202012Validator.check_schema(SCHEMAS[name])


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    for reference in set(re.findall(r'"\$ref": "#/components/([^"]+)"', text)):
        kind, name = reference.split("/", 1)
        assert name in document["components"][kind], reference


def test_operations_have_unique_ids_summaries_and_known_tags(document: dict[str, Any]) -> None:
    tags = {tag["name"] for tag in document["tags"]}
    operations = list(documented_operations(document))
    ids = [spec["operationId"] for _, _, spec in operations]

    assert len(ids) == len(set(ids))
    for path, method, spec in operations:
        assert spec["summary"], (method, path)
        assert set(spec["tags"]) <= tags, (method, path)


def test_security_schemes_are_office_and_optional_partner_tokens(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    security = {(path, method): spec.get("security", []) for path, method, spec in documented_operations(document)}

    assert schemes["officeToken"]["scheme"] == schemes["partnerToken"]["scheme"] == "bearer"
    assert {key for key, value in security.items() if value == [{"officeToken": []}]} == {
        ("/api/v1/certificates", "POST"),
        ("/api/v1/certificates/batch", "POST"),
        ("/api/v1/certificates/{certificate_id}", "GET"),
        ("/api/v1/certificates/{certificate_id}/pdf", "GET"),
        ("/api/v1/certificates/{certificate_id}/status", "POST"),
    }
    assert {key for key, value in security.items() if value == [{}, {"partnerToken": []}]} == {
        ("/api/v1/verify", "POST"),
        ("/api/v1/verify/batch", "POST"),
        ("/api/v1/verify/pdf", "POST"),
        ("/api/v1/status/{certificate_id}", "GET"),
    }


def test_the_verification_code_enum_is_the_reason_table(document: dict[str, Any]) -> None:
    answer = document["components"]["schemas"]["VerificationAnswer"]

    assert answer["properties"]["code"]["enum"] == list(REASONS)


# ---------------------------------------------------------------- exactly the app's routes


def test_every_route_is_documented_and_every_documented_operation_exists(app: Flask, document: dict[str, Any]) -> None:
    documented = {(path, method) for path, method, _ in documented_operations(document)}

    assert app_operations(app) == documented


def test_path_parameters_are_the_routes_arguments(app: Flask, document: dict[str, Any]) -> None:
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(DOCUMENTED_PREFIXES):
            continue
        for method in (rule.methods or set()) - IMPLICIT_METHODS:
            spec = document["paths"][openapi_path(rule)][method.lower()]
            parameters = [resolve(document, p) for p in spec.get("parameters", [])]
            in_path = {p["name"] for p in parameters if p["in"] == "path"}
            assert in_path == set(rule.arguments), (method, rule.rule)


def test_every_documented_problem_code_has_its_http_status(document: dict[str, Any]) -> None:
    documented: dict[str, set[int]] = {}
    for _, _, spec in documented_operations(document):
        for status, answer in spec["responses"].items():
            for code in problem_codes(document, resolve(document, answer)):
                documented.setdefault(code, set()).add(int(status))
    table = {**HTTP_STATUS, "INTERNAL": 500}

    for code, statuses in documented.items():
        assert statuses == {table[code]}, code
    assert set(table) - CODES_WITHOUT_AN_OPERATION <= set(documented)


def problem_codes(document: dict[str, Any], answer: dict[str, Any]) -> list[str]:
    media = answer.get("content", {}).get("application/problem+json")
    if media is None:
        return []
    schema = media["schema"]
    if "allOf" in schema:
        return schema["allOf"][1]["properties"]["code"]["enum"]  # type: ignore[no-any-return]
    return [resolve(document, schema)["properties"]["code"]["const"]]


def test_office_operations_document_401_with_www_authenticate(document: dict[str, Any]) -> None:
    for path, method, spec in documented_operations(document):
        if spec.get("security"):
            unauthenticated = resolve(document, spec["responses"]["401"])
            assert "WWW-Authenticate" in unauthenticated["headers"], (method, path)


def test_every_operation_documents_429_with_retry_after(document: dict[str, Any]) -> None:
    for path, method, spec in documented_operations(document):
        limited = resolve(document, spec["responses"]["429"])
        assert "Retry-After" in limited["headers"], (method, path)


# ---------------------------------------------------------------- each error, provoked


def assert_documented(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    """The answer's status, media type, body and required headers are as documented."""
    spec = document["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in spec["responses"], f"{method} {path}: {status} is not documented"
    answer = resolve(document, spec["responses"][status])
    assert response.mimetype in answer["content"], f"{method} {path} {status}: {response.mimetype}"
    schema = answer["content"][response.mimetype]["schema"]
    body: Any = response.get_data(as_text=True)
    if response.mimetype.endswith("json"):
        body = response.json
    # Resolve the document's "#/components/..." references within one root.
    Draft202012Validator({**schema, "components": document["components"]}).validate(body)
    for name, header in answer.get("headers", {}).items():
        if resolve(document, header).get("required"):
            assert name in response.headers, f"{method} {path} {status}: no {name}"


def test_provoked_errors_are_documented(
    client: FlaskClient, office: Any, other_office: Any, document: dict[str, Any]
) -> None:
    issued = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth).json
    revoked = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth).json
    client.post(
        f"/api/v1/certificates/{revoked['id']}/status", json={"status": "REVOKED", "reason": "x"}, headers=office.auth
    )
    certificate = "/api/v1/certificates/{certificate_id}"
    batch = "/api/v1/certificates/batch"
    # Issued, refused per item (type not held, bad fields, not an object), replayed, conflicting.
    batch_items = [
        {**sample_request("PQ"), "idempotency_key": "k1"},
        sample_request("BL") | {"type": "XX"},
        {"fields": {}},
        "not an object",
        {**sample_request("PQ"), "idempotency_key": "k1"},
        {**sample_request("DL"), "idempotency_key": "k1"},
    ]
    bad_token = {"Authorization": "Bearer ecert_not-a-token"}
    bad_partner_token = {"Authorization": "Bearer ecertp_not-a-token"}
    json_header = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, str, dict[str, Any], str]] = [
        ("POST", "/api/v1/certificates", "/api/v1/certificates", {"json": {}}, "UNAUTHENTICATED"),
        ("POST", "/api/v1/certificates", "/api/v1/certificates", {"json": {}, "headers": bad_token}, "UNAUTHENTICATED"),
        (
            "POST",
            "/api/v1/certificates",
            "/api/v1/certificates",
            {"data": "{", "headers": {**office.auth, **json_header}},
            "MALFORMED_JSON",
        ),
        (
            "POST",
            "/api/v1/certificates",
            "/api/v1/certificates",
            {"data": "x", "headers": office.auth},
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "POST",
            "/api/v1/certificates",
            "/api/v1/certificates",
            {"data": "[" + " " * ONE_MIB + "]", "headers": {**office.auth, **json_header}},
            "REQUEST_TOO_LARGE",
        ),
        (
            "POST",
            "/api/v1/certificates",
            "/api/v1/certificates",
            {"json": {}, "headers": office.auth},
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            "/api/v1/certificates",
            "/api/v1/certificates",
            {"json": sample_request("BL"), "headers": other_office.auth},
            "FORBIDDEN",
        ),
        (
            "POST",
            "/api/v1/certificates",
            "/api/v1/certificates",
            {"json": sample_request("PQ"), "headers": {**office.auth, "Idempotency-Key": "k1"}},
            None,
        ),
        (
            "POST",
            "/api/v1/certificates",
            "/api/v1/certificates",
            {"json": sample_request("DL"), "headers": {**office.auth, "Idempotency-Key": "k1"}},
            "IDEMPOTENCY_CONFLICT",
        ),
        ("POST", batch, batch, {"json": {"items": []}}, "UNAUTHENTICATED"),
        ("POST", batch, batch, {"json": {"items": batch_items}, "headers": office.auth}, None),
        ("POST", batch, batch, {"json": {"items": [{}] * 1001}, "headers": office.auth}, "REQUEST_TOO_LARGE"),
        ("POST", batch, batch, {"json": {"items": []}, "headers": office.auth}, "VALIDATION_FAILED"),
        ("POST", batch, batch, {"data": "[", "headers": {**office.auth, **json_header}}, "MALFORMED_JSON"),
        ("GET", certificate, f"/api/v1/certificates/{issued['id']}", {"headers": office.auth}, None),
        ("GET", certificate, f"/api/v1/certificates/{issued['id']}", {"headers": other_office.auth}, "NOT_FOUND"),
        ("GET", certificate, "/api/v1/certificates/a%00b", {"headers": office.auth}, "NOT_FOUND"),
        ("GET", certificate + "/pdf", f"/api/v1/certificates/{issued['id']}/pdf", {}, "UNAUTHENTICATED"),
        ("GET", certificate + "/pdf", "/api/v1/certificates/DL.x/pdf", {"headers": office.auth}, "NOT_FOUND"),
        (
            "POST",
            certificate + "/status",
            f"/api/v1/certificates/{revoked['id']}/status",
            {"json": {"status": "VALID", "reason": "x"}, "headers": office.auth},
            "STATUS_TRANSITION_REFUSED",
        ),
        (
            "POST",
            certificate + "/status",
            f"/api/v1/certificates/{issued['id']}/status",
            {"json": {"status": "NOPE"}, "headers": office.auth},
            "VALIDATION_FAILED",
        ),
        (
            "POST",
            certificate + "/status",
            f"/api/v1/certificates/{issued['id']}/status",
            {"json": {"status": "SUSPENDED", "reason": "x"}, "headers": office.auth},
            None,
        ),
        ("POST", "/api/v1/verify", "/api/v1/verify", {"json": {"token": issued["token"]}}, None),
        ("POST", "/api/v1/verify", "/api/v1/verify", {"json": {"qr_text": revoked["qr_text"]}}, None),
        ("POST", "/api/v1/verify", "/api/v1/verify", {"json": {"token": "x.y.z"}}, None),
        ("POST", "/api/v1/verify", "/api/v1/verify", {"data": "null", "headers": json_header}, "BAD_REQUEST"),
        ("POST", "/api/v1/verify", "/api/v1/verify", {"json": {}, "headers": bad_partner_token}, "UNAUTHENTICATED"),
        (
            "GET",
            "/api/v1/status/{certificate_id}",
            "/api/v1/status/x",
            {"headers": bad_partner_token},
            "UNAUTHENTICATED",
        ),
        ("POST", "/api/v1/verify/pdf", "/api/v1/verify/pdf", {"json": {}}, "UNSUPPORTED_MEDIA_TYPE"),
        (
            "POST",
            "/api/v1/verify/pdf",
            "/api/v1/verify/pdf",
            {"data": {"other": "x"}, "content_type": "multipart/form-data"},
            "BAD_REQUEST",
        ),
        (
            "POST",
            "/api/v1/verify/pdf",
            "/api/v1/verify/pdf",
            {"data": {"file": (io.BytesIO(b""), "a.pdf")}},
            "PDF_UNREADABLE",
        ),
        (
            "POST",
            "/api/v1/verify/pdf",
            "/api/v1/verify/pdf",
            {"data": {"file": (io.BytesIO(b"%PDF-" + b"0" * (4 * ONE_MIB)), "a.pdf")}},
            "PDF_TOO_LARGE",
        ),
        ("GET", "/api/v1/status/{certificate_id}", f"/api/v1/status/{issued['id']}", {}, None),
        ("GET", "/api/v1/status/{certificate_id}", "/api/v1/status/" + "X" * 65, {}, "BAD_REQUEST"),
        ("GET", "/api/v1/status/{certificate_id}", "/api/v1/status/a%00b", {}, "BAD_REQUEST"),
        ("GET", "/api/v1/status/{certificate_id}", "/api/v1/status/a%0Ab", {}, "NOT_FOUND"),
        ("GET", "/api/v1/log/entries", "/api/v1/log/entries?start=0&end=2", {}, None),
        ("GET", "/api/v1/log/entries", "/api/v1/log/entries?start=01&end=2", {}, "BAD_REQUEST"),
        ("GET", "/api/v1/log/proof/inclusion", "/api/v1/log/proof/inclusion?index=0&size=2", {}, None),
        ("GET", "/api/v1/log/proof/consistency", "/api/v1/log/proof/consistency?from=1&to=9", {}, "BAD_REQUEST"),
    ]
    for method, documented_path, url, options, code in cases:
        response = client.open(url, method=method, **options)
        assert_documented(document, documented_path, method, response)
        if code is None:
            assert response.status_code < 300, (method, url, response.get_data(as_text=True)[:300])
        else:
            assert response.json["code"] == code, (method, url, response.json)


def test_every_public_read_is_documented(client: FlaskClient, office: Any, document: dict[str, Any]) -> None:
    client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth)
    for path, method, spec in documented_operations(document):
        if (
            "{" in path
            or spec.get("security")
            or spec.get("requestBody")
            or any(resolve(document, p).get("required") for p in spec.get("parameters", []))
        ):
            continue
        assert_documented(document, path, method, client.open(path, method=method))


def test_before_region_init_every_operation_answers_as_documented(
    client: FlaskClient, document: dict[str, Any]
) -> None:
    for path, method, _ in documented_operations(document):
        url = path.replace("{certificate_id}", "DL.x") + ("?start=0&end=1&index=0&size=1&from=1&to=1")
        response = client.open(url, method=method, json={"token": "x"} if method == "POST" else None)
        assert_documented(document, path, method, response)


@pytest.fixture
def limited_app(database_url: str, tmp_path: Any) -> Iterator[Flask]:
    """An app whose anonymous verification allows one request a minute."""
    application = make_app(
        database_url, FixedClock(), ECERT_VERIFY_RATE_LIMIT="1/minute", ECERT_PUBLIC_RATE_LIMIT="1/minute"
    )
    yield application
    application.extensions["ecert"].dispose()


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        ("POST", "/api/v1/verify", {"json": {"token": "x"}}),
        ("GET", "/api/v1/catalog", {}),
    ],
)
def test_rate_limited_answers_are_documented(
    limited_app: Flask, document: dict[str, Any], method: str, path: str, options: dict[str, Any]
) -> None:
    client = limited_app.test_client()
    client.open(path, method=method, **options)

    response = client.open(path, method=method, **options)

    assert response.status_code == 429
    assert_documented(document, path, method, response)


# ---------------------------------------------------------------- serving it


def test_the_document_is_served_as_committed(client: FlaskClient, document: dict[str, Any]) -> None:
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json == document == openapi_document()


def test_docs_page_lists_every_operation_from_the_document(client: FlaskClient, document: dict[str, Any]) -> None:
    response = client.get("/api/docs")
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert 'href="/api/v1/openapi.json"' in page
    for path, method, spec in documented_operations(document):
        section = page.split(f'id="op-{spec["operationId"]}"', 1)[1].split("</section>", 1)[0]
        assert f'<code class="operation__method">{method}</code> <code class="operation__path">{path}</code>' in section
        assert str(escape(spec["summary"])) in section
        for status in spec["responses"]:
            assert f"<dt><code>{status}</code></dt>" in section, (method, path, status)
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page


def test_docs_page_runs_no_script_and_loads_nothing_from_elsewhere(client: FlaskClient) -> None:
    response = client.get("/api/docs")
    page = response.get_data(as_text=True)
    policy = response.headers["Content-Security-Policy"]

    assert "<script" not in page
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)
