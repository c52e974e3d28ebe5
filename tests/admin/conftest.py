"""Fixtures of the dashboard tests (helpers live in ``adminfixtures.py``)."""

from __future__ import annotations

import pytest
from adminfixtures import World, seed_world


@pytest.fixture
def world(app) -> World:  # type: ignore[no-untyped-def]
    return seed_world()


@pytest.fixture
def app_with(db_url, tmp_path):  # type: ignore[no-untyped-def]
    """Build the app with extra settings (``app_with(WTF_CSRF_ENABLED=True)``), context pushed."""
    from mosplatform.extensions import db
    from tests.conftest import make_app

    contexts = []

    def build(**extra):  # type: ignore[no-untyped-def]
        app = make_app(db_url, tmp_path, **extra)
        ctx = app.app_context()
        ctx.push()
        contexts.append(ctx)
        return app

    yield build
    for ctx in reversed(contexts):
        db.session.remove()
        db.engine.dispose()
        ctx.pop()
