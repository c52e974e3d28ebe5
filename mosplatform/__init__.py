"""mosplatform: subjective listening tests (MUSHRA, ACR/DCR/CCR MOS, AB) for audio
source separation.

:func:`create_app` is the one application factory used by production, the demo and
the tests. Configuration is layered: built-in defaults (:class:`config.DefaultConfig`),
then ``instance/config.py``, then ``MOSPLATFORM_*`` environment variables, then the
``test_config`` mapping.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from . import database

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Folder of ``templates``, ``static`` or ``migrations``.

    In a source checkout they sit at the repository root; an installed wheel carries
    them as ``mosplatform/_resources/<name>``.
    """
    packaged = PACKAGE_DIR / "_resources" / name
    if packaged.is_dir():
        return packaged
    return PACKAGE_DIR.parent / name


def _default_instance_path() -> str:
    env = os.environ.get("MOSPLATFORM_INSTANCE_PATH")
    if env:
        return str(Path(env).resolve())
    return str(Path.cwd() / "instance")


def _ensure_secret_key(app: Flask) -> None:
    """Give every instance its own persistent secret key (never the dev default)."""
    if app.config.get("SECRET_KEY") not in (None, "", "dev-not-secret"):
        return
    key_file = Path(app.instance_path) / "secret_key"
    if key_file.exists():
        app.config["SECRET_KEY"] = key_file.read_text().strip()
        return
    key = secrets.token_hex(32)
    key_file.write_text(key)
    try:
        key_file.chmod(0o600)
    except OSError:
        pass
    app.config["SECRET_KEY"] = key


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the Flask application.

    Parameters
    ----------
    test_config : dict, optional
        Settings applied last (tests use it to select the database and media folder).

    Returns
    -------
    flask.Flask
    """
    instance_path = (test_config or {}).get("INSTANCE_PATH") or _default_instance_path()
    app = Flask(
        __name__,
        instance_path=instance_path,
        instance_relative_config=True,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
    )
    from .config import DefaultConfig

    app.config.from_object(DefaultConfig)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("MOSPLATFORM")
    if test_config:
        app.config.update(test_config)

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    _ensure_secret_key(app)
    _configure_database(app)
    if not app.config.get("MEDIA_ROOT"):
        app.config["MEDIA_ROOT"] = str(Path(app.instance_path) / "media")
    Path(app.config["MEDIA_ROOT"]).mkdir(parents=True, exist_ok=True)

    from . import security
    from .extensions import csrf, db, login, migrate
    from .sessions import RememberingSessionInterface

    app.session_interface = RememberingSessionInterface()

    db.init_app(app)
    with app.app_context():
        database.install(db.engine, app.config)
    migrate.init_app(app, db, directory=str(resource_dir("migrations")), render_as_batch=True)
    csrf.init_app(app)
    login.init_app(app)
    login.login_view = "admin.login"

    from . import i18n

    i18n.init_app(app)
    security.init_app(app)

    from .admin import bp as admin_bp
    from .api import bp as api_bp
    from .media import bp as media_bp
    from .participant import bp as participant_bp

    app.register_blueprint(participant_bp)
    app.register_blueprint(api_bp, url_prefix="/api")
    app.register_blueprint(media_bp, url_prefix="/media")
    app.register_blueprint(admin_bp, url_prefix="/admin")

    from .fastpath import FastPaths

    app.wsgi_app = FastPaths(app, app.wsgi_app)  # type: ignore[method-assign]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _configure_database(app: Flask) -> None:
    url = app.config.get("DATABASE_URL") or app.config.get("SQLALCHEMY_DATABASE_URI")
    if not url:
        url = "sqlite:///" + str(Path(app.instance_path) / "mosplatform.sqlite")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = database.engine_options(url, app.config)


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets readers proceed during writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _install_sqlite_pragmas() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not getattr(_install_sqlite_pragmas, "done", False):

        @event.listens_for(Engine, "connect")
        def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
            if type(dbapi_connection).__module__.startswith("sqlite3"):
                _sqlite_pragmas(dbapi_connection, connection_record)

        _install_sqlite_pragmas.done = True  # type: ignore[attr-defined]


_install_sqlite_pragmas()
