"""Errors raised by the documents package. Each has a stable ``code``."""

from __future__ import annotations


class DocumentError(Exception):
    """Base class of every error this package raises."""

    code = "DOCUMENT_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class FontsMissing(DocumentError):
    """The embedded CJK font is not installed (run the README's setup)."""

    code = "FONTS_MISSING"


class UnreadablePdf(DocumentError):
    """An uploaded file is not a PDF we can read: not a PDF, empty, truncated, encrypted, hostile."""

    code = "PDF_UNREADABLE"


class PdfTooLarge(DocumentError):
    """An uploaded PDF exceeds the size or page limits."""

    code = "PDF_TOO_LARGE"


class NoCertificateInPdf(DocumentError):
    """The PDF carries neither an embedded token nor a readable ecert QR code."""

    code = "PDF_NO_CERTIFICATE"
