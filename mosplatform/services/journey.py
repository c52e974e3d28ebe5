"""The participant's journey: stages, progress, the trial page's configuration.

Stages run welcome (consent) -> instructions -> calibration -> trials (the training
trial first) -> questionnaire -> done. A participant's stage only moves forward, and
coming back resumes at the first unanswered trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from itsdangerous import BadSignature, Signer
from sqlalchemy import bindparam, case, func
from sqlalchemy.orm.attributes import set_committed_value

from ..database import single_statement
from ..extensions import db
from ..models import (
    ItemKind,
    Participant,
    ParticipantStatus,
    Test,
    utcnow,
)
from . import lookup
from .testinfo import test_info, text_in

STAGES = ("welcome", "instructions", "calibration", "trials", "questionnaire", "done")
BLOCK_LABELS = "ABCDEFGHIJKLMNOP"


def stage_index(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else 0


def advance(participant: Participant | lookup.ParticipantRef, to: str) -> str:
    """Move the participant forward to stage ``to`` (never backwards), in one statement.

    Consenting (moving on to the instructions) records when. Returns the stage the
    participant is at afterwards; a loaded ``Participant`` shows it too.
    """
    if stage_index(to) <= stage_index(participant.stage):
        return participant.stage
    values: dict[str, Any] = {"stage": to}
    if to == "instructions":
        values["consent_at"] = func.coalesce(_COL.consent_at, utcnow())
    _write(participant, Participant.__table__.update().where(_COL.id == participant.id)
           .values(**values), {}, list(values))
    if isinstance(participant, Participant):
        set_committed_value(participant, "stage", to)  # known: no reload for it
    return to


_COL = Participant.__table__.c


def _write(participant: Participant | lookup.ParticipantRef, statement: Any,
           params: dict[str, Any], written: list[str]) -> None:
    """Run ``statement`` (one UPDATE of the participant's row) and commit; a loaded
    ``Participant`` reads the ``written`` columns again when next used. Outside a
    transaction the statement is one by itself (no BEGIN and COMMIT on PostgreSQL)."""
    lookup.connection().execute(statement, params, execution_options=single_statement())
    lookup.commit()
    if isinstance(participant, Participant):
        db.session.expire(participant, written)


def stages_for(test: Test) -> list[str]:
    return list(test_info(test).stages)


def next_stage(test: Test, stage: str) -> str:
    stages = stages_for(test)
    if stage not in stages:
        return next(s for s in stages if stage_index(s) > stage_index(stage))
    i = stages.index(stage)
    return stages[min(i + 1, len(stages) - 1)]


def progress(participant: Participant | lookup.ParticipantRef,
             trials: list[Any] | None = None, answered: int | None = None) -> dict[str, int]:
    """Steps done and total, counting every page of the journey.

    ``trials`` are the participant's trials (objects or rows with ``completed_at``)
    when the caller has them already; ``answered`` is the position of one of them
    answered since they were read.
    """
    counted = getattr(participant, "trial_counts", None)
    if trials is None and counted is not None:  # read with the participant
        total_trials, done_trials = counted
    elif trials is None:
        total_trials, done_trials = lookup.trial_counts(participant.id)
    else:
        total_trials = len(trials)
        done_trials = sum(1 for t in trials
                          if t.completed_at is not None or t.position == answered)
    stages = test_info(participant.test).stages
    non_trial = [s for s in stages if s not in ("trials", "done")]
    done_stages = sum(1 for s in non_trial if stage_index(participant.stage) > stage_index(s))
    return {"done": done_stages + done_trials, "total": len(non_trial) + total_trials}


def _completion_code(participant: Participant | lookup.ParticipantRef) -> str:
    crowd = test_info(participant.test).definition.get("crowd", {})
    return crowd.get("completion_code") or participant.token[:10].upper()


def finish(participant: Participant) -> None:
    """Mark the participation finished and fix its completion code."""
    if participant.finished_at is None:
        participant.finished_at = utcnow()
        if participant.status == ParticipantStatus.started.value:
            participant.status = ParticipantStatus.finished.value
        participant.completion_code = _completion_code(participant)
    participant.stage = "done"
    db.session.commit()


def leave_trials(participant: Participant | lookup.ParticipantRef,
                 current: str | None = None) -> str:
    """Move a participant whose trials are all answered on to the next stage.

    One statement (the answer to the last trial runs this): the stage, and when the
    next stage is the end, what :func:`finish` records. Returns the participant's
    stage afterwards (a loaded ``Participant`` reads the new values).
    ``current`` is the participant's stage when it moved on since ``participant`` was
    read.
    """
    current = current or participant.stage
    if current != "trials":
        return current
    to = next_stage(participant.test, "trials")
    params: dict[str, Any] = {"participant_id": participant.id, "to": to}
    statement, written = _LEAVE_TRIALS, ["stage"]
    if to == "done":
        statement = _LEAVE_TRIALS_TO_DONE
        written += ["finished_at", "status", "completion_code"]
        params.update(now=utcnow(), code=_completion_code(participant),
                      started=ParticipantStatus.started.value,
                      finished=ParticipantStatus.finished.value)
    _write(participant, statement, params, written)
    return to


# Prebuilt: the last answer of every participant runs one of these.
_LEAVE_TRIALS = (
    Participant.__table__.update()
    .where(_COL.id == bindparam("participant_id"), _COL.stage == "trials")
    .values(stage=bindparam("to"))
)
_LEAVE_TRIALS_TO_DONE = _LEAVE_TRIALS.values(
    finished_at=func.coalesce(_COL.finished_at, bindparam("now", type_=_COL.finished_at.type)),
    status=case((_COL.status == bindparam("started"), bindparam("finished")),
                else_=_COL.status),
    completion_code=func.coalesce(_COL.completion_code, bindparam("code")))


def completion_redirect(participant: Participant | lookup.ParticipantRef) -> str | None:
    """Where a crowd worker goes after the last page (Prolific or a generic URL)."""
    crowd = test_info(participant.test).definition.get("crowd", {})
    code = participant.completion_code or ""
    if crowd.get("platform") == "prolific":
        return crowd.get("completion_url") or (
            f"https://app.prolific.com/submissions/complete?cc={code}")
    if crowd.get("platform") == "generic" and crowd.get("return_url"):
        return crowd["return_url"].format(external_id=participant.external_id or "", code=code)
    return None


@dataclass
class TrialPage:
    """The participant's current trial, as :func:`current_trial_page` loads it."""

    trial: Any  # a row: id, position, kind, item_id, started_at, completed_at
    trials: list[Any]  # every trial of the participant, in order (same columns)
    stimuli: list[Any]  # rows: position, token (the reference has position -1)
    answered: int | None = None  # position of a trial answered since ``trials`` was read


def current_trial_page(participant: Participant | lookup.ParticipantRef,
                       position: int) -> TrialPage | None:
    """Load the trial at ``position`` if it is the participant's first open one.

    Two reads and no write: the participant's trials and the trial's stimuli.
    Returns None when ``position`` is answered already or not yet due.
    """
    trials = lookup.trials_of(participant.id)
    current = next((t for t in trials if t.completed_at is None), None)
    if current is None or current.position != position:
        return None
    stimuli = lookup.trial_stimuli(current.id)
    return TrialPage(current, trials, stimuli)


def page_after_answer(trials: list[Any], answered: int) -> TrialPage | None:
    """The trial page that follows an answer to the trial at position ``answered``.

    ``trials`` are the participant's trials as read before the answer was stored
    (the answer's own read, so this costs one query: the next trial's stimuli).
    Returns None after the last trial.
    """
    current = trial_after(trials, answered)
    if current is None:
        return None
    return TrialPage(current, trials, lookup.trial_stimuli(current.id), answered)


def trial_after(trials: list[Any], answered: int) -> Any | None:
    """The first open trial other than the one at position ``answered`` (the trial
    that follows its answer), from the trials as read before the answer; or None."""
    return next((t for t in trials if t.completed_at is None and t.position != answered),
                None)


SHOWN_SALT = "mosplatform.trial-shown"


def shown_stamp(trial_id: int, secret_key: str, now: datetime | None = None) -> str:
    """A signed note of when the trial's page was built, for the page to send back.

    The trial page writes nothing to the database; its answer carries this stamp
    and the trial's ``started_at`` is set from it in the answer's transaction.
    """
    at = now or utcnow()
    return Signer(secret_key, salt=SHOWN_SALT).sign(
        f"{trial_id}:{int(at.timestamp() * 1000)}").decode()


def shown_time(stamp: Any, trial_id: int, secret_key: str) -> datetime | None:
    """When the page of ``trial_id`` was built, from its stamp; None if the stamp is
    missing, forged, for another trial, or not in the past 7 days."""
    if not isinstance(stamp, str) or len(stamp) > 200:
        return None
    try:
        value = Signer(secret_key, salt=SHOWN_SALT).unsign(stamp).decode()
        tid, ms = value.split(":")
        at = datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)
    except (BadSignature, ValueError, OverflowError, OSError):
        return None
    now = utcnow()
    if int(tid) != trial_id or not now - timedelta(days=7) <= at <= now:
        return None
    return at


def trial_config(participant: Participant | lookup.ParticipantRef, page: TrialPage, *,
                 media_url: Any, submit_url: str, events_url: str, csrf_token: str,
                 strings: dict[str, str] | None) -> dict[str, Any]:
    """Everything the trial page's script needs, and nothing that identifies a condition.

    Parameters
    ----------
    page : TrialPage
        The trial, as :func:`current_trial_page` loaded it.
    media_url : callable
        ``media_url(token) -> str`` building the opaque audio URL.

    Returns
    -------
    dict
        The ``trial_config`` JSON embedded in the page (without ``strings`` when
        ``strings`` is None).
    """
    info = test_info(participant.test)
    lang = participant.language
    design = info.definition.get("design", {})
    trial = page.trial
    rated = [ts for ts in page.stimuli if ts.position >= 0]
    ref = next((ts for ts in page.stimuli if ts.position == -1), None)
    show_source = info.definition.get("show_source_name", True)
    config = {
        "kind": info.kind,
        "position": trial.position + 1,
        "total": len(page.trials),
        "is_training": trial.kind == ItemKind.training.value,
        "source_name": info.item_source(trial.item_id) if show_source else None,
        "stimuli": [{"url": media_url(ts.token), "label": BLOCK_LABELS[i % len(BLOCK_LABELS)]}
                    for i, ts in enumerate(rated)],
        "reference": {"url": media_url(ref.token)} if ref is not None else None,
        "questions": info.questions_for_page(lang),
        "must_listen_fraction": float(design.get("must_listen_fraction", 0.8)),
        "require_full_scale": bool(design.get("require_full_scale", False)),
        "submit_url": submit_url,
        "events_url": events_url,
        "csrf_token": csrf_token,
        "lang": lang,
    }
    if strings is not None:
        config["strings"] = strings
    return config


def instructions_text(test: Test, lang: str) -> str:
    return text_in(test_info(test).definition.get("instructions") or "", lang)


def questionnaire_fields(test: Test, lang: str) -> list[dict[str, Any]]:
    return [{"key": f["key"], "label": text_in(f["label"], lang), "type": f.get("type", "text"),
             "choices": f.get("choices", []), "required": f.get("required", False)}
            for f in test_info(test).definition.get("questionnaire", [])]


def save_questionnaire(participant: Participant, form: dict[str, str]) -> list[str]:
    """Validate and store questionnaire answers; returns the list of problems."""
    fields = questionnaire_fields(participant.test, participant.language)
    answers: dict[str, Any] = {}
    problems = []
    for f in fields:
        value = (form.get(f["key"]) or "").strip()[:2000]
        if f["required"] and not value:
            problems.append(f["label"])
            continue
        if value and f["type"] == "number":
            try:
                answers[f["key"]] = float(value)
            except ValueError:
                problems.append(f["label"])
            continue
        if value and f["type"] == "choice" and value not in f["choices"]:
            problems.append(f["label"])
            continue
        answers[f["key"]] = value
    if not problems:
        participant.questionnaire = answers
        db.session.commit()
    return problems
