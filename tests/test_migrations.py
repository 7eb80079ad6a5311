"""Migrations: ``db upgrade`` on an empty database yields exactly the models' schema.

Runs on a fresh SQLite file and on a fresh, empty PostgreSQL database (not the
``postgres_schema`` one, which ``create_all`` already filled).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import Engine, inspect, make_url, text

from app import create_app
from registry.models import Base
from tests.databases import empty_postgres_database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
    else:
        yield from empty_postgres_database("ecert_migrate")


@pytest.fixture
def migrating_app(empty_database_url: str) -> Iterator[Flask]:
    application = create_app({"TESTING": True, "ECERT_DATABASE_URL": empty_database_url, "ECERT_KEY_PASSPHRASE": "x"})
    yield application
    application.extensions["ecert"].dispose()


@pytest.fixture
def engine(migrating_app: Flask) -> Engine:
    return migrating_app.extensions["ecert"].engine  # type: ignore[no-any-return]


def schema_differences(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate would still have to do to reach the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def test_empty_database_has_no_tables_before_upgrade(engine: Engine) -> None:
    # Guards the other tests: they must start from nothing, not from create_all.
    assert inspect(engine).get_table_names() == []
    assert schema_differences(engine) != []


def test_upgrade_builds_exactly_the_models_schema(migrating_app: Flask, engine: Engine) -> None:
    with migrating_app.app_context():
        flask_migrate.upgrade()

    assert schema_differences(engine) == []
    assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}


def test_upgrade_twice_is_harmless_and_stays_at_head(migrating_app: Flask, engine: Engine) -> None:
    runner = migrating_app.test_cli_runner()

    first = runner.invoke(args=["db", "upgrade"])
    second = runner.invoke(args=["db", "upgrade"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    assert schema_differences(engine) == []


def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(migrating_app: Flask, engine: Engine) -> None:
    with migrating_app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="base")
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        flask_migrate.upgrade()

    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_upgrade_refuses_a_database_whose_tables_exist_without_revision(
    migrating_app: Flask, engine: Engine, empty_database_url: str
) -> None:
    # A schema made by create_all (no alembic_version) must not be silently "migrated":
    # the first revision's CREATE TABLE collides with the existing tables.
    Base.metadata.create_all(engine)
    result = migrating_app.test_cli_runner().invoke(args=["db", "upgrade"])

    assert result.exit_code != 0
    assert current_revision(engine) is None


@pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True)
def test_sqlite_opened_through_the_deployment_is_in_wal_mode_with_foreign_keys(
    migrating_app: Flask, engine: Engine, empty_database_url: str
) -> None:
    with migrating_app.app_context():
        flask_migrate.upgrade()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() > 0

    # WAL is a property of the file: a plain connection that set nothing sees it too.
    path = make_url(empty_database_url).database
    assert path is not None
    plain = sqlite3.connect(path)
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        plain.close()
