"""What the pages of the plain journey answer, shared by the Flask views
(:mod:`mosplatform.participant.views`) and the fast path
(:mod:`mosplatform.participant.fast`).

Each function takes the participant (plain columns, :class:`ParticipantRef`) and
what it needs of the request (method, form, path), a URL builder and the page's CSRF
token, and answers a :class:`Page`: a redirect or a template with its context. The
Flask view turns that into Flask's response; the fast path renders it itself. Neither
reads Flask's request, so both answer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, url_for

from .. import i18n
from ..models import Participant
from ..services import journey
from ..services.lookup import ParticipantRef, first_open_position
from ..services.testinfo import test_info, text_in

# url(endpoint, **values) -> path, as flask.url_for
UrlBuilder = Callable[..., str]


@dataclass(frozen=True)
class Page:
    """A page's answer: a redirect to ``location``, or ``template`` rendered with
    ``context`` and answered with ``status``."""

    status: int
    location: str | None = None
    template: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """What a page needs of its request.

    Attributes
    ----------
    method : str
        ``GET`` or ``POST``.
    path : str
        The request path (the form's action).
    csrf_token : callable
        Gives the page's CSRF token (called only by a page that shows a form).
    url : callable
        ``url(endpoint, **values)``, as :func:`flask.url_for`.
    form : mapping
        The posted form (empty for a GET).
    """

    method: str
    path: str
    csrf_token: Callable[[], str]
    url: UrlBuilder = url_for
    form: Mapping[str, str] = field(default_factory=dict)


def stage_url(participant: Participant | ParticipantRef, stage: str | None = None, *,
              url: UrlBuilder = url_for) -> str:
    """The page of the participant's stage (``stage`` when it is known to have changed).

    At the trials stage with every trial answered, the participant moves on first.
    """
    stage = stage or participant.stage
    if stage == "trials":
        position = first_open_position(participant.id)
        if position is not None:
            return url("participant.trial", token=participant.token, number=position + 1)
        stage = journey.leave_trials(participant, current=stage)
    return url(f"participant.{stage}", token=participant.token)


def render(template: str, participant: Participant | ParticipantRef, request: Request,
           progress: dict[str, int] | None = None, status: int = 200,
           **context: Any) -> Page:
    """A page of the journey: ``template`` with what every such page shows."""
    return Page(status, template=template, context=dict(
        test_name=participant.test.name, lang=participant.language,
        progress=progress or journey.progress(participant), csrf_token=request.csrf_token(),
        form_action=request.path, **context))


def step(participant: Participant | ParticipantRef, stage: str,
         request: Request) -> Page | None:
    """On POST, advance past ``stage``; on GET of a later stage, go where the
    participant is; None to show the page."""
    if journey.stage_index(participant.stage) < journey.stage_index(stage):
        return Page(302, location=stage_url(participant, url=request.url))
    if request.method == "POST":
        now = journey.advance(participant, journey.next_stage(participant.test, stage))
        return Page(302, location=stage_url(participant, now, url=request.url))
    return None


def welcome(participant: ParticipantRef, request: Request) -> Page:
    """The welcome and consent page; posting it with consent moves on."""
    description = text_in(test_info(participant.test).definition.get("description") or "",
                          participant.language)
    if request.method == "POST" and not request.form.get("consent"):
        return render("participant/welcome.html", participant, request, status=400,
                      description=description,
                      message=i18n.translate("consent_required", participant.language))
    return step(participant, "welcome", request) or render(
        "participant/welcome.html", participant, request, description=description)


def instructions(participant: ParticipantRef, request: Request) -> Page:
    """The instructions; posting them moves on."""
    return step(participant, "instructions", request) or render(
        "participant/instructions.html", participant, request,
        instructions=journey.instructions_text(participant.test, participant.language),
        kind=participant.test.kind)


def trial(participant: ParticipantRef, number: int, request: Request) -> Page:
    """Trial ``number`` (1-based) if it is the participant's first open one; else a
    redirect to where the participant is (answered trials are never asked again,
    later ones wait their turn)."""
    page = None
    if participant.stage == "trials":
        page = journey.current_trial_page(participant, number - 1)
    if page is None:
        return Page(302, location=stage_url(participant, url=request.url))
    config = trial_page_config(participant, page, url=request.url,
                               csrf_token=request.csrf_token())
    return render(f"participant/trial_{participant.test.kind}.html", participant, request,
                  progress=config["progress"], trial_config=config)


def finished(participant: Participant | ParticipantRef, request: Request) -> Page:
    """The completion page of a participant whose participation is recorded finished."""
    return render("participant/done.html", participant, request,
                  completion_code=participant.completion_code,
                  redirect_url=journey.completion_redirect(participant))


def trial_page_config(participant: ParticipantRef, page: journey.TrialPage,
                      with_strings: bool = True, *, url: UrlBuilder = url_for,
                      csrf_token: str | None = None) -> dict[str, Any]:
    """The configuration of a trial page, as embedded in it or sent with the answer to
    the trial before it (then without the UI strings, which the page has already).

    Parameters
    ----------
    participant : ParticipantRef
        The participant the page is for.
    page : journey.TrialPage
        The trial to show.
    with_strings : bool
        Include the UI strings of the participant's language.
    url : callable
        ``url(endpoint, **values)`` (default :func:`flask.url_for`).
    csrf_token : str, optional
        The page's CSRF token (default: Flask-WTF's for this request).

    Returns
    -------
    dict
        JSON-ready; documented in ``templates/participant/trial_mushra.html``.
    """
    if csrf_token is None:
        from flask_wtf.csrf import generate_csrf

        csrf_token = generate_csrf()
    token = participant.token
    config = journey.trial_config(
        participant, page,
        media_url=lambda t: url("media.stimulus", token=t),
        submit_url=url("api.submit_trial", token=token, number=page.trial.position + 1),
        events_url=url("api.events", token=token),
        csrf_token=csrf_token,
        strings=i18n.strings(participant.language) if with_strings else None)
    config["next_url"] = url("participant.resume", token=token)
    config["trial"] = page.trial.position
    config["progress"] = journey.progress(participant, page.trials, page.answered)
    # Read-only page: when it was shown travels with the answer (see journey.shown_stamp).
    config["shown"] = journey.shown_stamp(page.trial.id, current_app.config["SECRET_KEY"])
    return config
