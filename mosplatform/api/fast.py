"""``POST /api/p/<token>/trial/<n>/ratings`` without Flask's request machinery (see
:mod:`mosplatform.fastpath`).

Serves an answer whose checks all pass the way the Flask view
(:func:`mosplatform.api.views.submit_trial_view`) makes them: a JSON object within the
size limit, a valid CSRF token of this browser session, the participant bound to
that session. The answer itself is :func:`mosplatform.api.views.answer_trial`, as in
the view, with the same response headers and compression; its statements run on the
connection the worker thread keeps instead of the ORM session's
(:func:`mosplatform.services.lookup.bound_connection`). A refused answer (any
:class:`~mosplatform.services.ratings.RatingError`) is rolled back and left to the
view, which refuses it with its own message; so is every request that fails a check
here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flask import g
from werkzeug.http import parse_options_header

from ..fastpath import fresh_csrf_token, owned_tokens, reply, url_builder
from ..services.lookup import answer_read, bound_connection
from ..services.ratings import RatingError
from .views import MAX_TRIAL_NUMBER, answer_trial

if TYPE_CHECKING:
    from ..fastpath import FastPaths, Reply

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
    owned = owned_tokens(session)
    if token not in owned.values() or not _is_json(environ):
        return None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    csrf_token = fresh_csrf_token(fast, session,
                                   environ.get("HTTP_X_CSRFTOKEN") or body.get("csrf_token"))
    if csrf_token is None:
        return None
    if not 1 <= number <= MAX_TRIAL_NUMBER:  # answer_trial's bound, before the read
        return None
    # Its statements run on the connection the thread keeps, not the ORM session's
    # (lookup.bound_connection); leaving the block with nothing committed (a refusal,
    # an error) rolls back, and the view answers.
    with app.app_context(), bound_connection(fast.engine, keep=True):
        read = answer_read(token, number - 1)
        if read is None or owned.get(read.participant.test.public_id) != token:
            return None
        participant = read.participant
        g.lang = participant.language
        try:
            out, status = answer_trial(participant, number, body,
                                       environ.get("HTTP_IDEMPOTENCY_KEY"),
                                       secret=app.config["SECRET_KEY"],
                                       url=url_builder(fast, environ), csrf_token=csrf_token,
                                       read=read)
        except RatingError:
            return None
    data = (app.json.dumps(out, separators=(",", ":")) + "\n").encode()
    return reply(status, "application/json", data, environ)


def _is_json(environ: dict[str, Any]) -> bool:
    """As werkzeug's ``Request.is_json``."""
    mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0]
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))
