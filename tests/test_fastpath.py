"""The fast paths (mosplatform/fastpath.py): the audio and answer requests they serve
get the Flask views' responses, and everything else reaches those views unchanged."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from mosplatform.extensions import db
from mosplatform.models import Participant, TrialStimulus
from tests.security import conftest as security
from tests.security.conftest import CSRF_FIELD, Walker, snapshot, walk_to_trial

# The security tests' fixtures: tests made from generated audio, walked participants.
acr_test = security.acr_test
audio_dirs = security.audio_dirs
csrf_app = security.csrf_app
walk = security.walk


@pytest.fixture
def views(app, monkeypatch):  # type: ignore[no-untyped-def]
    """Calls that reached the Flask views of audio and answers, by endpoint."""
    calls: dict[str, int] = {"media.stimulus": 0, "api.submit_trial": 0}
    for endpoint in calls:
        view = app.view_functions[endpoint]

        def counted(*args: Any, _view=view, _endpoint=endpoint, **kw: Any):  # type: ignore[no-untyped-def]
            calls[_endpoint] += 1
            return _view(*args, **kw)

        monkeypatch.setitem(app.view_functions, endpoint, counted)
    return calls


def _stimuli(token: str) -> list[TrialStimulus]:
    p = db.session.query(Participant).filter_by(token=token).one()
    return [ts for t in p.trials for ts in t.stimuli]


def _served(client, url: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    resp = client.get(url, headers=headers)
    return (resp.status_code, resp.get_data(),
            sorted((k, v) for k, v in resp.headers.items() if k != "Date"))


def test_audio_answers_as_the_flask_view_and_leaves_the_rest_to_it(app, acr_test, walk, views):
    a = walk(acr_test)
    b = walk(acr_test)
    url = f"/media/{_stimuli(a.token)[0].token}"
    etag = a.client.get(url).headers["ETag"]
    assert views["media.stimulus"] == 0  # served by the fast path
    for accel in (False, True):
        app.config["USE_X_ACCEL_REDIRECT"] = accel
        for headers in ({}, {"If-None-Match": etag}, {"If-None-Match": "W/" + etag},
                        {"If-None-Match": f'"other", {etag}'}, {"If-None-Match": '"other"'},
                        {"Accept-Encoding": "gzip"}):
            app.config["FAST_PATHS"] = True
            fast = _served(a.client, url, headers)
            assert views["media.stimulus"] == 0, headers
            app.config["FAST_PATHS"] = False
            flask = _served(a.client, url, headers)
            assert views["media.stimulus"] == 1, headers
            views["media.stimulus"] = 0
            assert fast == flask, (accel, headers)
    app.config.update(USE_X_ACCEL_REDIRECT=False, FAST_PATHS=True)
    # Left to the view: partial and other conditional requests, HEAD, queries, and
    # every refusal (another browser, no session, unknown token), which keep its errors.
    for client, path, headers in (
            (a.client, url, {"Range": "bytes=0-9"}), (a.client, url, {"If-Range": etag}),
            (a.client, url, {"If-Match": etag}), (a.client, url + "?x=1", {}),
            (b.client, url, {}), (app.test_client(), url, {}),
            (a.client, "/media/" + "Z" * 20, {})):
        client.get(path, headers=headers)
        assert views["media.stimulus"] == 1, (path, headers)
        views["media.stimulus"] = 0
    a.client.head(url)
    assert views["media.stimulus"] == 1
    # Control characters: Flask's hook refuses the request before any view.
    assert a.client.get(url, headers={"User-Agent": "a\x01b"}).status_code == 400
    assert b.client.get(url).status_code == 404


def _shape(value: Any) -> Any:
    """The keys and types of a JSON value, without the values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


@pytest.mark.parametrize("accept_encoding", ["gzip", ""])
def test_answers_as_the_flask_view(app, acr_test, walk, views, accept_encoding):
    """Two participants answer every trial, one through the fast path and one through
    Flask: same statuses, headers and JSON shapes, the same next pages."""
    a, b = walk(acr_test), walk(acr_test)
    answers = {}
    for fast, walker in ((True, a), (False, b)):
        app.config["FAST_PATHS"] = fast
        got = []
        while walker.config:
            resp = walker.post_json(walker.config["submit_url"], walker.valid_ratings(),
                                    key=f"k{walker.config['position']}",
                                    headers={"Accept-Encoding": accept_encoding})
            raw = resp.get_data()
            if resp.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            body = json.loads(raw)
            headers = sorted((k, v) for k, v in resp.headers.items()
                             if k not in ("Content-Length", "Date"))
            got.append((resp.status_code, headers, _shape(body),
                        body["next_url"].replace(walker.token, "TOKEN")))
            walker.config = body.get("next_config") or {}
        answers[fast] = got
        assert views["api.submit_trial"] == (0 if fast else len(got))
    assert answers[True] == answers[False]
    # Every answer was stored, and the last one moved the participant on (committed).
    from sqlalchemy import func, select

    from mosplatform.extensions import db
    from mosplatform.models import Participant, Rating

    db.session.expire_all()
    for walker in (a, b):
        p = db.session.scalar(select(Participant).where(Participant.token == walker.token))
        assert p.stage not in ("trials", "consent", "instructions"), p.stage
        assert db.session.scalar(select(func.count()).select_from(Rating).where(
            Rating.participant_id == p.id)) == 2 * len(answers[True])
    assert answers[True][-1][3] == "/p/TOKEN/done"
    assert any(h == ("Content-Encoding", "gzip") for h in answers[True][0][1]) \
        == (accept_encoding == "gzip")


def test_refused_answers_reach_the_flask_view_with_their_body(app, acr_test, walk, views):
    a, b = walk(acr_test), walk(acr_test)
    url = a.config["submit_url"]
    before = snapshot()
    for walker, body, kw, status in (
            (a, {"ratings": [{"stimulus": 0, "question": "x", "score": 1}]}, {}, 422),
            (a, a.valid_ratings(), {"csrf": "forged"}, 200),  # CSRF off here: Flask takes it
            (b, a.valid_ratings(), {}, 403),
            (a, [1, 2], {}, 422)):
        resp = walker.post_json(url, body, **kw)
        assert views["api.submit_trial"] == 1, body
        views["api.submit_trial"] = 0
        assert resp.status_code == status, (body, resp.get_json())
        if status == 200:
            break
        assert "error" in resp.get_json()
        assert snapshot() == before
    # Not JSON: Flask refuses it as before.
    resp = a.client.post(url, data="x", content_type="text/plain",
                         headers={"X-CSRFToken": a.csrf})
    assert resp.status_code == 415 and views["api.submit_trial"] == 1


def test_csrf_is_checked_on_the_fast_path_too(csrf_app):
    from tests.security.test_payloads import _assert_refused

    app, public_id = csrf_app
    a = walk_to_trial(app, public_id, "fast-csrf-a")
    b = walk_to_trial(app, public_id, "fast-csrf-b")
    with app.app_context():
        before = snapshot()
    for csrf in ("", "forged", a.csrf[:-3] + "abc", b.csrf):
        with app.app_context():
            _assert_refused(a.post_json(a.config["submit_url"], a.valid_ratings(), csrf=csrf),
                            400, before, csrf)
    resp = a.post_json(a.config["submit_url"], a.valid_ratings())
    assert resp.status_code == 200
    following = resp.get_json()["next_config"]
    # Without a time limit a valid token stays valid: the next page keeps it.
    assert following["csrf_token"] == a.csrf
    # With one, the next page gets a newly signed token of the same session, which works.
    app.config["WTF_CSRF_TIME_LIMIT"] = 3600
    c = walk_to_trial(app, public_id, "fast-csrf-c")
    resp = c.post_json(c.config["submit_url"], c.valid_ratings())
    assert resp.status_code == 200
    following = resp.get_json()["next_config"]
    nxt = c.post_json(following["submit_url"], c.valid_ratings(), csrf=following["csrf_token"])
    assert nxt.status_code == 200


PAGES = ("participant.welcome", "participant.instructions", "participant.trial",
         "participant.done")
_MASKS = (  # signed with the time they were made
    (re.compile(r'(name="csrf_token" value=")[^"]+'), r"\1X"),
    (re.compile(r'("csrf_token": ?")[^"]+'), r"\1X"),
    (re.compile(r'("shown": ?")[^"]+'), r"\1X"),
)


@pytest.fixture
def page_views(app, monkeypatch):  # type: ignore[no-untyped-def]
    """Calls that reached the Flask views of the journey's pages, in all."""
    calls = [0]
    for endpoint in PAGES:
        view = app.view_functions[endpoint]

        def counted(*args: Any, _view=view, **kw: Any):  # type: ignore[no-untyped-def]
            calls[0] += 1
            return _view(*args, **kw)

        monkeypatch.setitem(app.view_functions, endpoint, counted)
    return calls


def _page(client, method: str, url: str, headers: dict[str, str],  # type: ignore[no-untyped-def]
          data: dict[str, str] | None = None, token: str = ""):
    """Status, headers and body (tokens masked) of a page request."""
    resp = client.open(url, method=method, headers=headers, data=data)
    raw = resp.get_data()
    if resp.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    text = raw.decode()
    for pattern, masked in _MASKS:
        text = pattern.sub(masked, text)
    headers_seen = sorted((k, v.replace(token, "TOKEN") if token else v)
                          for k, v in resp.headers.items()
                          if k not in ("Date", "Content-Length", "Set-Cookie"))
    return resp.status_code, headers_seen, text.replace(token, "TOKEN") if token else text


@pytest.mark.parametrize("accept_encoding", ["gzip", ""])
def test_pages_answer_as_the_flask_views(app, acr_test, page_views, accept_encoding):
    """Each page of the journey, through the fast path and through Flask: the same
    status, headers and page (CSRF tokens and page stamps aside, which are signed with
    the time), and the same stage afterwards."""
    h = {"Accept-Encoding": accept_encoding}
    a, b = app.test_client(), app.test_client()
    ta, tb = (c.get(f"/t/{acr_test.public_id}?PROLIFIC_PID={pid}").location
              .split("/p/")[1].split("/")[0] for c, pid in ((a, "fast-a"), (b, "fast-b")))

    def both_get(url: str):  # type: ignore[no-untyped-def]
        """A read-only page of participant a, fast and then through Flask."""
        app.config["FAST_PATHS"] = True
        fast = _page(a, "GET", url, h)
        assert page_views[0] == 0, url
        app.config["FAST_PATHS"] = False
        flask = _page(a, "GET", url, h)
        assert page_views[0] == 1, url
        page_views[0] = 0
        assert fast == flask, url
        return fast

    def both_post(stage: str, **form: str):  # type: ignore[no-untyped-def]
        """A posted page: participant a through the fast path, b through Flask."""
        got = []
        for fast, client, token in ((True, a, ta), (False, b, tb)):
            app.config["FAST_PATHS"] = fast
            page = client.get(f"/p/{token}/{stage}").get_data(as_text=True)
            page_views[0] = 0
            csrf = CSRF_FIELD.search(page).group(1)
            got.append(_page(client, "POST", f"/p/{token}/{stage}", h,
                             {**form, "csrf_token": csrf}, token))
            assert page_views[0] == (0 if fast else 1), stage
            page_views[0] = 0
        assert got[0] == got[1], stage
        return got[0]

    assert "consent" in both_get(f"/p/{ta}/welcome")[2]
    assert both_post("welcome")[0] == 400  # consent missing: the page again
    assert both_post("welcome", consent="yes")[0] == 302
    both_get(f"/p/{ta}/instructions")
    both_get(f"/p/{ta}/welcome")  # a later stage: on to it
    status, headers, _ = both_post("instructions")
    assert status == 302 and ("Location", "/p/TOKEN/trial/1") in headers
    page = both_get(f"/p/{ta}/trial/1")
    assert page[0] == 200 and "trial-config" in page[2]
    assert (("Content-Encoding", "gzip") in page[1]) == (accept_encoding == "gzip")
    assert both_get(f"/p/{ta}/trial/2")[0] == 302  # not yet due
    walker = Walker(client=a, token=ta)
    walker.refresh()
    app.config["FAST_PATHS"] = True
    while walker.config:
        resp = walker.post_json(walker.config["submit_url"], walker.valid_ratings())
        walker.config = resp.get_json().get("next_config") or {}
    page_views[0] = 0
    done = both_get(f"/p/{ta}/done")
    assert done[0] == 200 and "completion-code" in done[2]
    assert both_get(f"/p/{ta}/trial/1")[0] == 302  # answered: never asked again
    stages = dict(db.session.execute(select(Participant.token, Participant.stage)).all())
    assert stages[ta] == "done" and stages[tb] == "trials"


def test_pages_left_to_flask(app, acr_test, page_views):
    """Another browser, a forged or missing CSRF token, a finish still to record: the
    Flask view answers (and refuses or binds as it always did)."""
    a = app.test_client()
    token = a.get(f"/t/{acr_test.public_id}").location.split("/p/")[1].split("/")[0]
    app.config["FAST_PATHS"] = True
    stranger = app.test_client()
    stranger.get(f"/p/{token}/welcome")
    assert page_views[0] == 1
    for form in ({"consent": "yes", "csrf_token": "forged"}, {"consent": "yes"}):
        page_views[0] = 0
        a.post(f"/p/{token}/welcome", data=form)  # CSRF is off in this app: Flask takes it
        assert page_views[0] == 1, form
    page_views[0] = 0
    a.post(f"/p/{token}/instructions", data="x", content_type="text/plain")
    assert page_views[0] == 1
