"""The statements of the hot paths: each written once, as SQL, and run on the driver.

A Core statement, even built once and found in the compiled cache, costs the service 20-55 µs
of CPU more per execution inside a request than the same SQL through
`Connection.exec_driver_sql`: as much again as the round trip's own client CPU
(bench/README.md, "Statements"). So the statements of create, confirm, cancel, claim and the
idempotency keys are plain SQL with `:name` parameters, in the SQL that MariaDB/MySQL and SQLite
share, run with `exec_driver_sql` on the unit of work's Connection: the same transaction,
SQLAlchemy's error wrapping (and invalidation of a dead connection), the same cursor events.

What differs between the two databases is decided here and nowhere else:
- parameters: PyMySQL takes `%(name)s`, and renders a list parameter as an `IN` list;
- `FOR UPDATE` (`Statement(..., for_update=True)`, `nowait=True` for `FOR UPDATE NOWAIT`):
  SQLite has none, and needs none (every
  transaction starts with BEGIN IMMEDIATE, which serialises writers: servicekit/db.py);
- writes sent with COMMIT (`run_with_commit`, servicekit.db.send_with_commit): one round trip
  for the last writes and the COMMIT on MariaDB/MySQL; SQLite runs them at once;
- types: PyMySQL reads and writes DATETIME as `datetime`, SQLite stores text. On SQLite (the
  `make run` default, where CPU does not matter) a statement goes through `text()` with its
  datetime parameters and columns typed, so the same SQL reads and writes what Core would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, TextClause, bindparam, text

from servicekit.db import send_with_commit

from .models import Base, Timestamp

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]

_NAME = re.compile(r"(?<![:\w]):(\w+)")
# Every DATETIME column of the schema, by name (the same name has the same type in every table).
_TIMESTAMP_COLUMNS = {
    column.name: Timestamp
    for table in Base.metadata.tables.values()
    for column in table.columns
    if column.type is Timestamp
}


class Statement:
    """One SQL statement with `:name` parameters; a list parameter stands for an `IN` list
    (`id IN :ids`, never empty)."""

    __slots__ = ("sql", "for_update", "nowait", "_pyformat")

    def __init__(self, sql: str, *, for_update: bool = False, nowait: bool = False) -> None:
        self.sql = sql
        self.for_update = for_update
        self.nowait = nowait
        lock = (" FOR UPDATE NOWAIT" if nowait else " FOR UPDATE") if for_update else ""
        self._pyformat = _NAME.sub(r"%(\1)s", sql.replace("%", "%%")) + lock

    def __repr__(self) -> str:
        return f"Statement({self.sql!r}, for_update={self.for_update}, nowait={self.nowait})"

    def sqlite_clause(self, sample: Mapping[str, Any]) -> TextClause:
        """The statement as SQLite runs it: `text()` with typed datetimes, expanded lists."""
        clause = text(self.sql).bindparams(
            *(
                bindparam(
                    name,
                    type_=Timestamp if isinstance(value, datetime) else None,
                    expanding=isinstance(value, list | tuple),
                )
                for name, value in sample.items()
            )
        )
        if self.sql.lstrip().upper().startswith("SELECT"):
            return clause.columns(**_TIMESTAMP_COLUMNS)
        return clause


def run(conn: Connection, statement: Statement, params: Params) -> CursorResult[Any]:
    """Run `statement` in `conn`'s transaction: once, or for each mapping of a sequence
    (the driver batches an INSERT's rows into one statement)."""
    if conn.dialect.name == "sqlite":
        sample = params if isinstance(params, Mapping) else params[0]
        return conn.execute(statement.sqlite_clause(sample), params)
    return conn.exec_driver_sql(statement._pyformat, params)


def run_with_commit(conn: Connection, statement: Statement, params: Params, *, may_wait: bool = False) -> None:
    """`run`, for a write whose answer nobody reads, sent to the server with this transaction's
    COMMIT in one round trip (MariaDB/MySQL: `send_with_commit` says which writes qualify, and
    which one `may_wait` for a contended lock); SQLite, where a round trip costs nothing, runs it
    now."""
    if conn.dialect.name == "sqlite":
        run(conn, statement, params)
        return
    for row in [params] if isinstance(params, Mapping) else params:
        send_with_commit(conn, statement._pyformat, row, may_wait=may_wait)
