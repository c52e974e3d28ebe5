"""The participant's journey: stages, progress, the trial page's configuration.

Stages run welcome (consent) -> instructions -> calibration -> trials (the training
trial first) -> questionnaire -> done. A participant's stage only moves forward, and
coming back resumes at the first unanswered trial.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..config import localized
from ..extensions import db
from ..models import (
    ItemKind,
    Participant,
    ParticipantStatus,
    Test,
    Trial,
    utcnow,
)

STAGES = ("welcome", "instructions", "calibration", "trials", "questionnaire", "done")
BLOCK_LABELS = "ABCDEFGHIJKLMNOP"


def stage_index(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else 0


def advance(participant: Participant, to: str) -> None:
    """Move the participant forward to stage ``to`` (never backwards)."""
    if stage_index(to) > stage_index(participant.stage):
        participant.stage = to
        if to == "instructions" and participant.consent_at is None:
            participant.consent_at = utcnow()
        db.session.commit()


def stages_for(test: Test) -> list[str]:
    design = test.definition.get("design", {})
    stages = ["welcome", "instructions"]
    if design.get("calibration", True) or design.get("headphone_check", "none") != "none":
        stages.append("calibration")
    stages.append("trials")
    if test.definition.get("questionnaire"):
        stages.append("questionnaire")
    stages.append("done")
    return stages


def next_stage(test: Test, stage: str) -> str:
    stages = stages_for(test)
    if stage not in stages:
        return next(s for s in stages if stage_index(s) > stage_index(stage))
    i = stages.index(stage)
    return stages[min(i + 1, len(stages) - 1)]


def first_open_trial(participant: Participant) -> Trial | None:
    """The first trial without an answer, or None when all are answered."""
    return db.session.execute(
        select(Trial).where(Trial.participant_id == participant.id,
                            Trial.completed_at.is_(None)).order_by(Trial.position).limit(1)
    ).scalar_one_or_none()


def progress(participant: Participant) -> dict[str, int]:
    """Steps done and total, counting every page of the journey."""
    trials = participant.trials
    stages = stages_for(participant.test)
    non_trial = [s for s in stages if s not in ("trials", "done")]
    done_stages = sum(1 for s in non_trial if stage_index(participant.stage) > stage_index(s))
    done_trials = sum(1 for t in trials if t.completed_at is not None)
    return {"done": done_stages + done_trials, "total": len(non_trial) + len(trials)}


def finish(participant: Participant) -> None:
    """Mark the participation finished and fix its completion code."""
    if participant.finished_at is None:
        participant.finished_at = utcnow()
        if participant.status == ParticipantStatus.started.value:
            participant.status = ParticipantStatus.finished.value
        crowd = participant.test.definition.get("crowd", {})
        participant.completion_code = crowd.get("completion_code") or participant.token[:10].upper()
    participant.stage = "done"
    db.session.commit()


def completion_redirect(participant: Participant) -> str | None:
    """Where a crowd worker goes after the last page (Prolific or a generic URL)."""
    crowd = participant.test.definition.get("crowd", {})
    code = participant.completion_code or ""
    if crowd.get("platform") == "prolific":
        return crowd.get("completion_url") or (
            f"https://app.prolific.com/submissions/complete?cc={code}")
    if crowd.get("platform") == "generic" and crowd.get("return_url"):
        return crowd["return_url"].format(external_id=participant.external_id or "", code=code)
    return None


def _text(value: Any, lang: str) -> str:
    texts = localized(value)
    return texts.get(lang) or texts.get("en") or next(iter(texts.values()), "")


def localized_scale(scale: dict[str, Any], lang: str) -> dict[str, Any]:
    """A question's scale with every label in ``lang``."""
    if scale["type"] == "categorical":
        return {"type": "categorical",
                "categories": [{"score": c["score"], "label": _text(c["label"], lang)}
                               for c in scale["categories"]]}
    return {"type": "continuous", "min": scale.get("min", 0), "max": scale.get("max", 100),
            "step": scale.get("step", 1),
            "bands": [{"min": b["min"], "max": b["max"], "label": _text(b["label"], lang)}
                      for b in scale.get("bands", [])]}


def trial_config(participant: Participant, trial: Trial, *, media_url: Any, submit_url: str,
                 events_url: str, csrf_token: str, strings: dict[str, str]) -> dict[str, Any]:
    """Everything the trial page's script needs, and nothing that identifies a condition.

    Parameters
    ----------
    media_url : callable
        ``media_url(token) -> str`` building the opaque audio URL.

    Returns
    -------
    dict
        The ``trial_config`` JSON embedded in the page.
    """
    test = participant.test
    lang = participant.language
    design = test.definition.get("design", {})
    item = trial.item
    rated = [ts for ts in trial.stimuli if ts.position >= 0]
    ref = next((ts for ts in trial.stimuli if ts.position == -1), None)
    is_training = trial.kind == ItemKind.training.value
    show_source = test.definition.get("show_source_name", True)
    questions = [{"key": q.key, "label": _text(q.label, lang),
                  "scale": localized_scale(q.scale, lang)} for q in test.questions]
    return {
        "kind": test.kind,
        "position": trial.position + 1,
        "total": len(participant.trials),
        "is_training": is_training,
        "source_name": item.source if show_source else None,
        "stimuli": [{"url": media_url(ts.token), "label": BLOCK_LABELS[i % len(BLOCK_LABELS)]}
                    for i, ts in enumerate(rated)],
        "reference": {"url": media_url(ref.token)} if ref is not None else None,
        "questions": questions,
        "must_listen_fraction": float(design.get("must_listen_fraction", 0.8)),
        "require_full_scale": bool(design.get("require_full_scale", False)),
        "submit_url": submit_url,
        "events_url": events_url,
        "csrf_token": csrf_token,
        "lang": lang,
        "strings": strings,
    }


def instructions_text(test: Test, lang: str) -> str:
    return _text(test.definition.get("instructions") or "", lang)


def questionnaire_fields(test: Test, lang: str) -> list[dict[str, Any]]:
    return [{"key": f["key"], "label": _text(f["label"], lang), "type": f.get("type", "text"),
             "choices": f.get("choices", []), "required": f.get("required", False)}
            for f in test.definition.get("questionnaire", [])]


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
