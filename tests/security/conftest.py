"""Fixtures for the security tests: tests created from generated audio, and participants
walked through the real HTTP journey so that their browser sessions hold their tokens."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mosplatform.config import load_definition
from mosplatform.extensions import db
from mosplatform.models import Event, IdempotencyRecord, Participant, Rating, Trial
from mosplatform.services.importer import create_test
from tests.audiofixtures import ACR_YAML as _ACR_YAML
from tests.audiofixtures import MUSHRA_YAML as _MUSHRA_YAML
from tests.audiofixtures import make_musdb, write_definition

MUSHRA_YAML = _MUSHRA_YAML.replace("{{start: 0.5, duration: 2.0}}", "{{start: 0.2, duration: 1.0}}"
                                   ).replace("sample_rate: 32000", "sample_rate: 24000")

# As tests.audiofixtures.ACR_YAML, smaller (1 s excerpts at 16 kHz) to keep setup fast.
ACR_YAML = _ACR_YAML.replace("{{start: 0.5, duration: 2.0}}", "{{start: 0.2, duration: 1.0}}"
                             ).replace("sample_rate: 32000", "sample_rate: 16000")

TRIAL_CONFIG = re.compile(
    r'<script type="application/json" id="trial-config">(.*?)</script>', re.S)
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def audio_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated MUSDB-style audio, written once per session (it is only read)."""
    return make_musdb(tmp_path_factory.mktemp("audio"), tracks=2, seconds=1.5,
                      sr=24000)


@pytest.fixture
def acr_test(app, audio_dirs, tmp_path):  # type: ignore[no-untyped-def]
    d = load_definition(write_definition(tmp_path, ACR_YAML, audio_dirs, "a.yaml"))
    return create_test(d, open_now=True, compute_sdr=False)


@pytest.fixture
def mushra_test(app, audio_dirs, tmp_path):  # type: ignore[no-untyped-def]
    d = load_definition(write_definition(tmp_path, MUSHRA_YAML, audio_dirs, "m.yaml"))
    return create_test(d, open_now=True, compute_sdr=False)


@dataclass
class Walker:
    """A participant's browser: a test client that walked to the first trial page."""

    client: Any
    token: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def csrf(self) -> str:
        return self.config["csrf_token"]

    def post_json(self, url: str, body: Any, *, csrf: str | None = None,
                  key: str | None = None, **kw: Any):  # type: ignore[no-untyped-def]
        headers = {"X-CSRFToken": self.csrf if csrf is None else csrf}
        if key is not None:
            headers["Idempotency-Key"] = key
        headers.update(kw.pop("headers", {}))
        return self.client.post(url, data=json.dumps(body), headers=headers,
                                content_type="application/json", **kw)

    def valid_ratings(self, score: float | None = None) -> dict[str, Any]:
        """A complete, valid answer to the trial page in ``config``."""
        ratings = []
        for q in self.config["questions"]:
            scale = q["scale"]
            value = score if score is not None else (
                scale["categories"][0]["score"] if scale["type"] == "categorical"
                else scale["max"])
            for i, _ in enumerate(self.config["stimuli"]):
                ratings.append({"stimulus": i, "question": q["key"], "score": value})
        return {"ratings": ratings}

    def refresh(self) -> dict[str, Any]:
        """Follow the resume link to the current trial page and read its configuration."""
        resp = self.client.get(f"/p/{self.token}/", follow_redirects=True)
        match = TRIAL_CONFIG.search(resp.get_data(as_text=True))
        self.config = json.loads(match.group(1)) if match else {}
        return self.config


def walk_to_trial(app, public_id: str, external_id: str | None = None) -> Walker:  # type: ignore[no-untyped-def]
    """Open the link in a fresh browser, consent, pass instructions (and calibration).

    Works with and without CSRF protection on forms: the token is read from each page.
    """
    client = app.test_client()
    url = f"/t/{public_id}" + (f"?PROLIFIC_PID={external_id}" if external_id else "")
    resp = client.get(url)
    assert resp.status_code == 302, resp.status_code
    token = resp.headers["Location"].split("/p/", 1)[1].split("/")[0]
    for _ in range(6):
        resp = client.get(f"/p/{token}/", follow_redirects=True)
        html = resp.get_data(as_text=True)
        if TRIAL_CONFIG.search(html):
            break
        match = CSRF_FIELD.search(html)
        form = {"consent": "yes", "csrf_token": match.group(1) if match else ""}
        resp = client.post(resp.request.path, data=form)
        assert resp.status_code == 302, (resp.request.path, resp.status_code)
    walker = Walker(client=client, token=token)
    walker.refresh()
    assert walker.config, "did not reach a trial page"
    return walker


def snapshot() -> dict[str, Any]:
    """Everything a participant request may change, to compare before and after."""
    return {
        "ratings": db.session.scalar(select(func.count()).select_from(Rating)),
        "events": db.session.scalar(select(func.count()).select_from(Event)),
        "idempotency": db.session.scalar(select(func.count()).select_from(IdempotencyRecord)),
        "completed": db.session.scalar(select(func.count()).select_from(Trial).where(
            Trial.completed_at.is_not(None))),
        "participants": db.session.scalar(select(func.count()).select_from(Participant)),
        "stages": sorted(db.session.execute(select(Participant.token, Participant.stage)).all()),
    }


@pytest.fixture
def walk(app):  # type: ignore[no-untyped-def]
    """``walk(test)`` -> a :class:`Walker` at the first trial of ``test``."""

    def _walk(test, external_id: str | None = None) -> Walker:  # type: ignore[no-untyped-def]
        return walk_to_trial(app, test.public_id, external_id)

    return _walk


@pytest.fixture
def csrf_app(db_url, tmp_path, audio_dirs):  # type: ignore[no-untyped-def]
    """An app with CSRF protection on forms and no application context pushed.

    Every request gets its own application context, as in production (the ``app``
    fixture's pushed context makes all requests share ``g`` and so one CSRF secret).
    Returns ``(app, public_id)`` of an open ACR test; use ``with app.app_context()``
    around database checks.
    """
    from tests.conftest import make_app

    app = make_app(db_url, tmp_path / "csrf", WTF_CSRF_ENABLED=True)
    with app.app_context():
        d = load_definition(write_definition(tmp_path, ACR_YAML, audio_dirs, "c.yaml"))
        public_id = create_test(d, open_now=True, compute_sdr=False).public_id
    yield app, public_id
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
