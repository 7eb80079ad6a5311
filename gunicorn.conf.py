"""gunicorn settings for ecert: ``gunicorn -c gunicorn.conf.py 'app:create_app()'``.

What this adds to gunicorn's defaults (docs/operations.md, "What is logged"):

* The access log never holds a secret. gunicorn's default line carries the request line
  with its query string, the Basic-auth user name and the Referer; tokens travel in all
  of those (``/v?t=<token>``, ``/api/v1/status/<token>`` from a confused client, an API
  token sent as a Basic user name). Here the line keeps the method, the path and the
  protocol, with anything that looks like a signed token, an API token, a long secret or
  a resident ID number replaced by a marker; the query string is dropped, the Referer
  keeps only its path (redacted the same way), the user name is never shown.
* The application's own log records (``logging.getLogger(...)`` anywhere in ecert) go
  to gunicorn's error log at ``--log-level``, through the same redaction, tracebacks
  included. SQLAlchemy and Alembic are held at WARNING: SQLAlchemy's INFO/DEBUG output is
  every statement, Alembic's lists its plugins each time a worker starts.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from gunicorn.glogging import Logger

# A JWS in compact form (a certificate token, a status answer): base64url JSON header.
_COMPACT_JWS = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
# An office or partner API token.
_API_TOKEN = re.compile(r"ecertp?_[A-Za-z0-9_-]*")
# Any other long base64url run (a token's segment on its own, a secret of some other kind).
_LONG_SECRET = re.compile(r"[A-Za-z0-9_-]{40,}")
# Eighteen characters shaped like a resident ID number (GB 11643), valid or not.
_ID_NUMBER = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
# Request headers that are credentials: never available to a log format.
_SECRET_HEADERS = ("{authorization}i", "{cookie}i", "{proxy-authorization}i")


def redact(text: str) -> str:
    """``text`` with tokens, API tokens, long secrets and ID numbers replaced by markers."""
    text = _COMPACT_JWS.sub("[token]", text)
    text = _API_TOKEN.sub("[api-token]", text)
    text = _LONG_SECRET.sub("[redacted]", text)
    return _ID_NUMBER.sub("[id-number]", text)


class RedactingFilter(logging.Filter):
    """Redacts a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingLogger(Logger):
    """gunicorn's logger, with the access line and every log record redacted."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        redacting = RedactingFilter()
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "_ecert", False):
                root.removeHandler(handler)
        for handler in [*self.error_log.handlers, *self.access_log.handlers]:
            handler.addFilter(redacting)
        for handler in self.error_log.handlers:
            # The same handler object as the error log's: one stream, one format.
            handler._ecert = True  # type: ignore[attr-defined]
            root.addHandler(handler)
        root.setLevel(self.loglevel)
        # Libraries' chatter: SQLAlchemy's INFO is every statement; Alembic's INFO lists its
        # plugins each time a worker builds the app.
        for library in ("sqlalchemy", "alembic"):
            logging.getLogger(library).setLevel(logging.WARNING)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        path = redact(environ.get("PATH_INFO") or "")
        atoms["U"] = path
        atoms["q"] = ""
        atoms["r"] = f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}"
        atoms["u"] = "-"
        referer = environ.get("HTTP_REFERER")
        atoms["f"] = redact(urlsplit(referer).path) if referer else "-"
        atoms["a"] = redact(environ.get("HTTP_USER_AGENT") or "-")
        for name in list(atoms):
            if name in _SECRET_HEADERS:
                atoms[name] = "-"
            elif name.startswith("{") and isinstance(atoms[name], str):
                atoms[name] = redact(atoms[name])
        return atoms


logger_class = RedactingLogger
# gunicorn's default fields; "%(r)s" is the redacted request line without its query string.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
