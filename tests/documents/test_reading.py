"""Reading uploaded PDFs back (``documents/reading.py``), without HTTP or a database.

Real PDFs: certificates rendered by ``render_certificate_pdf``, and hostile or odd PDFs
drawn with reportlab. Real decoding: pypdfium2 renders, zxing-cpp reads the QR code.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pypdfium2 as pdfium
import pytest
from reportlab.lib import pdfencrypt
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from documents.certificate_pdf import TOKEN_KEYWORD, render_certificate_pdf
from documents.errors import NoCertificateInPdf, PdfTooLarge, UnreadablePdf
from documents.model import CertificateDocument, Line
from documents.qr import draw_qr, qr_matrix
from documents.reading import (
    MAX_RENDER_SIDE,
    RENDER_SCALE,
    has_visible_text,
    read_certificate_pdf,
    render_scale,
    visible_mismatches,
)
from registry.claims import CertificateClaims, HolderClaims

PUBLIC_URL = "https://ecert.sh.example"
# A token-shaped string: reading never verifies, it only finds what the PDF carries.
TOKEN = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiZWNlcnQrand0In0.eyJpc3MiOiIzMTAwMDAifQ.c2lnbmF0dXJl"
QR_TEXT = f"{PUBLIC_URL}/v#{TOKEN}"
IDENTIFIER = "DL.11310000002418960M.000001.01.7"
MARCH_1_CST = int(datetime(2026, 2, 28, 16, 0, tzinfo=UTC).timestamp())  # 2026-03-01 00:00 in Shanghai
MARCH_1_2032_CST = int(datetime(2032, 2, 29, 16, 0, tzinfo=UTC).timestamp())  # exclusive end: last day 2032-02-29


@pytest.fixture(scope="module")
def document() -> CertificateDocument:
    """A driving licence as the PDF shows it (the values the claims below sign)."""
    return CertificateDocument(
        identifier=IDENTIFIER,
        title_zh="机动车驾驶证",
        title_en="Motor vehicle driving licence",
        holder_name="王小红",
        holder_id=Line("公民身份号码", "Resident ID number", "3101**********3526"),
        fields=(
            Line("住址", "Address", "上海市浦东新区世纪大道200号，一个很长很长的地址，长到在证照上换行也不奇怪的程度"),
            Line("准驾车型", "Permitted vehicle class", "C1"),
        ),
        valid_from="2026-03-01",
        valid_until="2032-02-29",
        office_name="上海市示范发证中心",
        issued_on="2026-03-01",
        region_name="上海市",
        qr_text=QR_TEXT,
        token=TOKEN,
    )


@pytest.fixture(scope="module")
def certificate_pdf(document: CertificateDocument) -> bytes:
    return render_certificate_pdf(document)


@pytest.fixture(scope="module")
def claims() -> CertificateClaims:
    return CertificateClaims(
        region="310000",
        certificate_id=IDENTIFIER,
        issued_at=MARCH_1_CST,
        not_before=None,
        expires=MARCH_1_2032_CST,
        holder=HolderClaims(name="王小红", id_number="3101**********3526"),
        fields=("上海市浦东新区世纪大道200号，一个很长很长的地址，长到在证照上换行也不奇怪的程度", "C1"),
    )


# ---------------------------------------------------------------- PDFs drawn by hand


def drawn_pdf(
    *,
    pages: int = 1,
    pagesize: tuple[float, float] = A4,
    keywords: str | None = None,
    draw: Callable[[Canvas, int], None] | None = None,
    encrypt: pdfencrypt.StandardEncryption | None = None,
) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=pagesize, encrypt=encrypt)
    if keywords is not None:
        canvas.setKeywords(keywords)
    for number in range(pages):
        if draw is not None:
            draw(canvas, number)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def qr_at(text: str, x: float = 72, y: float = 72, width: float = 150) -> Callable[[Canvas, int], None]:
    return lambda canvas, _number: draw_qr(canvas, qr_matrix(text), x, y, width)


def scanned(pdf: bytes) -> bytes:
    """``pdf``'s first page as an image-only PDF (no text layer, no metadata), as a scanner makes it."""
    document = pdfium.PdfDocument(pdf)
    try:
        page = document[0]
        bitmap = page.render(scale=2)
        image = bitmap.to_pil()
        png = io.BytesIO()
        image.save(png, format="PNG")
        bitmap.close()
        page.close()
    finally:
        document.close()
    png.seek(0)
    return drawn_pdf(draw=lambda canvas, _n: canvas.drawImage(ImageReader(png), 0, 0, *A4))


# ---------------------------------------------------------------- where the token comes from


def test_the_token_is_read_from_the_metadata(certificate_pdf: bytes, document: CertificateDocument) -> None:
    reading = read_certificate_pdf(certificate_pdf)

    assert (reading.source, reading.token, reading.qr_text) == ("metadata", TOKEN, None)
    assert reading.pages == 1
    assert document.holder_name in reading.visible_text
    assert "Valid until" in reading.visible_text


def test_without_a_metadata_token_the_qr_code_is_decoded(document: CertificateDocument) -> None:
    pdf = render_certificate_pdf(dataclasses.replace(document, token=""))

    reading = read_certificate_pdf(pdf)

    assert (reading.source, reading.token, reading.qr_text) == ("qr", None, QR_TEXT)
    assert has_visible_text(reading.visible_text)


def test_a_scanned_certificate_is_read_through_its_qr_code_and_has_no_text(certificate_pdf: bytes) -> None:
    reading = read_certificate_pdf(scanned(certificate_pdf))

    assert (reading.source, reading.qr_text) == ("qr", QR_TEXT)
    assert not has_visible_text(reading.visible_text)


@pytest.mark.parametrize(
    ("keywords", "token"),
    [
        pytest.param(TOKEN_KEYWORD + "abc.def.ghi", "abc.def.ghi", id="ours"),
        pytest.param("证照, " + TOKEN_KEYWORD + "abc.def.ghi; other", "abc.def.ghi", id="among-other-keywords"),
        pytest.param(TOKEN_KEYWORD + "not a token", "not", id="garbage-is-passed-on-to-the-verifier"),
    ],
)
def test_keywords_carry_the_token(keywords: str, token: str) -> None:
    reading = read_certificate_pdf(drawn_pdf(keywords=keywords))

    assert (reading.source, reading.token) == ("metadata", token)


@pytest.mark.parametrize(
    "keywords",
    [
        pytest.param(TOKEN_KEYWORD, id="empty-token"),
        pytest.param("certificate, 证照", id="other-keywords"),
        pytest.param(None, id="no-keywords"),
    ],
)
def test_keywords_without_a_token_fall_back_to_the_qr_code(keywords: str | None) -> None:
    reading = read_certificate_pdf(drawn_pdf(keywords=keywords, draw=qr_at(QR_TEXT)))

    assert (reading.source, reading.token, reading.qr_text) == ("qr", None, QR_TEXT)


def test_the_first_certificate_qr_code_is_taken_and_other_qr_codes_are_ignored() -> None:
    def two_codes(canvas: Canvas, _number: int) -> None:
        draw_qr(canvas, qr_matrix("https://example.com/menu"), 72, 600, 150)
        draw_qr(canvas, qr_matrix(QR_TEXT), 72, 72, 150)

    assert read_certificate_pdf(drawn_pdf(draw=two_codes)).qr_text == QR_TEXT


def test_a_qr_code_on_a_later_page_is_found() -> None:
    def on_last_page(canvas: Canvas, number: int) -> None:
        if number == 2:
            draw_qr(canvas, qr_matrix(QR_TEXT), 72, 72, 150)

    reading = read_certificate_pdf(drawn_pdf(pages=3, draw=on_last_page))

    assert (reading.pages, reading.qr_text) == (3, QR_TEXT)


def test_a_page_of_absurd_size_is_rendered_within_the_pixel_cap_and_still_read() -> None:
    # 200,000 points square: at the normal scale a 400,000-pixel-square bitmap (160 G pixels).
    side = 200_000.0
    pdf = drawn_pdf(pagesize=(side, side), draw=qr_at(QR_TEXT, x=side * 0.1, y=side * 0.1, width=side * 0.8))

    assert read_certificate_pdf(pdf).qr_text == QR_TEXT


@pytest.mark.parametrize(
    ("width", "height", "scale"),
    [
        pytest.param(*A4, RENDER_SCALE, id="a4"),
        pytest.param(200_000.0, 10.0, MAX_RENDER_SIDE / 200_000, id="absurdly-wide"),
        pytest.param(10.0, 14_400.0, MAX_RENDER_SIDE / 14_400, id="pdf-maximum-tall"),
        pytest.param(0.0, 0.0, 0.0, id="no-size"),
        pytest.param(-5.0, -5.0, 0.0, id="negative"),
        pytest.param(float("nan"), 10.0, 0.0, id="nan-width"),
        pytest.param(10.0, float("nan"), 0.0, id="nan-height"),
        pytest.param(10.0, 0.0, 0.0, id="no-height"),
        pytest.param(float("inf"), 10.0, 0.0, id="infinite"),
    ],
)
def test_render_scale_caps_the_long_side(width: float, height: float, scale: float) -> None:
    assert render_scale(width, height) == pytest.approx(scale)


def test_threads_reading_at_once_each_get_their_own_answer(document: CertificateDocument) -> None:
    # PDFium is not thread-safe (not even across documents); a threaded server must not crash.
    pdfs = {
        f"{PUBLIC_URL}/v#{TOKEN}{n}": render_certificate_pdf(
            dataclasses.replace(document, token="", qr_text=f"{PUBLIC_URL}/v#{TOKEN}{n}")
        )
        for n in range(4)
    }
    work = [qr_text for qr_text in pdfs for _ in range(12)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        read = list(pool.map(lambda qr_text: read_certificate_pdf(pdfs[qr_text]).qr_text, work))

    assert read == work


# ---------------------------------------------------------------- refused


def truncated(pdf: bytes) -> bytes:
    return pdf[: len(pdf) // 2]


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        pytest.param(lambda pdf: b"", UnreadablePdf, "empty", id="empty"),
        pytest.param(lambda pdf: b"PK\x03\x04 a zip file", UnreadablePdf, "not a PDF", id="not-a-pdf"),
        pytest.param(lambda pdf: b" " + pdf, UnreadablePdf, "not a PDF", id="leading-junk"),
        pytest.param(truncated, UnreadablePdf, "cannot be read", id="truncated"),
        pytest.param(
            lambda pdf: b"%PDF-1.7\n" + b"\x00\xff garbage " * 500,
            UnreadablePdf,
            "cannot be read",
            id="garbage-after-magic",
        ),
        pytest.param(
            lambda pdf: drawn_pdf(
                keywords=TOKEN_KEYWORD + TOKEN, encrypt=pdfencrypt.StandardEncryption("user-secret", "owner-secret")
            ),
            UnreadablePdf,
            "password",
            id="encrypted-with-a-password",
        ),
        pytest.param(lambda pdf: drawn_pdf(pages=50), PdfTooLarge, "50 pages", id="fifty-pages"),
        pytest.param(lambda pdf: pdf + b"%" * (4 * 1024 * 1024), PdfTooLarge, "larger than", id="over-4-mib"),
        pytest.param(lambda pdf: drawn_pdf(), NoCertificateInPdf, "neither", id="blank-page"),
        pytest.param(
            lambda pdf: drawn_pdf(draw=qr_at("https://example.com/not-a-certificate")),
            NoCertificateInPdf,
            "neither",
            id="foreign-qr-code",
        ),
        pytest.param(
            lambda pdf: drawn_pdf(pagesize=(200_000.0, 200_000.0)), NoCertificateInPdf, "neither", id="absurd-page-size"
        ),
    ],
)
def test_hostile_and_useless_files_are_refused(
    certificate_pdf: bytes, make: Callable[[bytes], bytes], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        read_certificate_pdf(make(certificate_pdf))


def test_limits_are_the_callers() -> None:
    three_pages = drawn_pdf(pages=3, keywords=TOKEN_KEYWORD + TOKEN)

    assert read_certificate_pdf(three_pages, max_pages=3).pages == 3
    with pytest.raises(PdfTooLarge, match="3 pages"):
        read_certificate_pdf(three_pages, max_pages=2)
    assert read_certificate_pdf(three_pages, max_bytes=len(three_pages)).token == TOKEN
    with pytest.raises(PdfTooLarge, match="larger than"):
        read_certificate_pdf(three_pages, max_bytes=len(three_pages) - 1)


# ---------------------------------------------------------------- visible text against signed claims


def test_a_genuine_pdf_shows_every_signed_value(claims: CertificateClaims, certificate_pdf: bytes) -> None:
    text = read_certificate_pdf(certificate_pdf).visible_text

    mismatches = visible_mismatches(
        claims, holder_id_type="RIC", qr_fields=("address", "vehicle_class"), visible_text=text
    )

    assert mismatches == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"holder_name": "李鬼"}, ["holder_name"], id="holder-name"),
        pytest.param({"identifier": "DL.11310000002418960M.000002.01.5"}, ["identifier"], id="identifier"),
        pytest.param(
            {"holder_id": Line("公民身份号码", "Resident ID number", "3101**********0000")},
            ["holder_id_number"],
            id="masked-id-number",
        ),
        pytest.param(
            {"fields": (Line("住址", "Address", "北京市"), Line("准驾车型", "Permitted vehicle class", "A1"))},
            ["address", "vehicle_class"],
            id="qr-fields",
        ),
        pytest.param({"valid_until": "长期"}, ["valid_until"], id="valid-until-made-open-ended"),
        pytest.param(
            {"holder_name": "李鬼", "valid_until": "2099-12-31"}, ["holder_name", "valid_until"], id="two-at-once"
        ),
        pytest.param({"office_name": "某某公安局"}, [], id="unsigned-office-name-is-not-compared"),
    ],
)
def test_altered_visible_text_names_each_signed_field_it_no_longer_shows(
    claims: CertificateClaims, document: CertificateDocument, changes: dict[str, object], expected: list[str]
) -> None:
    text = read_certificate_pdf(render_certificate_pdf(dataclasses.replace(document, **changes))).visible_text  # type: ignore[arg-type]

    mismatches = visible_mismatches(
        claims, holder_id_type="RIC", qr_fields=("address", "vehicle_class"), visible_text=text
    )

    assert mismatches == expected


@pytest.mark.parametrize(
    ("claim_changes", "id_type", "text", "expected"),
    [
        pytest.param(
            {}, "RIC", "", ["identifier", "holder_name", "holder_id_number", "valid_from", "valid_until"], id="no-text"
        ),
        pytest.param(
            {"expires": None},
            "RIC",
            f"{IDENTIFIER} 王小红 3101**********3526 2026-03-01 长期",
            [],
            id="no-end-prints-changqi",
        ),
        pytest.param(
            {"holder": HolderClaims(name="上海示例科技有限公司", id_number="91310115MA1K3YJ2X5")},
            "USCC",
            f"{IDENTIFIER} 上海示例科技有限公司 91310115MA1K3YJ2X5 2026-03-01 2032-02-29",
            [],
            id="credit-code-printed-whole",
        ),
        pytest.param(
            {},
            "RIC",
            f"{IDENTIFIER} 王小红 310115198506123526 2026-03-01 2032-02-29",
            ["holder_id_number"],
            id="full-id-number-is-not-the-printed-form",
        ),
        pytest.param(
            # Midnight UTC is 08:00 in Shanghai: the last valid day there is 2032-03-01, not 02-29.
            {"expires": int(datetime(2032, 3, 1, 0, 0, tzinfo=UTC).timestamp())},
            "RIC",
            f"{IDENTIFIER} 王小红 3101**********3526 2026-03-01 2032-02-29",
            ["valid_until"],
            id="dates-print-in-china-standard-time",
        ),
        pytest.param(
            {},
            "RIC",
            "DL.113100000024\r\n18960M.000001.01.7 王 小 红 3101**********3526 2026-03-01 2032-02-29",
            [],
            id="line-breaks-and-spaces-ignored",
        ),
    ],
)
def test_visible_mismatches_compare_printed_forms(
    claims: CertificateClaims, claim_changes: dict[str, object], id_type: str, text: str, expected: list[str]
) -> None:
    changed = dataclasses.replace(claims, fields=(), **claim_changes)  # type: ignore[arg-type]

    assert visible_mismatches(changed, holder_id_type=id_type, qr_fields=(), visible_text=text) == expected


def test_numbers_in_qr_fields_are_compared_as_printed(claims: CertificateClaims) -> None:
    scored = dataclasses.replace(claims, fields=("电工", 88))
    text = f"{IDENTIFIER} 王小红 3101**********3526 2026-03-01 2032-02-29 电工 88"

    assert visible_mismatches(scored, holder_id_type="RIC", qr_fields=("occupation", "score"), visible_text=text) == []
    assert visible_mismatches(
        scored, holder_id_type="RIC", qr_fields=("occupation", "score"), visible_text=text.replace("88", "98")
    ) == ["score"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", False, id="empty"),
        pytest.param("\r\n \t\x00\ufeff", False, id="only-whitespace-and-controls"),
        pytest.param("王小红", True, id="text"),
    ],
)
def test_has_visible_text(text: str, expected: bool) -> None:
    assert has_visible_text(text) is expected
