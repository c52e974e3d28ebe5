"""Access control on every participant-facing route: anonymous visitors, unknown tokens,
and participant B's browser session against participant A's pages, audio and API."""

from __future__ import annotations

import pytest

from mosplatform.extensions import db
from mosplatform.models import Participant, Test, TrialStimulus
from mosplatform.models import TestStatus as Status
from tests.security.conftest import snapshot

UNKNOWN = "x" * 32

# Every participant-facing URL rule, with how a request from a stranger is answered.
# (method, rule, path for an unknown token, statuses a stranger may get)
STRANGER_CASES = [
    ("GET", "/t/<public_id>", f"/t/{UNKNOWN}", {404}),
    ("GET", "/p/<token>/", f"/p/{UNKNOWN}/", {404}),
    ("GET", "/p/<token>/welcome", f"/p/{UNKNOWN}/welcome", {404}),
    ("POST", "/p/<token>/welcome", f"/p/{UNKNOWN}/welcome", {404}),
    ("GET", "/p/<token>/instructions", f"/p/{UNKNOWN}/instructions", {404}),
    ("POST", "/p/<token>/instructions", f"/p/{UNKNOWN}/instructions", {404}),
    ("GET", "/p/<token>/calibration", f"/p/{UNKNOWN}/calibration", {404}),
    ("POST", "/p/<token>/calibration", f"/p/{UNKNOWN}/calibration", {404}),
    ("GET", "/p/<token>/trial/<int:number>", f"/p/{UNKNOWN}/trial/1", {404}),
    ("GET", "/p/<token>/questionnaire", f"/p/{UNKNOWN}/questionnaire", {404}),
    ("POST", "/p/<token>/questionnaire", f"/p/{UNKNOWN}/questionnaire", {404}),
    ("GET", "/p/<token>/done", f"/p/{UNKNOWN}/done", {404}),
    # The API checks CSRF first (a stranger has no token for this session), then ownership.
    ("POST", "/api/p/<token>/trial/<int:number>/ratings",
     f"/api/p/{UNKNOWN}/trial/1/ratings", {400, 403}),
    ("POST", "/api/p/<token>/events", f"/api/p/{UNKNOWN}/events", {400, 403}),
    ("GET", "/api/openapi.json", "/api/openapi.json", {200}),
    ("GET", "/media/<token>", f"/media/{UNKNOWN}", {404}),
    ("GET", "/media/check/<token>/<int:trial>/<int:option>", f"/media/check/{UNKNOWN}/0/0",
     {404}),
]


def test_cases_cover_every_participant_route(app):
    """A new participant, API or media route must be added to the table above."""
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in ("participant", "api", "media")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    covered = {(m, r) for m, r, _, _ in STRANGER_CASES}
    assert routes == covered


def test_stranger_with_unknown_token_is_refused_everywhere(app, client, acr_test):
    before = snapshot()
    for method, rule, path, allowed in STRANGER_CASES:
        kwargs = {"json": {"ratings": [], "events": []}} if path.startswith("/api/p/") else {}
        resp = client.open(path, method=method, **kwargs)
        assert resp.status_code in allowed, (method, rule, resp.status_code)
        if path.startswith("/api/p/"):
            assert resp.is_json and resp.get_json()["error"], rule
        assert b"Traceback" not in resp.get_data(), rule
        assert snapshot() == before, rule


@pytest.fixture
def pair(acr_test, walk):  # type: ignore[no-untyped-def]
    """Participants A and B of the same test, each in their own browser at trial 1."""
    return walk(acr_test, "worker-a"), walk(acr_test, "worker-b")


def _media_tokens(token: str) -> list[str]:
    p = db.session.query(Participant).filter_by(token=token).one()
    return [ts.token for t in p.trials for ts in t.stimuli]


def test_b_and_anonymous_cannot_read_a_media(app, pair):
    a, b = pair
    anonymous = app.test_client()
    tokens = _media_tokens(a.token)
    assert tokens
    for t in tokens:
        assert a.client.get(f"/media/{t}").status_code == 200
        for stranger in (b.client, anonymous):
            resp = stranger.get(f"/media/{t}")
            assert resp.status_code == 404 and not resp.headers.get("X-Accel-Redirect")
            assert not resp.mimetype.startswith("audio/")
    # Nor A's headphone-check audio, and B's session never holds A's token.
    assert b.client.get(f"/media/check/{a.token}/0/0").status_code == 404
    with b.client.session_transaction() as sess:
        assert a.token not in sess["participants"].values()


def test_b_cannot_submit_a_ratings_or_post_a_events(pair):
    a, b = pair
    before = snapshot()
    body = a.valid_ratings()
    # B's own (valid) CSRF token, A's URLs.
    resp = b.post_json(a.config["submit_url"], body, key="b-steals")
    assert resp.status_code == 403 and "error" in resp.get_json()
    resp = b.post_json(a.config["events_url"], {"events": [{"kind": "play", "stimulus": 0}]})
    assert resp.status_code == 403
    assert snapshot() == before
    # A still can.
    assert a.post_json(a.config["submit_url"], body, key="a-1").status_code == 200
    assert snapshot()["ratings"] == before["ratings"] + len(body["ratings"])


def test_idempotency_keys_are_per_participant(pair):
    a, b = pair
    tokens = [ts.token for ts in db.session.query(TrialStimulus).all()]
    assert len(tokens) == len(set(tokens)) and all(len(t) >= 32 for t in tokens)
    ra = a.post_json(a.config["submit_url"], a.valid_ratings(), key="same-key")
    rb = b.post_json(b.config["submit_url"], b.valid_ratings(), key="same-key")
    assert ra.status_code == rb.status_code == 200
    assert ra.get_json()["next_url"] != rb.get_json()["next_url"]
    assert rb.get_json()["stored"] == len(b.valid_ratings()["ratings"])


def test_participant_of_another_test_cannot_use_its_token_here(app, acr_test, mushra_test, walk):
    other = walk(mushra_test)
    mine = walk(acr_test)
    tokens = _media_tokens(other.token)
    for t in tokens[:3]:
        assert mine.client.get(f"/media/{t}").status_code == 404
    resp = mine.post_json(other.config["submit_url"], other.valid_ratings())
    assert resp.status_code == 403


def test_closed_or_paused_test_takes_no_ratings_and_no_newcomers(app, acr_test, walk):
    a = walk(acr_test)
    for status in (Status.closed.value, Status.paused.value):
        db.session.get(Test, acr_test.id).status = status
        db.session.commit()
        before = snapshot()
        resp = a.post_json(a.config["submit_url"], a.valid_ratings(), key="late-" + status)
        assert resp.status_code == 409 and status in resp.get_json()["error"]
        assert app.test_client().get(f"/t/{acr_test.public_id}").status_code == 403
        assert snapshot() == before


def test_excluded_participant_cannot_submit(app, acr_test, walk):
    a = walk(acr_test)
    p = db.session.query(Participant).filter_by(token=a.token).one()
    p.excluded = True
    db.session.commit()
    before = snapshot()
    resp = a.post_json(a.config["submit_url"], a.valid_ratings())
    assert resp.status_code == 403
    assert snapshot() == before
