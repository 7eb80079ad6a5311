"""Conventions shared by every CLI command (click only, no Flask).

Every command takes ``--json``: with it, the command prints one JSON object on its
last line. A failure exits non-zero with a one-line reason on stderr (and, with
``--json``, ``{"error": CODE, "detail": ...}`` on stdout).
"""

from __future__ import annotations

import functools
import getpass
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
from flask import current_app
from sqlalchemy.exc import OperationalError, ProgrammingError

from deployment import ConfigurationError, Deployment
from documents.errors import DocumentError
from registry.errors import InvalidInput, RegistryError
from signing.errors import SigningError
from verify.errors import VerifyError

_EXPECTED = (RegistryError, SigningError, VerifyError, DocumentError, ConfigurationError)


@dataclass
class Outcome:
    """What a command reports: a JSON object, and lines for a person."""

    result: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    exit_code: int = 0


def running_deployment() -> Deployment:
    """The deployment of the app the command runs in."""
    return current_app.extensions["ecert"]  # type: ignore[no-any-return]


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def reporting(command: Callable[..., Outcome]) -> Callable[..., None]:
    """Add ``--json`` to a command and turn its :class:`Outcome` or error into output."""

    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object on the last line.")
    @functools.wraps(command)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> None:
        try:
            outcome = command(*args, **kwargs)
        except (OperationalError, ProgrammingError) as error:
            # Missing tables or an unreachable server: say what to do, not the SQL.
            _fail(
                as_json,
                "DATABASE_NOT_READY",
                f"the database is not usable ({type(error.orig).__name__}); "
                "is ECERT_DATABASE_URL right, and has `flask --app app db upgrade` run?",
            )
        except _EXPECTED as error:
            code = getattr(error, "code", "ERROR")
            detail = getattr(error, "detail", None) or str(error)
            if isinstance(error, InvalidInput) and error.errors:
                detail += ": " + "; ".join(f"{e.field}: {e.message}" for e in error.errors)
            _fail(as_json, code, detail)
        if as_json:
            click.echo(json.dumps(outcome.result, ensure_ascii=False))
        else:
            for line in outcome.lines:
                click.echo(line)
        if outcome.exit_code:
            sys.exit(outcome.exit_code)

    return wrapper


def _fail(as_json: bool, code: str, detail: str) -> None:
    detail = " ".join(detail.split())
    if as_json:
        click.echo(json.dumps({"error": code, "detail": detail}, ensure_ascii=False))
    click.echo(f"error: {code}: {detail}", err=True)
    sys.exit(1)
