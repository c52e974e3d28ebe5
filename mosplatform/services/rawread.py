"""Prebuilt SELECTs run on the DB-API cursor, with SQLAlchemy's own type conversions.

The participant's hot paths read a handful of small rows per request with statements
that never change. Under load, SQLAlchemy's execution machinery (compiled-cache
lookup, execution context, parameter and result set-up) took about a fifth of the app
servers' Python time, far more than the queries themselves (the py-spy profile of
``bench/load/run.py --profile``). :class:`RawSelect` compiles its statement once per
dialect with SQLAlchemy, keeps the SQL, the parameter order and the column types'
bind and result processors, and then runs it on the cursor of the connection it is
given: the same connection, so the same transaction, as a Core ``execute``, and rows
with the same values, as named tuples.

Only for SELECTs with plain (non-expanding) parameters. Errors are the driver's own
(not wrapped in SQLAlchemy's ``DBAPIError``).
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Connection, Dialect


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...] | None  # parameter order for positional paramstyles
    binds: dict[str, Callable[[Any], Any]]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    row: Any  # the named-tuple class of the rows


class RawSelect:
    """A prebuilt SELECT executed without SQLAlchemy's execution machinery.

    Parameters
    ----------
    statement : Select
        A Core SELECT whose parameters are plain ``bindparam`` objects.
    """

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._by_dialect: dict[tuple[str, str], _Compiled] = {}
        self._lock = threading.Lock()

    def _compile(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver)
        compiled = self._by_dialect.get(key)
        if compiled is not None:
            return compiled
        c = self.statement.compile(dialect=dialect)
        binds = {}
        for name, bind in c.binds.items():
            if bind.expanding:
                raise ValueError(f"RawSelect takes no expanding parameters ({name})")
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                binds[name] = proc
        columns = list(self.statement.selected_columns)
        results = []
        for i, column in enumerate(columns):
            proc = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if proc is not None:
                results.append((i, proc))
        row = namedtuple("Row", list(self.statement.selected_columns.keys()))  # type: ignore[misc]
        compiled = _Compiled(sql=c.string, names=tuple(c.positiontup) if c.positional else None,
                             binds=binds, results=tuple(results), row=row)
        with self._lock:
            self._by_dialect[key] = compiled
        return compiled

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row of the statement with ``params``, on ``conn``'s DB-API connection."""
        compiled = self._compile(conn.dialect)
        values = dict(params)
        for name, proc in compiled.binds.items():
            values[name] = proc(values[name])
        args: Any = values if compiled.names is None else tuple(values[n] for n in compiled.names)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, args)
            fetched = cursor.fetchall()
        finally:
            cursor.close()
        make, results = compiled.row._make, compiled.results
        if not results:
            return [make(r) for r in fetched]
        out = []
        for r in fetched:
            r = list(r)
            for i, proc in results:
                r[i] = proc(r[i])
            out.append(make(r))
        return out

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        """The first row, or None."""
        rows = self.rows(conn, params)
        return rows[0] if rows else None
