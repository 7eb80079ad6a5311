"""``POST /api/v1/verify/pdf``: an uploaded certificate PDF gets the same answer as its token.

Real certificates issued through the API, their real PDFs (as the office downloads them,
or rendered from the registry with a change), and hostile uploads. The verdict always
comes from the token; ``document`` says where the token was found and which signed
fields the PDF's visible text does not show.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable
from typing import Any

import pypdfium2 as pdfium
import pytest
from flask.testing import FlaskClient
from PIL import Image
from reportlab.lib import pdfencrypt
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from deployment import Deployment
from documents.certificate_pdf import TOKEN_KEYWORD, render_certificate_pdf
from documents.model import CertificateDocument, Line, document_for
from registry.demo import sample_request
from registry.models import Certificate
from registry.regions import current_region
from tests.verify.conftest import decode_parts, with_signature

VERIFY_PDF = "/api/v1/verify/pdf"
ANSWER_MEMBERS = {"verdict", "code", "message", "detail", "certificate", "issuer", "status_source", "log", "checked_at"}
PUBLIC_URL = "https://ecert.sh.example"


# ---------------------------------------------------------------- helpers


def upload(client: FlaskClient, pdf: bytes, field: str = "file") -> Any:
    return client.post(
        VERIFY_PDF,
        data={field: (io.BytesIO(pdf), "certificate.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == code
    assert response.json["status"] == status
    return response.json  # type: ignore[no-any-return]


def issue(client: FlaskClient, office: Any, type_code: str = "DL") -> dict[str, Any]:
    response = client.post("/api/v1/certificates", json=sample_request(type_code), headers=office.auth)
    assert response.status_code == 201, response.json
    body = response.json
    assert isinstance(body, dict)
    return body


def downloaded_pdf(client: FlaskClient, office: Any, issued: dict[str, Any]) -> bytes:
    response = client.get(issued["links"]["pdf"], headers=office.auth)
    assert response.status_code == 200
    return bytes(response.data)


def tampered(token: str) -> str:
    """``token`` with another holder name and the original signature."""
    header, payload, signature = decode_parts(token)
    return with_signature(header, {**payload, "h": {**payload["h"], "n": "李鬼"}}, signature)


def drawn_pdf(
    *,
    pages: int = 1,
    pagesize: tuple[float, float] = A4,
    keywords: str | None = None,
    draw: Callable[[Canvas], None] | None = None,
    encrypt: pdfencrypt.StandardEncryption | None = None,
) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=pagesize, encrypt=encrypt)
    if keywords is not None:
        canvas.setKeywords(keywords)
    for _ in range(pages):
        if draw is not None:
            draw(canvas)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


@pytest.fixture
def issued(client: FlaskClient, office: Any) -> dict[str, Any]:
    """A genuine driving licence, as the issuing API answered."""
    return issue(client, office)


@pytest.fixture
def document(deployment: Deployment, issued: dict[str, Any]) -> CertificateDocument:
    """What the genuine PDF of ``issued`` shows, to render variants of it."""
    with deployment.read_session() as session:
        certificate = session.get(Certificate, issued["id"])
        assert certificate is not None
        return document_for(certificate, current_region(session))


# ---------------------------------------------------------------- genuine and revoked


@pytest.mark.parametrize("type_code", ["BL", "DL", "PQ"])
def test_genuine_pdf_gets_the_tokens_answer_and_shows_every_signed_field(
    client: FlaskClient, office: Any, type_code: str
) -> None:
    issued = issue(client, office, type_code)

    response = upload(client, downloaded_pdf(client, office, issued))

    assert response.status_code == 200, response.json
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert set(body) == ANSWER_MEMBERS | {"document"}
    assert (body["verdict"], body["code"]) == ("VALID", "OK")
    assert body["document"] == {"source": "metadata", "visible_text_checked": True, "mismatches": []}
    from_token = client.post("/api/v1/verify", json={"token": issued["token"]}).json
    assert {name: value for name, value in body.items() if name != "document"} == from_token


def test_pdf_of_a_revoked_certificate_is_invalid(client: FlaskClient, office: Any, issued: dict[str, Any]) -> None:
    pdf = downloaded_pdf(client, office, issued)  # the holder keeps the PDF they were given
    revoked = client.post(
        f"/api/v1/certificates/{issued['id']}/status",
        json={"status": "REVOKED", "reason": "依法吊销"},
        headers=office.auth,
    )
    assert revoked.status_code == 200, revoked.json

    body = upload(client, pdf).json

    assert (body["verdict"], body["code"]) == ("INVALID", "REVOKED")
    assert body["certificate"]["status"]["name"] == "REVOKED"
    assert body["document"] == {"source": "metadata", "visible_text_checked": True, "mismatches": []}


# ---------------------------------------------------------------- altered visible text


@pytest.mark.parametrize(
    ("changes", "mismatches"),
    [
        pytest.param({"holder_name": "李鬼"}, ["holder_name"], id="holder-name"),
        pytest.param({"valid_until": "长期"}, ["valid_until"], id="made-open-ended"),
        pytest.param(
            {"holder_id": Line("公民身份号码", "Resident ID number", "1101**********0011")},
            ["holder_id_number"],
            id="id-number",
        ),
        pytest.param({"holder_name": "李鬼", "valid_until": "2099-12-31"}, ["holder_name", "valid_until"], id="two"),
    ],
)
def test_altered_visible_text_is_reported_while_the_verdict_comes_from_the_token(
    client: FlaskClient, document: CertificateDocument, changes: dict[str, Any], mismatches: list[str]
) -> None:
    altered = render_certificate_pdf(dataclasses.replace(document, **changes))

    body = upload(client, altered).json

    assert (body["verdict"], body["code"]) == ("VALID", "OK")
    assert body["certificate"]["holder"]["name"] == "王小红"  # the signed name, never the printed one
    assert body["document"] == {"source": "metadata", "visible_text_checked": True, "mismatches": mismatches}


def test_altered_qr_field_is_named_by_its_catalog_name(client: FlaskClient, document: CertificateDocument) -> None:
    fields = tuple(
        dataclasses.replace(line, value="A1") if line.label_zh == "准驾车型" else line for line in document.fields
    )
    altered = render_certificate_pdf(dataclasses.replace(document, fields=fields))

    body = upload(client, altered).json

    assert body["verdict"] == "VALID"
    assert body["document"]["mismatches"] == ["vehicle_class"]


# ---------------------------------------------------------------- QR code only


def test_pdf_with_only_the_qr_code_of_a_genuine_token_is_valid(
    client: FlaskClient, document: CertificateDocument
) -> None:
    qr_only = render_certificate_pdf(dataclasses.replace(document, token=""))

    body = upload(client, qr_only).json

    assert (body["verdict"], body["code"]) == ("VALID", "OK")
    assert body["document"] == {"source": "qr", "visible_text_checked": True, "mismatches": []}


def test_pdf_with_a_forged_qr_code_and_no_metadata_token_is_invalid(
    client: FlaskClient, document: CertificateDocument
) -> None:
    forged = render_certificate_pdf(
        dataclasses.replace(
            document, holder_name="李鬼", token="", qr_text=f"{PUBLIC_URL}/v#{tampered(document.token)}"
        )
    )

    body = upload(client, forged).json

    assert (body["verdict"], body["code"]) == ("INVALID", "SIG_INVALID")
    assert body["certificate"] is None
    assert body["document"] == {"source": "qr", "visible_text_checked": False, "mismatches": []}


def test_a_scanned_pdf_is_verified_through_its_qr_code_without_a_text_check(
    client: FlaskClient, document: CertificateDocument
) -> None:
    rendered = pdfium.PdfDocument(render_certificate_pdf(document))
    try:
        page = rendered[0]
        bitmap = page.render(scale=2)
        png = io.BytesIO()
        bitmap.to_pil().save(png, format="PNG")
        bitmap.close()
        page.close()
    finally:
        rendered.close()
    png.seek(0)
    scan = drawn_pdf(draw=lambda canvas: canvas.drawImage(ImageReader(png), 0, 0, *A4))

    body = upload(client, scan).json

    assert (body["verdict"], body["code"]) == ("VALID", "OK")
    assert body["document"] == {"source": "qr", "visible_text_checked": False, "mismatches": []}


# ---------------------------------------------------------------- tokens the verifier refuses


def test_garbage_token_in_the_keywords_is_a_verification_answer_not_a_request_error(client: FlaskClient) -> None:
    response = upload(client, drawn_pdf(keywords=TOKEN_KEYWORD + "garbage.not-a.token"))

    assert response.status_code == 200
    body = response.json
    assert (body["verdict"], body["code"]) == ("INVALID", "MALFORMED")
    assert body["certificate"] is None
    assert body["document"] == {"source": "metadata", "visible_text_checked": False, "mismatches": []}


def test_uploads_larger_than_the_json_limit_are_accepted_for_pdfs(
    client: FlaskClient, app: Any, issued: dict[str, Any]
) -> None:
    # A photo-sized PDF: incompressible noise, over the 1 MiB every other route allows.
    noise = Image.frombytes("L", (1200, 1200), os.urandom(1200 * 1200))
    pdf = drawn_pdf(
        keywords=TOKEN_KEYWORD + issued["token"],
        draw=lambda canvas: canvas.drawImage(ImageReader(noise), 0, 0, *A4),
    )
    assert app.config["MAX_CONTENT_LENGTH"] < len(pdf) < 4 * 1024 * 1024

    body = upload(client, pdf).json

    assert (body["verdict"], body["code"]) == ("VALID", "OK")


# ---------------------------------------------------------------- refused requests


def truncated_certificate(client: FlaskClient, office: Any) -> bytes:
    pdf = downloaded_pdf(client, office, issue(client, office))
    return pdf[: len(pdf) // 2]


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        pytest.param(lambda client, office: b"", 422, "PDF_UNREADABLE", id="empty"),
        pytest.param(lambda client, office: b"<html>not a pdf</html>", 422, "PDF_UNREADABLE", id="not-a-pdf"),
        pytest.param(truncated_certificate, 422, "PDF_UNREADABLE", id="truncated"),
        pytest.param(lambda client, office: b"%PDF-1.7\n" + os.urandom(4096), 422, "PDF_UNREADABLE", id="garbage"),
        pytest.param(
            lambda client, office: drawn_pdf(
                keywords=TOKEN_KEYWORD + "x", encrypt=pdfencrypt.StandardEncryption("user-secret", "owner-secret")
            ),
            422,
            "PDF_UNREADABLE",
            id="encrypted",
        ),
        pytest.param(lambda client, office: drawn_pdf(pages=50), 413, "PDF_TOO_LARGE", id="fifty-pages"),
        pytest.param(
            lambda client, office: b"%PDF-1.7\n" + b"%" * (5 * 1024 * 1024), 413, "PDF_TOO_LARGE", id="five-mib"
        ),
        pytest.param(lambda client, office: drawn_pdf(), 422, "PDF_NO_CERTIFICATE", id="blank-page"),
        pytest.param(
            lambda client, office: drawn_pdf(pagesize=(200_000.0, 200_000.0)),
            422,
            "PDF_NO_CERTIFICATE",
            id="huge-page-without-token",
        ),
    ],
)
def test_hostile_uploads_get_a_clear_problem(
    client: FlaskClient, office: Any, make: Callable[[FlaskClient, Any], bytes], status: int, code: str
) -> None:
    response = upload(client, make(client, office))

    assert_problem(response, status, code)
    assert response.headers["Cache-Control"] == "no-store"


def test_json_instead_of_multipart_is_an_unsupported_media_type(client: FlaskClient, issued: dict[str, Any]) -> None:
    assert_problem(client.post(VERIFY_PDF, json={"token": issued["token"]}), 415, "UNSUPPORTED_MEDIA_TYPE")


def test_multipart_without_the_file_field_is_a_bad_request(client: FlaskClient, office: Any) -> None:
    pdf = downloaded_pdf(client, office, issue(client, office))

    assert_problem(upload(client, pdf, field="pdf"), 400, "BAD_REQUEST")


def test_get_is_not_allowed(client: FlaskClient) -> None:
    assert_problem(client.get(VERIFY_PDF), 405, "METHOD_NOT_ALLOWED")
