"""HTTP API of the registry: catalog, issuance, certificates, status, JWKS, trust list."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from registry.batch import ItemResult, batch_items, issue_batch
from registry.catalog import describe, list_types
from registry.errors import FieldError, InvalidInput
from registry.identifiers import mask_id_number
from registry.issuance import find_by_idempotency_key, get_office_certificate, issue_certificate
from registry.models import Certificate, Region, SigningKey
from registry.offices import COMPROMISED
from registry.regions import current_region
from registry.requests import is_idempotency_key, parse_issuance_request, request_digest
from registry.status import Status, change_status
from registry.times import iso_utc
from registry.trust_list import current_trust_list, is_fresh, newest_trust_list
from web.context import calling_office, db, deployment, json_body, now, office_actor, read_db

blueprint = Blueprint("registry", __name__)

# A full batch of large items (1000 × 4 KiB); the app's default stays 1 MiB elsewhere.
MAX_BATCH_BYTES = 4 * 1024 * 1024


@blueprint.get("/api/v1/catalog")
def catalog() -> Response:
    return jsonify({"types": [describe(t) for t in list_types(read_db())]})


@blueprint.post("/api/v1/certificates")
def issue() -> tuple[Response, int]:
    office = calling_office()
    body = json_body()
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not is_idempotency_key(idempotency_key):
        raise InvalidInput("bad Idempotency-Key", [FieldError("Idempotency-Key", "1 to 255 visible ASCII characters")])
    parsed = parse_issuance_request(body)
    digest = request_digest(body)
    session = db()
    try:
        issued = issue_certificate(
            session,
            deployment().keyring,
            office,
            parsed,
            now=now(),
            actor=office_actor(office),
            idempotency_key=idempotency_key,
            digest=digest,
        )
        session.commit()
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won the race.
        session.rollback()
        if idempotency_key is None:
            raise
        existing = find_by_idempotency_key(session, office, idempotency_key, digest)
        if existing is None:
            raise
        return _certificate_response(existing, current_region(session), replayed=True), 201
    return _certificate_response(issued.certificate, current_region(session), replayed=issued.replayed), 201


@blueprint.post("/api/v1/certificates/batch")
def issue_many() -> Response:
    """Issue up to 1000 certificates: one result per item, in item order (registry/batch.py)."""
    # Only this route reads bodies this large; set before the body is read.
    request.max_content_length = MAX_BATCH_BYTES
    office = calling_office()
    items = batch_items(json_body())
    session = db()
    try:
        results = issue_batch(session, deployment().keyring, office, items, now=now(), actor=office_actor(office))
        session.commit()
    except IntegrityError:
        # A concurrent request with one of these idempotency keys won the race; once it
        # has committed, a second attempt finds its certificates and replays them.
        session.rollback()
        results = issue_batch(session, deployment().keyring, office, items, now=now(), actor=office_actor(office))
        session.commit()
    region = current_region(session)
    answers = [_item_answer(result, region) for result in results]
    response = jsonify(
        {
            "results": answers,
            "issued": sum(answer["status"] == 201 for answer in answers),
            "replayed": sum(answer["status"] == 200 for answer in answers),
            "failed": sum(answer["status"] >= 400 for answer in answers),
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _item_answer(result: ItemResult, region: Region) -> dict[str, Any]:
    if result.certificate is not None:
        status = 200 if result.replayed else 201
        return {
            "index": result.index,
            "status": status,
            "replayed": result.replayed,
            "certificate": certificate_resource(result.certificate, region),
        }
    assert result.error is not None
    # The app's own error handler builds the problem, so an item is refused with exactly
    # the problem details the single endpoint would answer (and the code → HTTP status
    # table stays in app.py).
    problem = current_app.make_response(current_app.handle_user_exception(result.error)).get_json()
    return {"index": result.index, "status": problem["status"], "problem": problem}


@blueprint.get("/api/v1/certificates/<path:certificate_id>")
def certificate(certificate_id: str) -> Response:
    session = read_db()
    office = calling_office(session)
    found = get_office_certificate(session, office, certificate_id)
    return _certificate_response(found, current_region(session))


@blueprint.post("/api/v1/certificates/<path:certificate_id>/status")
def status(certificate_id: str) -> Response:
    office = calling_office()
    body = json_body()
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    session = db()
    found = get_office_certificate(session, office, certificate_id)
    errors = [FieldError(name, "unknown member") for name in sorted(set(body) - {"status", "reason"})]
    new_status = None
    try:
        requested = body.get("status")
        new_status = Status.parse(requested if isinstance(requested, str) else "")
    except ValueError as error:
        errors.append(FieldError("status", str(error)))
    reason = body.get("reason")
    if not isinstance(reason, str):
        errors.append(FieldError("reason", "a string is required"))
    if errors or new_status is None or not isinstance(reason, str):
        raise InvalidInput("the status change is not valid", errors)
    change_status(session, found, new_status, reason, now=now(), actor=office_actor(office))
    session.commit()
    return _certificate_response(found, current_region(session))


@blueprint.get("/.well-known/jwks.json")
def jwks() -> Response:
    keys = read_db().scalars(select(SigningKey).where(SigningKey.state != COMPROMISED).order_by(SigningKey.created_at))
    response = jsonify({"keys": [{**k.public_jwk, "kid": k.kid, "alg": k.algorithm, "use": "sig"} for k in keys]})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.get("/.well-known/ecert/trust-list")
def trust_list() -> Response:
    """This region's current signed trust list: the JWS itself, as ``application/jwt``.

    The body is the compact JWS (docs/trust-list.md), not JSON, so that what a peer
    fetches is byte for byte what the root signed. A list that has expired, or has less
    than a quarter of its lifetime left, is replaced by a newly published one first;
    that is why the view may write (through the writing session ``db()``), but it only
    takes the write lock when a list must be published.
    """
    newest = newest_trust_list(read_db())
    if newest is None or not is_fresh(newest, now()):
        session = db()
        newest = current_trust_list(session, deployment().keyring, now=now(), actor="system:trust-list")
        session.commit()
    response = Response(newest.jws, mimetype="application/jwt")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _certificate_response(found: Certificate, region: Region, *, replayed: bool = False) -> Response:
    response = jsonify(certificate_resource(found, region))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Location"] = f"/api/v1/certificates/{found.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def certificate_resource(found: Certificate, region: Region) -> dict[str, Any]:
    """A certificate as its office sees it through the API (ID number masked)."""
    status = Status(found.status)
    return {
        "id": found.id,
        "type": found.type_code,
        "status": status.name,
        "status_code": status.value,
        "holder": {
            "name": found.holder_name,
            "id_type": found.holder_id_type,
            "id_number": mask_id_number(found.holder_id_type, found.holder_id_number),
        },
        "fields": found.fields,
        "valid_from": iso_utc(found.valid_from),
        "valid_until": None if found.valid_until is None else iso_utc(found.valid_until),
        "issued_at": iso_utc(found.issued_at),
        "kid": found.kid,
        "token": found.token,
        "qr_text": f"{region.public_url}/v#{found.token}",
        "history": [
            {
                "from": Status(c.from_status).name,
                "to": Status(c.to_status).name,
                "reason": c.reason,
                "at": iso_utc(c.changed_at),
            }
            for c in found.history
        ],
        "links": {"self": f"/api/v1/certificates/{found.id}", "pdf": f"/api/v1/certificates/{found.id}/pdf"},
    }
