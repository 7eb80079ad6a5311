"""Signed certificate status for other regions (public, no office token).

* ``GET /api/v1/status/<id>`` → ``200 application/jwt``: the body is the status answer,
  a JWS compact token (``typ`` ``ecert-status``), ``Cache-Control: no-store``. An
  identifier this registry never issued is answered ``200`` too, signed as unknown.
* ``GET /.well-known/ecert/status-list`` → ``200 application/jwt``: the status list
  (``typ`` ``ecert-status-list``), ``Cache-Control: public, max-age=60``.

Both are signed with the region's status key; the formats are in ``docs/status.md``
and :mod:`registry.status_list`. (This HTTP module lives in ``web/`` because the
architecture test admits Flask only in modules named ``api.py`` inside the domain packages.)
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from registry.status_list import StatusListCache, status_answer, status_list
from web.context import deployment, now, read_db
from web.problems import HttpProblem

blueprint = Blueprint("status", __name__)

MAX_IDENTIFIER_LENGTH = 64  # the registry's identifier column; longer ones cannot exist
JWT_MEDIA_TYPE = "application/jwt"  # RFC 7519 §10.3.1


@blueprint.get("/api/v1/status/<path:certificate_id>")
def certificate_status(certificate_id: str) -> Response:
    # Neither can be an identifier (and PostgreSQL text cannot even hold U+0000).
    if len(certificate_id) > MAX_IDENTIFIER_LENGTH or "\x00" in certificate_id:
        raise HttpProblem(
            "BAD_REQUEST", f"a certificate identifier has at most {MAX_IDENTIFIER_LENGTH} characters, and no U+0000"
        )
    answer = status_answer(read_db(), deployment().keyring, certificate_id, now=now())
    response = Response(answer, mimetype=JWT_MEDIA_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/.well-known/ecert/status-list")
def region_status_list() -> Response:
    session, keyring, moment = read_db(), deployment().keyring, now()
    cache: StatusListCache = current_app.extensions.setdefault("ecert.status_list", StatusListCache())
    signed = cache.get(session, now=moment, sign=lambda: status_list(session, keyring, now=moment))
    response = Response(signed, mimetype=JWT_MEDIA_TYPE)
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
