"""HTTP API of the verifier: ``POST /api/v1/verify``, ``POST /api/v1/verify/batch`` and
``POST /api/v1/verify/pdf``."""

from __future__ import annotations

from typing import Any, Final

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from documents.errors import PdfTooLarge
from documents.reading import MAX_PDF_BYTES, PdfReading, has_visible_text, read_certificate_pdf, visible_mismatches
from verify.errors import BadVerificationRequest, BatchTooLarge
from verify.report import WITHHELD, VerificationReport, answer
from verify.verifier import Verifier
from web.context import deployment, json_body, now, read_db
from web.problems import HttpProblem

blueprint = Blueprint("verify", __name__)

# Room for the multipart boundary and part headers around a PDF of the largest size.
MULTIPART_OVERHEAD = 64 * 1024
MAX_BATCH_TOKENS: Final = 1000
# A full batch of tokens of the largest size (1000 × 4096 characters); 1 MiB elsewhere.
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
BATCH_ENDPOINT: Final = "verify.verify_batch"


@blueprint.post("/api/v1/verify")
def verify() -> Response:
    body = json_body()
    report = verify_request(body)
    response = jsonify(answer(report))
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/api/v1/verify/batch")
def verify_batch() -> Response:
    """Verify up to :data:`MAX_BATCH_TOKENS` tokens (partner systems): one answer each, in
    order, each the answer ``POST /api/v1/verify`` gives for that token. The rate limit
    counts every token (:mod:`web.limits`)."""
    reports = live_verifier().verify_many(batch_tokens())
    response = jsonify({"answers": [answer(report) for report in reports]})
    response.headers["Cache-Control"] = "no-store"
    return response


def batch_tokens() -> list[str]:
    """The tokens of this request's ``{"tokens": [...]}`` body (read once per request:
    the rate limit counts them before the view verifies them).

    Raises:
        HttpProblem: the body is not JSON (415, 400).
        RequestEntityTooLarge: the body is over :data:`MAX_BATCH_BYTES`.
        BadVerificationRequest: not exactly ``{"tokens": [...]}`` with 1 or more strings.
        BatchTooLarge: more than :data:`MAX_BATCH_TOKENS` tokens.
    """
    if "ecert_batch_tokens" not in g:
        # Only this route takes bodies this large; set before the body is read.
        request.max_content_length = MAX_BATCH_BYTES
        body = json_body()
        if not isinstance(body, dict) or set(body) != {"tokens"} or not isinstance(body["tokens"], list):
            raise BadVerificationRequest('send {"tokens": ["...", ...]}')
        tokens = body["tokens"]
        if not tokens:
            raise BadVerificationRequest("send at least one token in tokens")
        if len(tokens) > MAX_BATCH_TOKENS:
            raise BatchTooLarge(f"at most {MAX_BATCH_TOKENS} tokens per request; this one has {len(tokens)}")
        for position, token in enumerate(tokens):
            if not isinstance(token, str):
                raise BadVerificationRequest(f"tokens[{position}] is not a string")
        g.ecert_batch_tokens = tokens
    return g.ecert_batch_tokens  # type: ignore[no-any-return]


def live_verifier() -> Verifier:
    """The request's verifier: our registry, our peers, online status from other regions."""
    return deployment().verifier(read_db(), now=now(), actor="verifier")


def verify_request(body: Any) -> VerificationReport:
    """Verify ``{token}`` or ``{qr_text}``.

    Raises:
        BadVerificationRequest: the body is not exactly one of those objects.
    """
    if not isinstance(body, dict) or len(body) != 1 or not isinstance(next(iter(body.values())), str):
        raise BadVerificationRequest('send {"token": "..."} or {"qr_text": "..."}')
    verifier = live_verifier()
    if "token" in body:
        return verifier.verify(body["token"])
    if "qr_text" in body:
        return verifier.verify_qr_text(body["qr_text"])
    raise BadVerificationRequest('send {"token": "..."} or {"qr_text": "..."}')


@blueprint.post("/api/v1/verify/pdf")
def verify_pdf() -> Response:
    """Verify the certificate an uploaded PDF carries (multipart field ``file``).

    The answer is the verifier's answer for the PDF's token, plus ``document``: where the
    token was found, and which signed fields the PDF's visible text does not show.
    """
    # Only this route takes uploads this large; set before the body is parsed.
    request.max_content_length = MAX_PDF_BYTES + MULTIPART_OVERHEAD
    if request.mimetype != "multipart/form-data":
        raise HttpProblem("UNSUPPORTED_MEDIA_TYPE", "send the PDF as multipart/form-data in the field 'file'")
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge as error:
        raise PdfTooLarge(f"the PDF is larger than {MAX_PDF_BYTES} bytes") from error
    if upload is None:
        raise HttpProblem("BAD_REQUEST", "send the PDF as multipart/form-data in the field 'file'")
    reading = read_certificate_pdf(upload.read(MAX_PDF_BYTES + 1))
    verifier = live_verifier()
    if reading.token is not None:
        report = verifier.verify(reading.token)
    else:
        report = verifier.verify_qr_text(reading.qr_text or "")
    response = jsonify({**answer(report), "document": _document(reading, report)})
    response.headers["Cache-Control"] = "no-store"
    return response


def _document(reading: PdfReading, report: VerificationReport) -> dict[str, Any]:
    """What the PDF itself showed. Compared only with signed claims (the verdict never
    depends on it), and only when the pages carry text: a scanned PDF has none."""
    # A withheld forgery's content is not compared either: the names would leak it.
    checked = report.claims is not None and report.code not in WITHHELD and has_visible_text(reading.visible_text)
    mismatches: list[str] = []
    if checked and report.claims is not None:
        ctype = report.certificate_type
        mismatches = visible_mismatches(
            report.claims,
            # Without the catalog entry the ID type is unknown: mask as if personal, as the answer does.
            holder_id_type=ctype.holder_id_type if ctype else "UNKNOWN",
            qr_fields=ctype.qr_fields if ctype else (),
            visible_text=reading.visible_text,
        )
    return {"source": reading.source, "visible_text_checked": checked, "mismatches": mismatches}
