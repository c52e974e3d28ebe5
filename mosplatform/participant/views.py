"""Thin views of the participant journey; the logic lives in :mod:`mosplatform.services`."""

from __future__ import annotations

from flask import (
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import generate_csrf
from sqlalchemy import bindparam, select
from sqlalchemy.orm import defer, joinedload

from .. import i18n
from ..extensions import db
from ..models import Participant, Test, TestStatus
from ..services import journey
from ..services.assignment import Arrival, AssignmentError, admit_participant, find_participant
from ..services.lookup import ParticipantRef, participant_ref
from ..services.testinfo import test_info
from . import bp, pages

EXTERNAL_ID_PARAMS = ("PROLIFIC_PID", "workerId", "participant", "pid", "external_id")


def remember(participant: Participant | ParticipantRef) -> None:
    """Bind the participant to this browser (media tokens are checked against it)."""
    known = session.get("participants", {})
    if known.get(participant.test.public_id) == participant.token:
        return  # unchanged: do not re-sign and re-send the cookie on every request
    tokens = dict(known)
    tokens[participant.test.public_id] = participant.token
    session["participants"] = tokens
    session.permanent = True
    # The session's CSRF token too, in the cookie that is sent now anyway: the pages
    # that follow then change nothing in the session (and the fast path can serve them).
    generate_csrf()


def current_tokens() -> set[str]:
    return set(session.get("participants", {}).values())


def load_participant(token: str) -> Participant:
    """The participant of ``token`` with its test (404 if none); binds it to this browser.

    The test's large JSON columns are not loaded: what the pages need of the
    definition comes from :func:`test_info`, decoded once per process.
    """
    participant = db.session.execute(
        select(Participant).options(
            joinedload(Participant.test).options(defer(Test.definition), defer(Test.settings)))
        .where(Participant.token == token)).scalar_one_or_none()
    if participant is None:
        abort(404, description="This link is not valid.")
    g.lang = participant.language
    remember(participant)
    return participant


def load_ref(token: str) -> ParticipantRef:
    """The participant of ``token`` as plain columns (404 if none); binds it to this
    browser. For the pages that need no ORM objects (the hot ones)."""
    participant = participant_ref(token)
    if participant is None:
        abort(404, description="This link is not valid.")
    g.lang = participant.language
    remember(participant)
    return participant


def stage_url(participant: Participant | ParticipantRef, stage: str | None = None) -> str:
    """The page of the participant's stage (see :func:`pages.stage_url`)."""
    return pages.stage_url(participant, stage)


def _request() -> pages.Request:
    """What the shared pages (:mod:`.pages`) need of this request."""
    return pages.Request(method=request.method, path=request.path, csrf_token=generate_csrf,
                         form=request.form)


def _respond(page: pages.Page):  # type: ignore[no-untyped-def]
    """Flask's response to a page's answer."""
    if page.location is not None:
        return redirect(page.location)
    return render_template(page.template, **page.context), page.status


def _page(template: str, participant: Participant | ParticipantRef,  # type: ignore[no-untyped-def]
          progress=None, **context):
    return _respond(pages.render(template, participant, _request(), progress, **context))


def _step(participant: Participant | ParticipantRef, stage: str):  # type: ignore[no-untyped-def]
    """On POST, advance past ``stage``; on GET of a later stage, go where the participant is."""
    page = pages.step(participant, stage, _request())
    return None if page is None else _respond(page)


# Prebuilt statements of every arrival.
_TEST = select(Test).options(defer(Test.definition)).where(
    Test.public_id == bindparam("public_id"))
_TOKEN = select(Participant.token).where(Participant.token == bindparam("token"))


@bp.get("/t/<public_id>")
def arrive(public_id: str):  # type: ignore[no-untyped-def]
    # The definition is not loaded: the test's cached info has it.
    test = db.session.execute(_TEST, {"public_id": public_id}).scalar_one_or_none()
    if test is None:
        abort(404, description="This test does not exist.")
    known = session.get("participants", {}).get(public_id)
    if known:
        token = db.session.execute(_TOKEN, {"token": known}).scalar_one_or_none()
        if token is not None:
            return redirect(url_for("participant.resume", token=token))
    external_id = next((request.args[k] for k in EXTERNAL_ID_PARAMS if request.args.get(k)), None)
    if external_id is not None:
        external_id = external_id[:128]
    languages = test_info(test).definition.get("languages", ["en"])
    lang = i18n.pick_language(languages, request.args.get("lang"),
                              request.headers.get("Accept-Language"))
    g.lang = lang
    if test.status != TestStatus.open.value:
        existing = find_participant(test, external_id)
        if existing is not None:  # a returning participant goes on where they were
            remember(existing)
            return redirect(stage_url(existing))
        return render_template("participant/error.html", test_name=test.name, lang=lang,
                               message=i18n.translate("test_not_open", lang)), 403
    # A crowd worker who arrived before with this external id gets their participation
    # back from admit_participant (the unique id refuses a second one): no lookup
    # first on every arrival.
    try:
        participant = admit_participant(test, Arrival(
            external_id=external_id,
            study_id=(request.args.get("STUDY_ID") or "")[:128] or None,
            session_id=(request.args.get("SESSION_ID") or "")[:128] or None,
            language=lang, user_agent=request.headers.get("User-Agent")))
    except AssignmentError as exc:
        return render_template("participant/error.html", test_name=test.name, lang=lang,
                               message=str(exc)), 409
    remember(participant)
    return redirect(stage_url(participant))


@bp.get("/p/<token>/")
def resume(token: str):  # type: ignore[no-untyped-def]
    return redirect(stage_url(load_participant(token)))


@bp.route("/p/<token>/welcome", methods=["GET", "POST"])
def welcome(token: str):  # type: ignore[no-untyped-def]
    return _respond(pages.welcome(load_ref(token), _request()))


@bp.route("/p/<token>/instructions", methods=["GET", "POST"])
def instructions(token: str):  # type: ignore[no-untyped-def]
    return _respond(pages.instructions(load_ref(token), _request()))


@bp.route("/p/<token>/calibration", methods=["GET", "POST"])
def calibration(token: str):  # type: ignore[no-untyped-def]
    participant = load_participant(token)
    if request.method == "POST" and journey.stage_index(participant.stage) == \
            journey.stage_index("calibration"):
        from ..services import headphone

        headphone.record_answers(participant, request.form)
    resp = _step(participant, "calibration")
    if resp is not None:
        return resp
    from ..services import headphone

    return _page("participant/calibration.html", participant,
                 calibration_url=headphone.calibration_url(participant),
                 headphone_check=headphone.check_context(participant))


@bp.get("/p/<token>/trial/<int:number>")
def trial(token: str, number: int):  # type: ignore[no-untyped-def]
    # The hot path: plain rows, no ORM objects (see services.lookup).
    return _respond(pages.trial(load_ref(token), number, _request()))


@bp.route("/p/<token>/questionnaire", methods=["GET", "POST"])
def questionnaire(token: str):  # type: ignore[no-untyped-def]
    participant = load_participant(token)
    if journey.stage_index(participant.stage) < journey.stage_index("questionnaire"):
        return redirect(stage_url(participant))
    fields = journey.questionnaire_fields(participant.test, participant.language)
    if request.method == "POST" and participant.stage == "questionnaire":
        problems = journey.save_questionnaire(participant, request.form.to_dict())
        if problems:
            return _page("participant/questionnaire.html", participant,
                         questionnaire_fields=fields,
                         message=i18n.translate("please_answer", participant.language)
                         + ": " + ", ".join(problems)), 400
        journey.finish(participant)
        return redirect(stage_url(participant))
    if participant.stage != "questionnaire":
        return redirect(stage_url(participant))
    return _page("participant/questionnaire.html", participant, questionnaire_fields=fields)


@bp.get("/p/<token>/done")
def done(token: str):  # type: ignore[no-untyped-def]
    ref = load_ref(token)
    if ref.stage != "done":
        return redirect(stage_url(ref))
    participant: Participant | ParticipantRef = ref  # finished: nothing to write
    if not ref.finished:
        participant = load_participant(token)
        journey.finish(participant)
    return _respond(pages.finished(participant, _request()))

