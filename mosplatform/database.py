"""PostgreSQL connections with fewer round trips: a liveness check at checkout that
costs none, and reads outside a transaction until the first write.

Under load each statement's round trip to PostgreSQL costs both the app server
(driver, system calls, a context switch) and the database more than small queries
themselves. Three of them were spent on every request before any work was done:

- **Pre-ping.** SQLAlchemy's ``pool_pre_ping`` sends a statement on every checkout to
  find connections the server has closed (after a restart, say). A server that
  closes a connection first sends a message (``FATAL: terminating connection...``)
  or the end of the stream, so an idle connection whose socket has something to
  read is broken or has news: :func:`check_connection` polls the socket without
  blocking and pings only then, or when the connection has been idle longer than
  ``DB_PING_IDLE_S`` (a connection a firewall dropped silently has nothing to read).
  A failed check raises :class:`~sqlalchemy.exc.DisconnectionError` and the pool
  replaces the connection, as with ``pool_pre_ping``. ``DB_PRE_PING`` chooses:
  ``"socket"`` (default), ``"query"`` (SQLAlchemy's ping on every checkout) or
  ``"off"``.
- **BEGIN and ROLLBACK.** psycopg opens a transaction with a BEGIN of its own before
  the first statement, and a request that only read ends it with ROLLBACK when its
  connection goes back to the pool. psycopg then also drops the statements it had
  prepared on the server (``DEALLOCATE ALL``, a third round trip), so statements that
  every request repeats are parsed and planned anew. :func:`defer_begin` lets a
  session's connection read in autocommit mode and switches it back to a
  transaction just before its first write: a request that only reads sends no BEGIN
  and no ROLLBACK, and the prepared statements survive from request to request. At
  READ COMMITTED, PostgreSQL's default and the app's, every statement sees its own
  snapshot anyway, so reads before the first write see what they would inside it;
  ``SELECT ... FOR UPDATE`` and every other statement that is not a plain SELECT
  count as writes (row locks need the transaction).

SQLite is left as it is: no server, no round trips, and its driver opens no
transaction for a read.
"""

from __future__ import annotations

import contextlib
import re
import select
import threading
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session

PRE_PING_MODES = ("socket", "query", "off")
DEFAULT_PING_IDLE_S = 30.0

_DEFERRED = "mosplatform.deferred_begin"  # connection-record flag
_CHECKED_IN = "mosplatform.checked_in_at"  # connection-record time stamp
_SESSION_FLAG = "mosplatform.defer_begin"  # Session.info flag
# Execution option of a write that is the whole transaction (see single_statement).
SINGLE_STATEMENT = "mosplatform_single_statement"
# Row-locking clauses of a SELECT: the lock lasts until the transaction ends.
_LOCKING = re.compile(r"\bFOR\s+(?:UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b", re.I)


def engine_options(url: str, config: Any) -> dict[str, Any]:
    """Engine options for ``url`` on top of ``SQLALCHEMY_ENGINE_OPTIONS``.

    Parameters
    ----------
    url : str
        The SQLAlchemy database URL.
    config : mapping
        The application configuration (``SQLALCHEMY_ENGINE_OPTIONS``, ``DB_POOL_SIZE``,
        ``DB_MAX_OVERFLOW``, ``DB_PRE_PING``).

    Returns
    -------
    dict
        Options for :func:`sqlalchemy.create_engine`.

    Raises
    ------
    ValueError
        ``DB_PRE_PING`` is not one of :data:`PRE_PING_MODES`.
    """
    opts = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if url.startswith("sqlite"):
        # A file on this machine: no server that can drop a pooled connection, so no
        # pre-ping round trip on every checkout.
        opts.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        return opts
    mode = pre_ping_mode(config)
    opts.setdefault("pool_pre_ping", mode == "query")
    opts.setdefault("pool_size", int(config.get("DB_POOL_SIZE", 10)))
    opts.setdefault("max_overflow", int(config.get("DB_MAX_OVERFLOW", 10)))
    opts.setdefault("pool_recycle", 1800)
    return opts


def pre_ping_mode(config: Any) -> str:
    """The checked ``DB_PRE_PING`` setting (see the module's description)."""
    mode = str(config.get("DB_PRE_PING", "socket")).strip().lower()
    if mode not in PRE_PING_MODES:
        raise ValueError(f"DB_PRE_PING is {mode!r}: use one of {', '.join(PRE_PING_MODES)}")
    return mode


def install(engine: Engine, config: Any) -> None:
    """Attach the liveness check and the deferred BEGIN to a PostgreSQL engine.

    Parameters
    ----------
    engine : Engine
        The application's engine; engines of other databases are left alone.
    config : mapping
        The application configuration (``DB_PRE_PING``, ``DB_PING_IDLE_S``).
    """
    if engine.dialect.name != "postgresql" or _installed(engine):
        return
    # On the pool, which the engine's option variants share.
    engine.pool._mosplatform_installed = True  # type: ignore[attr-defined]
    if pre_ping_mode(config) == "socket":
        idle_s = float(config.get("DB_PING_IDLE_S", DEFAULT_PING_IDLE_S))

        @event.listens_for(engine, "checkout")
        def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            last = record.info.get(_CHECKED_IN)
            idle = last is not None and time.monotonic() - last > idle_s
            if not check_connection(dbapi_connection, ping=idle):
                raise DisconnectionError("the database closed this pooled connection")

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()
        if record.info.pop(_DEFERRED, False) and dbapi_connection is not None:
            _set_autocommit(dbapi_connection, False)

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(conn: Any, cursor: Any, statement: str, parameters: Any,
                      context: Any, executemany: bool) -> None:
        if conn.connection.info.get(_DEFERRED) and not is_plain_read(statement) \
                and not (context is not None
                         and context.execution_options.get(SINGLE_STATEMENT)):
            # The first write: from here on the connection is in a transaction again
            # (psycopg sends BEGIN before this statement).
            begin_writes(conn)


def check_connection(dbapi_connection: Any, *, ping: bool = False) -> bool:
    """Whether a pooled, idle psycopg connection is still usable.

    Parameters
    ----------
    dbapi_connection : psycopg.Connection
        The connection.
    ping : bool
        Send a statement even when the socket has nothing to read.

    Returns
    -------
    bool
        False when the connection is closed or broken, or when its socket has
        something to read (the server's last words, or the end of the stream) and
        a ping then fails.
    """
    if dbapi_connection.closed or getattr(dbapi_connection, "broken", False):
        return False
    if not ping:
        try:
            readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
    try:
        # An empty statement, the smallest round trip; in autocommit mode, so that no
        # BEGIN and ROLLBACK surround it.
        restore = not dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        dbapi_connection.execute(";")
        if restore:
            dbapi_connection.autocommit = False
    except Exception:
        return False
    return True


def is_plain_read(statement: str) -> bool:
    """Whether ``statement`` is a SELECT that locks no rows (else it counts as a write)."""
    return statement.lstrip()[:6].upper() == "SELECT" and _LOCKING.search(statement) is None


def defer_begin(session: Session) -> None:
    """Let ``session`` read without a transaction until its first write (PostgreSQL).

    Takes effect on the connection the session already holds, if any, and on each
    one it takes later; on other databases it changes nothing.

    Parameters
    ----------
    session : Session
        The request's session (not the ``scoped_session`` proxy).
    """
    session.info[_SESSION_FLAG] = True
    if session.in_transaction():
        # Its connection (checked out now if it has none: after_begin defers that one).
        defer_connection(session.connection())


@event.listens_for(Session, "after_begin")
def _after_begin(session: Session, transaction: Any, connection: Any) -> None:
    if session.info.get(_SESSION_FLAG):
        defer_connection(connection)


def single_statement() -> dict[str, bool]:
    """Execution options of a write that is a transaction by itself.

    On a connection that reads without a transaction (:func:`defer_begin`), such a
    write runs alone in autocommit mode, atomic as any single statement, and the
    caller's commit then sends nothing: one round trip where BEGIN, the statement and
    COMMIT took three. Inside a transaction it is an ordinary statement of it.

    Returns
    -------
    dict
        For ``Connection.execute(..., execution_options=...)``.
    """
    return {SINGLE_STATEMENT: True}


def begin_writes(connection: Any) -> None:
    """End a connection's deferral: its next statement opens a transaction.

    SQLAlchemy's statements do this themselves; writes sent on the DB-API connection
    directly must call it first, or each would commit on its own.

    Parameters
    ----------
    connection : sqlalchemy.engine.Connection
        A connection of any database (only a deferred one changes).
    """
    fairy = connection.connection
    if fairy.info.pop(_DEFERRED, False):
        _set_autocommit(fairy.dbapi_connection, False)


def defer_connection(connection: Any) -> None:
    """Let one connection read without a transaction until its first write.

    What :func:`defer_begin` does to a session's connection, for a Core connection
    used outside the session (the audio lookup). Only on an engine set up by
    :func:`install`, whose pool puts the connection back in transactional mode.

    Parameters
    ----------
    connection : sqlalchemy.engine.Connection
        A connection with no transaction open; of other databases, left as it is.
    """
    if not _installed(connection.engine):
        return
    fairy = connection.connection
    dbapi = fairy.dbapi_connection
    if fairy.info.get(_DEFERRED) or dbapi.autocommit or not _idle(dbapi):
        return
    _set_autocommit(dbapi, True)
    fairy.info[_DEFERRED] = True


def _installed(engine: Engine) -> bool:
    return bool(getattr(engine.pool, "_mosplatform_installed", False))


def _idle(dbapi_connection: Any) -> bool:
    # psycopg.pq.TransactionStatus.IDLE is 0: no transaction open, none failed.
    return int(dbapi_connection.info.transaction_status) == 0


def _set_autocommit(dbapi_connection: Any, value: bool) -> None:
    if dbapi_connection.autocommit != value and _idle(dbapi_connection):
        dbapi_connection.autocommit = value


KEEP_CONNECTION_S = 60.0  # a kept connection goes back to the pool after this long
_kept = threading.local()


@contextlib.contextmanager
def kept_connection(engine: Engine) -> Iterator[Connection]:
    """A connection of ``engine`` that this thread keeps from one block to the next.

    The fast paths (:mod:`mosplatform.fastpath`) run a statement or two per request,
    and checking a connection out of the pool and back in around them (events, the
    liveness check, the reset) cost about 6 % of the app servers' time under load.
    The kept connection is checked out once and then reused:

    * before each block it is checked as the pool's checkout checks it (closed,
      broken, or a socket with something to read: the server's last words), and
      replaced if it fails, if it belongs to another engine, or once it is
      :data:`KEEP_CONNECTION_S` old (it then goes back to the pool, which recycles
      connections as usual);
    * on PostgreSQL it reads without a transaction (:func:`defer_connection`);
    * after a block that ended normally, a transaction left open is rolled back and
      the connection must be idle to be kept; a block that raised gives the
      connection back to the pool (which rolls back and, if it broke, discards it).

    Parameters
    ----------
    engine : Engine
        The application's engine.

    Yields
    ------
    Connection
    """
    conn = getattr(_kept, "conn", None)
    if conn is not None and not _still_usable(conn, engine):
        _give_back_kept()
        conn = None
    if conn is None:
        conn = engine.connect()
        _kept.conn, _kept.since = conn, time.monotonic()
    defer_connection(conn)
    clean = False
    try:
        yield conn
        clean = _idle_again(conn)
    finally:
        if not clean:
            _give_back_kept()


def _still_usable(conn: Connection, engine: Engine) -> bool:
    if conn.engine is not engine or conn.closed or conn.invalidated \
            or time.monotonic() - _kept.since > KEEP_CONNECTION_S:
        return False
    if engine.dialect.name != "postgresql":
        return True
    return check_connection(conn.connection.dbapi_connection)


def _idle_again(conn: Connection) -> bool:
    """Roll back what a block left open; whether the connection is idle now."""
    if conn.in_transaction():
        conn.rollback()
    if conn.dialect.name != "postgresql":
        return True
    return _idle(conn.connection.dbapi_connection)


def _give_back_kept() -> None:
    conn = getattr(_kept, "conn", None)
    _kept.conn = None
    if conn is not None:
        try:
            conn.close()
        except Exception:  # a broken connection: the pool discards it
            pass
