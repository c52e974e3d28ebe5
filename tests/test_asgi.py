"""The WSGI application on gunicorn's asyncio worker (``mosplatform.asgi``).

Unit tests drive :class:`~mosplatform.asgi.InlineWSGI` with ASGI messages; the
real-server behaviours (keep-alive, pipelining, silent connections, SIGTERM) run
against ``mosplatform serve --worker asgi`` in ``tests/test_gworker.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

import pytest

from mosplatform import asgi
from mosplatform.asgi import InlineWSGI
from tests.security import conftest as security

# The security tests' fixtures: a test made from generated audio, walked participants.
acr_test = security.acr_test
audio_dirs = security.audio_dirs
walk = security.walk


def run_async(coro: Any) -> Any:
    """Run a coroutine to its end on a thread of its own: other tests (the browser
    tests' Playwright) may leave an event loop running on this one."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def scope(**extra: Any) -> dict[str, Any]:
    base = {"type": "http", "http_version": "1.1", "method": "POST", "scheme": "https",
            "path": "/p/abc/welcome", "raw_path": b"/p/abc/welcome",
            "query_string": b"PROLIFIC_PID=x&y=%C3%A9", "root_path": "",
            "headers": [(b"host", b"example.org"), (b"content-type", b"application/json"),
                        (b"content-length", b"7"), (b"accept", b"a"), (b"accept", b"b"),
                        (b"x-csrftoken", b"tok")],
            "server": ("10.0.0.1", 8001), "client": ("10.0.0.9", 4567)}
    base.update(extra)
    return base


def call(app: Any, scope_: dict[str, Any], body_parts: list[bytes]) -> list[dict[str, Any]]:
    """Run one request through the ASGI app; return what it sent."""
    incoming = [{"type": "http.request", "body": part, "more_body": i < len(body_parts) - 1}
                for i, part in enumerate(body_parts)] or [{"type": "http.request"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    run_async(app(scope_, receive, send))
    return sent


class Recorder:
    """A WSGI app that records its environ and body and answers ``chunks``."""

    def __init__(self, chunks: list[bytes], status: str = "200 OK") -> None:
        self.chunks, self.status = chunks, status
        self.environ: dict[str, Any] = {}
        self.body = b""
        self.closed = False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.environ = environ
        self.body = environ["wsgi.input"].read()
        start_response(self.status, [("Content-Type", "text/plain"), ("X-Test", "1")])
        recorder = self

        class Body:
            def __iter__(self):  # type: ignore[no-untyped-def]
                return iter(recorder.chunks)

            def close(self) -> None:
                recorder.closed = True

        return Body()


def test_environ_follows_pep_3333():
    app = Recorder([b"ok"])
    call(InlineWSGI(app), scope(), [b"{\"a\":", b"1}"])
    env = app.environ
    assert app.body == b'{"a":1}'
    assert (env["REQUEST_METHOD"], env["PATH_INFO"], env["SCRIPT_NAME"]) == \
        ("POST", "/p/abc/welcome", "")
    assert env["QUERY_STRING"] == "PROLIFIC_PID=x&y=%C3%A9"
    assert env["RAW_URI"] == "/p/abc/welcome?PROLIFIC_PID=x&y=%C3%A9"
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("application/json", "7")
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_ACCEPT"] == "a,b"  # repeated fields joined, as gunicorn does
    assert env["HTTP_X_CSRFTOKEN"] == "tok" and env["HTTP_HOST"] == "example.org"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("10.0.0.1", "8001")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("10.0.0.9", "4567")
    assert env["wsgi.url_scheme"] == "https" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.version"] == (1, 0) and env["wsgi.multithread"] is False
    assert env["wsgi.run_once"] is False and env["wsgi.input_terminated"] is True


def test_path_info_keeps_the_bytes_received():
    """Percent escapes decode to bytes shown as latin-1 (PEP 3333), including bytes that
    are not UTF-8; a root path becomes SCRIPT_NAME."""
    app = Recorder([b"ok"])
    raw = b"/mos/media/%C3%A9%FF"
    call(InlineWSGI(app), scope(path="/mos/media/\u00e9\ufffd", raw_path=raw,
                                root_path="/mos", query_string=b""), [])
    assert app.environ["SCRIPT_NAME"] == "/mos"
    assert app.environ["PATH_INFO"] == b"/media/\xc3\xa9\xff".decode("latin-1")
    assert app.environ["RAW_URI"] == "/mos/media/%C3%A9%FF"
    assert app.environ["QUERY_STRING"] == ""


def test_one_chunk_is_one_message_and_the_body_is_closed():
    app = Recorder([b"hello"], status="201 CREATED")
    sent = call(InlineWSGI(app), scope(method="GET"), [])
    assert sent == [
        {"type": "http.response.start", "status": 201,
         "headers": [(b"content-type", b"text/plain"), (b"x-test", b"1")]},
        {"type": "http.response.body", "body": b"hello", "more_body": False}]
    assert app.closed


def test_several_chunks_stream_and_empty_ones_are_skipped():
    app = Recorder([b"a", b"", b"b", b"c"])
    sent = call(InlineWSGI(app), scope(method="GET"), [])
    assert [m.get("body") for m in sent] == [None, b"a", b"b", b"c"]
    assert [m.get("more_body") for m in sent[1:]] == [True, True, False]


def test_an_empty_body():
    sent = call(InlineWSGI(Recorder([])), scope(method="GET"), [])
    assert sent[0]["status"] == 200 and sent[1] == {"type": "http.response.body",
                                                   "body": b"", "more_body": False}


def test_a_large_body_is_spooled_to_a_file(monkeypatch):
    monkeypatch.setattr(asgi, "SPOOL_BYTES", 10)
    app = Recorder([b"ok"])
    parts = [b"0123456", b"789abcdef", b"ghij"]
    call(InlineWSGI(app), scope(), parts)
    assert app.body == b"".join(parts)
    assert not isinstance(app.environ["wsgi.input"], __import__("io").BytesIO)


def test_an_error_before_the_response_replaces_it_and_one_after_it_aborts():
    def fails_early(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("500 INTERNAL SERVER ERROR", [("X-E", "1")], sys.exc_info())
        return [b"error"]

    sent = call(InlineWSGI(fails_early), scope(method="GET"), [])
    assert sent[0]["status"] == 500 and sent[1]["body"] == b"error"

    def twice(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    with pytest.raises(AssertionError):
        call(InlineWSGI(twice), scope(method="GET"), [])

    def silent(environ, start_response):  # type: ignore[no-untyped-def]
        return [b"x"]

    with pytest.raises(RuntimeError, match="start_response"):
        call(InlineWSGI(silent), scope(method="GET"), [])


def test_lifespan_and_websocket():
    app = InlineWSGI(Recorder([]))
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    run_async(app({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    sent.clear()
    run_async(app({"type": "websocket"}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1000}]


def test_the_flask_app_through_the_adapter(tmp_path, monkeypatch):
    """The real application: a page, its headers, and a 404, as the WSGI server gives."""
    monkeypatch.setenv("MOSPLATFORM_INSTANCE_PATH", str(tmp_path))
    from mosplatform import create_app

    app = InlineWSGI(create_app())
    sent = call(app, scope(method="GET", path="/healthz", raw_path=b"/healthz",
                           query_string=b""), [])
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 200 and sent[-1]["body"].startswith(b'{"status":"ok"')
    assert b"default-src" in headers[b"content-security-policy"]
    sent = call(app, scope(method="GET", path="/nothing", raw_path=b"/nothing",
                           query_string=b""), [])
    assert sent[0]["status"] == 404


def test_serve_settings(monkeypatch, tmp_path):
    from mosplatform.serving import gunicorn_options, worker_class

    monkeypatch.setenv("MOSPLATFORM_INSTANCE_PATH", str(tmp_path))
    assert worker_class("asgi", 4) == "mosplatform.gworker.AsgiWorker"
    assert worker_class("auto", 1) == "mosplatform.gworker.InlineWorker"
    with pytest.raises(ValueError, match="SERVE_WORKER must be one of auto, asgi"):
        worker_class("eventlet", 1)
    monkeypatch.setenv("MOSPLATFORM_SERVE_WORKER", "asgi")
    assert gunicorn_options("127.0.0.1", 1, 1, 1, False)["worker_class"] == \
        "mosplatform.gworker.AsgiWorker"
    assert gunicorn_options("127.0.0.1", 1, 1, 1, False, worker="auto")["worker_class"] \
        == "mosplatform.gworker.InlineWorker"
    # asyncio's loop accepts every waiting connection at once; uvloop left them waiting
    assert gunicorn_options("127.0.0.1", 1, 1, 1, False)["asgi_loop"] == "asyncio"


def test_a_body_over_the_limit_is_not_read():
    """Declared too large: nothing is read, the application refuses it from its length;
    sent in chunks: cut one byte past the limit, which the application refuses."""
    received: list[str] = []

    def run(headers: list[tuple[bytes, bytes]], parts: list[bytes]) -> Recorder:
        app = Recorder([b"ok"])
        incoming = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
                    for i, p in enumerate(parts)]

        async def receive() -> dict[str, Any]:
            received.append("body")
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            pass

        run_async(InlineWSGI(app, body_limit=lambda path: 10)(
            scope(headers=headers), receive, send))
        return app

    app = run([(b"content-length", b"11")], [b"x" * 11])
    assert received == [] and app.body == b"" and app.environ["CONTENT_LENGTH"] == "11"
    app = run([], [b"x" * 6, b"y" * 6, b"z" * 6])  # chunked: no length
    assert received == ["body", "body"] and app.body == b"x" * 6 + b"y" * 5
    received.clear()
    app = run([(b"content-length", b"10")], [b"x" * 4, b"y" * 6])  # at the limit: read
    assert app.body == b"x" * 4 + b"y" * 6


def test_body_limits_are_the_applications(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSPLATFORM_INSTANCE_PATH", str(tmp_path))
    from mosplatform import create_app
    from mosplatform.asgi import body_limits, wrap

    app = create_app()
    limit = body_limits(app)
    assert limit("/api/p/x/trial/1/ratings") == app.config["API_MAX_BYTES"]
    assert limit("/admin/tests/new") == app.config["MAX_CONTENT_LENGTH"]
    wrapped = wrap(app)
    big = str(app.config["API_MAX_BYTES"] + 1).encode()
    sent = call(wrapped, scope(path="/api/p/x/trial/1/ratings",
                               raw_path=b"/api/p/x/trial/1/ratings", query_string=b"",
                               headers=[(b"content-type", b"application/json"),
                                        (b"content-length", big)]), [b"{}"])
    assert sent[0]["status"] == 413


def test_files_go_in_large_blocks_and_are_closed(tmp_path):
    from mosplatform.asgi import FILE_BLOCK

    data = bytes(range(256)) * (FILE_BLOCK // 100)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    handles = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Length", str(len(data)))])
        handle = open(path, "rb")  # noqa: SIM115
        handles.append(handle)
        return environ["wsgi.file_wrapper"](handle, 8192)

    sent = call(InlineWSGI(app), scope(method="GET"), [])
    bodies = [m["body"] for m in sent[1:]]
    assert b"".join(bodies) == data and len(bodies) == -(-len(data) // FILE_BLOCK)
    assert handles[0].closed


def test_a_participant_through_the_adapter(app, acr_test, walk):
    """Audio (whole and 304), a page and an answer through the adapter give what the
    WSGI test client gets from the same application."""
    from mosplatform.extensions import db
    from mosplatform.models import Participant

    a = walk(acr_test)
    adapter = InlineWSGI(app)
    name = app.config.get("SESSION_COOKIE_NAME") or "session"
    cookie = f"{name}={a.client.get_cookie(name).value}".encode()

    def through(method: str, path: str, headers: list[tuple[bytes, bytes]] = (),
                body: bytes = b"") -> tuple[int, bytes]:
        sent = call(adapter, scope(method=method, path=path, raw_path=path.encode(),
                                   query_string=b"",
                                   headers=[(b"cookie", cookie), *headers]), [body])
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    participant = db.session.query(Participant).filter_by(token=a.token).one()
    media = f"/media/{participant.trials[0].stimuli[0].token}"
    whole = a.client.get(media)
    assert through("GET", media) == (200, whole.get_data())
    assert through("GET", media, [(b"if-none-match", whole.headers["ETag"].encode())]) \
        == (304, b"")
    status, html = through("GET", f"/p/{a.token}/trial/1")
    assert status == 200 and b'id="trial-config"' in html
    a.refresh()
    answer = json.dumps(a.valid_ratings()).encode()
    status, out = through("POST", a.config["submit_url"],
                          [(b"content-type", b"application/json"),
                           (b"x-csrftoken", a.csrf.encode()), (b"idempotency-key", b"k1")],
                          answer)
    assert status == 200 and "next_config" in json.loads(out)
    db.session.expire_all()
    assert participant.trials[0].completed_at is not None


def test_the_asgi_worker_parses_with_gunicorns_c_parser(monkeypatch):
    """With the subclassed protocol, gunicorn still picks its C parser where installed
    (it fell back to the Python one for every connection before the fix)."""
    pytest.importorskip("gunicorn_h1c")
    from types import SimpleNamespace

    from gunicorn.asgi.protocol import ASGIProtocol
    from gunicorn.config import Config
    from gunicorn.workers import gasgi

    from mosplatform.gworker import SilenceTimeoutProtocol, use_silence_timeout_protocol

    monkeypatch.setattr(gasgi, "ASGIProtocol", gasgi.ASGIProtocol)  # restored after
    monkeypatch.setattr(ASGIProtocol, "_h1c_available", None)  # as in a fresh worker
    monkeypatch.setattr(ASGIProtocol, "_h1c_has_limits", False)
    use_silence_timeout_protocol()
    assert gasgi.ASGIProtocol is SilenceTimeoutProtocol
    worker = SimpleNamespace(cfg=Config(), log=None, asgi=None, loop=None, nr_conns=0)
    protocol = SilenceTimeoutProtocol(worker)
    protocol._setup_callback_parser()
    assert type(protocol._callback_parser).__name__ == "H1CProtocol"
