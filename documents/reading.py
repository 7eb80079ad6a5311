"""Reading an uploaded certificate PDF back: the token it carries, and its visible text.

The token is taken from the metadata (Keywords ``ecert-token:<token>``, as
:mod:`documents.certificate_pdf` writes it); a PDF without one (printed and scanned,
or re-saved by another program) is rendered and searched for the certificate's QR code.
What the PDF shows is only compared with what the token signed: the verdict always comes
from the token, never from the visible text.

Uploads are hostile until proven otherwise: the size and page count are limited before
any page is parsed, renders are capped in pixels whatever the page's dimensions claim,
and every pypdfium2 object is closed as soon as it has been used. PDFium is used by one
thread at a time.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pypdfium2 as pdfium
import zxingcpp

from documents.certificate_pdf import TOKEN_KEYWORD
from documents.errors import NoCertificateInPdf, PdfTooLarge, UnreadablePdf
from documents.model import print_date, print_value, valid_until_text
from registry.claims import CertificateClaims
from registry.identifiers import mask_id_number

MAX_PDF_BYTES = 4 * 1024 * 1024
MAX_PDF_PAGES = 5
RENDER_SCALE = 2.0  # 144 dpi: a printed QR code's modules are several pixels wide
MAX_RENDER_SIDE = 2500  # pixels on the long side, whatever size the page claims
QR_MARKER = "/v#"
PDF_MAGIC = b"%PDF-"
QR_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
# PDFium is not thread-safe, not even across documents: one call at a time per process
# (pypdfium2's documentation; a threaded server would otherwise crash).
_PDFIUM = threading.Lock()
_TOKEN_IN_KEYWORDS = re.compile(re.escape(TOKEN_KEYWORD) + r"([^\s,;]+)")

Source = Literal["metadata", "qr"]


@dataclass(frozen=True)
class PdfReading:
    """What an uploaded PDF carries: exactly one of ``token`` (from the metadata) or
    ``qr_text`` (decoded from a rendered page), and the text its pages show."""

    source: Source
    token: str | None
    qr_text: str | None
    visible_text: str
    pages: int


def read_certificate_pdf(data: bytes, *, max_bytes: int = MAX_PDF_BYTES, max_pages: int = MAX_PDF_PAGES) -> PdfReading:
    """Read the certificate token (or QR text) and the visible text of an uploaded PDF.

    Raises:
        PdfTooLarge: more than ``max_bytes`` bytes or more than ``max_pages`` pages.
        UnreadablePdf: empty, not a PDF, corrupt, truncated, or encrypted with a password.
        NoCertificateInPdf: neither an embedded token nor a certificate QR code.
    """
    if not data:
        raise UnreadablePdf("the file is empty")
    if len(data) > max_bytes:
        raise PdfTooLarge(f"the PDF is larger than {max_bytes} bytes")
    if not data.startswith(PDF_MAGIC):
        raise UnreadablePdf("the file is not a PDF (it does not start with %PDF-)")
    with _PDFIUM, _opened(data) as document:
        pages = len(document)
        if pages > max_pages:
            raise PdfTooLarge(f"the PDF has {pages} pages; a certificate has at most {max_pages}")
        token = _metadata_token(document)
        visible_text = "\n".join(_page_text(document, index) for index in range(pages))
        if token is not None:
            return PdfReading(source="metadata", token=token, qr_text=None, visible_text=visible_text, pages=pages)
        for index in range(pages):
            qr_text = _page_qr_text(document, index)
            if qr_text is not None:
                return PdfReading(source="qr", token=None, qr_text=qr_text, visible_text=visible_text, pages=pages)
    raise NoCertificateInPdf("the PDF carries neither an ecert token in its metadata nor a certificate QR code")


@contextmanager
def _opened(data: bytes) -> Iterator[Any]:
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        # pypdfium2 names the cause: data format error, password required, ...
        raise UnreadablePdf(f"the PDF cannot be read: {error}") from error
    try:
        yield document
    except pdfium.PdfiumError as error:
        raise UnreadablePdf(f"the PDF cannot be read: {error}") from error
    finally:
        document.close()


def _metadata_token(document: Any) -> str | None:
    keywords = document.get_metadata_value("Keywords")
    match = _TOKEN_IN_KEYWORDS.search(keywords or "")
    return match.group(1) if match else None


def _page_text(document: Any, index: int) -> str:
    page = document[index]
    try:
        text_page = page.get_textpage()
        try:
            return str(text_page.get_text_range())
        finally:
            text_page.close()
    finally:
        page.close()


def render_scale(width: float, height: float) -> float:
    """The scale to render a ``width`` × ``height`` point page at: RENDER_SCALE, reduced so
    the long side stays within MAX_RENDER_SIDE pixels (0 for a page with no usable size)."""
    if not all(math.isfinite(side) and side > 0 for side in (width, height)):
        return 0.0
    return min(RENDER_SCALE, MAX_RENDER_SIDE / max(width, height))


def _page_qr_text(document: Any, index: int) -> str | None:
    page = document[index]
    try:
        scale = render_scale(*page.get_size())
        if scale <= 0:
            return None
        bitmap = page.render(scale=scale, grayscale=True, may_draw_forms=False)
        try:
            barcodes = zxingcpp.read_barcodes(bitmap.to_pil(), formats=QR_FORMATS)
        finally:
            bitmap.close()
    finally:
        page.close()
    return next((barcode.text for barcode in barcodes if QR_MARKER in barcode.text), None)


# ---------------------------------------------------------------- visible text


def has_visible_text(visible_text: str) -> bool:
    """Whether the pages carry extractable text at all (a scanned PDF has none)."""
    return bool(_normalised(visible_text))


def visible_mismatches(
    claims: CertificateClaims, *, holder_id_type: str, qr_fields: Sequence[str], visible_text: str
) -> list[str]:
    """The signed fields whose printed form is missing from ``visible_text``.

    Each value is printed as :mod:`documents.model` prints it (dates in China Standard
    Time, ``长期`` for no end, the holder's ID number masked). Whitespace and line breaks
    are ignored, since a long value wraps over several rows on the page.

    Names: ``identifier``, ``holder_name``, ``holder_id_number``, each QR field by its
    catalog name, ``valid_from``, ``valid_until``.
    """
    expires = None if claims.expires is None else datetime.fromtimestamp(claims.expires, UTC)
    printed: list[tuple[str, str]] = [
        ("identifier", claims.certificate_id),
        ("holder_name", claims.holder.name),
        ("holder_id_number", mask_id_number(holder_id_type, claims.holder.id_number)),
        *(
            (name, print_value(value))
            for name, value in zip(qr_fields, claims.fields, strict=False)
            if value is not None
        ),
        ("valid_from", print_date(datetime.fromtimestamp(claims.valid_from, UTC))),
        ("valid_until", valid_until_text(expires)),
    ]
    shown = _normalised(visible_text)
    return [name for name, value in printed if _normalised(value) not in shown]


def _normalised(text: str) -> str:
    # NFKC folds full-width and compatibility forms a PDF's text layer may use; spaces,
    # line breaks and control characters are dropped (wrapping and extraction add them).
    folded = unicodedata.normalize("NFKC", text)
    return "".join(c for c in folded if not c.isspace() and unicodedata.category(c) not in {"Cc", "Cf"})
