"""``POST /api/p/<token>/trial/<n>/ratings`` without Flask's request machinery (see
:mod:`mosplatform.fastpath`).

Serves an answer whose checks all pass the way the Flask view
(:func:`mosplatform.api.views.submit_trial_view`) makes them: a JSON object within the
size limit, a valid CSRF token of this browser session, the participant bound to
that session. The answer itself is :func:`mosplatform.api.views.answer_trial`, as in
the view, with the same response headers and compression; its statements run on a
pooled connection of their own instead of the ORM session's
(:func:`mosplatform.services.lookup.bound_connection`). A refused answer (any
:class:`~mosplatform.services.ratings.RatingError`) is rolled back and left to the
view, which refuses it with its own message; so is every request that fails a check
here.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from flask import g
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.http import parse_options_header
from werkzeug.routing import MapAdapter

from ..security import default_headers, gzipped
from ..services.lookup import answer_read, bound_connection
from ..services.ratings import RatingError
from .views import MAX_TRIAL_NUMBER, answer_trial

if TYPE_CHECKING:
    from ..fastpath import FastPaths, Reply

_CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's


def serve_answer(fast: FastPaths, environ: dict[str, Any], token: str, number: int,
                 raw: bytes, session: dict[str, Any]) -> Reply | None:
    """The response to a trial's answer, or None to leave the request to Flask.

    Parameters
    ----------
    fast : FastPaths
        The middleware (the application).
    environ : dict
        The WSGI environment.
    token, number : str, int
        The participant token and trial number from the path.
    raw : bytes
        The request body (at most the API's size limit).
    session : dict
        What the browser's session cookie holds.

    Returns
    -------
    tuple or None
        (status, headers, body).
    """
    app = fast.app
    owned = session.get("participants")
    if not isinstance(owned, dict) or token not in owned.values() or not _is_json(environ):
        return None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    csrf_token = _fresh_csrf_token(fast, session,
                                   environ.get("HTTP_X_CSRFTOKEN") or body.get("csrf_token"))
    if csrf_token is None:
        return None
    if not 1 <= number <= MAX_TRIAL_NUMBER:  # answer_trial's bound, before the read
        return None
    # Its statements run on a pooled connection of their own, not the ORM session's
    # (lookup.bound_connection); leaving the block with nothing committed (a refusal,
    # an error) rolls back, and the view answers.
    with app.app_context(), bound_connection(fast.engine):
        read = answer_read(token, number - 1)
        if read is None or owned.get(read.participant.test.public_id) != token:
            return None
        participant = read.participant
        g.lang = participant.language
        try:
            out, status = answer_trial(participant, number, body,
                                       environ.get("HTTP_IDEMPOTENCY_KEY"),
                                       secret=app.config["SECRET_KEY"],
                                       url=_url_builder(fast, environ), csrf_token=csrf_token,
                                       read=read)
        except RatingError:
            return None
    data = (app.json.dumps(out, separators=(",", ":")) + "\n").encode()
    headers = [("Content-Type", "application/json")]
    packed = gzipped(data, environ.get("HTTP_ACCEPT_ENCODING", ""))
    if packed is not None:
        data = packed
        headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding, Cookie")]
    else:
        headers.append(("Vary", "Cookie"))
    headers.append(("Content-Length", str(len(data))))
    headers += default_headers(environ.get("PATH_INFO", ""))
    return status, headers, [data]


def _is_json(environ: dict[str, Any]) -> bool:
    """As werkzeug's ``Request.is_json``."""
    mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0]
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))


def _fresh_csrf_token(fast: FastPaths, session: dict[str, Any], presented: Any) -> str | None:
    """A CSRF token of this session for the next page if ``presented`` is a valid one
    (the check of Flask-WTF's ``validate_csrf``), else None.

    With a time limit the next page gets a new token (as Flask-WTF's
    ``generate_csrf``). Without one (the default), a valid token stays valid: the
    next page gets the same one, and the check is remembered per process.
    """
    config = fast.app.config
    field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    secret = config.get("WTF_CSRF_SECRET_KEY", config.get("SECRET_KEY"))
    limit = config.get("WTF_CSRF_TIME_LIMIT", 3600)
    raw = session.get(field)
    if not presented or not isinstance(presented, str) or not isinstance(raw, str) \
            or not secret:
        return None
    key = (presented, raw, secret)
    if limit is None and fast.remembered("csrf", key):
        return presented
    signer = URLSafeTimedSerializer(secret, salt=_CSRF_SALT)
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


def _url_builder(fast: FastPaths, environ: dict[str, Any]):  # type: ignore[no-untyped-def]
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
