"""``GET /api/v1/certificates/<id>/pdf``: the issuing office downloads a certificate's PDF.

Only the office that issued a certificate gets its PDF; everyone else gets the same 404
as for a certificate that does not exist, and a caller without a token gets 401. A
certificate's status does not change its PDF: the verifier, reading the token the PDF
carries, is what says SUSPENDED or REVOKED.
"""

from __future__ import annotations

from typing import Any

import pypdfium2 as pdfium
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from registry.demo import sample_request
from tests.conftest import OfficeFixture

CERTIFICATES = "/api/v1/certificates"


def json_of(response: TestResponse) -> dict[str, Any]:
    document = response.get_json()
    assert isinstance(document, dict), response.get_data(as_text=True)
    return document


def issue(client: FlaskClient, office: OfficeFixture, type_code: str) -> dict[str, Any]:
    response = client.post(CERTIFICATES, json=sample_request(type_code), headers=office.auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    return json_of(response)


def pdf_metadata(pdf: bytes) -> dict[str, str]:
    document = pdfium.PdfDocument(pdf)
    try:
        assert len(document) == 1
        return document.get_metadata_dict()  # type: ignore[no-any-return]
    finally:
        document.close()


def assert_problem(response: TestResponse, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert json_of(response)["code"] == code
    assert not response.data.startswith(b"%PDF")


@pytest.mark.parametrize("type_code", ["BL", "DL", "PQ"])
def test_issuing_office_gets_the_pdf_as_an_attachment_named_by_identifier(
    client: FlaskClient, office: OfficeFixture, type_code: str
) -> None:
    issued = issue(client, office, type_code)

    response = client.get(issued["links"]["pdf"], headers=office.auth)

    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{issued["id"]}.pdf"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data.startswith(b"%PDF-")
    assert int(response.headers["Content-Length"]) == len(response.data)
    metadata = pdf_metadata(response.data)
    assert metadata["Subject"] == issued["id"]
    assert metadata["Keywords"] == f"ecert-token:{issued['token']}"


def test_pdf_link_is_the_certificates_pdf_path(client: FlaskClient, office: OfficeFixture) -> None:
    issued = issue(client, office, "DL")

    assert issued["links"]["pdf"] == f"{CERTIFICATES}/{issued['id']}/pdf"


def test_another_office_gets_404_as_if_the_certificate_did_not_exist(
    client: FlaskClient, office: OfficeFixture, other_office: OfficeFixture
) -> None:
    issued = issue(client, office, "DL")

    assert_problem(client.get(issued["links"]["pdf"], headers=other_office.auth), 404, "NOT_FOUND")
    assert_problem(client.get(f"{CERTIFICATES}/{issued['id']}X/pdf", headers=office.auth), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-token"),
        pytest.param({"Authorization": "Bearer ecert_not-a-real-token"}, id="unknown-token"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-auth"),
    ],
)
def test_caller_without_a_valid_token_gets_401(
    client: FlaskClient, office: OfficeFixture, headers: dict[str, str]
) -> None:
    issued = issue(client, office, "DL")

    assert_problem(client.get(issued["links"]["pdf"], headers=headers), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(("status", "code"), [("SUSPENDED", "SUSPENDED"), ("REVOKED", "REVOKED")])
def test_pdf_of_a_suspended_or_revoked_certificate_is_served_and_its_token_verifies_as_such(
    client: FlaskClient, office: OfficeFixture, status: str, code: str
) -> None:
    issued = issue(client, office, "DL")
    before = client.get(issued["links"]["pdf"], headers=office.auth)
    changed = client.post(
        f"{CERTIFICATES}/{issued['id']}/status", json={"status": status, "reason": "依法处理"}, headers=office.auth
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)

    after = client.get(issued["links"]["pdf"], headers=office.auth)

    assert after.status_code == 200
    assert after.mimetype == "application/pdf"
    carried = pdf_metadata(after.data)["Keywords"].removeprefix("ecert-token:")
    assert carried == pdf_metadata(before.data)["Keywords"].removeprefix("ecert-token:") == issued["token"]
    answer = client.post("/api/v1/verify", json={"token": carried})
    assert answer.status_code == 200
    assert (json_of(answer)["verdict"], json_of(answer)["code"]) == ("INVALID", code)


def test_pdf_of_a_valid_certificate_carries_a_token_that_verifies(client: FlaskClient, office: OfficeFixture) -> None:
    issued = issue(client, office, "PQ")

    carried = pdf_metadata(client.get(issued["links"]["pdf"], headers=office.auth).data)["Keywords"]
    answer = client.post("/api/v1/verify", json={"token": carried.removeprefix("ecert-token:")})

    assert (json_of(answer)["verdict"], json_of(answer)["code"]) == ("VALID", "OK")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_pdf_is_read_only(client: FlaskClient, office: OfficeFixture, method: str) -> None:
    issued = issue(client, office, "DL")

    response = client.open(issued["links"]["pdf"], method=method, headers=office.auth)

    assert response.status_code == 405
