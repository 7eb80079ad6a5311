"""HTTP API of documents: ``GET /api/v1/certificates/<id>/pdf`` for the issuing office."""

from __future__ import annotations

from flask import Blueprint, Response

from documents.certificate_pdf import render_certificate_pdf
from documents.model import document_for
from registry.issuance import get_office_certificate
from registry.regions import current_region
from web.context import calling_office, read_db

blueprint = Blueprint("documents", __name__)


@blueprint.get("/api/v1/certificates/<path:certificate_id>/pdf")
def certificate_pdf(certificate_id: str) -> Response:
    session = read_db()
    office = calling_office(session)
    certificate = get_office_certificate(session, office, certificate_id)
    pdf = render_certificate_pdf(document_for(certificate, current_region(session)))
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{certificate.id}.pdf"'
    response.headers["Cache-Control"] = "no-store"
    return response
