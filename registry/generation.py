"""The cache generation: a counter the database itself bumps whenever a table that
per-process caches are built from changes, so that every process (gunicorn workers, CLI
commands, other servers on the same database) sees a change at its next read.

Triggers, not application code, bump it: a change made by any process, by a CLI command
or by hand in ``psql`` counts the same. The bump is an ordinary write in the changing
transaction, so it becomes visible exactly when the change does (a sequence would not:
``nextval`` is visible before the commit, and a reader could cache the old rows under the
new number). Watched: the region's code, name and public URL (not its counters, which
every issuance updates), offices, signing keys, the catalog and peers.

One definition serves ``Base.metadata.create_all`` (tests, via DDL events) and the Alembic
revision that installs the triggers (as :mod:`registry.append_only` does). The row is
created by the first bump; before it, the generation is 0.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import DDL, Integer, Table, column, event, select, table
from sqlalchemy.orm import Session

GENERATION_ROW: Final = 1  # the one row (the triggers' INSERT names it too)
# The table of registry.models.CacheGeneration (which installs these triggers, so this
# module cannot import it).
_GENERATION = table("cache_generation", column("id", Integer), column("value", Integer))
_READ: Final = select(_GENERATION.c.value).where(_GENERATION.c.id == GENERATION_ROW)
# Table → the columns whose UPDATE counts (None: every UPDATE).
WATCHED_TABLES: Final[dict[str, tuple[str, ...] | None]] = {
    "region": ("code", "name", "public_url"),
    "office": None,
    "signing_key": None,
    "certificate_type": None,
    "peer": None,
}

_BUMP: Final = (
    "INSERT INTO cache_generation (id, value) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET value = cache_generation.value + 1"
)

POSTGRES_FUNCTION: Final = f"""
CREATE OR REPLACE FUNCTION ecert_bump_cache_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_BUMP};
    RETURN NULL;
END
$$
"""


def current_generation(session: Session) -> int:
    """The generation as ``session`` sees it now (0 before anything watched changed)."""
    # Through the session's connection: every verification asks, and a plain column
    # needs none of the ORM's statement handling.
    value = session.connection().scalar(_READ)
    return 0 if value is None else int(value)


def postgres_statements(table: str) -> list[str]:
    """One statement-level trigger per table (TRUNCATE included)."""
    columns = WATCHED_TABLES[table]
    update = "UPDATE" if columns is None else f"UPDATE OF {', '.join(columns)}"
    return [
        POSTGRES_FUNCTION,
        f"CREATE TRIGGER {table}_cache_generation AFTER INSERT OR {update} OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ecert_bump_cache_generation()",
    ]


def sqlite_statements(table: str) -> list[str]:
    """SQLite triggers are per row: a statement changing n rows bumps n times (no harm)."""
    columns = WATCHED_TABLES[table]
    verbs = {"insert": "INSERT", "update": "UPDATE" if columns is None else f"UPDATE OF {', '.join(columns)}"}
    verbs["delete"] = "DELETE"
    return [
        f"CREATE TRIGGER {table}_cache_generation_{name} AFTER {verb} ON {table} BEGIN {_BUMP}; END"
        for name, verb in verbs.items()
    ]


def drop_statements(table: str, dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_cache_generation ON {table}"]
    return [f"DROP TRIGGER IF EXISTS {table}_cache_generation_{name}" for name in ("insert", "update", "delete")]


def install_on_create(table: Table) -> None:
    """Create ``table``'s triggers whenever ``metadata.create_all`` creates it."""
    for statement in postgres_statements(table.name):
        # DDL() formats its text with %: none here, but keep the rule of registry.append_only.
        event.listen(table, "after_create", DDL(statement.replace("%", "%%")).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]
    for statement in sqlite_statements(table.name):
        event.listen(table, "after_create", DDL(statement).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
