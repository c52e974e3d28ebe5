"""Participant JSON API: trial ratings and page events.

``POST /api/p/<token>/trial/<n>/ratings`` with ``X-CSRFToken`` and an optional
``Idempotency-Key`` header; body ``{"ratings": [{"stimulus", "question", "score"}],
"listening": [...], "events": [...], "shown": "..."}``: the page's pending events ride
along with its answer and are stored in the same transaction, and ``shown`` is the
page's signed stamp of when it was shown. ``POST /api/p/<token>/events`` with
``{"events": [...]}`` for the events sent while the page is open. Answers: 200
``{"ok": true, "next_url": ..., "next_config": {...}}`` or 4xx ``{"error": "..."}``:
``next_url`` is the next page (a trial, or after the last trial the next stage of the
journey, to which the participant has moved on) and ``next_config`` the next trial's
page configuration without its UI strings, so that the page can show that trial in
place.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, jsonify, request, url_for
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import ValidationError

from ..extensions import csrf, db
from ..participant.pages import UrlBuilder, trial_page_config
from ..participant.views import current_tokens, load_ref
from ..services import journey
from ..services.journey import shown_time
from ..services.lookup import AnswerRead, ParticipantRef
from ..services.ratings import RatingError, record_events, submit_trial
from . import bp

MAX_TRIAL_NUMBER = 100_000  # far above any test; keeps path integers in the INTEGER range


def _json_body():  # type: ignore[no-untyped-def]
    limit = int(current_app.config.get("API_MAX_BYTES", 256 * 1024))
    if request.content_length is not None and request.content_length > limit:
        abort(413, description=f"request body over {limit} bytes")
    # Bounds the read of a chunked body too: at most limit + 1 bytes are read, and
    # reading that many means the body is too large.
    request.max_content_length = limit + 1
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        abort(413, description=f"request body over {limit} bytes")
    if len(raw) > limit:
        abort(413, description=f"request body over {limit} bytes")
    if not request.is_json:
        abort(415, description="send Content-Type: application/json")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly nested arrays or objects
        body = None
    if body is None:
        abort(400, description="body is not valid JSON")
    return body


def _participant(token: str) -> ParticipantRef:
    """The participant of ``token``, if this browser session holds it (else 403).

    One prebuilt query for the participant's and its test's columns (no ORM objects,
    no definition JSON): this runs on every answer.
    """
    if token not in current_tokens():
        abort(403, description="this browser session does not belong to that participant")
    return load_ref(token)


def _check_csrf(body: object) -> None:
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    token = request.headers.get("X-CSRFToken")
    if not token and isinstance(body, dict):
        token = body.get("csrf_token")
    try:
        validate_csrf(token)
    except (ValidationError, CSRFError) as exc:
        abort(400, description=f"CSRF check failed: {exc}")


@bp.post("/p/<token>/trial/<int:number>/ratings", endpoint="submit_trial")
@csrf.exempt  # checked below, also from the body (sendBeacon cannot set headers)
def submit_trial_view(token: str, number: int):  # type: ignore[no-untyped-def]
    body = _json_body()
    _check_csrf(body)
    participant = _participant(token)
    try:
        out, status = answer_trial(participant, number, body,
                                   request.headers.get("Idempotency-Key"),
                                   secret=current_app.config["SECRET_KEY"], url=url_for)
    except RatingError as exc:
        db.session.rollback()
        return jsonify(error=exc.message), exc.status
    return jsonify(out), status


def answer_trial(participant: ParticipantRef, number: int, body: Any,
                 idempotency_key: str | None, *, secret: str, url: UrlBuilder,
                 csrf_token: str | None = None,
                 read: AnswerRead | None = None) -> tuple[dict[str, Any], int]:
    """Store the answer to trial ``number`` (1-based) and build the JSON answer.

    Shared by the Flask view and :mod:`mosplatform.api.fast`.

    Parameters
    ----------
    participant : ParticipantRef
        The participant, whose browser session was checked.
    number : int
        The trial number in the path.
    body : Any
        The decoded JSON body.
    idempotency_key : str, optional
        The ``Idempotency-Key`` header.
    secret : str
        The application's secret key (for the page's "shown" stamp).
    url : callable
        ``url(endpoint, **values)``, as :func:`flask.url_for`.
    csrf_token : str, optional
        The CSRF token for the next trial's page (default: Flask-WTF's).
    read : AnswerRead, optional
        The participant's trials and stimuli, read with it for this trial
        (:func:`mosplatform.services.lookup.answer_read`).

    Returns
    -------
    (dict, int)
        The JSON body and the HTTP status.

    Raises
    ------
    RatingError
        A refused answer; nothing was stored.
    """
    if not 1 <= number <= MAX_TRIAL_NUMBER:
        raise RatingError("no such trial", 404)
    token = participant.token
    outcome = submit_trial(
        participant, number - 1, body, idempotency_key,
        shown=lambda trial_id: shown_time(body.get("shown"), trial_id, secret), read=read)
    out = dict(outcome.body)
    following = out.get("next_trial")
    if not isinstance(following, int):
        # After the last trial the journey moves on now (questionnaire or done page),
        # and the answer names that page.
        stage = journey.leave_trials(participant) if outcome.status == 200 else ""
        out["next_url"] = (url(f"participant.{stage}", token=token)
                           if stage in ("questionnaire", "done")
                           else url("participant.resume", token=token))
        return out, outcome.status
    out["next_url"] = url("participant.trial", token=token, number=following)
    if outcome.status == 200:
        # The next trial's page configuration rides along: the page shows it in place,
        # without loading next_url (which stays the address of that trial).
        page = outcome.next_page or journey.page_after_answer(outcome.trials, number - 1)
        if page is not None and page.trial.position == following - 1:
            out["next_config"] = trial_page_config(participant, page, with_strings=False,
                                                   url=url, csrf_token=csrf_token)
    return out, outcome.status


@bp.post("/p/<token>/events")
@csrf.exempt
def events(token: str):  # type: ignore[no-untyped-def]
    body = _json_body()
    _check_csrf(body)
    participant = _participant(token)
    try:
        n = record_events(participant, body)
    except RatingError as exc:
        db.session.rollback()
        return jsonify(error=exc.message), exc.status
    return jsonify(ok=True, stored=n)


@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    """The OpenAPI description of this API (see :mod:`mosplatform.openapi`)."""
    from ..openapi import openapi_spec

    return jsonify(openapi_spec(int(current_app.config.get("API_MAX_BYTES", 256 * 1024))))
