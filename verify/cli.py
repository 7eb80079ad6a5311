"""``flask --app app verify TOKEN``: the same answer as ``POST /api/v1/verify``."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext

from console import Outcome, reporting
from deployment import Deployment
from verify.report import answer
from verify.verifier import Verifier


@click.command("verify")
@click.argument("token")
@with_appcontext
@reporting
def verify_command(token: str) -> Outcome:
    """Verify a token (or a QR text ``<URL>/v#<token>``). Exits 1 unless VALID."""
    deployment: Deployment = current_app.extensions["ecert"]
    with deployment.read_session() as session:
        verifier = Verifier(session, now=deployment.now(), leeway=deployment.settings.verify_leeway)
        report = verifier.verify_qr_text(token) if "/v#" in token else verifier.verify(token)
        result = answer(report)
        lines = [f"{result['verdict']} {result['code']}: {result['message']['en']}"]
        if result["certificate"]:
            lines.append(json.dumps(result["certificate"], ensure_ascii=False, indent=2))
        return Outcome(result, lines, exit_code=0 if report.valid else 1)
