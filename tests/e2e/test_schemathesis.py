"""Schemathesis against a real gunicorn server: the API does what its OpenAPI document says.

The deployment is set up through its CLI (region, two offices, a partner region) and
seeded over HTTP with certificates in several states. Office operations run with a real
office API token, the verification operations with and without a real partner token, and
the generated inputs (positive and negative) are mixed with real ones: identifiers,
tokens, QR texts, a real PDF, issuance and status-change bodies, log ranges inside the
log, and identifiers no registry can hold. So the answers checked include VALID and
INVALID verifications, certificates, PDFs, status changes and proofs, not only refusals.

Every answer must be: no 5xx; a documented status; a documented media type; a body
valid against the documented schema; the documented headers. Rate limits are off: the
generated traffic is a burst, with failed authentications on purpose.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import response_content_type
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry.demo import sample_request
from tests.e2e.live import LiveDeployment, Server, free_port, fresh_database, http

pytestmark = [
    pytest.mark.e2e,
    # The PDF mixed into uploads makes a long repr of the generated case; that is fine.
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

DOCUMENT = Path(__file__).resolve().parents[2] / "web" / "openapi.json"
REGION_CODE = "310000"
OFFICE_CODE = "11310000002418960M"
OTHER_OFFICE_CODE = "11310000MB03195470"
PARTNER_REGION = "440000"
MAX_EXAMPLES = 25
JWT = "application/jwt"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
NO_LIMITS = {
    "ECERT_VERIFY_RATE_LIMIT": "off",
    "ECERT_PARTNER_RATE_LIMIT": "off",
    "ECERT_PUBLIC_RATE_LIMIT": "off",
    "ECERT_AUTH_FAILURE_LIMIT": "off",
}
# Not identifiers: PostgreSQL text cannot hold U+0000; the registry's column holds 64 characters.
IMPOSSIBLE_IDS = ["DL.\x00", "\x00", "X" * 65]

# The committed document (the test below checks the server serves exactly this one).
# The examples phase is off: the test mixes in real inputs itself, with ``given``.
schema = schemathesis.openapi.from_path(
    DOCUMENT,
    config=SchemathesisConfig.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": {"examples": {"enabled": False}},
        }
    ),
)


@dataclass(frozen=True)
class Seeded:
    """What the deployment holds before schemathesis starts."""

    server: Server
    office_token: str
    partner_token: str
    certificate_ids: list[str]  # the calling office's: valid, suspended, revoked, a BL
    other_office_id: str
    tokens: list[str]
    qr_texts: list[str]
    pdf: bytes


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    for database_url in fresh_database(request.param, tmp_path_factory):
        live = LiveDeployment(folder=tmp_path_factory.mktemp("instance"), database_url=database_url, port=free_port())
        try:
            yield _seed(live)
        finally:
            live.stop_all()


def _seed(live: LiveDeployment) -> Seeded:
    assert live.flask("db", "upgrade").returncode == 0
    live.flask_json("region", "init", "--code", REGION_CODE, "--name", "上海市")
    office = live.flask_json("office", "add", "--code", OFFICE_CODE, "--name", "上海市示范发证中心", "--types", "BL,DL")
    other = live.flask_json(
        "office", "add", "--code", OTHER_OFFICE_CODE, "--name", "上海市另一发证机构", "--types", "DL"
    )
    partner = live.flask_json("partner", "add", "--region", PARTNER_REGION, "--name", "广东省")
    server = live.start_server(**NO_LIMITS)
    token = office["api_token"]

    issued = [_issue(server, token, sample_request(code)) for code in ("DL", "DL", "DL", "BL")]
    _change(server, token, issued[1]["id"], "SUSPENDED")
    _change(server, token, issued[2]["id"], "REVOKED")
    other_issued = _issue(server, other["api_token"], sample_request("DL"))
    pdf_url = f"{server.url}/api/v1/certificates/{issued[0]['id']}/pdf"
    pdf_request = urllib.request.Request(pdf_url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 (loopback)
    with urllib.request.urlopen(pdf_request, timeout=30) as response:  # noqa: S310 (loopback)
        pdf = response.read()
    return Seeded(
        server=server,
        office_token=token,
        partner_token=partner["api_token"],
        certificate_ids=[c["id"] for c in issued],
        other_office_id=other_issued["id"],
        tokens=[c["token"] for c in [*issued, other_issued]],
        qr_texts=[issued[0]["qr_text"], issued[1]["qr_text"]],
        pdf=pdf,
    )


def _issue(server: Server, token: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = http("POST", f"{server.url}/api/v1/certificates", body, token)
    assert answer.status == 201, answer.body
    return answer.body  # type: ignore[no-any-return]


def _change(server: Server, token: str, certificate_id: str, status: str) -> None:
    url = f"{server.url}/api/v1/certificates/{certificate_id}/status"
    answer = http("POST", url, {"status": status, "reason": "e2e"}, token)
    assert answer.status == 200, answer.body


def real_inputs(seeded: Seeded, operation_id: str) -> dict[str, st.SearchStrategy[Any]]:
    """Real values for some parts of a request (``body``, ``path``, ``query``)."""
    ids = st.sampled_from([*seeded.certificate_ids, seeded.other_office_id, *IMPOSSIBLE_IDS])
    path = {"path": ids.map(lambda i: {"certificate_id": i})}
    # The seeded log holds 7 entries (5 issued, 2 status changes), and grows.
    small = st.integers(min_value=0, max_value=3)
    ranges = st.tuples(small, st.integers(min_value=1, max_value=4)).map(lambda t: (t[0], t[0] + t[1]))
    by_operation: dict[str, dict[str, st.SearchStrategy[Any]]] = {
        "verify": {
            "body": st.one_of(
                st.sampled_from(seeded.tokens).map(lambda t: {"token": t}),
                st.sampled_from(seeded.qr_texts).map(lambda q: {"qr_text": q}),
            )
        },
        "verifyPdf": {"body": st.just({"file": seeded.pdf})},
        "issueCertificate": {"body": st.sampled_from([sample_request("DL"), sample_request("BL")])},
        "getCertificate": path,
        "getCertificatePdf": path,
        "changeCertificateStatus": {
            **path,
            "body": st.sampled_from(["SUSPENDED", "VALID", "02", "REVOKED"]).map(
                lambda s: {"status": s, "reason": "schemathesis"}
            ),
        },
        "getCertificateStatus": path,
        "getLogEntries": {"query": ranges.map(lambda r: {"start": r[0], "end": r[1]})},
        "getInclusionProof": {"query": ranges.map(lambda r: {"index": r[0], "size": r[1]})},
        "getConsistencyProof": {"query": ranges.map(lambda r: {"from": r[0] + 1, "to": r[1]})},
    }
    return by_operation.get(operation_id, {})


def test_the_served_document_is_the_committed_one(seeded: Seeded) -> None:
    answer = http("GET", f"{seeded.server.url}/api/v1/openapi.json")

    assert answer.status == 200
    assert answer.body == json.loads(DOCUMENT.read_text(encoding="utf-8"))


@schema.parametrize()
@schema.given(data=st.data())
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_does_what_its_document_says(case: Any, data: st.DataObject, seeded: Seeded) -> None:
    definition = case.operation.definition.raw
    real = real_inputs(seeded, definition["operationId"])
    if real and data.draw(st.booleans(), label="real inputs"):
        if "body" in real:
            case.body = data.draw(real["body"], label="body")
        if "path" in real:
            case.path_parameters = data.draw(real["path"], label="path")
        if "query" in real:
            case.query = data.draw(real["query"], label="query")
    headers = {}
    if definition.get("security") == [{"officeToken": []}]:
        headers["Authorization"] = f"Bearer {seeded.office_token}"
    elif {"partnerToken": []} in definition.get("security", []) and data.draw(st.booleans(), label="partner"):
        headers["Authorization"] = f"Bearer {seeded.partner_token}"

    response = case.call(base_url=seeded.server.url, headers=headers, timeout=30)

    if (response_content_type(response) or "").startswith(JWT):
        # Schemathesis reads application/jwt as JSON; a compact JWS is not JSON, so its
        # documented schema (a string pattern) is checked here instead.
        case.validate_response(response, checks=[c for c in CHECKS if c is not response_schema_conformance])
        assert_documented_jws(definition, response.text)
    else:
        case.validate_response(response, checks=CHECKS)


def assert_documented_jws(definition: dict[str, Any], text: str) -> None:
    components = json.loads(DOCUMENT.read_text(encoding="utf-8"))["components"]["schemas"]
    reference = definition["responses"]["200"]["content"][JWT]["schema"]["$ref"]
    jsonschema.validate(text, components[reference.rsplit("/", 1)[1]])
