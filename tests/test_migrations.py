"""The Alembic migrations build exactly the schema the models describe (both backends)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect

from mosplatform import create_app, resource_dir
from mosplatform.extensions import db


def _app(db_url, tmp_path):  # type: ignore[no-untyped-def]
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url,
                       "INSTANCE_PATH": str(tmp_path / "inst"), "SECRET_KEY": "x"})


def test_models_and_migrations_agree(db_url, tmp_path):
    app = _app(db_url, tmp_path)
    with app.app_context():
        upgrade(directory=str(resource_dir("migrations")))
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "render_as_batch": True})
            diff = compare_metadata(ctx, db.metadata)
        assert diff == [], f"models differ from migrations; run `mosplatform db migrate`: {diff}"
        db.engine.dispose()


def test_downgrade_to_base_and_up_again(db_url, tmp_path):
    app = _app(db_url, tmp_path)
    with app.app_context():
        migrations = str(resource_dir("migrations"))
        upgrade(directory=migrations)
        downgrade(directory=migrations, revision="base")
        names = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
        assert names == set()
        upgrade(directory=migrations)
        assert "rating" in inspect(db.engine).get_table_names()
        db.engine.dispose()


def test_sqlite_has_wal_and_foreign_keys(tmp_path):
    url = "sqlite:///" + str(tmp_path / "x.sqlite")
    app = _app(url, tmp_path)
    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    create_engine(url).dispose()
