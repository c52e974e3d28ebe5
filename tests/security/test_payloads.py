"""Oversized, malformed and forged requests get a clear 4xx JSON answer and change nothing."""

from __future__ import annotations

import io
import json

import pytest

from tests.security.conftest import snapshot, walk_to_trial

SIZE_LIMIT = 256 * 1024  # DefaultConfig.API_MAX_BYTES


@pytest.fixture
def a(acr_test, walk):  # type: ignore[no-untyped-def]
    return walk(acr_test)


def _raw(a, url: str, data: bytes | str, content_type: str = "application/json",
         **headers: str):  # type: ignore[no-untyped-def]
    return a.client.post(url, data=data, content_type=content_type,
                         headers={"X-CSRFToken": a.csrf, **headers})


def _assert_refused(resp, status: int, before: dict, case: object = "") -> None:  # type: ignore[type-arg]
    assert resp.status_code == status, (case, resp.status_code, resp.get_data()[:200])
    assert resp.is_json, case
    body = resp.get_json()
    assert isinstance(body.get("error"), str) and body["error"], case
    assert "Traceback" not in body["error"], case
    assert snapshot() == before, case


def test_oversized_bodies_are_413(a):
    before = snapshot()
    filler = "x" * (SIZE_LIMIT + 10)
    for endpoint in ("submit_url", "events_url"):
        resp = _raw(a, a.config[endpoint], json.dumps({"ratings": [], "events": [],
                                                       "pad": filler}))
        _assert_refused(resp, 413, before, endpoint)
    # A chunked body (no Content-Length) is cut off at the limit, not read whole.
    payload = b'{"events": [], "pad": "' + b"y" * (SIZE_LIMIT * 2) + b'"}'
    resp = a.client.post(a.config["events_url"], input_stream=io.BytesIO(payload),
                         content_type="application/json",
                         headers={"X-CSRFToken": a.csrf, "Transfer-Encoding": "chunked"},
                         environ_overrides={"wsgi.input_terminated": True})
    _assert_refused(resp, 413, before, "chunked")
    # Just under the limit is parsed (and refused for its content, not its size).
    body = json.dumps({"events": [], "pad": ""})
    body = body.replace('""', '"' + "z" * (SIZE_LIMIT - len(body)) + '"')
    assert len(body) == SIZE_LIMIT
    assert _raw(a, a.config["events_url"], body).status_code == 200


def test_wrong_content_type_is_415(a):
    before = snapshot()
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/xml"):
        resp = _raw(a, a.config["submit_url"], json.dumps(a.valid_ratings()), content_type)
        _assert_refused(resp, 415, before, content_type)


def test_malformed_json_is_400(a):
    before = snapshot()
    for data in (
        b"", b"{", b"{'ratings': []}", b"\xff\xfe\x00", b"null", b"[1, 2",
        b"[" * 20000 + b"]" * 20000,  # nested past the parser's recursion limit
        b'{"ratings": ' + b"1" * 5000 + b"}",  # an integer longer than Python parses
    ):
        for endpoint in ("submit_url", "events_url"):
            _assert_refused(_raw(a, a.config[endpoint], data), 400, before, data[:20])


ILL_TYPED_RATINGS = [
    ([1, 2, 3], 400),
    ("ratings", 400),
    ({"ratings": {"0": 5}}, 400),
    ({"ratings": [5]}, 400),
    ({"ratings": [{"stimulus": 0, "question": ["accuracy"], "score": 5}]}, 422),
    ({"ratings": [{"stimulus": 0, "question": {"k": 1}, "score": 5}]}, 422),
    ({"ratings": [{"stimulus": [0], "question": "accuracy", "score": 5}]}, 422),
    ({"ratings": [{"stimulus": 0, "question": "accuracy", "score": 10 ** 400}]}, 422),
    ({"ratings": [{"stimulus": 0, "question": "accuracy", "score": None}]}, 422),
    ({"ratings": [{"stimulus": 0, "question": "accuracy", "score": 4.5}]}, 422),
]

BAD_EVENT_BATCHES = [
    ({"events": "play"}, 400),
    ({"events": [{"kind": ["play"]}]}, 422),
    ({"events": [{"kind": "rm -rf"}]}, 422),
    ({"events": [{"kind": "play", "stimulus": 10 ** 12}]}, 422),
    ({"events": [{"kind": "play", "stimulus": "0"}]}, 422),
    ({"events": [{"kind": "play"}] * 501}, 413),
    # One bad event refuses the whole batch: nothing of it is stored.
    ({"events": [{"kind": "play"}, {"kind": "play"}, {"kind": "nope"}]}, 422),
]


def test_ill_typed_ratings_and_events_are_refused(a):
    before = snapshot()
    for body, status in ILL_TYPED_RATINGS:
        _assert_refused(_raw(a, a.config["submit_url"], json.dumps(body)), status, before, body)
    for body, status in BAD_EVENT_BATCHES:
        _assert_refused(_raw(a, a.config["events_url"], json.dumps(body)), status, before,
                        str(body)[:80])
    # Python's json module accepts NaN and Infinity literals: they must still be refused.
    nan = json.dumps(a.valid_ratings()).replace("5.0", "NaN", 1)
    _assert_refused(_raw(a, a.config["submit_url"], nan), 422, before, "NaN")


def test_unrepresentable_event_numbers_are_stored_as_unknown(a):
    """Client clocks and playheads are informative: a huge number must not crash storage."""
    before = snapshot()
    resp = _raw(a, a.config["events_url"], json.dumps({"events": [
        {"kind": "play", "stimulus": 0, "t_ms": 10 ** 400, "position_s": 10 ** 400,
         "trial": 10 ** 30, "data": {"note": "x"}}]}))
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "stored": 1}
    assert snapshot()["events"] == before["events"] + 1


def test_bad_idempotency_keys_and_trial_numbers(a):
    before = snapshot()
    for key in ("k" * 81, "has space", "tab\tkey", "ünïcode"):
        resp = a.post_json(a.config["submit_url"], a.valid_ratings(),
                           headers={"Idempotency-Key": key.encode().decode("latin-1")})
        _assert_refused(resp, 400, before, key)
    for number in (0, 99, 10 ** 12):
        resp = a.post_json(f"/api/p/{a.token}/trial/{number}/ratings", a.valid_ratings())
        _assert_refused(resp, 404, before, number)


def test_control_characters_in_urls_are_400(client, acr_test):
    before = snapshot()
    for path in ("/t/abc%00def", "/p/abc%00/", "/media/ab%00cd", "/t/abc?PROLIFIC_PID=a%00b",
                 "/t/abc?x=%1b%5b31m", "/api/p/a%00/events"):
        resp = client.get(path)
        assert resp.status_code == 400 and b"Traceback" not in resp.get_data(), path
    assert snapshot() == before


def test_api_needs_csrf_token_of_this_session(csrf_app):
    app, public_id = csrf_app
    a = walk_to_trial(app, public_id, "csrf-a")
    b = walk_to_trial(app, public_id, "csrf-b")
    assert a.csrf != b.csrf
    with app.app_context():
        before = snapshot()
        for csrf in ("", "forged", a.csrf[:-3] + "abc", b.csrf):
            resp = a.post_json(a.config["submit_url"], a.valid_ratings(), csrf=csrf)
            _assert_refused(resp, 400, before, csrf)
            resp = a.post_json(a.config["events_url"], {"events": [{"kind": "play"}]},
                               csrf=csrf)
            _assert_refused(resp, 400, before, csrf)
        # B's session with A's token, on B's own and on A's trial.
        for url, body in ((b.config["submit_url"], b.valid_ratings()),
                          (a.config["submit_url"], a.valid_ratings())):
            _assert_refused(b.post_json(url, body, csrf=a.csrf), 400, before, url)
    # The token may also come in the body (sendBeacon cannot set headers).
    resp = a.post_json(a.config["events_url"], {"events": [{"kind": "play"}],
                                                "csrf_token": a.csrf}, csrf="")
    assert resp.status_code == 200
    assert a.post_json(a.config["submit_url"], a.valid_ratings()).status_code == 200


def test_forms_need_csrf_when_enabled(csrf_app):
    app, public_id = csrf_app
    client = app.test_client()
    resp = client.get(f"/t/{public_id}")
    token = resp.headers["Location"].split("/p/", 1)[1].split("/")[0]
    client.get(f"/p/{token}/welcome")
    with app.app_context():
        before = snapshot()
    for form in ({"consent": "yes"}, {"consent": "yes", "csrf_token": "forged"}):
        resp = client.post(f"/p/{token}/welcome", data=form)
        assert resp.status_code == 400 and b"Traceback" not in resp.get_data()
        with app.app_context():
            assert snapshot() == before
    walker = walk_to_trial(app, public_id, "csrf-ok")  # with the page's token it works
    assert walker.config["csrf_token"]
