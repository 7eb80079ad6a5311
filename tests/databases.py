"""Fresh PostgreSQL databases for tests, and the rule for when PostgreSQL is missing.

PostgreSQL tests run when ECERT_TEST_POSTGRES_URL is set. With ECERT_REQUIRE_POSTGRES=1
(CI) a missing or unreachable server fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text


def require_postgres_or_skip(reason: str) -> None:
    if os.environ.get("ECERT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"ECERT_REQUIRE_POSTGRES=1: {reason}")
    pytest.skip(reason)


def empty_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the ECERT_TEST_POSTGRES_URL server, dropped afterwards."""
    base = os.environ.get("ECERT_TEST_POSTGRES_URL")
    if not base:
        require_postgres_or_skip("PostgreSQL tests off: set ECERT_TEST_POSTGRES_URL")
    url = make_url(base)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        require_postgres_or_skip(f"PostgreSQL unreachable at {url.render_as_string()}: {error}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sqlite_with_schema(path: str) -> str:
    """A SQLite database file at ``path`` with every table (and trigger) created."""
    from registry.models import Base

    url = f"sqlite:///{path}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


def postgres_with_schema(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database with every table created, dropped afterwards."""
    from registry.models import Base

    for url in empty_postgres_database(prefix):
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        yield url


def empty_all_tables(url: str) -> None:
    """Empty every table of a PostgreSQL test database between tests. The append-only
    tables refuse TRUNCATE (registry/append_only.py); a superuser's replica role skips
    triggers, which is what resetting between tests needs."""
    from registry.models import Base

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
