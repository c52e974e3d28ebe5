"""Shared fixtures: an app per test on a fresh database, SQLite and PostgreSQL.

Every test that uses ``app`` runs twice, once on SQLite and once on the real
PostgreSQL server on 127.0.0.1 (each test in its own schema, dropped afterwards).
Set ``MOSPLATFORM_TEST_PG_URL`` to use another server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("MOSPLATFORM_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_available() -> str | None:
    try:
        eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return str(exc).splitlines()[0]


_PG_PROBLEM = _pg_available()


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema (dropped after the test)."""
    if _PG_PROBLEM:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {_PG_PROBLEM}")
        pytest.skip(f"PostgreSQL unreachable: {_PG_PROBLEM}")
    schema = "t_" + secrets.token_hex(6)
    eng = create_engine(PG_URL)
    with eng.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with eng.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL per backend: SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return "sqlite:///" + str(tmp_path / "test.sqlite")
    return request.getfixturevalue("pg_schema_url")


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in its own application context.

    The ``app`` fixture keeps a context pushed so tests can use ``db.session``; without
    this, Flask would reuse that context for requests and share ``g`` (the logged-in
    user, the language) and the database session between requests and clients, which
    production never does.
    """

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with self.application.app_context():
            return super().open(*args, **kwargs)


def make_app(db_url: str, tmp_path: Path, **extra: object):  # type: ignore[no-untyped-def]
    from mosplatform import create_app
    from mosplatform.extensions import db

    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": db_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "WTF_CSRF_ENABLED": False,
        "SECRET_KEY": "test-" + secrets.token_hex(8),
    }
    config.update(extra)
    app = create_app(config)
    app.test_client_class = IsolatedClient
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture
def app(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The application on a fresh database (both backends), with an app context pushed."""
    from mosplatform.extensions import db

    app = make_app(db_url, tmp_path)
    ctx = app.app_context()
    ctx.push()
    yield app
    db.session.remove()
    db.engine.dispose()
    ctx.pop()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def admin(app, client):  # type: ignore[no-untyped-def]
    """An admin account, logged in on ``client``; returns the user."""
    from mosplatform.services.accounts import create_admin

    user = create_admin("alice", "correct horse battery")
    client.post("/admin/login", data={"username": "alice", "password": "correct horse battery"})
    return user
