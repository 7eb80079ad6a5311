"""RFC 9457 problem details, and errors raised by the HTTP layer itself."""

from __future__ import annotations

from typing import Any

from flask import Response, json


class HttpProblem(Exception):
    """An error found while reading the HTTP request (not the domain's fault)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def problem_response(status: int, code: str, title: str, detail: str, **extra: Any) -> Response:
    body = {
        "type": f"urn:ecert:problem:{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json")
    response.headers["Cache-Control"] = "no-store"
    return response
