"""New rows written with one bulk INSERT instead of the unit of work's flush (issue 7).

The ORM's flush tracks every attribute of every pending object; for the thousand
certificates and log entries of a batch that bookkeeping costs more than their
signatures. :func:`insert_new` writes them in one statement and then adds them to the
session as if a query had loaded them, so callers keep ordinary persistent objects.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table, insert, inspect
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached


def insert_new(session: Session, objects: Sequence[DeclarativeBase]) -> None:
    """INSERT new ``objects`` of one mapped class, in order, in the session's transaction;
    they are then persistent in ``session``.

    Every object must carry its primary key and a value for each column the first one
    sets (a column it leaves unset takes its default, read back on access). Unlike a
    flush's objects, a rollback leaves these expired in the session rather than removing them.
    """
    if not objects:
        return
    mapper = inspect(type(objects[0]))
    table = mapper.local_table
    assert isinstance(table, Table)
    first = vars(objects[0])
    columns = {attribute.key: attribute.columns[0].key for attribute in mapper.column_attrs if attribute.key in first}
    # A Core INSERT of the table is one executemany whatever the values; the ORM's bulk
    # INSERT starts a new statement whenever the set of None-valued columns changes.
    session.execute(insert(table), [{column: vars(row)[key] for key, column in columns.items()} for row in objects])
    for row in objects:
        make_transient_to_detached(row)
    session.add_all(objects)
