"""Audio delivery: Range and conditional requests, private caching, per-token ETags
(blindness), path traversal and overlong tokens, and the X-Accel-Redirect hand-off."""

from __future__ import annotations

from pathlib import Path

from mosplatform.extensions import db
from mosplatform.models import Participant, TrialStimulus
from tests.security.conftest import walk_to_trial


def _stimuli(token: str) -> list[TrialStimulus]:
    p = db.session.query(Participant).filter_by(token=token).one()
    return [ts for t in p.trials for ts in t.stimuli]


def test_range_conditional_and_private_caching(app, acr_test, walk):
    a = walk(acr_test)
    ts = _stimuli(a.token)[0]
    media = Path(app.config["MEDIA_ROOT"]) / ts.stimulus.path
    data = media.read_bytes()

    full = a.client.get(f"/media/{ts.token}", headers={"Accept-Encoding": "gzip"})
    assert full.status_code == 200 and full.data == data
    assert full.headers.get("Accept-Ranges") == "bytes"
    assert "Content-Encoding" not in full.headers  # audio is never gzipped
    cc = full.cache_control
    assert cc.private and not cc.public and cc.max_age >= 24 * 3600 and not cc.no_store
    for leaky in ("Last-Modified", "Content-Disposition"):
        assert leaky not in full.headers
    etag = full.headers["ETag"]

    part = a.client.get(f"/media/{ts.token}", headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.data == data[10:110]
    assert part.headers["Content-Range"] == f"bytes 10-109/{len(data)}"
    tail = a.client.get(f"/media/{ts.token}", headers={"Range": "bytes=-64"})
    assert tail.status_code == 206 and tail.data == data[-64:]
    beyond = a.client.get(f"/media/{ts.token}", headers={"Range": f"bytes={len(data) + 5}-"})
    assert beyond.status_code == 416

    cached = a.client.get(f"/media/{ts.token}", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.data == b""
    stale = a.client.get(f"/media/{ts.token}", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


def test_etag_is_per_token_not_per_condition(app, mushra_test):
    """The same audio file served to two participants must not carry the same ETag."""
    a = walk_to_trial(app, mushra_test.public_id, "etag-a")
    b = walk_to_trial(app, mushra_test.public_id, "etag-b")
    etags: dict[int, set[str]] = {}
    seen: set[str] = set()
    for walker in (a, b):
        for ts in _stimuli(walker.token):
            resp = walker.client.get(f"/media/{ts.token}", headers={"Range": "bytes=0-0"})
            assert resp.status_code == 206
            tag = resp.headers["ETag"].strip('"')
            assert tag not in seen  # unique per token, even within one participant
            seen.add(tag)
            assert ts.stimulus.content_hash[:16] not in tag
            etags.setdefault(ts.stimulus_id, set()).add(tag)
    shared = [s for s, tags in etags.items() if len(tags) > 1]
    assert shared, "expected both participants to hear at least one common stimulus"


def test_traversal_and_overlong_tokens_are_404(app, acr_test, walk):
    a = walk(acr_test)
    # A file next to the media folder, which a traversal would reach.
    secret = Path(app.config["MEDIA_ROOT"]).parent / "secret_key"
    secret.write_bytes(b"SENTINEL-" + a.token.encode())
    for path in (
        "/media/..%2fsecret_key", "/media/..%2F..%2F..%2Fetc%2Fpasswd", "/media/%2e%2e/secret_key",
        "/media/../secret_key", "/media//etc/passwd", "/media/%2Fetc%2Fpasswd",
        "/media/....//....//etc/passwd", "/media/%252e%252e%252fsecret_key",
        "/media/" + "A" * 65, "/media/" + "A" * 10000, "/media/", "/media/check/../../secret_key",
        "/media/check/" + a.token + "/99/0", "/media/check/" + a.token + "/0/7",
        "/media/check/" + a.token + "/-1/0",
    ):
        resp = a.client.get(path)
        assert resp.status_code in (404, 405, 308), (path, resp.status_code)
        body = resp.get_data()
        assert secret.read_bytes() not in body and b"root:" not in body, path
        assert not resp.mimetype.startswith("audio/"), path


def test_x_accel_redirect_hands_off_after_the_token_check(db_url, tmp_path, audio_dirs):
    from mosplatform.config import load_definition
    from mosplatform.services.importer import create_test
    from tests.conftest import make_app
    from tests.security.conftest import ACR_YAML, write_definition

    app = make_app(db_url, tmp_path, USE_X_ACCEL_REDIRECT=True)
    with app.app_context():
        d = load_definition(write_definition(tmp_path, ACR_YAML, audio_dirs, "x.yaml"))
        public_id = create_test(d, open_now=True, compute_sdr=False).public_id
    a = walk_to_trial(app, public_id, "accel-a")
    b = walk_to_trial(app, public_id, "accel-b")
    with app.app_context():
        items = [(ts.token, ts.stimulus.path) for ts in _stimuli(a.token)]
    try:
        for token, relpath in items:
            resp = a.client.get(f"/media/{token}")
            assert resp.status_code == 200 and resp.data == b""
            assert resp.headers["X-Accel-Redirect"] == "/_protected_media/" + relpath
            assert resp.mimetype.startswith("audio/")
            assert resp.cache_control.private and resp.headers.get("ETag")
            again = a.client.get(f"/media/{token}", headers={"If-None-Match": resp.headers["ETag"]})
            assert again.status_code == 304 and "X-Accel-Redirect" not in again.headers
            refused = b.client.get(f"/media/{token}")
            assert refused.status_code == 404 and "X-Accel-Redirect" not in refused.headers
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()

