"""Who each endpoint answers: the one classification rate limits and cache headers follow.

* VERIFICATION: anonymous verification (``/api/v1/verify...``, ``/api/v1/status/<id>``),
  which partner regions may call with their token; answers are never cached.
* OFFICE: an office's own certificates (``/api/v1/certificates...``); personal, never cached.
* PUBLIC: everything else (catalog, trust list, status list, JWKS, the log, the page,
  the API documents); public documents that keep their own cache headers.
"""

from __future__ import annotations

from enum import Enum

from flask import request


class Audience(Enum):
    VERIFICATION = "verification"
    OFFICE = "office"
    PUBLIC = "public"


VERIFICATION_BLUEPRINT = "verify"
VERIFICATION_ENDPOINTS = frozenset({"status.certificate_status"})
OFFICE_PATH = "/api/v1/certificates"


def audience_of(endpoint: str | None, rule: str | None) -> Audience:
    """The audience of a route, from its endpoint name and URL rule (None: no route matched)."""
    if endpoint is not None and (
        endpoint.split(".")[0] == VERIFICATION_BLUEPRINT or endpoint in VERIFICATION_ENDPOINTS
    ):
        return Audience.VERIFICATION
    if rule is not None and (rule == OFFICE_PATH or rule.startswith(OFFICE_PATH + "/")):
        return Audience.OFFICE
    return Audience.PUBLIC


def request_audience() -> Audience:
    """The audience of the current request's route."""
    rule = request.url_rule
    return audience_of(request.endpoint, None if rule is None else rule.rule)
