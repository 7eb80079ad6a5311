"""Errors raised by the verify package."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from verify.report import VerificationReport


class VerifyError(Exception):
    """Base class of every error this package raises."""

    code = "VERIFY_ERROR"


class BadVerificationRequest(VerifyError):
    """The request is not a verification request (neither a token nor QR text)."""

    code = "BAD_REQUEST"


class BatchTooLarge(VerifyError):
    """A batch holds more tokens than one request may (``verify.api.MAX_BATCH_TOKENS``)."""

    code = "REQUEST_TOO_LARGE"


class VerificationFailed(VerifyError):
    """A certificate did not verify VALID. ``report`` says why (INVALID or UNDETERMINED)."""

    def __init__(self, report: VerificationReport) -> None:
        super().__init__(f"{report.verdict.value} {report.code}: {report.detail}")
        self.report = report
        self.code = report.code
