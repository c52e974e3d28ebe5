"""Security headers on every page, compression of pages, and no stack traces to clients."""

from __future__ import annotations

import gzip
import re

import pytest

from tests.security.conftest import TRIAL_CONFIG

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>",
                           re.I)
EVENT_HANDLER_ATTR = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def _csp(resp) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    policy = resp.headers.get("Content-Security-Policy", "")
    out = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def assert_secure_headers(resp, where: str) -> None:  # type: ignore[no-untyped-def]
    csp = _csp(resp)
    scripts = csp.get("script-src", csp.get("default-src"))
    assert scripts is not None, where
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, where
    assert "*" not in scripts and "data:" not in scripts, where
    assert csp.get("frame-ancestors") == ["'none'"], where
    assert csp.get("object-src") == ["'none'"], where
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", where
    assert resp.headers.get("Referrer-Policy") in ("no-referrer", "same-origin"), where
    assert resp.headers.get("X-Frame-Options") == "DENY", where


def _journey_pages(app, test) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    """Every page of a participant's journey, from the link to the thanks page."""
    client = app.test_client()
    pages = []
    resp = client.get(f"/t/{test.public_id}?PROLIFIC_PID=hdr", headers={"Accept-Encoding": "gzip"})
    pages.append(("link", resp))
    token = resp.headers["Location"].split("/p/", 1)[1].split("/")[0]
    for _ in range(10):
        resp = client.get(f"/p/{token}/", follow_redirects=True)
        path = resp.request.path
        pages.append((path, resp))
        html = resp.get_data(as_text=True)
        match = TRIAL_CONFIG.search(html)
        if path.endswith("/done"):
            break
        if match:
            import json

            cfg = json.loads(match.group(1))
            ratings = [{"stimulus": i, "question": q["key"],
                        "score": q["scale"]["categories"][0]["score"]}
                       for q in cfg["questions"] for i, _ in enumerate(cfg["stimuli"])]
            r = client.post(cfg["submit_url"], json={"ratings": ratings},
                            headers={"X-CSRFToken": cfg["csrf_token"], "Idempotency-Key": path})
            pages.append(("api " + path, r))
            pages.append(("media", client.get(cfg["stimuli"][0]["url"])))
            pages.append(("events", client.post(cfg["events_url"], json={"events": []},
                                                headers={"X-CSRFToken": cfg["csrf_token"]})))
        else:
            pages.append(("post " + path, client.post(path, data={"consent": "yes"})))
    assert pages[-1][0].endswith("/done")
    return pages


def test_every_page_has_security_headers(app, acr_test):
    pages = _journey_pages(app, acr_test)
    client = app.test_client()
    pages += [
        ("404 page", client.get("/p/nope/")),
        ("404 test", client.get("/t/nope")),
        ("404 api", client.post("/api/p/nope/events", json={})),
        ("405", client.get("/api/p/nope/events")),
        ("openapi", client.get("/api/openapi.json")),
        ("health", client.get("/healthz")),
        ("static", client.get("/static/js/common.js")),
    ]
    for where, resp in pages:
        assert_secure_headers(resp, where)
        if resp.mimetype == "text/html" and resp.status_code == 200:
            html = resp.get_data(as_text=True)
            assert not INLINE_SCRIPT.search(html), f"inline script on {where}"
            assert not EVENT_HANDLER_ATTR.search(html), f"inline event handler on {where}"
        if where.startswith(("/p/", "api", "events")):
            assert "no-store" in resp.headers.get("Cache-Control", ""), where


def test_pages_are_compressed(app, acr_test, walk):
    a = walk(acr_test)
    url = f"/p/{a.token}/trial/1"
    plain = a.client.get(url)
    zipped = a.client.get(url, headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers.get("Vary", "")
    assert int(zipped.headers["Content-Length"]) == len(zipped.data) < len(plain.data)
    # Same page apart from the per-request CSRF token.
    assert len(gzip.decompress(zipped.data)) == pytest.approx(len(plain.data), abs=200)
    spec = a.client.get("/api/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert spec.headers["Content-Encoding"] == "gzip"


def test_no_stack_traces_to_clients(app, acr_test, walk, monkeypatch):
    a = walk(acr_test)
    secret = "SECRET-DETAIL-42 /srv/mosplatform/services/ratings.py"

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError(secret)

    import mosplatform.api.views as api_views
    import mosplatform.services.journey as journey

    monkeypatch.setattr(api_views, "submit_trial", boom)
    monkeypatch.setattr(journey, "progress", boom)
    resp = a.post_json(a.config["submit_url"], a.valid_ratings())
    assert resp.status_code == 500 and resp.is_json
    assert resp.get_json()["error"] and secret not in resp.get_data(as_text=True)
    page = a.client.get(f"/p/{a.token}/trial/1")
    assert page.status_code == 500
    body = page.get_data(as_text=True)
    assert secret not in body and "Traceback" not in body and "File \"" not in body
    assert_secure_headers(page, "500 page")
