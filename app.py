"""The ecert application factory: configuration, extensions, blueprints, CLI, errors → HTTP.

``create_app`` only assembles; the work happens in the domain packages. Served by
``gunicorn 'app:create_app()'`` in production and ``flask --app app run`` in development.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from flask import Flask, Response
from flask_migrate import Migrate
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from deployment import ConfigurationError, Deployment, Settings, ensure_sqlite_folder
from documents.errors import DocumentError, FontsMissing
from registry.errors import InvalidInput, NotAuthenticated, RegistryError
from registry.models import Base
from signing.errors import SigningError
from verify.errors import VerifyError
from web.problems import HttpProblem, problem_response

log = logging.getLogger("ecert")

MAX_REQUEST_BYTES = 1024 * 1024

# Error code → HTTP status: the one table. Codes not listed are server errors.
HTTP_STATUS: Mapping[str, int] = {
    "BAD_REQUEST": 400,
    "MALFORMED_JSON": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "ALREADY_EXISTS": 409,
    "IDEMPOTENCY_CONFLICT": 409,
    "STATUS_TRANSITION_REFUSED": 409,
    "NO_SIGNING_KEY": 409,
    "REQUEST_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "VALIDATION_FAILED": 422,
    "REGION_NOT_INITIALISED": 503,
    "KEY_STORAGE": 503,
    "LOG_CORRUPTED": 500,
    "FONTS_MISSING": 503,
    "PDF_UNREADABLE": 422,
    "PDF_NO_CERTIFICATE": 422,
    "PDF_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
}

# Werkzeug's HTTP errors, named as stable codes.
_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. ``config`` overrides settings (tests pass theirs here).

    Raises:
        ConfigurationError: missing key passphrase outside debug/testing, or bad settings.
    """
    app = Flask(__name__, instance_path=os.environ.get("ECERT_INSTANCE_PATH") or None)
    app.config.from_mapping(MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if config:
        app.config.update(config)
    insecure_ok = bool(app.debug or app.testing or os.environ.get("FLASK_DEBUG") == "1")
    settings = Settings.load(os.environ, app.config, instance_path=app.instance_path, insecure_ok=insecure_ok)
    app.config["SECRET_KEY"] = settings.secret_key or secrets.token_hex(32)
    ensure_sqlite_folder(settings.database_url)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    clock = app.config.get("ECERT_CLOCK")
    deployment = Deployment(settings, clock) if clock else Deployment(settings)
    app.extensions["ecert"] = deployment
    Migrate(app, _MigrationTarget(Base.metadata, deployment), directory=str(Path(__file__).parent / "migrations"))

    from documents.api import blueprint as documents_api
    from documents.cli import export_pdfs_command
    from registry.api import blueprint as registry_api
    from registry.cli import bundle_group, demo_command, office_group, partner_group, region_group
    from verify.api import blueprint as verify_api
    from verify.cli import log_group, peer_group, verify_command
    from web.context import close_db
    from web.log_api import blueprint as log_api
    from web.openapi import blueprint as openapi
    from web.pages import blueprint as pages
    from web.status_api import blueprint as status_api

    app.register_blueprint(documents_api)
    app.register_blueprint(registry_api)
    app.register_blueprint(verify_api)
    app.register_blueprint(pages)
    app.register_blueprint(status_api)
    app.register_blueprint(log_api)
    app.register_blueprint(openapi)
    app.teardown_appcontext(close_db)
    for command in (
        region_group,
        office_group,
        partner_group,
        peer_group,
        log_group,
        bundle_group,
        demo_command,
        verify_command,
        export_pdfs_command,
    ):
        app.cli.add_command(command)
    _register_error_handlers(app)
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies
        )
    from web import headers, limits

    limits.init_app(app, settings.limits, deployment_name=settings.public_url)
    headers.init_app(app)
    return app


class _MigrationTarget:
    """What migrations/env.py needs from Flask-Migrate's ``db``: metadata and an engine."""

    def __init__(self, metadata: Any, deployment: Deployment) -> None:
        self.metadata = metadata
        self._deployment = deployment

    def get_engine(self) -> Any:
        return self._deployment.engine


def _register_error_handlers(app: Flask) -> None:
    def from_code(code: str, detail: str, **extra: Any) -> Response:
        status = HTTP_STATUS.get(code, 500)
        return problem_response(status, code, HTTPStatus(status).phrase, detail, **extra)

    @app.errorhandler(InvalidInput)
    def invalid_input(error: InvalidInput) -> Response:
        errors = [{"field": e.field, "message": e.message} for e in error.errors]
        return from_code(error.code, error.detail, errors=errors)

    @app.errorhandler(RegistryError)
    def registry_error(error: RegistryError) -> Response:
        response = from_code(error.code, error.detail)
        if isinstance(error, NotAuthenticated):
            response.headers["WWW-Authenticate"] = 'Bearer realm="ecert"'
        return response

    @app.errorhandler(HttpProblem)
    def http_problem(error: HttpProblem) -> Response:
        return from_code(error.code, error.detail)

    @app.errorhandler(DocumentError)
    def document_error(error: DocumentError) -> Response:
        if isinstance(error, FontsMissing):
            # Operators need the path; clients need none of it.
            log.error("PDF rendering unavailable: %s", error.detail)
            return from_code(error.code, "certificate PDFs are unavailable right now")
        return from_code(error.code, error.detail)

    @app.errorhandler(VerifyError)
    def verify_error(error: VerifyError) -> Response:
        return from_code(error.code, str(error))

    @app.errorhandler(HTTPException)
    def http_exception(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status, f"HTTP_{status}")
        response = problem_response(status, code, HTTPStatus(status).phrase, error.description or "")
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response

    @app.errorhandler(SigningError)
    def signing_error(error: SigningError) -> Response:
        # e.g. KEY_STORAGE: the deployment's passphrase does not open its keys.
        log.error("signing failed: %s: %s", error.code, error)
        return from_code(error.code, "the service cannot sign right now")

    @app.errorhandler(ConfigurationError)
    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # The client learns nothing of the failure; the log keeps the stack trace.
        log.exception("unhandled error")
        return problem_response(500, "INTERNAL", "Internal Server Error", "the server could not complete the request")
