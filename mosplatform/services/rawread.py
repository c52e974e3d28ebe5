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

:class:`RawWrite` gives the SQL and parameters of an INSERT or UPDATE for a caller to
send itself: the answer to a trial builds its one statement on PostgreSQL around one
(:mod:`mosplatform.services.ratings`), and so does an arrival
(:mod:`mosplatform.services.assignment`). :func:`json_rows_source` and
:func:`json_rows` give such a statement many rows of a table through one JSON
parameter.
"""

from __future__ import annotations

import json
import threading
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.dml import UpdateBase


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...] | None  # parameter order for positional paramstyles
    binds: dict[str, Callable[[Any], Any]]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    row: Any  # the named-tuple class of the rows


class _Prebuilt:
    """A statement compiled once per dialect, with its parameters' bind processors."""

    def __init__(self, statement: Any) -> None:
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
                raise ValueError(f"{type(self).__name__} takes no expanding parameters ({name})")
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                binds[name] = proc
        results = []
        row = None
        if isinstance(self.statement, Select):
            for i, column in enumerate(self.statement.selected_columns):
                proc = column.type.dialect_impl(dialect).result_processor(dialect, None)
                if proc is not None:
                    results.append((i, proc))
            row = namedtuple("Row", list(self.statement.selected_columns.keys()))  # type: ignore[misc]
        compiled = _Compiled(sql=c.string, names=tuple(c.positiontup) if c.positional else None,
                             binds=binds, results=tuple(results), row=row)
        with self._lock:
            self._by_dialect[key] = compiled
        return compiled

    def _args(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        values = dict(params)
        for name, proc in compiled.binds.items():
            values[name] = proc(values[name])
        return values if compiled.names is None else tuple(values[n] for n in compiled.names)


class RawWrite(_Prebuilt):
    """A prebuilt INSERT or UPDATE: its SQL and DB-API parameters for a dialect.

    Parameters
    ----------
    statement : Insert or Update
        The Core statement, whose parameters are plain ``bindparam`` objects.
    """

    def __init__(self, statement: UpdateBase) -> None:
        super().__init__(statement)

    def prepare(self, dialect: Dialect,
                rows: list[Mapping[str, Any]]) -> tuple[str, list[Any]]:
        """The SQL for ``dialect`` and the DB-API parameters of each row."""
        compiled = self._compile(dialect)
        return compiled.sql, [self._args(compiled, row) for row in rows]


class RawSelect(_Prebuilt):
    """A prebuilt SELECT executed without SQLAlchemy's execution machinery.

    Parameters
    ----------
    statement : Select
        A Core SELECT whose parameters are plain ``bindparam`` objects.
    """

    def __init__(self, statement: Select[Any]) -> None:
        super().__init__(statement)

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row of the statement with ``params``, on ``conn``'s DB-API connection."""
        compiled = self._compile(conn.dialect)
        args = self._args(compiled, params)
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


def driver_integrity_errors(conn: Connection) -> tuple[type[Exception], ...]:
    """The driver's own IntegrityError, which a statement sent on its cursor raises
    unwrapped (SQLAlchemy's ``IntegrityError`` wraps only its own executions)."""
    error = getattr(conn.dialect.dbapi, "IntegrityError", None)
    return (error,) if error is not None else ()


def column_names(table: Table, keys: Sequence[str]) -> list[str]:
    """The database names of ``table``'s columns ``keys``."""
    return [table.c[k].name for k in keys]


def column_list(dialect: Dialect, table: Table, keys: Sequence[str], prefix: str = "") -> str:
    """``table``'s columns ``keys``, quoted and comma-separated, each after ``prefix``
    (``"x."`` for a FROM item's columns)."""
    quote = dialect.identifier_preparer.quote
    return ", ".join(prefix + quote(name) for name in column_names(table, keys))


def json_rows_source(dialect: Dialect, table: Table, keys: Sequence[str], param: str,
                     alias: str = "x") -> str:
    """PostgreSQL: a FROM item that turns the JSON parameter ``param`` into rows of
    ``table``'s columns ``keys``, each value of its column's type.

    ``json_to_recordset(%(param)s::json) AS alias(col type, ...)``: one JSON text
    (:func:`json_rows`) for many rows costs the driver far less than one array per
    column, whose elements psycopg dumps one by one in Python.

    Parameters
    ----------
    dialect : Dialect
        The PostgreSQL dialect (for quoting and type names).
    table : Table
        Whose columns the rows hold.
    keys : sequence of str
        Column keys, in the order of the record's fields.
    param : str
        The parameter's name (psycopg's named style).
    alias : str
        The FROM item's name.

    Returns
    -------
    str
        SQL.
    """
    quote = dialect.identifier_preparer
    typed = ", ".join(f"{quote.quote(table.c[k].name)} {table.c[k].type.compile(dialect=dialect)}"
                      for k in keys)
    return f"json_to_recordset(%({param})s::json) AS {alias}({typed})"


def json_rows(rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
              names: Sequence[str] | None = None) -> str:
    """The JSON parameter of :func:`json_rows_source`: ``rows``' values of ``keys``,
    named ``names`` (default: the keys), timestamps in ISO 8601."""
    names = names or keys
    return json.dumps([{name: row[key] for key, name in zip(keys, names, strict=True)}
                       for row in rows], default=_json_value, allow_nan=False)


def _json_value(value: Any) -> Any:
    """JSON for the values :func:`json.dumps` does not know (timestamps)."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} through JSON")
