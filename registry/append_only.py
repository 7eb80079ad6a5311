"""Tables the database itself keeps append-only: triggers refuse UPDATE and DELETE (and,
on PostgreSQL, TRUNCATE) of the audit trail and the transparency log.

One definition serves both ``Base.metadata.create_all`` (tests, via DDL events) and the
Alembic revision that installs them, so the two cannot drift. This stops the
application, a bug or a casual ``UPDATE`` by an operator; it does not stop a database
superuser (who can drop triggers). What it cannot stop, the hash chain of the audit
trail and ``log audit`` detect.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import DDL, Table, event

APPEND_ONLY_TABLES: Final = ("audit_record", "log_entry", "log_node", "log_checkpoint")

POSTGRES_FUNCTION: Final = """
CREATE OR REPLACE FUNCTION ecert_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ecert: % is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def postgres_statements(table: str) -> list[str]:
    return [
        POSTGRES_FUNCTION,
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION ecert_append_only()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ecert_append_only()",
    ]


def sqlite_statements(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'ecert: {table} is append-only'); END"
        for verb in ("UPDATE", "DELETE")
    ]


def install_on_create(table: Table) -> None:
    """Create the triggers whenever ``table`` is created by ``metadata.create_all``."""
    for statement in postgres_statements(table.name):
        # DDL() formats its text with %: the trigger's own % placeholder is doubled.
        event.listen(table, "after_create", DDL(statement.replace("%", "%%")).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]
    for statement in sqlite_statements(table.name):
        event.listen(table, "after_create", DDL(statement).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
