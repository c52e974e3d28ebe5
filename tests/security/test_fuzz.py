"""Property-based fuzzing of the participant JSON API against its OpenAPI description.

Whatever the body and headers, the answer is a status the description declares, a JSON
body of the declared shape, never a 5xx; a refused request changes nothing stored, and
an accepted one stores exactly what it reports.
"""

from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mosplatform.extensions import db
from mosplatform.models import Question, Rating
from mosplatform.openapi import openapi_spec
from mosplatform.services.ratings import EVENT_KINDS
from tests.security.conftest import snapshot

SPEC = openapi_spec()
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


def _near(valid: list, junk=json_values):  # type: ignore[no-untyped-def]
    """Mostly valid values, sometimes anything."""
    return st.sampled_from(valid) | junk


def rating_bodies(config: dict) -> st.SearchStrategy:  # type: ignore[type-arg]
    keys = [q["key"] for q in config["questions"]]
    scores = [c["score"] for q in config["questions"] for c in q["scale"]["categories"]]
    rating = st.fixed_dictionaries(
        {"stimulus": _near(list(range(len(config["stimuli"])))),
         "question": _near(keys), "score": _near(scores)},
        optional={"extra": json_values})
    listening = st.fixed_dictionaries({"stimulus": _near([0, 1]), "heard_s": json_values,
                                       "plays": json_values})
    structured = st.fixed_dictionaries({"ratings": st.lists(rating, max_size=4)},
                                       optional={"listening": st.lists(listening, max_size=2)})
    return structured | json_values


event_bodies = st.fixed_dictionaries({"events": st.lists(st.fixed_dictionaries(
    {"kind": _near(sorted(EVENT_KINDS))},
    optional={"stimulus": _near([None, -1, 0, 1]), "trial": json_values, "t_ms": json_values,
              "position_s": json_values, "data": json_values}), max_size=5)}) | json_values

idempotency_keys = st.none() | st.text(string.ascii_letters + string.digits + "-", min_size=1,
                                       max_size=90) | st.text(max_size=10)


def _check_against_spec(path: str, resp) -> None:  # type: ignore[no-untyped-def]
    responses = SPEC["paths"][path]["post"]["responses"]
    assert str(resp.status_code) in responses, (path, resp.status_code, resp.get_data()[:200])
    assert resp.is_json
    body = resp.get_json()
    if resp.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"]
        assert "Traceback" not in body["error"]
    else:
        ref = responses["200"]["content"]["application/json"]["schema"]
        schema = SPEC["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]] \
            if "$ref" in ref else ref
        assert set(schema["required"]) <= set(body)


def _send(walker, url: str, body, key=None):  # type: ignore[no-untyped-def]
    headers = {"X-CSRFToken": walker.csrf}
    if key is not None:
        headers["Idempotency-Key"] = key.encode("utf-8").decode("latin-1")
    try:
        data = json.dumps(body)
    except ValueError:  # circular or otherwise unencodable: send as text
        data = str(body)
    return walker.client.post(url, data=data, content_type="application/json", headers=headers)


def test_fuzz_ratings(app, acr_test, walk):
    a = walk(acr_test)
    scales = {q.id: q.scale for q in db.session.scalars(select(Question))}

    @FUZZ
    @given(body=rating_bodies(a.config), key=idempotency_keys)
    def run(body, key):  # type: ignore[no-untyped-def]
        before = snapshot()
        resp = _send(a, a.config["submit_url"], body, key)
        _check_against_spec("/api/p/{token}/trial/{number}/ratings", resp)
        after = snapshot()
        if resp.status_code >= 400:
            assert after == before
            return
        assert after["ratings"] == before["ratings"] + resp.get_json()["stored"]
        for r in db.session.scalars(select(Rating)):
            allowed = {c["score"] for c in scales[r.question_id]["categories"]}
            assert r.score in allowed

    run()


def test_fuzz_events(app, acr_test, walk):
    a = walk(acr_test)

    @FUZZ
    @given(body=event_bodies)
    def run(body):  # type: ignore[no-untyped-def]
        before = snapshot()
        resp = _send(a, a.config["events_url"], body)
        _check_against_spec("/api/p/{token}/events", resp)
        after = snapshot()
        if resp.status_code >= 400:
            assert after == before
        else:
            assert resp.get_json()["stored"] == len(body["events"])
            assert after["events"] == before["events"] + len(body["events"])

    run()


def test_fuzz_raw_bytes_and_paths(app, acr_test, walk):
    """Arbitrary bytes as body, and arbitrary trial numbers and tokens in the path."""
    a = walk(acr_test)

    @FUZZ
    @given(raw=st.binary(max_size=200), number=st.integers(min_value=0, max_value=2**70),
           token=st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=80))
    def run(raw, number, token):  # type: ignore[no-untyped-def]
        before = snapshot()
        for url in (f"/api/p/{a.token}/trial/{number}/ratings",
                    f"/api/p/{token}/trial/1/ratings", f"/api/p/{token}/events"):
            resp = a.client.post(url, data=raw, content_type="application/json",
                                 headers={"X-CSRFToken": a.csrf})
            assert 400 <= resp.status_code < 500 or resp.status_code == 200, url
            assert resp.is_json and (resp.status_code == 200 or resp.get_json()["error"])
            if resp.status_code != 200:
                assert snapshot() == before
        media = a.client.get(f"/media/{token}")
        assert media.status_code == 404

    run()


def test_spec_describes_every_api_route(app):
    documented = {p.replace("{token}", "<token>").replace("{number}", "<int:number>")
                  for p in SPEC["paths"]}
    routes = {r.rule for r in app.url_map.iter_rules()
              if r.endpoint.startswith("api.") and "POST" in r.methods}
    assert routes == documented
    assert app.test_client().get("/api/openapi.json").get_json()["openapi"].startswith("3.")
