"""The shipped ``deploy/nginx.conf`` in front of a real ``mosplatform serve``.

The configuration is the deploy folder's own, changed only where a machine differs
(ports instead of TLS, the media and static folders, logs): its upstream (one live
app server, one that is down), its proxy settings and its internal
``/_protected_media/`` location, to which the app hands audio with
``X-Accel-Redirect`` after checking the participant's token and session.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.audiofixtures import ACR_YAML, make_musdb, write_definition
from tests.conftest import IN_CI, make_app
from tests.serveproc import free_port, start_serve

REPO = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def nginx_config(shipped: str, *, live: int, dead: int, port: int, media: Path,
                 root: Path) -> str:
    """``deploy/nginx.conf`` for this machine: plain HTTP on ``port``, the upstream's
    first server ``live`` and its second ``dead``, folders under ``root``."""
    conf = shipped.replace("127.0.0.1:8001", f"127.0.0.1:{live}")
    conf = conf.replace("127.0.0.1:8002", f"127.0.0.1:{dead}")
    conf = conf.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    conf = re.sub(r"\n\s*ssl_certificate\S*\s+[^;]+;", "", conf)
    # The port-80 redirect to HTTPS is the last server block.
    conf = conf[:conf.rindex("server {")]
    conf = conf.replace("/srv/mosplatform/static/", f"{REPO / 'static'}/")
    conf = conf.replace("/srv/mosplatform/instance/media/", f"{media}/")
    conf = conf.replace("/var/log/nginx/mosplatform.access.log", str(root / "access.log"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read tmp_path
    temp = "\n".join(f"    {kind}_temp_path {root / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\npid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'} warn;\nevents {{}}\nhttp {{\n"
            f"    include /etc/nginx/mime.types;\n{temp}\n{conf}\n}}\n")


def _wait_for(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.2)
    raise AssertionError(f"{what} did not answer {url}")


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[dict[str, object]]:
    """An open ACR test on SQLite served by one app server behind nginx."""
    if NGINX is None:
        if IN_CI:
            pytest.fail("nginx is required in CI (make system-deps installs it)")
        pytest.skip("nginx not installed (Debian package nginx)")
    from mosplatform.config import load_definition
    from mosplatform.services.importer import create_test

    db_url = "sqlite:///" + str(tmp_path / "db.sqlite")
    secret = "nginx-test-secret"
    app = make_app(db_url, tmp_path, SECRET_KEY=secret)
    dirs = make_musdb(tmp_path / "audio", tracks=3, seconds=3.0)
    with app.app_context():
        test = create_test(load_definition(write_definition(tmp_path, ACR_YAML, dirs, "a.yaml")),
                           open_now=True, compute_sdr=False)
        public_id = test.public_id
    media = Path(app.config["MEDIA_ROOT"])
    for f in media.rglob("*"):  # deploy/README.md: constant modification times
        os.utime(f, (0, 0))

    live, dead, port = free_port(), free_port(), free_port()
    server = start_serve(live, instance=tmp_path / "instance", db_url=db_url, workers=1,
                         threads=2, MEDIA_ROOT=str(media), SECRET_KEY=secret,
                         USE_X_ACCEL_REDIRECT="true")
    root = tmp_path / "nginx"
    root.mkdir()
    conf = root / "nginx.conf"
    conf.write_text(nginx_config((REPO / "deploy" / "nginx.conf").read_text(), live=live,
                                 dead=dead, port=port, media=media, root=root))
    proxy = None
    try:
        _wait_for(f"http://127.0.0.1:{live}/healthz", server, "mosplatform serve")
        proxy = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(root), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_for(f"http://127.0.0.1:{port}/healthz", proxy, "nginx")
        yield {"base": f"http://127.0.0.1:{port}", "app": f"http://127.0.0.1:{live}",
               "public_id": public_id, "db_url": db_url,
               "media": media, "root": root}
    finally:
        for proc in (proxy, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _browser() -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)


def _get(opener: urllib.request.OpenerDirector, url: str,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def test_audio_is_sent_by_nginx_after_the_apps_check(behind_nginx) -> None:  # type: ignore[no-untyped-def]
    base = behind_nginx["base"]
    browser = _browser()
    status, headers, _ = _get(browser, f"{base}/t/{behind_nginx['public_id']}?PROLIFIC_PID=n1")
    assert status == 302 and headers["Location"].endswith("/welcome")
    token = headers["Location"].split("/p/")[1].split("/")[0]
    eng = create_engine(behind_nginx["db_url"])
    with eng.connect() as conn:
        media_token, path = conn.execute(text(
            "SELECT ts.token, s.path FROM trial_stimulus ts JOIN trial t ON t.id = ts.trial_id"
            " JOIN participant p ON p.id = t.participant_id"
            " JOIN stimulus s ON s.id = ts.stimulus_id WHERE p.token = :t LIMIT 1"),
            {"t": token}).one()
    eng.dispose()
    stored = (behind_nginx["media"] / path).read_bytes()

    # The participant's own audio: the whole file, sent by nginx.
    status, headers, body = _get(browser, f"{base}/media/{media_token}")
    assert status == 200 and body == stored
    assert headers["Content-Type"].startswith("audio/")
    assert "X-Accel-Redirect" not in headers
    assert headers["Cache-Control"] == "private, max-age=604800"
    # Blind: no validator of nginx's that names the file (deploy/README.md).
    assert headers.get("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT") \
        == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert path not in str(headers) and path.rsplit("/", 1)[-1] not in str(headers)
    # The app itself only hands the file over (asked directly, with the same cookie).
    status, direct, body = _get(browser, f"{behind_nginx['app']}/media/{media_token}")
    assert status == 200 and body == b""
    assert direct["X-Accel-Redirect"] == f"/_protected_media/{path}"
    # Range requests are answered by nginx (206).
    status, headers, body = _get(browser, f"{base}/media/{media_token}",
                                 {"Range": "bytes=100-199"})
    assert status == 206 and body == stored[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(stored)}"

    # Refused by the app, so nginx sends nothing: another browser, a made-up token.
    for opener, url in ((_browser(), f"{base}/media/{media_token}"),
                        (browser, f"{base}/media/{'x' * 43}")):
        status, _, body = _get(opener, url)
        assert status == 404 and stored[:64] not in body
    # The hand-off location is internal: not reachable from outside.
    status, _, body = _get(browser, f"{base}/_protected_media/{path}")
    assert status == 404 and body != stored
    # Every request reached the live app server (the dead one in the upstream is
    # skipped): the access log shows no 502.
    log = (behind_nginx["root"] / "access.log").read_text()
    assert " 502 " not in log and f"GET /media/{media_token}" in log
