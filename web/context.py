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
from signing import strict_json
from web.problems import HttpProblem


def deployment() -> Deployment:
    return current_app.extensions["ecert"]  # type: ignore[no-any-return]


def db() -> Session:
    """The request's writing session. The view commits; teardown closes (rolling back the rest)."""
    if "db" not in g:
        g.db = deployment().sessions()
    return g.db  # type: ignore[no-any-return]


def read_db() -> Session:
    """The request's reading session, for views that change nothing."""
    if "read_db" not in g:
        g.read_db = deployment().read_sessions()
    return g.read_db  # type: ignore[no-any-return]


def close_db(_error: BaseException | None = None) -> None:
    for name in ("db", "read_db"):
        session = g.pop(name, None)
        if session is not None:
            session.close()


def now() -> datetime:
    if "now" not in g:
        g.now = deployment().now()
    return g.now  # type: ignore[no-any-return]


def json_body() -> Any:
    """The request's JSON body, read strictly: UTF-8, no duplicate members, no NaN.

    A duplicate member would let the caller's parser and ours disagree about what was
    signed, so it is refused rather than resolved.

    Raises:
        HttpProblem: 415 if it is not declared JSON, 400 if it does not parse.
    """
    if not request.is_json:
        raise HttpProblem("UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")
    try:
        return strict_json.loads(request.get_data(cache=True).decode("utf-8"))
    except UnicodeDecodeError as error:
        raise HttpProblem("MALFORMED_JSON", "the body is not UTF-8") from error
    except strict_json.StrictJsonError as error:
        raise HttpProblem("MALFORMED_JSON", f"the body is not strict JSON: {error}") from error


def calling_office(session: Session | None = None) -> Office:
    """The office whose API token authorises this request (looked up in ``session``,
    by default the writing session).

    Raises:
        NotAuthenticated: no, malformed, unknown or revoked bearer token.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise NotAuthenticated("an office API token is required: Authorization: Bearer <token>")
    return authenticate(session or db(), credentials.strip())


def office_actor(office: Office) -> str:
    return f"office:{office.credit_code}"
