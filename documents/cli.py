"""``flask --app app export-pdfs --office CODE --out DIR``: an office's PDFs in bulk."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from console import Outcome, reporting
from deployment import Deployment
from documents.certificate_pdf import render_certificate_pdf
from documents.model import document_for
from registry.models import Certificate
from registry.offices import get_office
from registry.regions import current_region

BATCH = 200


@click.command("export-pdfs")
@click.option("--office", "office_code", required=True, help="The office's credit code.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@with_appcontext
@reporting
def export_pdfs_command(office_code: str, out_dir: Path) -> Outcome:
    """Write every certificate PDF of an office into DIR as <identifier>.pdf."""
    deployment: Deployment = current_app.extensions["ecert"]
    written = 0
    with deployment.read_session() as session:
        office = get_office(session, office_code)
        region = current_region(session)
        out_dir.mkdir(parents=True, exist_ok=True)
        total = session.scalar(select(func.count()).select_from(Certificate).where(Certificate.office_id == office.id))
        rows = session.scalars(
            select(Certificate)
            .where(Certificate.office_id == office.id)
            .order_by(Certificate.issued_at, Certificate.id)
        ).yield_per(BATCH)
        # The bar goes to stderr, so --json keeps its one object on stdout's last line.
        with click.progressbar(rows, length=total or 0, label="PDFs", file=click.get_text_stream("stderr")) as bar:
            for certificate in bar:
                target = out_dir / f"{certificate.id}.pdf"
                partial = target.with_suffix(".pdf.part")
                partial.write_bytes(render_certificate_pdf(document_for(certificate, region)))
                partial.replace(target)  # no half-written PDF under its final name
                written += 1
    result = {"office": office.credit_code, "out": str(out_dir), "written": written}
    return Outcome(result, [f"wrote {written} PDF(s) of office {office.credit_code} to {out_dir}"])
