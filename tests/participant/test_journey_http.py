"""The participant journey over HTTP: arrival, resume, trials, blindness, completion."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from mosplatform.config import load_definition
from mosplatform.extensions import db
from mosplatform.models import Participant, Rating
from mosplatform.services.importer import create_test
from tests.audiofixtures import ACR_YAML, MUSHRA_YAML, make_musdb, write_definition


@pytest.fixture
def audio_dirs(tmp_path):
    return make_musdb(tmp_path / "audio", tracks=2, seconds=2.6)


def _make(tmp_path, audio_dirs, template, crowd=""):  # type: ignore[no-untyped-def]
    text = template + crowd
    d = load_definition(write_definition(tmp_path, text, audio_dirs, "t.yaml"))
    return create_test(d, open_now=True, compute_sdr=False)


def _config(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="trial-config">(.*?)</script>', html,
                  re.S)
    assert m, "trial page has no trial-config"
    return json.loads(m.group(1))


def _walk_to_trials(client, public_id, query=""):  # type: ignore[no-untyped-def]
    r = client.get(f"/t/{public_id}{query}")
    assert r.status_code == 302
    r = client.get(r.location, follow_redirects=True)
    assert "welcome" in r.request.path
    r = client.post(r.request.path, data={"consent": "1"}, follow_redirects=True)
    assert "instructions" in r.request.path
    r = client.post(r.request.path, follow_redirects=True)
    assert "/trial/1" in r.request.path
    return r


def _answer(client, cfg, score):  # type: ignore[no-untyped-def]
    if cfg["kind"] in ("ccr", "ab"):
        ratings = [{"stimulus": None, "question": q["key"], "score": score}
                   for q in cfg["questions"]]
    else:
        ratings = [{"stimulus": i, "question": q["key"], "score": score}
                   for i in range(len(cfg["stimuli"])) for q in cfg["questions"]]
    return client.post(cfg["submit_url"], json={"ratings": ratings, "shown": cfg["shown"],
                                                "listening": [
        {"stimulus": i, "heard_s": 2.0, "plays": 1} for i in range(len(cfg["stimuli"]))]},
        headers={"Idempotency-Key": f"k-{cfg['position']}", "X-CSRFToken": cfg["csrf_token"]})


def test_mushra_journey_with_reload_and_resume(client, tmp_path, audio_dirs):
    test = _make(tmp_path, audio_dirs, MUSHRA_YAML)
    r = _walk_to_trials(client, test.public_id, "?PROLIFIC_PID=abc123&STUDY_ID=s&SESSION_ID=x")
    cfg = _config(r.get_data(as_text=True))
    assert cfg["is_training"] and cfg["reference"] is not None and len(cfg["stimuli"]) == 5
    first = _answer(client, cfg, 100)
    assert first.status_code == 200
    # The answer names the next trial page itself (no redirect hop).
    token = cfg["submit_url"].split("/")[3]
    assert first.get_json()["next_url"] == f"/p/{token}/trial/2"
    r = client.get(first.get_json()["next_url"])
    assert r.status_code == 200
    cfg2 = _config(r.get_data(as_text=True))
    assert cfg2["position"] == 2
    # ... and brings that page's configuration, for the page to show it in place.
    brought = first.get_json()["next_config"]
    assert "strings" not in brought and brought["progress"] == {"done": 3, "total": 5}
    stamped = ("shown", "csrf_token")  # signed with the time they were made
    assert {k: v for k, v in brought.items() if k not in stamped} == \
        {k: v for k, v in cfg2.items() if k not in ("strings", *stamped)}
    # The same session's CSRF token (the payload before the timestamp and signature).
    assert brought["csrf_token"].split(".")[0] == cfg2["csrf_token"].split(".")[0]
    second = _answer(client, cfg2, 80)
    assert second.status_code == 200 and second.get_json()["next_config"]["position"] == 3
    # Reload in the middle: the link resumes at the first unanswered trial.
    r = client.get(f"/t/{test.public_id}?PROLIFIC_PID=abc123", follow_redirects=True)
    cfg3 = _config(r.get_data(as_text=True))
    assert cfg3["position"] == 3
    # An answered trial is never asked again.
    r = client.get(r.request.path.replace("/trial/3", "/trial/2"))
    assert r.status_code == 302 and r.location.endswith("/trial/3")
    # Retrying an earlier submission (same key) is answered without storing twice, and
    # brings the trial that is open now.
    again = _answer(client, cfg2, 80)
    assert again.status_code == 200
    assert again.get_json()["next_config"]["submit_url"] == cfg3["submit_url"]
    last = _answer(client, cfg3, 60)
    assert last.status_code == 200 and "next_config" not in last.get_json()
    # After the last trial the journey moves on (here: to the done page) and the answer
    # names where it went.
    assert last.get_json()["next_url"] == f"/p/{token}/done"
    p = db.session.execute(select(Participant)).scalar_one()
    assert p.stage == "done" and p.status == "finished"
    r = client.get(last.get_json()["next_url"])
    assert r.status_code == 200 and p.completion_code in r.get_data(as_text=True)
    assert p.external_id == "abc123" and p.status == "finished" and p.completion_code
    # 2 regular trials x 5 rated conditions; training discarded.
    assert db.session.scalar(select(func.count()).select_from(Rating)) == 10


def test_trial_page_writes_nothing_and_the_answer_records_when_it_was_shown(
        client, tmp_path, audio_dirs):
    from mosplatform.models import Trial

    test = _make(tmp_path, audio_dirs, ACR_YAML)
    r = _walk_to_trials(client, test.public_id)
    cfg = _config(r.get_data(as_text=True))
    # A reload shows the page again; neither showing writes to the database.
    client.get(r.request.path)
    assert db.session.scalar(select(func.count()).select_from(Trial)
                             .where(Trial.started_at.is_not(None))) == 0
    assert _answer(client, cfg, 3).status_code == 200
    db.session.expire_all()
    trial = db.session.execute(select(Trial).where(Trial.position == 0)).scalar_one()
    assert trial.started_at is not None and trial.started_at <= trial.completed_at


def test_same_browser_resumes_without_external_id(client, tmp_path, audio_dirs):
    test = _make(tmp_path, audio_dirs, ACR_YAML)
    _walk_to_trials(client, test.public_id)
    again = client.get(f"/t/{test.public_id}", follow_redirects=True)
    assert "/trial/1" in again.request.path
    assert db.session.scalar(select(func.count()).select_from(Participant)) == 1


def test_trial_pages_do_not_reveal_conditions(client, tmp_path, audio_dirs):
    test = _make(tmp_path, audio_dirs, MUSHRA_YAML)
    r = _walk_to_trials(client, test.public_id)
    secrets_ = [c.key for c in test.conditions] + [c.role for c in test.conditions]
    secrets_ += [s.content_hash for i in test.items for s in i.stimuli]
    secrets_ += [s.path for i in test.items for s in i.stimuli]
    for _ in range(3):
        html = r.get_data(as_text=True)
        cfg = _config(html)
        for word in secrets_:
            if word in ("reference",):  # the open reference button is labelled as such
                continue
            assert not re.search(rf"\b{re.escape(word)}\b", html, re.I), word
        for stim in cfg["stimuli"]:
            media = client.get(stim["url"])
            assert media.status_code == 200 and media.mimetype == "audio/wav"
            headers = " ".join(f"{k}: {v}" for k, v in media.headers.items())
            for word in secrets_:
                assert not re.search(rf"\b{re.escape(word)}\b", headers, re.I), word
            assert "content-disposition" not in headers
        _answer(client, cfg, 100)
        r = client.get(cfg["next_url"], follow_redirects=True)
        if "/trial/" not in r.request.path:
            break


def test_media_tokens_belong_to_one_participant(app, tmp_path, audio_dirs):
    test = _make(tmp_path, audio_dirs, ACR_YAML)
    alice, bob = app.test_client(), app.test_client()
    cfg = _config(_walk_to_trials(alice, test.public_id).get_data(as_text=True))
    _walk_to_trials(bob, test.public_id)
    url = cfg["stimuli"][0]["url"]
    assert alice.get(url).status_code == 200
    assert bob.get(url).status_code == 404
    assert bob.post(cfg["submit_url"], json={"ratings": []}).status_code == 403


def test_media_supports_range_and_etag(client, tmp_path, audio_dirs):
    test = _make(tmp_path, audio_dirs, ACR_YAML)
    cfg = _config(_walk_to_trials(client, test.public_id).get_data(as_text=True))
    url = cfg["stimuli"][0]["url"]
    full = client.get(url)
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.data == full.data[:100]
    etag = full.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    cc = full.headers["Cache-Control"]
    assert "private" in cc and "max-age" in cc


def test_prolific_completion_redirect(client, tmp_path, audio_dirs):
    crowd = "crowd: {{platform: prolific, completion_code: ABC123}}\n"
    test = _make(tmp_path, audio_dirs, ACR_YAML, crowd)
    r = _walk_to_trials(client, test.public_id, "?PROLIFIC_PID=w1")
    while "/trial/" in r.request.path:
        cfg = _config(r.get_data(as_text=True))
        assert _answer(client, cfg, 3).status_code == 200
        r = client.get(cfg["next_url"], follow_redirects=True)
    html = r.get_data(as_text=True)
    assert "ABC123" in html and "prolific.com/submissions/complete?cc=ABC123" in html


def test_closed_test_link_is_refused(client, tmp_path, audio_dirs):
    test = _make(tmp_path, audio_dirs, ACR_YAML)
    test.status = "closed"
    db.session.commit()
    assert client.get(f"/t/{test.public_id}").status_code == 403
    assert client.get("/t/does-not-exist").status_code == 404


def test_returning_crowd_worker_gets_their_participation_back(app, client, tmp_path,
                                                             audio_dirs):
    """The same external id from another browser resumes the same participant (the
    arrival refuses a second one), on an open test and after it closed."""
    test = _make(tmp_path, audio_dirs, ACR_YAML)
    r = _walk_to_trials(client, test.public_id, "?PROLIFIC_PID=back1")
    token = r.request.path.split("/")[2]
    other = app.test_client()
    r = other.get(f"/t/{test.public_id}?PROLIFIC_PID=back1")
    assert r.status_code == 302 and r.location.endswith(f"/p/{token}/trial/1")
    assert db.session.scalar(select(func.count()).select_from(Participant)) == 1
    test.status = "closed"
    db.session.commit()
    r = app.test_client().get(f"/t/{test.public_id}?PROLIFIC_PID=back1")
    assert r.status_code == 302 and r.location.endswith(f"/p/{token}/trial/1")
    assert app.test_client().get(f"/t/{test.public_id}?PROLIFIC_PID=new").status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Participant)) == 1


def test_last_answer_moves_on_to_the_questionnaire(client, tmp_path, audio_dirs):
    extra = "questionnaire:\n  - {{key: age, label: Age, type: number, required: true}}\n"
    test = _make(tmp_path, audio_dirs, ACR_YAML, extra)
    r = _walk_to_trials(client, test.public_id, "?PROLIFIC_PID=q1")
    cfg = _config(r.get_data(as_text=True))
    while True:
        answer = _answer(client, cfg, 4)
        assert answer.status_code == 200
        if "next_config" not in answer.get_json():
            break
        cfg = answer.get_json()["next_config"]
    token = cfg["submit_url"].split("/")[3]
    # The answer to the last trial moved the participant on, and names where to.
    assert answer.get_json()["next_url"] == f"/p/{token}/questionnaire"
    p = db.session.execute(select(Participant)).scalar_one()
    assert p.stage == "questionnaire" and p.finished_at is None and p.status == "started"
    # The same answer again (a retry) does not move anything further.
    again = _answer(client, cfg, 4)
    assert again.get_json()["next_url"] == f"/p/{token}/questionnaire"
    r = client.post(f"/p/{token}/questionnaire", data={"age": "33"})
    assert r.status_code == 302 and r.location.endswith("/done")
    db.session.expire_all()
    p = db.session.execute(select(Participant)).scalar_one()
    assert p.stage == "done" and p.status == "finished" and p.completion_code


@pytest.mark.parametrize(("method", "path"), [("GET", "/p/some-token/welcome"),
                                              ("POST", "/api/p/some-token/events")])
def test_participant_requests_keep_loaded_rows_after_commit(app, method, path):
    """The flag is set on the request's own session (setting it on the scoped-session
    proxy changed nothing), and only for participant and API requests."""
    with app.test_request_context(path, method=method):
        app.preprocess_request()
        assert db.session().expire_on_commit is False
    db.session.remove()  # as at the end of a request (the fixture's app context stays)
    with app.test_request_context("/admin/login"):
        app.preprocess_request()
        assert db.session().expire_on_commit is True
