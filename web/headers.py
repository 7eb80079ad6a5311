"""Security headers on every answer, decided in this one place.

* every answer: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
  and a Content-Security-Policy with ``frame-ancestors 'none'``;
* pages (the verification page and its assets, and any HTML, such as the API
  documentation page): the strict page policy below (only this server's script,
  style and images; no inline code; Trusted Types), ``X-Frame-Options: DENY`` and
  same-origin opener and resource policies. Everything else: ``default-src 'none'``;
* ``Strict-Transport-Security`` only on answers to HTTPS requests (``request.is_secure``,
  which believes ``X-Forwarded-Proto`` only through ``ECERT_TRUSTED_PROXIES``);
* ``Cache-Control: no-store`` on every verification and office answer, errors
  included (:mod:`web.audiences`): they are personal or must never be replayed from a
  cache. Public documents keep the cache headers their views chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flask import Flask, Response, request

from web.audiences import Audience, request_audience

API_POLICY: Final = "default-src 'none'; frame-ancestors 'none'"
PAGE_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ]
)
HSTS: Final = "max-age=31536000; includeSubDomains"
PAGE_BLUEPRINTS: Final = frozenset({"pages"})

EVERY_ANSWER: Final[Mapping[str, str]] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_ANSWER: Final[Mapping[str, str]] = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    app.after_request(security_headers)


def security_headers(response: Response) -> Response:
    """Set, outright, the headers this module promises (views cannot weaken them)."""
    headers = response.headers
    headers.update(EVERY_ANSWER)
    if _is_page(response):
        headers.update(PAGE_ANSWER)
    else:
        headers["Content-Security-Policy"] = API_POLICY
    if request.is_secure:
        headers["Strict-Transport-Security"] = HSTS
    if request_audience() is not Audience.PUBLIC:
        headers["Cache-Control"] = "no-store"
    return response


def _is_page(response: Response) -> bool:
    return request.blueprint in PAGE_BLUEPRINTS or response.mimetype == "text/html"
