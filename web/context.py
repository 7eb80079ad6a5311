"""Per-request access to the deployment: the request's session, the clock, the caller."""

from __future__ import annotations

import json
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
        return json.loads(
            request.get_data(cache=True).decode("utf-8"),
            object_pairs_hook=_refuse_duplicate_members,
            parse_constant=_refuse_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise HttpProblem("MALFORMED_JSON", f"the body is not valid UTF-8 JSON: {error}") from error


def _refuse_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise ValueError(f"member {name!r} appears more than once")
        members[name] = value
    return members


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


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
