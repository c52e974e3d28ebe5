"""The pages of the plain journey without Flask's machinery (see :mod:`mosplatform.fastpath`).

``GET`` and ``POST`` of ``/p/<token>/welcome`` and ``/p/<token>/instructions``,
``GET /p/<token>/trial/<n>`` and ``GET /p/<token>/done`` of a finished participant:
every participant loads each once, so under load they cost as much as the answers
and the audio together, and Flask's request context, hooks and session handling
were a third of that. The page itself is the Flask view's (:mod:`.pages`), on the
connection the worker thread keeps (:func:`mosplatform.services.lookup.bound_connection`),
rendered by the application's Jinja environment with the same context, headers and
compression.

Served here only when nothing about the browser's session changes: the session
cookie binds this participant and holds a CSRF token, a posted form carries a valid
one (and, over HTTPS, a same-origin Referer, as Flask-WTF's strict check asks).
Everything else goes to the Flask view: another participant's or no session, a
missing or bad CSRF token, a done page that still has to record the finish, and any
error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from flask import g
from werkzeug.utils import redirect

from ..fastpath import (
    csrf_serializer,
    fresh_csrf_token,
    owned_tokens,
    reply,
    url_builder,
    with_default_headers,
)
from ..services.lookup import bound_connection, participant_ref
from . import pages

if TYPE_CHECKING:
    from ..fastpath import FastPaths, Reply

def serve_page(fast: FastPaths, environ: dict[str, Any], token: str, name: str,
               number: int | None, session: dict[str, Any], body: bytes | None) -> Reply | None:
    """The response to a page of the journey, or None to leave the request to Flask.

    Parameters
    ----------
    fast : FastPaths
        The middleware (the application).
    environ : dict
        The WSGI environment.
    token : str
        The participant token from the path.
    name : str
        ``welcome``, ``instructions``, ``trial`` or ``done``.
    number : int or None
        The trial number of a trial page.
    session : dict
        What the browser's session cookie holds.
    body : bytes or None
        A POST's body (a form within the size limit).

    Returns
    -------
    tuple or None
        (status, headers, body).
    """
    app = fast.app
    config = app.config
    owned = owned_tokens(session)
    field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    signer = csrf_serializer(app)
    if token not in owned.values() or not isinstance(session.get(field), str) \
            or signer is None:
        return None
    method = environ.get("REQUEST_METHOD", "")
    form: dict[str, str] = {}
    if method == "POST":
        if body is None or name not in ("welcome", "instructions"):
            return None
        try:
            form = dict(reversed(parse_qsl(body.decode(), keep_blank_values=True)))
        except (UnicodeDecodeError, ValueError):
            return None
        presented = (form.get(field) or environ.get("HTTP_X_CSRFTOKEN")
                     or environ.get("HTTP_X_CSRF_TOKEN"))
        if not _strict_referrer_passes(app, environ) \
                or fresh_csrf_token(fast, session, presented) is None:
            return None
    path = environ.get("PATH_INFO", "")
    request = pages.Request(method=method, path=path, url=url_builder(fast, environ),
                            csrf_token=lambda: str(signer.dumps(session[field])),
                            form=form)
    with app.app_context(), bound_connection(fast.engine, keep=True):
        participant = participant_ref(token)
        if participant is None or owned.get(participant.test.public_id) != token:
            return None
        g.lang = participant.language
        if name == "welcome":
            page = pages.welcome(participant, request)
        elif name == "instructions":
            page = pages.instructions(participant, request)
        elif name == "trial" and number is not None:
            page = pages.trial(participant, number, request)
        elif name == "done" and participant.stage == "done" and participant.finished:
            page = pages.finished(participant, request)
        else:
            return None
        if page.location is not None:
            return _redirect(page.location, path)
        html = app.jinja_env.get_template(page.template).render(
            **page.context, url_for=request.url)
    return reply(page.status, "text/html; charset=utf-8", html.encode(), environ)


def _strict_referrer_passes(app: Any, environ: dict[str, Any]) -> bool:
    """Flask-WTF's check of a form posted over HTTPS: a Referer of the same origin."""
    if environ.get("wsgi.url_scheme") != "https" or not app.config.get(
            "WTF_CSRF_SSL_STRICT", True):
        return True
    referrer, host = environ.get("HTTP_REFERER"), environ.get("HTTP_HOST")
    if not referrer or not host:
        return False
    try:
        ref, own = urlsplit(referrer), urlsplit(f"https://{host}/")
        return (ref.scheme, ref.hostname, ref.port) == (own.scheme, own.hostname, own.port)
    except ValueError:
        return False


def _redirect(location: str, path: str) -> Reply:
    """Werkzeug's redirect, with the headers Flask adds to a participant page."""
    resp = redirect(location)
    headers = list(resp.headers.items()) + [("Vary", "Cookie")]
    return resp.status_code, with_default_headers(headers, path), [resp.get_data()]
