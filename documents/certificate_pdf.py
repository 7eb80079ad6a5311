"""The certificate PDF: one A4 page laid out like a Chinese certificate of its type.

Title, holder and masked ID, every field with its Chinese label (English secondary),
identifier, validity, issuing office and date, the office's red seal, and the QR code
with "扫码核验 / Scan to verify". The token is embedded in the metadata (Keywords), so
an uploaded PDF verifies without reading pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from documents.fonts import Fonts, certificate_fonts
from documents.model import CertificateDocument, Line
from documents.qr import draw_qr, qr_matrix
from documents.seal import draw_seal

TOKEN_KEYWORD = "ecert-token:"  # noqa: S105 - the metadata prefix, not a secret
PAGE_WIDTH: float = A4[0]
PAGE_HEIGHT: float = A4[1]
MARGIN = 48.0
LABEL_WIDTH = 150.0
VALUE_WIDTH = PAGE_WIDTH - 2 * MARGIN - LABEL_WIDTH - 24
FULL_WIDTH = PAGE_WIDTH - 2 * MARGIN - 24
BODY_SIZE = 11.0
BODY_SIZES = (11.0, 10.0, 9.0, 8.0, 7.5, 7.0, 6.5, 6.0, 5.5, 5.0)
BODY_FLOOR = 240.0  # the body ends above the QR code and the seal
LINE_GAP = 4.0
BORDER_RED = (0.62, 0.09, 0.09)
QR_WIDTH = 150.0


def render_certificate_pdf(document: CertificateDocument) -> bytes:
    """The certificate as PDF bytes.

    Raises:
        FontsMissing: the embedded font is not installed.
    """
    fonts = certificate_fonts()
    buffer = io.BytesIO()
    # initialFontName: otherwise reportlab declares a non-embedded Helvetica on the page.
    # invariant: the same certificate gives the same bytes (dates and /ID fixed).
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1, initialFontName=fonts.regular, invariant=1)
    _metadata(canvas, document)
    _frame(canvas)
    y = _title(canvas, document, fonts)
    y = _body(canvas, document, fonts, y)
    _footer(canvas, document, fonts)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _metadata(canvas: Canvas, document: CertificateDocument) -> None:
    canvas.setTitle(f"{document.title_zh} {document.title_en} — {document.holder_name}")
    canvas.setAuthor(document.office_name)
    canvas.setSubject(document.identifier)
    canvas.setCreator("ecert")
    canvas.setKeywords(TOKEN_KEYWORD + document.token)


def _frame(canvas: Canvas) -> None:
    canvas.saveState()
    canvas.setStrokeColorRGB(*BORDER_RED)
    canvas.setLineWidth(3)
    canvas.rect(24, 24, PAGE_WIDTH - 48, PAGE_HEIGHT - 48)
    canvas.setLineWidth(0.8)
    canvas.rect(30, 30, PAGE_WIDTH - 60, PAGE_HEIGHT - 60)
    canvas.restoreState()


def _title(canvas: Canvas, document: CertificateDocument, fonts: Fonts) -> float:
    y = PAGE_HEIGHT - 100
    canvas.setFillColorRGB(*BORDER_RED)
    canvas.setFont(fonts.bold, 30)
    canvas.drawCentredString(PAGE_WIDTH / 2, y, document.title_zh)
    canvas.setFont(fonts.regular, 12)
    canvas.drawCentredString(PAGE_WIDTH / 2, y - 22, document.title_en)
    canvas.setFillColorRGB(0, 0, 0)
    canvas.setFont(fonts.regular, 9)
    canvas.drawCentredString(PAGE_WIDTH / 2, y - 42, f"证照编号 Certificate No. {document.identifier}")
    return y - 78


@dataclass(frozen=True)
class _Row:
    line: Line
    value_rows: tuple[str, ...]
    below: bool  # the value runs full width under its label (long values)
    size: float
    height: float


def _body(canvas: Canvas, document: CertificateDocument, fonts: Fonts, y: float) -> float:
    lines = [
        Line("持证主体", "Holder", document.holder_name),
        document.holder_id,
        *document.fields,
        Line("有效期自", "Valid from", document.valid_from),
        Line("有效期至", "Valid until", document.valid_until),
        Line("发证机关", "Issuing office", document.office_name),
        Line("发证日期", "Date of issue", document.issued_on),
    ]
    # Long values (a business scope may hold 2,000 characters) shrink the type until the
    # whole body fits between the title and the QR code: nothing is cut, nothing overlaps.
    # Long rows shrink first; if that is not enough, every row does.
    available = y - BODY_FLOOR
    rows = _fit(lines, fonts, available, shrink_all=False) or _fit(lines, fonts, available, shrink_all=True)
    if rows is None:
        rows = [_layout(line, fonts, BODY_SIZES[-1]) for line in lines]
    for row in rows:
        _draw_row(canvas, row, fonts, y)
        y -= row.height
    return y


def _fit(lines: list[Line], fonts: Fonts, available: float, *, shrink_all: bool) -> list[_Row] | None:
    for size in BODY_SIZES:
        rows = [_layout(line, fonts, BODY_SIZE) for line in lines]
        rows = [
            row if row.size == size or (not row.below and not shrink_all) else _layout(row.line, fonts, size)
            for row in rows
        ]
        if sum(row.height for row in rows) <= available:
            return rows
    return None


def _layout(line: Line, fonts: Fonts, size: float) -> _Row:
    leading = size + LINE_GAP * size / BODY_SIZE
    label_height = size + 0.7 * size + 2
    beside = wrap(line.value, fonts.regular, size, VALUE_WIDTH)
    if len(beside) <= 2:
        height = max(len(beside) * leading, label_height)
        return _Row(line, tuple(beside), below=False, size=size, height=height + 0.9 * size)
    below = wrap(line.value, fonts.regular, size, FULL_WIDTH)
    return _Row(line, tuple(below), below=True, size=size, height=label_height + len(below) * leading + 0.9 * size)


def _draw_row(canvas: Canvas, row: _Row, fonts: Fonts, y: float) -> None:
    size = row.size
    left = MARGIN + 8
    canvas.setFont(fonts.bold, size)
    canvas.drawString(left, y, row.line.label_zh)
    canvas.setFont(fonts.regular, 0.68 * size)
    canvas.setFillColorRGB(0.35, 0.35, 0.35)
    canvas.drawString(left, y - 0.9 * size, row.line.label_en)
    canvas.setFillColorRGB(0, 0, 0)
    canvas.setFont(fonts.regular, size)
    leading = size + LINE_GAP * size / BODY_SIZE
    x, top = (left, y - 1.7 * size - 2 - 0.8 * size) if row.below else (left + LABEL_WIDTH, y)
    for index, text in enumerate(row.value_rows):
        canvas.drawString(x, top - index * leading, text)


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break ``text`` into rows no wider than ``width`` (Chinese breaks between any two
    characters; Latin words stay whole when they fit)."""
    rows: list[str] = []
    current = ""
    for token in _break_points(text, font, size, width):
        candidate = current + token
        if current and pdfmetrics.stringWidth(candidate, font, size) > width:
            rows.append(current.rstrip())
            current = token.lstrip()
        else:
            current = candidate
    if current or not rows:
        rows.append(current)
    return rows


def _break_points(text: str, font: str, size: float, width: float) -> list[str]:
    pieces: list[str] = []
    word = ""
    for character in text:
        if character.isascii() and not character.isspace():
            word += character
            continue
        if word:
            pieces.extend(_split_long_word(word, font, size, width))
            word = ""
        pieces.append(character)
    if word:
        pieces.extend(_split_long_word(word, font, size, width))
    return pieces


def _split_long_word(word: str, font: str, size: float, width: float) -> list[str]:
    """A word wider than the column (a long code, a URL) breaks between characters."""
    if pdfmetrics.stringWidth(word, font, size) <= width:
        return [word]
    return list(word)


def _footer(canvas: Canvas, document: CertificateDocument, fonts: Fonts) -> None:
    matrix = qr_matrix(document.qr_text)
    qr_x, qr_y = MARGIN + 8, 70.0
    draw_qr(canvas, matrix, qr_x, qr_y, QR_WIDTH)
    canvas.setFont(fonts.regular, 10)
    canvas.drawCentredString(qr_x + QR_WIDTH / 2, qr_y - 14, "扫码核验 / Scan to verify")
    draw_seal(canvas, document.office_name, PAGE_WIDTH - MARGIN - 90, qr_y + QR_WIDTH / 2, 70, fonts.regular)
    canvas.setFont(fonts.regular, 7)
    canvas.setFillColorRGB(0.35, 0.35, 0.35)
    canvas.drawRightString(
        PAGE_WIDTH - MARGIN, 40, f"{document.region_name} · 电子证照 Electronic certificate · {document.identifier}"
    )
