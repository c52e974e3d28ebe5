"""The requests a listening test serves most, answered without Flask's machinery.

Every trial downloads its stimuli and posts its answer, and every participant loads
each page of the journey once. Under gunicorn, Flask's request and application
contexts, routing, session copy, response object and hooks cost as much as these
requests' own work (an indexed read and a ``sendfile``; the answer's few
statements; a page's read and template). :class:`FastPaths` wraps the WSGI
application and answers the plain cases of those requests itself, with the same
services, checks and response headers as the Flask views
(``tests/test_fastpath.py`` compares them):

* ``GET /media/<token>`` (:func:`mosplatform.media.fast.serve_media`);
* ``POST /api/p/<token>/trial/<n>/ratings`` (:func:`mosplatform.api.fast.serve_answer`);
* ``GET`` and ``POST /p/<token>/welcome`` and ``/instructions``, ``GET
  /p/<token>/trial/<n>`` and ``/done`` (:func:`mosplatform.participant.fast.serve_page`).

Everything else goes to the Flask application unchanged: other routes, and of these
every refusal, ``Range`` and other conditional requests, ``HEAD``, a query string, a
body that is not a JSON object (a form, for a page) within the size limit, a
session cookie the fast path cannot read or that the request would change, and any
error. The Flask view then answers as it always did, with its error pages and
messages, so nothing the fast path skips can weaken a check. A body the fast path
read is handed on intact. ``FAST_PATHS = False`` in the configuration turns it off.
``bench/load/request_cost.py`` measures the difference.
"""
from __future__ import annotations

import functools
import hmac
import io
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.http import HTTP_STATUS_CODES, parse_cookie, parse_options_header
from werkzeug.routing import MapAdapter

from .security import CONTROL_CHARS, gzipped, missing_default_headers
from .sessions import RememberingSessionInterface

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# (status code, headers, body) of a response the fast path gives.
Reply = tuple[int, list[tuple[str, str]], Iterable[bytes]]

CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's
MAX_REMEMBERED = 20_000
_MEDIA = "/media/"
_ANSWER = re.compile(r"/api/p/([^/]{1,200})/trial/([0-9]{1,9})/ratings\Z")
_PAGE = re.compile(r"/p/([^/]{1,200})/(welcome|instructions|done|trial/([0-9]{1,9}))\Z")
_FORM = "application/x-www-form-urlencoded"


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
        if path.startswith("/p/") and method in ("GET", "POST"):
            match = _PAGE.match(path)
            if match is None:
                return None
            session = self.session_data(environ)
            if session is None:
                return None
            body = None
            if method == "POST":
                if parse_options_header(environ.get("CONTENT_TYPE", ""))[0] != _FORM:
                    return None
                body = self._read_body(environ)
                if body is None:
                    return None
            from .participant.fast import serve_page

            number = match.group(3)
            return serve_page(self, environ, match.group(1), match.group(2).split("/")[0],
                              None if number is None else int(number), session, body)
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


def reply(status: int, content_type: str, data: bytes, environ: dict[str, Any]) -> Reply:
    """A response as the Flask views give it on a participant's path: compressed (a
    2xx the client takes gzip for, see :func:`mosplatform.security.gzipped`), varying
    with the session cookie, with the default security headers.

    Parameters
    ----------
    status : int
        The HTTP status.
    content_type : str
        The ``Content-Type`` header.
    data : bytes
        The body.
    environ : dict
        The WSGI environment of the request.

    Returns
    -------
    tuple
        (status, headers, body).
    """
    headers = [("Content-Type", content_type)]
    packed = gzipped(data, environ.get("HTTP_ACCEPT_ENCODING", "")) \
        if 200 <= status < 300 else None
    if packed is not None:
        data = packed
        headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding, Cookie")]
    else:
        headers.append(("Vary", "Cookie"))
    headers.append(("Content-Length", str(len(data))))
    return status, with_default_headers(headers, environ.get("PATH_INFO", "")), [data]


def with_default_headers(headers: list[tuple[str, str]], path: str) -> list[tuple[str, str]]:
    """``headers`` and the defaults of ``path`` they do not set themselves."""
    return headers + missing_default_headers(path, (name for name, _ in headers))


def fresh_csrf_token(fast: FastPaths, session: dict[str, Any], presented: Any) -> str | None:
    """A CSRF token of this session for the next page if ``presented`` is a valid one
    (the check of Flask-WTF's ``validate_csrf``), else None.

    With a time limit the next page gets a new token (as Flask-WTF's
    ``generate_csrf``). Without one (the default), a valid token stays valid: the
    next page gets the same one, and the check is remembered per process.
    """
    config = fast.app.config
    raw = session.get(config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))
    limit = config.get("WTF_CSRF_TIME_LIMIT", 3600)
    signer = csrf_serializer(fast.app)
    if not presented or not isinstance(presented, str) or not isinstance(raw, str) \
            or signer is None:
        return None
    key = (presented, raw, signer.secret_key)
    if limit is None and fast.remembered("csrf", key):
        return presented
    try:
        signed = signer.loads(presented, max_age=limit)
    except BadData:
        return None
    if not isinstance(signed, str) or not hmac.compare_digest(raw, signed):
        return None
    if limit is None:
        fast.remember("csrf", key)
        return presented
    return str(signer.dumps(raw))


def csrf_serializer(app: Flask) -> URLSafeTimedSerializer | None:
    """Flask-WTF's signer of CSRF tokens (its secret and salt), or None without a
    secret."""
    secret = app.config.get("WTF_CSRF_SECRET_KEY", app.config.get("SECRET_KEY"))
    return _csrf_signer(secret) if secret else None


@functools.lru_cache(maxsize=8)
def _csrf_signer(secret: str | bytes) -> URLSafeTimedSerializer:
    """One signer per secret: building one took about 1 % of an answer's CPU under
    load (the serializer holds no state of a request)."""
    return URLSafeTimedSerializer(secret, salt=CSRF_SALT)


def owned_tokens(session: dict[str, Any]) -> dict[str, str]:
    """The participants the browser's session binds: {test public id: token}, empty
    when it binds none."""
    owned = session.get("participants")
    return owned if isinstance(owned, dict) else {}


def url_builder(fast: FastPaths, environ: dict[str, Any]):  # type: ignore[no-untyped-def]
    """``url(endpoint, **values)``: the path :func:`flask.url_for` gives in a request."""
    script = environ.get("SCRIPT_NAME", "")
    scheme = environ.get("wsgi.url_scheme", "http")
    adapter: MapAdapter | None = fast.url_adapters.get((script, scheme))
    if adapter is None:
        adapter = fast.app.url_map.bind("localhost", script_name=script or "/",
                                        url_scheme=scheme)
        fast.url_adapters[(script, scheme)] = adapter

    def url(endpoint: str, **values: Any) -> str:
        return str(adapter.build(endpoint, values))

    return url
