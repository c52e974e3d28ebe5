"""The two requests a listening test serves most, answered without Flask's machinery.

Every trial downloads its stimuli and posts its answer. Under gunicorn, Flask's
request and application contexts, routing, session copy, response object and hooks
cost as much as these requests' own work (an indexed read and a ``sendfile``; the
answer's few statements). :class:`FastPaths` wraps the WSGI application and answers
the plain cases of those two requests itself, with the same services, checks and
response headers as the Flask views (``tests/test_fastpath.py`` compares them):

* ``GET /media/<token>`` (:func:`mosplatform.media.fast.serve_media`);
* ``POST /api/p/<token>/trial/<n>/ratings`` (:func:`mosplatform.api.fast.serve_answer`).

Everything else goes to the Flask application unchanged: other routes, and of these
two every refusal, ``Range`` and other conditional requests, ``HEAD``, a query
string, a body that is not a JSON object within the size limit, a session cookie the
fast path cannot read, and any error. The Flask view then answers as it always did,
with its error pages and messages, so nothing the fast path skips can weaken a check.
A body the fast path read is handed on intact. ``FAST_PATHS = False`` in the
configuration turns it off. ``bench/load/request_cost.py`` measures the difference.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES, parse_cookie

from .security import CONTROL_CHARS
from .sessions import RememberingSessionInterface

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# (status code, headers, body) of a response the fast path gives.
Reply = tuple[int, list[tuple[str, str]], Iterable[bytes]]

MAX_REMEMBERED = 20_000
_MEDIA = "/media/"
_ANSWER = re.compile(r"/api/p/([^/]{1,200})/trial/([0-9]{1,9})/ratings\Z")


def status_line(code: int) -> str:
    """``"200 OK"``, as werkzeug writes it."""
    return f"{code} {HTTP_STATUS_CODES[code].upper()}"


class FastPaths:
    """WSGI middleware: the plain audio and answer requests, before Flask sees them.

    Parameters
    ----------
    app : flask.Flask
        The application (configuration, session interface, database engine).
    wsgi_app : callable
        Where every other request goes (Flask's own ``wsgi_app``).
    """

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self._engine: Any = None
        # URL builders per (SCRIPT_NAME, scheme), for the answer's links.
        self.url_adapters: dict[tuple[str, str], Any] = {}
        self._checked: dict[tuple[str, Any], None] = {}
        self._lock = threading.Lock()

    @property
    def engine(self) -> Any:
        """The application's database engine (looked up once)."""
        if self._engine is None:
            from .extensions import db

            with self.app.app_context():
                self._engine = db.engine
        return self._engine

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        reply = None
        if self.app.config.get("FAST_PATHS", True) and not self.app.debug:
            try:
                reply = self._dispatch(environ)
            except Exception:  # the Flask view answers (and logs) whatever went wrong
                log.debug("fast path fell back to Flask", exc_info=True)
                reply = None
        if reply is None:
            return self.wsgi_app(environ, start_response)
        code, headers, body = reply
        start_response(status_line(code), headers)
        return body

    def _dispatch(self, environ: dict[str, Any]) -> Reply | None:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if environ.get("QUERY_STRING") or CONTROL_CHARS.search(path) \
                or CONTROL_CHARS.search(environ.get("HTTP_USER_AGENT", "")):
            return None
        if method == "GET" and path.startswith(_MEDIA):
            from .media.fast import serve_media

            token = path[len(_MEDIA):]
            session = self.session_data(environ)
            return None if session is None else serve_media(self, environ, token, session)
        if method == "POST" and path.startswith("/api/p/"):
            match = _ANSWER.match(path)
            if match is None:
                return None
            session = self.session_data(environ)
            if session is None:
                return None
            body = self._read_body(environ)
            if body is None:
                return None
            from .api.fast import serve_answer

            # Left to Flask (None, or an error), the answer's body is read again from
            # the copy _read_body put in its place.
            return serve_answer(self, environ, match.group(1), int(match.group(2)), body,
                                session)
        return None

    def remembered(self, kind: str, key: Any) -> bool:
        """Whether a check of ``kind`` passed for ``key`` before (see :meth:`remember`)."""
        return (kind, key) in self._checked

    def remember(self, kind: str, key: Any) -> None:
        """Remember that a check that cannot change its verdict passed for ``key``
        (at most :data:`MAX_REMEMBERED` keys; the oldest are forgotten first)."""
        with self._lock:
            self._checked[(kind, key)] = None
            while len(self._checked) > MAX_REMEMBERED:
                del self._checked[next(iter(self._checked))]

    def session_data(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        """What the browser's session cookie holds (shared: do not change it), or None
        where the fast path cannot read it (no cookie, forged, expired, another
        session interface): Flask decides those."""
        interface = self.app.session_interface
        if not isinstance(interface, RememberingSessionInterface):
            return None
        name = self.app.config.get("SESSION_COOKIE_NAME") or "session"
        cookie = parse_cookie(environ.get("HTTP_COOKIE", "")).get(name)
        return interface.decode(self.app, cookie) if cookie else None

    def _read_body(self, environ: dict[str, Any]) -> bytes | None:
        """The request body if it has a length within the API's limit; None (and
        nothing read) otherwise."""
        length = environ.get("CONTENT_LENGTH") or ""
        limit = int(self.app.config.get("API_MAX_BYTES", 256 * 1024))
        if not length.isdigit() or int(length) > limit:
            return None
        stream = environ["wsgi.input"]
        size = int(length)
        chunks = []
        while size > 0:
            chunk = stream.read(size)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        body = b"".join(chunks)
        environ["wsgi.input"] = io.BytesIO(body)
        return body if size == 0 else None  # a short body is Flask's to refuse
