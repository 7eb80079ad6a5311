"""This region's transparency log over HTTP (DESIGN's public contract; docs/log.md).

* ``GET /api/v1/log`` → ``{origin, verifier_key, tree_size}``
* ``GET /api/v1/log/checkpoint`` → the newest signed checkpoint (C2SP note, text/plain)
* ``GET /api/v1/log/proof/consistency?from=N&to=M`` → ``{proof: [base64 ...]}``
* ``GET /api/v1/log/proof/inclusion?index=I&size=N`` → ``{proof: [base64 ...]}``
* ``GET /api/v1/log/entries?start=I&end=J`` → ``{entries: [base64 leaf data ...]}``
* ``GET /api/v1/log/cosignatures`` → peers' checkpoints we witnessed, countersigned

Hashes and leaf data are standard base64, as in RFC 6962's JSON API. A size, index or
range outside the log is ``400 BAD_REQUEST``. (In ``web/`` because the architecture test
admits Flask only in modules named ``api.py`` inside the domain packages.)
"""

from __future__ import annotations

import base64
import re

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from registry import log
from registry.models import Peer
from registry.regions import current_region
from web.context import db, deployment, now, read_db
from web.problems import HttpProblem

blueprint = Blueprint("log", __name__)

_NUMBER = re.compile(r"0|[1-9][0-9]{0,15}")


@blueprint.get("/api/v1/log")
def log_info() -> Response:
    session = read_db()
    region = current_region(session)
    verifier_key = log.log_verifier_key(region)
    if verifier_key is None:  # the log's key is made on first use
        writing = db()
        log.ensure_log_key(writing, deployment().keyring, current_region(writing))
        writing.commit()
        region = current_region(writing)
        verifier_key = log.log_verifier_key(region)
    response = jsonify({"origin": log.origin_of(region), "verifier_key": verifier_key, "tree_size": region.log_size})
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/api/v1/log/checkpoint")
def checkpoint() -> Response:
    newest = log.newest_checkpoint(read_db())
    if newest is None or newest.size != log.tree_size(read_db()):
        session = db()
        newest = log.current_checkpoint(session, deployment().keyring, now=now())
        session.commit()
    response = Response(newest.note, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/api/v1/log/proof/consistency")
def consistency() -> Response:
    proof = log.consistency(read_db(), _number("from"), _number("to"))
    return _hashes("proof", proof)


@blueprint.get("/api/v1/log/proof/inclusion")
def inclusion() -> Response:
    proof = log.inclusion(read_db(), _number("index"), _number("size"))
    return _hashes("proof", proof)


@blueprint.get("/api/v1/log/entries")
def entries() -> Response:
    return _hashes("entries", log.entries(read_db(), _number("start"), _number("end")))


@blueprint.get("/api/v1/log/cosignatures")
def cosignatures() -> Response:
    """Peers' checkpoints this region witnessed (consistent with all it saw before), each
    with our log key's signature added: what we vouch each peer's log looked like."""
    peers = read_db().scalars(select(Peer).where(Peer.log_cosigned.is_not(None)).order_by(Peer.region_code))
    response = jsonify(
        {"cosignatures": [{"region": p.region_code, "size": p.log_size, "checkpoint": p.log_cosigned} for p in peers]}
    )
    response.headers["Cache-Control"] = "no-cache"
    return response


def _number(name: str) -> int:
    text = request.args.get(name, "")
    if not _NUMBER.fullmatch(text):
        raise HttpProblem("BAD_REQUEST", f"query parameter {name!r} must be a whole number")
    return int(text)


def _hashes(member: str, values: list[bytes]) -> Response:
    response = jsonify({member: [base64.b64encode(value).decode("ascii") for value in values]})
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
