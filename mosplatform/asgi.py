"""The WSGI application behind gunicorn's ``asgi`` worker, one request at a time.

gunicorn's ``asgi`` worker (here :class:`mosplatform.gworker.AsgiWorker`, which also
closes new connections that say nothing) parses HTTP/1.1 on an asyncio loop (uvloop
and gunicorn's C parser ``gunicorn_h1c`` where installed) and applies the same header
policy as its other workers (underscored names dropped, scheme headers only from
``forwarded_allow_ips``, the request limits). Its own cost per request is under half
of the threaded workers' (``bench/load/worker_overhead.py``). :class:`InlineWSGI`
runs the (synchronous) Flask application on that loop's thread, one request at a
time, as :class:`mosplatform.gworker.InlineWorker` does: the loop keeps the idle
connections and reads the next requests; a request's own work (Python and database)
holds the worker, which is what one process per core wants for CPU-bound Python.

The WSGI environment follows PEP 3333 from the ASGI scope: headers as ``HTTP_*``
(repeated ones joined with commas), ``CONTENT_TYPE`` and ``CONTENT_LENGTH``,
``SCRIPT_NAME`` from the scope's ``root_path``, the peer and server addresses. The
request body is read before the application runs (a synchronous application cannot
wait for it on the loop), into memory up to :data:`SPOOL_BYTES` and into a temporary
file beyond (a large admin upload), but never past the limit the application would
refuse it at (:func:`body_limits`): a body declared larger is not read at all and the
application refuses it from its ``Content-Length`` (413), one sent in chunks is cut
one byte past the limit, which the application refuses the same way.
"""

from __future__ import annotations

import io
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SPOOL_BYTES = 1024 * 1024  # request bodies above this go to a temporary file


class _Errors:
    """``wsgi.errors``: the worker's stderr (gunicorn's error log)."""

    def write(self, text: str) -> None:
        sys.stderr.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        sys.stderr.writelines(lines)

    def flush(self) -> None:
        sys.stderr.flush()


_ERRORS = _Errors()
FILE_BLOCK = 256 * 1024  # bytes per message when a file is sent


class FileWrapper:
    """``wsgi.file_wrapper``: a file sent in blocks of at least :data:`FILE_BLOCK`
    bytes (werkzeug asks for 8 KB, one message each on the loop), closed with the
    response."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = max(blksize, FILE_BLOCK)

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if not data:
            raise StopIteration
        return bytes(data)

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class InlineWSGI:
    """ASGI application that serves a WSGI application on the event loop's thread.

    Parameters
    ----------
    wsgi_app : callable
        The WSGI application (the Flask app).
    multiprocess : bool
        ``wsgi.multiprocess``: other worker processes serve the same application.
    body_limit : callable, optional
        ``body_limit(path_info)``: the largest body the application accepts there
        (None: no limit); see :func:`body_limits`.
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]],
                 multiprocess: bool = True,
                 body_limit: Callable[[str], int | None] | None = None) -> None:
        self.wsgi_app = wsgi_app
        self.body_limit = body_limit
        self._base = {
            "wsgi.version": (1, 0),
            "wsgi.errors": _ERRORS,
            "wsgi.multithread": False,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":  # the application has none
            await send({"type": "websocket.close", "code": 1000})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        environ = self.environ(scope)
        limit = None if self.body_limit is None else self.body_limit(environ["PATH_INFO"])
        declared = environ.get("CONTENT_LENGTH", "")
        if limit is not None and declared.isdigit() and int(declared) > limit:
            body = io.BytesIO()  # refused from its length, unread
        else:
            body = await _read_body(receive, None if limit is None else limit + 1)
        environ["wsgi.input"] = body
        try:
            await self._respond(environ, send)
        finally:
            body.close()  # a spooled body's temporary file goes now

    async def _respond(self, environ: dict[str, Any], send: Send) -> None:
        response = _Response()
        result = self.wsgi_app(environ, response.start_response)
        try:
            # The last chunk goes with the end of the body: one message for the usual
            # single-chunk response, and a stream for the others.
            pending: bytes | None = None
            for chunk in result:
                if not chunk:
                    continue
                if pending is not None:
                    await response.send_start(send)
                    await send({"type": "http.response.body", "body": pending,
                                "more_body": True})
                pending = bytes(chunk)
            await response.send_start(send)
            await send({"type": "http.response.body", "body": pending or b"",
                        "more_body": False})
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def environ(self, scope: Scope) -> dict[str, Any]:
        """The WSGI environment of an ASGI ``http`` scope, all but ``wsgi.input``
        (the body, read once the path tells how much of it the application takes).

        Parameters
        ----------
        scope : dict
            The ASGI scope.

        Returns
        -------
        dict
        """
        # PATH_INFO from the bytes received, as gunicorn's WSGI workers make it (the
        # scope's decoded path replaces bytes that are not UTF-8).
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("latin-1")
        root = scope.get("root_path", "").encode("utf-8").decode("latin-1")
        if root and path.startswith(root):
            path = path[len(root):]
        query = scope.get("query_string", b"").decode("latin-1")
        server = scope.get("server") or ("localhost", 80)
        environ = dict(self._base)
        environ.update({
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": root,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "RAW_URI": raw_path.decode("latin-1") + ("?" + query if query else ""),
            "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": "" if server[1] is None else str(server[1]),
            "wsgi.url_scheme": scope.get("scheme", "http"),
        })
        client = scope.get("client")
        if client:
            environ["REMOTE_ADDR"] = client[0]
            environ["REMOTE_PORT"] = str(client[1])
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").upper()
            value = raw_value.decode("latin-1")
            if name == "CONTENT-TYPE":
                key = "CONTENT_TYPE"
            elif name == "CONTENT-LENGTH":
                key = "CONTENT_LENGTH"
            else:
                key = "HTTP_" + name.replace("-", "_")
            if key in environ and key.startswith("HTTP_"):
                environ[key] = f"{environ[key]},{value}"
            else:
                environ[key] = value
        return environ


class _Response:
    """What the application gave ``start_response``, and whether it was sent."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = False

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        """PEP 3333's ``start_response`` (``write()`` is not offered)."""
        if exc_info is not None:
            try:
                if self.sent:  # too late to change the response: abort it
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        self.status, self.headers = status, headers
        return _no_write

    async def send_start(self, send: Send) -> None:
        """Send the status and headers, once."""
        if self.sent:
            return
        if self.status is None:
            raise RuntimeError("the application returned without calling start_response")
        self.sent = True
        await send({"type": "http.response.start",
                    "status": int(self.status.split(" ", 1)[0]),
                    "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                                for name, value in self.headers]})


def _no_write(data: bytes) -> None:
    raise RuntimeError("start_response's write() is not offered by this server")


async def _read_body(receive: Receive, cap: int | None) -> Any:
    """The request body as a file positioned at its start (in memory up to
    :data:`SPOOL_BYTES`, in a temporary file beyond), at most ``cap`` bytes of it."""
    chunks: list[bytes] = []
    size = 0
    spool: Any = None
    more = True
    while more and (cap is None or size < cap):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if cap is not None:
            chunk = chunk[:cap - size]
        if not chunk:
            continue
        if spool is None and size + len(chunk) > SPOOL_BYTES:
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the request
            spool.writelines(chunks)
        if spool is not None:
            spool.write(chunk)
        else:
            chunks.append(chunk)
        size += len(chunk)
    if spool is None:
        return io.BytesIO(b"".join(chunks))
    spool.seek(0)
    return spool


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def body_limits(app: Any) -> Callable[[str], int | None]:
    """The largest request body the application accepts on a path.

    The participant API (``/api/``) refuses bodies over ``API_MAX_BYTES``; every other
    route those over ``MAX_CONTENT_LENGTH`` (Flask's limit, the admin's uploads).

    Parameters
    ----------
    app : flask.Flask
        The application (its configuration is read on each call).

    Returns
    -------
    callable
        ``limit(path_info) -> int or None``.
    """
    config = app.config

    def limit(path: str) -> int | None:
        if path.startswith("/api/"):
            return int(config.get("API_MAX_BYTES", 256 * 1024))
        flask_limit = config.get("MAX_CONTENT_LENGTH")
        return None if flask_limit is None else int(flask_limit)

    return limit


def wrap(app: Any, multiprocess: bool = True) -> InlineWSGI:
    """The Flask application ``app`` for the asgi worker, with its body limits.

    Parameters
    ----------
    app : flask.Flask
        The application.
    multiprocess : bool
        Whether other worker processes serve it too.

    Returns
    -------
    InlineWSGI
    """
    return InlineWSGI(app, multiprocess=multiprocess, body_limit=body_limits(app))


def create_asgi_app() -> InlineWSGI:
    """The application for ``gunicorn -k asgi "mosplatform.asgi:create_asgi_app()"``
    (``mosplatform serve`` does the same with ``SERVE_WORKER = "asgi"``)."""
    from . import create_app

    return wrap(create_app())
