"""Per-request access to the deployment: the request's session, the clock, the caller."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, g, request
from sqlalchemy.orm import Session

from deployment import Deployment
from registry.errors import NotAuthenticated
from registry.models import Office
from registry.offices import authenticate
from web.problems import HttpProblem


def deployment() -> Deployment:
    return current_app.extensions["ecert"]  # type: ignore[no-any-return]


def db() -> Session:
    """The request's session. The view commits; teardown closes (rolling back the rest)."""
    if "db" not in g:
        g.db = deployment().sessions()
    return g.db  # type: ignore[no-any-return]


def close_db(_error: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def now() -> datetime:
    if "now" not in g:
        g.now = deployment().now()
    return g.now  # type: ignore[no-any-return]


def json_body() -> Any:
    """The request's JSON body.

    Raises:
        HttpProblem: 415 if it is not declared JSON, 400 if it does not parse.
    """
    if not request.is_json:
        raise HttpProblem("UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise HttpProblem("MALFORMED_JSON", "the body is not valid JSON")
    return body


def calling_office() -> Office:
    """The office whose API token authorises this request.

    Raises:
        NotAuthenticated: no, malformed, unknown or revoked bearer token.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise NotAuthenticated("an office API token is required: Authorization: Bearer <token>")
    return authenticate(db(), credentials.strip())


def office_actor(office: Office) -> str:
    return f"office:{office.credit_code}"
