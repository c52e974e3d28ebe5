"""The PostgreSQL connection handling of :mod:`mosplatform.database`, on the real server."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text

from mosplatform.database import (
    check_connection,
    defer_begin,
    engine_options,
    is_plain_read,
)
from tests.conftest import PG_URL, make_app

IDLE, INTRANS = 0, 2  # psycopg.pq.TransactionStatus


def test_engine_options_per_backend() -> None:
    sqlite = engine_options("sqlite:///x.db", {})
    assert "pool_pre_ping" not in sqlite and sqlite["connect_args"]["timeout"] == 30
    pg = engine_options("postgresql+psycopg://h/db", {})
    assert pg["pool_pre_ping"] is False and pg["pool_size"] == 10
    assert engine_options("postgresql+psycopg://h/db", {"DB_PRE_PING": "query"})[
        "pool_pre_ping"] is True
    assert engine_options("postgresql+psycopg://h/db", {
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True}})["pool_pre_ping"] is True


def test_bad_pre_ping_mode_names_the_setting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"DB_PRE_PING is 'sometimes': use one of socket"):
        engine_options("postgresql+psycopg://h/db", {"DB_PRE_PING": "sometimes"})


@pytest.mark.parametrize("sql, read", [
    ("SELECT 1", True),
    ("  select participant.id FROM participant WHERE token = %s", True),
    ("SELECT test.id FROM test WHERE test.id = %s FOR UPDATE", False),
    ("SELECT a FROM b FOR NO KEY UPDATE", False),
    ("SELECT a FROM b FOR share", False),
    ("UPDATE trial SET completed_at = now()", False),
    ("INSERT INTO rating VALUES (1)", False),
    ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", False),
    ("SAVEPOINT sa_1", False),
])
def test_plain_reads(sql: str, read: bool) -> None:
    assert is_plain_read(sql) is read


@pytest.fixture
def db_url(pg_schema_url):  # type: ignore[no-untyped-def]
    """The ``app`` fixture on PostgreSQL only: this module tests its connections."""
    return pg_schema_url


def _backend_pid(session) -> int:  # type: ignore[no-untyped-def]
    return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    eng = create_engine(PG_URL)
    with eng.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        # Until the backend is gone, its socket may not have its last words yet.
        for _ in range(200):
            alive = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                 {"p": pid}).scalar()
            if not alive:
                break
            conn.execute(text("SELECT pg_sleep(0.01)"))
    eng.dispose()


def test_check_connection_finds_a_closed_connection_without_a_round_trip(
        pg_schema_url) -> None:  # type: ignore[no-untyped-def]
    eng = create_engine(pg_schema_url)
    raw = eng.raw_connection()
    dbapi = raw.dbapi_connection
    assert check_connection(dbapi) and check_connection(dbapi, ping=True)
    pid = dbapi.info.backend_pid
    _terminate(pid)
    assert not check_connection(dbapi)
    raw.invalidate()
    eng.dispose()


def test_pool_replaces_a_connection_the_server_closed(app) -> None:  # type: ignore[no-untyped-def]
    """No error reaches the request: the checkout finds the dead connection first."""
    from mosplatform.extensions import db

    assert db.engine.pool._pre_ping is False  # the socket check replaces the ping
    pid = _backend_pid(db.session)
    db.session.remove()  # back to the pool
    _terminate(pid)
    assert _backend_pid(db.session) != pid
    db.session.remove()


def test_query_ping_mode_still_recovers(pg_schema_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mosplatform.extensions import db

    app = make_app(pg_schema_url, tmp_path, DB_PRE_PING="query")
    with app.app_context():
        assert db.engine.pool._pre_ping is True
        pid = _backend_pid(db.session)
        db.session.remove()
        _terminate(pid)
        assert _backend_pid(db.session) != pid
        db.session.remove()
        db.engine.dispose()


def _status(session) -> int:  # type: ignore[no-untyped-def]
    return int(session.connection().connection.dbapi_connection.info.transaction_status)


def _one_test() -> None:
    """A draft test named "T", committed, and a fresh session."""
    from mosplatform.extensions import db
    from mosplatform.models import Test
    from mosplatform.services.accounts import create_admin

    owner = create_admin("owner", "correct horse battery")
    db.session.add(Test(public_id="abc", name="T", kind="acr", owner_id=owner.id,
                        definition={}, settings={}))
    db.session.commit()
    db.session.remove()


def test_deferred_begin_reads_outside_a_transaction(app) -> None:  # type: ignore[no-untyped-def]
    from mosplatform.extensions import db
    from mosplatform.models import Test

    _one_test()

    session = db.session()
    defer_begin(session)
    assert session.execute(select(Test.name)).scalar_one() == "T"
    assert _status(session) == IDLE  # no BEGIN was sent
    # A write opens the transaction (psycopg sends BEGIN before it)...
    session.execute(text("UPDATE test SET name = 'U'"))
    assert _status(session) == INTRANS
    session.execute(text("UPDATE test SET status = 'closed'"))
    # ... so the writes stay atomic.
    session.rollback()
    assert session.execute(select(Test.name, Test.status)).one() == ("T", "draft")
    assert _status(session) == IDLE  # the next transaction defers its BEGIN too
    db.session.remove()


def test_single_statement_write_is_its_own_transaction(app) -> None:  # type: ignore[no-untyped-def]
    """Outside a transaction, a write marked single_statement runs in autocommit (no
    BEGIN, kept at once); inside one it belongs to that transaction."""
    from mosplatform.database import single_statement
    from mosplatform.extensions import db
    from mosplatform.models import Test

    _one_test()

    session = db.session()
    defer_begin(session)
    session.execute(text("UPDATE test SET name = 'U'"), execution_options=single_statement())
    assert _status(session) == IDLE  # no BEGIN: the statement committed by itself
    session.rollback()
    assert session.execute(select(Test.name)).scalar_one() == "U"
    session.execute(text("UPDATE test SET status = 'closed'"))  # an ordinary write...
    assert _status(session) == INTRANS
    session.execute(text("UPDATE test SET name = 'V'"), execution_options=single_statement())
    session.rollback()  # ... and the marked one with it, in its transaction
    assert session.execute(select(Test.name, Test.status)).one() == ("U", "draft")
    db.session.remove()


def test_deferred_begin_locks_rows_in_a_transaction(app) -> None:  # type: ignore[no-untyped-def]
    from mosplatform.extensions import db

    session = db.session()
    defer_begin(session)
    session.execute(text("SELECT 1"))
    assert _status(session) == IDLE
    session.execute(text("SELECT 1 FOR UPDATE"))
    assert _status(session) == INTRANS
    session.commit()
    db.session.remove()


def test_connection_goes_back_to_the_pool_transactional(app) -> None:  # type: ignore[no-untyped-def]
    """A deferred connection that only read is handed to the next user as the pool
    hands out every connection: not in autocommit mode."""
    from mosplatform.extensions import db

    session = db.session()
    defer_begin(session)
    session.execute(text("SELECT 1"))
    dbapi = session.connection().connection.dbapi_connection
    assert dbapi.autocommit is True
    db.session.remove()
    assert dbapi.autocommit is False
    plain = db.session()
    plain.execute(text("SELECT 1"))
    assert _status(plain) == INTRANS  # an ordinary session: reads in a transaction
    db.session.remove()


def test_defer_connection_outside_the_session(app) -> None:  # type: ignore[no-untyped-def]
    """The audio lookup's own connection: reads with no transaction, goes back to the
    pool transactional; an engine not set up by install() is left alone."""
    from mosplatform.database import defer_connection
    from mosplatform.extensions import db
    from mosplatform.services.lookup import media_row

    with db.engine.connect() as conn:
        defer_connection(conn)
        conn.execute(text("SELECT 1"))
        dbapi = conn.connection.dbapi_connection
        assert int(dbapi.info.transaction_status) == IDLE and dbapi.autocommit is True
    assert dbapi.autocommit is False
    assert media_row("no-such-token") is None
    other = create_engine(PG_URL)
    with other.connect() as conn:
        defer_connection(conn)
        conn.execute(text("SELECT 1"))
        assert int(conn.connection.dbapi_connection.info.transaction_status) == INTRANS
    other.dispose()


def test_kept_connection_is_reused_checked_and_reset(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The fast paths' per-thread connection: the same one from block to block, idle
    after each; replaced (checked out anew) when the server closed it, after a block
    that raised, when it is old, or for another engine."""
    from mosplatform import database
    from mosplatform.database import kept_connection
    from mosplatform.extensions import db

    engine = db.engine
    with kept_connection(engine) as first:
        first.execute(text("SELECT 1"))
    with kept_connection(engine) as conn:
        assert conn is first  # kept
        conn.execute(text("CREATE TEMP TABLE k (x int)"))  # a write: a transaction opens
        assert _status_of(conn) == INTRANS
    with kept_connection(engine) as conn:
        assert conn is first and _status_of(conn) == IDLE  # rolled back, kept
        assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename = 'k'")
                            ).scalar() == 0
    _terminate(int(first.connection.dbapi_connection.info.backend_pid))
    with kept_connection(engine) as second:  # the server closed it between requests
        assert second is not first
        assert second.execute(text("SELECT 1")).scalar() == 1
    with pytest.raises(RuntimeError), kept_connection(engine):
        raise RuntimeError("the request failed")
    assert database._kept.conn is None  # given back to the pool
    with kept_connection(engine) as third:
        assert third is not second
    monkeypatch.setattr(database, "KEEP_CONNECTION_S", 0.0)
    with kept_connection(engine) as fourth:
        assert fourth is not third  # old: checked out anew
    monkeypatch.setattr(database, "KEEP_CONNECTION_S", 60.0)
    other = create_engine(engine.url.render_as_string(hide_password=False))
    with kept_connection(other) as conn:
        assert conn.engine is other and conn is not fourth
    database._give_back_kept()
    other.dispose()


def _status_of(conn) -> int:  # type: ignore[no-untyped-def]
    return int(conn.connection.dbapi_connection.info.transaction_status)
