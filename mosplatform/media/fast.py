"""``GET /media/<token>`` without Flask's request machinery (see :mod:`mosplatform.fastpath`).

Serves a valid token owned by the browser's session: the whole file (200), a 304 for
a matching ``If-None-Match``, or behind nginx the ``X-Accel-Redirect`` hand-off, with
the headers the Flask view (:func:`mosplatform.media.views.stimulus`) sends. Anything
else is left to that view.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.http import http_date, parse_etags

from ..fastpath import owned_tokens
from ..security import SECURITY_HEADERS
from ..services.lookup import media_row
from .views import CACHE_CONTROL, MAX_TOKEN, etag_of, mimetype_of, stored_file

if TYPE_CHECKING:
    from ..fastpath import FastPaths, Reply

# Partial and conditional requests the fast path leaves to werkzeug (If-None-Match
# it answers itself).
_DELEGATED_HEADERS = ("HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_MATCH", "HTTP_IF_MODIFIED_SINCE",
                      "HTTP_IF_UNMODIFIED_SINCE")


def serve_media(fast: FastPaths, environ: dict[str, Any], token: str,
                session: dict[str, Any]) -> Reply | None:
    """The response to an audio request, or None to leave the request to Flask.

    Parameters
    ----------
    fast : FastPaths
        The middleware (application and database engine).
    environ : dict
        The WSGI environment.
    token : str
        The media token from the path.
    session : dict
        What the browser's session cookie holds.

    Returns
    -------
    tuple or None
        (status, headers, body).
    """
    owned = owned_tokens(session)
    if (not token or len(token) > MAX_TOKEN or "/" in token or not owned
            or any(h in environ for h in _DELEGATED_HEADERS)):
        return None
    row = media_row(token, fast.engine, keep=True)
    if row is None or row.token not in owned.values():
        return None
    config = fast.app.config
    found = stored_file(config["MEDIA_ROOT"], row.path, row.content_hash)
    if found is None:
        return None
    file_path, size = found
    etag = etag_of(token, row.content_hash)
    not_modified = "HTTP_IF_NONE_MATCH" in environ and parse_etags(
        environ["HTTP_IF_NONE_MATCH"]).contains_weak(etag)
    headers: list[tuple[str, str]] = []
    body: Iterable[bytes] = ()
    accel = config.get("USE_X_ACCEL_REDIRECT")
    if not not_modified:
        if accel:
            headers = [("Content-Type", mimetype_of(file_path)), ("Content-Length", "0"),
                       ("X-Accel-Redirect", config["X_ACCEL_PREFIX"] + row.path)]
        else:
            try:
                handle = open(file_path, "rb")  # noqa: SIM115 - closed by the server
            except OSError:
                stored_file.cache_clear()
                return None
            headers = [("Content-Type", mimetype_of(file_path)), ("Content-Length", str(size))]
            wrapper = environ.get("wsgi.file_wrapper")
            body = wrapper(handle) if wrapper is not None else _chunks(handle)
    headers += [("ETag", f'"{etag}"'), ("Cache-Control", CACHE_CONTROL)]
    if not accel:  # werkzeug's make_conditional adds these to the file itself
        headers += [("Date", http_date()), ("Accept-Ranges", "bytes")]
    headers += SECURITY_HEADERS
    headers.append(("Vary", "Cookie"))
    return (304 if not_modified else 200), headers, body


def _chunks(handle: Any, size: int = 64 * 1024) -> Iterable[bytes]:
    with handle:
        while chunk := handle.read(size):
            yield chunk
