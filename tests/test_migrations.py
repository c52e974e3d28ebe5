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


def test_upgrade_fills_the_kept_votes_from_existing_trials(db_url, tmp_path):
    from mosplatform.config import load_definition
    from mosplatform.services.assignment import (
        Arrival,
        _kept_votes,
        admit_participant,
        count_assigned_votes,
    )
    from mosplatform.services.importer import create_test
    from tests.audiofixtures import ACR_YAML, make_musdb, write_definition

    app = _app(db_url, tmp_path)
    with app.app_context():
        migrations = str(resource_dir("migrations"))
        upgrade(directory=migrations)
        dirs = make_musdb(tmp_path / "audio", tracks=2, seconds=2.6)
        test = create_test(load_definition(write_definition(tmp_path, ACR_YAML, dirs, "a.yaml")),
                           open_now=True, compute_sdr=False)
        for k in range(5):
            admit_participant(test, Arrival(is_preview=k == 4))
        expected = count_assigned_votes(test)
        test_id = test.id
        assert sum(expected.values()) > 0
        db.session.commit()
        db.session.close()
        # Back to the schema without the table, then up again: the upgrade counts.
        downgrade(directory=migrations, revision="5f69c49267c3")
        upgrade(directory=migrations)
        assert _kept_votes(test_id) == expected
        db.session.close()
        db.engine.dispose()
