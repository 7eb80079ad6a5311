"""HTTP API of the verifier: ``POST /api/v1/verify``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from verify.errors import BadVerificationRequest
from verify.report import VerificationReport, answer
from verify.verifier import Verifier
from web.context import deployment, json_body, now, read_db

blueprint = Blueprint("verify", __name__)


@blueprint.post("/api/v1/verify")
def verify() -> Response:
    body = json_body()
    report = verify_request(body)
    response = jsonify(answer(report))
    response.headers["Cache-Control"] = "no-store"
    return response


def verify_request(body: Any) -> VerificationReport:
    """Verify ``{token}`` or ``{qr_text}``.

    Raises:
        BadVerificationRequest: the body is not exactly one of those objects.
    """
    if not isinstance(body, dict) or len(body) != 1 or not isinstance(next(iter(body.values())), str):
        raise BadVerificationRequest('send {"token": "..."} or {"qr_text": "..."}')
    verifier = Verifier(read_db(), now=now(), leeway=deployment().settings.verify_leeway)
    if "token" in body:
        return verifier.verify(body["token"])
    if "qr_text" in body:
        return verifier.verify_qr_text(body["qr_text"])
    raise BadVerificationRequest('send {"token": "..."} or {"qr_text": "..."}')
