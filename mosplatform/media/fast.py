"""The audio request without Flask's request machinery.

Every trial downloads its stimuli, so ``GET /media/<token>`` is, with the answer, the
request a listening test serves most. Under gunicorn, Flask's request and application
contexts, routing, session handling, response object and hooks cost more than the
audio request's own work (one indexed query and a ``sendfile``):
``bench/load/endpoint_cost.py --instructions media`` counts the difference.

:class:`FastMedia` wraps the WSGI application and answers the plain cases itself: a
``GET`` with a valid token owned by the browser's session, answered with the whole
file (200), a 304 for a matching ``If-None-Match``, or behind nginx the
``X-Accel-Redirect`` hand-off. Its responses carry the same headers as the Flask view's
(``tests/security/test_media.py`` compares them). Every other request, including
every refusal, a ``Range`` request, ``HEAD``, a query string and anything the fast path does not
expect, goes to the Flask application unchanged, which answers it as before: the
refusals keep their error pages, and nothing the fast path skips can weaken a check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import http_date, parse_cookie, parse_etags

from ..security import CONTROL_CHARS, SECURITY_HEADERS
from ..sessions import RememberingSessionInterface
from ..services.lookup import media_row
from .views import CACHE_CONTROL, MAX_TOKEN, etag_of, mimetype_of, stored_file

PREFIX = "/media/"
# Conditional and partial requests the fast path leaves to werkzeug.
_DELEGATED_HEADERS = ("HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_MATCH", "HTTP_IF_MODIFIED_SINCE",
                      "HTTP_IF_UNMODIFIED_SINCE")

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FastMedia:
    """WSGI middleware that serves the plain audio requests before Flask sees them.

    Parameters
    ----------
    app : flask.Flask
        The application (its configuration, database engine and session interface).
    wsgi_app : callable
        The WSGI application every other request goes to (Flask's ``wsgi_app``).
    """

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self._engine: Any = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if (path.startswith(PREFIX) and environ.get("REQUEST_METHOD") == "GET"
                and self.app.config.get("FAST_MEDIA", True)):
            try:
                answer = self._answer(environ, path[len(PREFIX):])
            except Exception:  # the Flask view answers (and logs) whatever went wrong
                log.debug("fast media path fell back to Flask", exc_info=True)
                answer = None
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return body
        return self.wsgi_app(environ, start_response)

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from ..extensions import db

            with self.app.app_context():
                self._engine = db.engine
        return self._engine

    def _owner_tokens(self, environ: dict[str, Any]) -> set[str] | None:
        """The participant tokens the browser session holds, or None to let Flask decide."""
        interface = self.app.session_interface
        if not isinstance(interface, RememberingSessionInterface):
            return None
        name = self.app.config.get("SESSION_COOKIE_NAME") or "session"
        cookie = parse_cookie(environ.get("HTTP_COOKIE", "")).get(name)
        if not cookie:
            return None
        data = interface.decode(self.app, cookie)
        if data is None:
            return None
        return set(data.get("participants", {}).values())

    def _answer(self, environ: dict[str, Any],
                token: str) -> tuple[str, list[tuple[str, str]], Iterable[bytes]] | None:
        """(status, headers, body) for a request the fast path serves, else None."""
        if (not token or len(token) > MAX_TOKEN or "/" in token
                or any(h in environ for h in _DELEGATED_HEADERS)
                or environ.get("QUERY_STRING") or CONTROL_CHARS.search(token)
                or CONTROL_CHARS.search(environ.get("HTTP_USER_AGENT", ""))):
            return None
        owned = self._owner_tokens(environ)
        if not owned:
            return None
        row = media_row(token, self.engine)
        if row is None or row.token not in owned:
            return None
        config = self.app.config
        found = stored_file(config["MEDIA_ROOT"], row.path, row.content_hash)
        if found is None:
            return None
        file_path, size = found
        etag = etag_of(token, row.content_hash)
        quoted = f'"{etag}"'
        not_modified = False
        if "HTTP_IF_NONE_MATCH" in environ:
            not_modified = parse_etags(environ["HTTP_IF_NONE_MATCH"]).contains_weak(etag)
        headers: list[tuple[str, str]]
        body: Iterable[bytes] = ()
        if config.get("USE_X_ACCEL_REDIRECT"):
            if not_modified:
                status, headers = "304 NOT MODIFIED", []
            else:
                status = "200 OK"
                headers = [("Content-Type", mimetype_of(file_path)), ("Content-Length", "0"),
                           ("X-Accel-Redirect", config["X_ACCEL_PREFIX"] + row.path)]
            headers += [("ETag", quoted), ("Cache-Control", CACHE_CONTROL)]
        else:
            if not_modified:
                status, headers = "304 NOT MODIFIED", []
            else:
                try:
                    handle = open(file_path, "rb")  # noqa: SIM115 - closed by the server
                except OSError:
                    stored_file.cache_clear()
                    return None
                status = "200 OK"
                headers = [("Content-Type", mimetype_of(file_path)),
                           ("Content-Length", str(size))]
                wrapper = environ.get("wsgi.file_wrapper")
                body = wrapper(handle) if wrapper is not None else _chunks(handle)
            headers += [("ETag", quoted), ("Cache-Control", CACHE_CONTROL),
                        ("Date", http_date()), ("Accept-Ranges", "bytes")]
        headers += SECURITY_HEADERS
        headers.append(("Vary", "Cookie"))
        return status, headers, body


def _chunks(handle: Any, size: int = 64 * 1024) -> Iterable[bytes]:
    with handle:
        while chunk := handle.read(size):
            yield chunk
