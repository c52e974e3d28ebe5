"""Response headers and error handling that apply to every page.

A strict Content-Security-Policy (no inline scripts), no MIME sniffing, no referrer
leaking participant tokens, no framing, and errors that never show a stack trace.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable

from flask import Flask, Response, abort, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self' https:; frame-ancestors 'none'"
)

# Set on every response unless the view set its own.
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)

COMPRESSIBLE = ("text/html", "application/json", "text/css", "application/javascript",
                "text/javascript", "text/csv", "image/svg+xml")


# NUL and other control characters never belong in a URL; PostgreSQL cannot even store NUL.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _has_control_chars() -> bool:
    if CONTROL_CHARS.search(request.path):
        return True
    if any(CONTROL_CHARS.search(k) or CONTROL_CHARS.search(v)
           for k, v in request.args.items(multi=True)):
        return True
    return bool(CONTROL_CHARS.search(request.headers.get("User-Agent", "")))


def default_headers(path: str) -> tuple[tuple[str, str], ...]:
    """The headers every response to ``path`` carries unless it sets its own."""
    if path.startswith(("/p/", "/api/", "/admin")):
        return SECURITY_HEADERS + (("Cache-Control", "no-store"),)
    return SECURITY_HEADERS


def missing_default_headers(path: str, names: Iterable[str]) -> list[tuple[str, str]]:
    """The default headers of ``path`` that a response with headers ``names`` lacks."""
    present = {name.lower() for name in names}
    return [(k, v) for k, v in default_headers(path) if k.lower() not in present]


def gzipped(data: bytes, accept_encoding: str) -> bytes | None:
    """``data`` gzipped for a client that accepts it, or None where it stays as it is
    (the client does not accept gzip, or the body is too small to gain)."""
    if "gzip" not in accept_encoding or len(data) < 600:
        return None
    return gzip.compress(data, compresslevel=5)


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def init_app(app: Flask) -> None:
    """Install security headers, response compression and error handlers."""

    @app.before_request
    def _refuse_control_characters() -> None:
        if _has_control_chars():
            abort(400, description="control characters in the request")

    @app.after_request
    def _headers(resp: Response) -> Response:
        # One pass over the response's headers instead of a lookup per default: this
        # runs on every request, and each missed lookup in werkzeug's Headers raises
        # and catches a KeyError.
        resp.headers.extend(missing_default_headers(request.path, resp.headers.keys()))
        return _maybe_compress(resp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if _wants_json():
            body = jsonify(error=exc.description or exc.name, status=exc.code)
            return body, exc.code
        return render_template("error.html", code=exc.code, message=exc.description), exc.code

    @app.errorhandler(Exception)
    def _server_error(exc: Exception):  # type: ignore[no-untyped-def]
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        from .extensions import db

        db.session.rollback()
        if _wants_json():
            return jsonify(error="internal error; please retry", status=500), 500
        return render_template("error.html", code=500, message="Internal error."), 500


def _maybe_compress(resp: Response) -> Response:
    if (
        resp.direct_passthrough
        or resp.status_code < 200
        or resp.status_code >= 300
        or "Content-Encoding" in resp.headers
        or "gzip" not in request.headers.get("Accept-Encoding", "")
        or not (resp.mimetype or "").startswith(COMPRESSIBLE)
    ):
        return resp
    data = gzipped(resp.get_data(), "gzip")
    if data is None:
        return resp
    resp.set_data(data)
    resp.headers["Content-Encoding"] = "gzip"
    resp.headers["Content-Length"] = str(len(resp.get_data()))
    resp.vary.add("Accept-Encoding")
    return resp
