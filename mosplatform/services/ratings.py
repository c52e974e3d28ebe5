"""Validation and idempotent storage of ratings and events.

A trial's ratings arrive in one request. They are validated against the trial
(every stimulus x question answered, nothing extra), the question's scale (type,
range, category set) and the test's status, then stored in one transaction with
the trial marked complete. Retries are safe: an ``Idempotency-Key`` replays the
first response, and a resubmission of an already completed trial with the same
answers succeeds without writing; different answers are refused with 409. The
unique constraint on (participant, stimulus, question) is the last line of defence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import (
    Event,
    IdempotencyRecord,
    ItemKind,
    Participant,
    ParticipantStatus,
    Question,
    Rating,
    TestKind,
    TestStatus,
    Trial,
    utcnow,
)

EVENT_KINDS = {"play", "pause", "switch", "loop", "seek", "page_load", "heard", "ended",
               "visibility", "error", "calibration", "headphone"}
MAX_EVENTS_PER_BATCH = 500


class RatingError(Exception):
    """A submission that is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]


def _validate_score(question: Question, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RatingError(f"question '{question.key}': score must be a number")
    score = float(value)
    if not math.isfinite(score):
        raise RatingError(f"question '{question.key}': score must be finite")
    scale = question.scale
    if scale["type"] == "categorical":
        allowed = {float(c["score"]) for c in scale["categories"]}
        if score not in allowed:
            raise RatingError(
                f"question '{question.key}': score {value} is not one of {sorted(allowed)}"
            )
    else:
        lo, hi = float(scale.get("min", 0)), float(scale.get("max", 100))
        if not lo <= score <= hi:
            raise RatingError(f"question '{question.key}': score {value} outside [{lo}, {hi}]")
    return score


def _parse(trial: Trial, questions: list[Question], payload: Any) -> dict[tuple[int, int], float]:
    """Map (stimulus position or -2 for pair-level, question id) -> score."""
    if not isinstance(payload, dict) or not isinstance(payload.get("ratings"), list):
        raise RatingError("body must be a JSON object with a 'ratings' list", 400)
    rated_positions = sorted(ts.position for ts in trial.stimuli if ts.position >= 0)
    kind = trial.participant.test.kind
    pair_level = kind in (TestKind.ccr.value, TestKind.ab.value) and trial.kind != "training"
    by_key = {q.key: q for q in questions}
    answers: dict[tuple[int, int], float] = {}
    for entry in payload["ratings"]:
        if not isinstance(entry, dict):
            raise RatingError("each rating must be an object {stimulus, question, score}", 400)
        qkey = entry.get("question")
        if qkey not in by_key:
            raise RatingError(f"unknown question {qkey!r}")
        q = by_key[qkey]
        pos = entry.get("stimulus")
        if pair_level:
            if pos is not None:
                raise RatingError("this trial is rated as a pair: send stimulus null")
            pos = -2
        elif isinstance(pos, bool) or not isinstance(pos, int) or pos not in rated_positions:
            raise RatingError(f"unknown stimulus {pos!r} for this trial")
        key = (pos, q.id)
        if key in answers:
            raise RatingError(f"duplicate rating for stimulus {pos}, question '{qkey}'")
        answers[key] = _validate_score(q, entry.get("score"))
    positions = [-2] if pair_level else rated_positions
    missing = [(p, q.key) for p in positions for q in questions if (p, q.id) not in answers]
    if missing and trial.kind != ItemKind.training.value:
        raise RatingError(f"missing ratings for (stimulus, question) {missing[:5]}")
    return answers


def _expand(trial: Trial, answers: dict[tuple[int, int], float]
            ) -> list[tuple[int, int, float, float]]:
    """Turn page answers into stored rows (stimulus id, question id, score, raw score)."""
    kind = trial.participant.test.kind
    by_pos = {ts.position: ts.stimulus_id for ts in trial.stimuli}
    rows = []
    for (pos, qid), raw in answers.items():
        if pos != -2:
            rows.append((by_pos[pos], qid, raw, raw))
        elif kind == TestKind.ccr.value:
            # The page asks about the second signal relative to the first. Stored:
            # processed relative to reference, so flip when the processed came first.
            processed = by_pos[0] if trial.flipped else by_pos[1]
            rows.append((processed, qid, -raw if trial.flipped else raw, raw))
        else:  # AB: +1 prefers A (first), -1 prefers B; store a preference share each.
            share_a = (raw + 1.0) / 2.0
            rows.append((by_pos[0], qid, share_a, raw))
            rows.append((by_pos[1], qid, 1.0 - share_a, -raw))
    return rows


def _listening(payload: dict[str, Any]) -> dict[int, tuple[float | None, int | None]]:
    out: dict[int, tuple[float | None, int | None]] = {}
    for entry in payload.get("listening") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("stimulus"), int):
            continue
        heard = entry.get("heard_s")
        plays = entry.get("plays")
        out[entry["stimulus"]] = (
            float(heard) if isinstance(heard, (int, float)) and math.isfinite(heard) else None,
            int(plays) if isinstance(plays, int) and not isinstance(plays, bool) else None,
        )
    return out


def submit_trial(participant: Participant, position: int, payload: Any,
                 idempotency_key: str | None = None) -> Outcome:
    """Validate and store the ratings of one trial.

    Parameters
    ----------
    participant : Participant
        The participant identified by their token.
    position : int
        The trial position (0-based) the page shows.
    payload : Any
        The decoded JSON body (see :mod:`mosplatform.api`).
    idempotency_key : str, optional
        Client-chosen key; a retry with the same key replays the first answer.

    Returns
    -------
    Outcome
        HTTP status and JSON body.

    Raises
    ------
    RatingError
        With a status of 400, 404, 409 or 422 and a message for the participant.
    """
    if idempotency_key:
        if len(idempotency_key) > 80:
            raise RatingError("Idempotency-Key is too long (max 80 characters)", 400)
        prior = db.session.execute(select(IdempotencyRecord).where(
            IdempotencyRecord.participant_id == participant.id,
            IdempotencyRecord.key == idempotency_key)).scalar_one_or_none()
        if prior is not None:
            return Outcome(prior.status_code, prior.response)
    test = participant.test
    if participant.excluded or participant.status == ParticipantStatus.excluded.value:
        raise RatingError("this participation has ended", 403)
    if test.status != TestStatus.open.value and not participant.is_preview:
        raise RatingError(f"the test is {test.status}; answers are no longer accepted", 409)
    trial = db.session.execute(select(Trial).where(
        Trial.participant_id == participant.id, Trial.position == position)
    ).scalar_one_or_none()
    if trial is None:
        raise RatingError("no such trial", 404)
    questions = list(test.questions)
    answers = _parse(trial, questions, payload)
    rows = _expand(trial, answers)
    next_url_position = trial.position + 1

    if trial.completed_at is not None:
        return _resubmission(participant, trial, rows, next_url_position)

    earlier_open = db.session.execute(select(Trial.position).where(
        Trial.participant_id == participant.id, Trial.position < trial.position,
        Trial.completed_at.is_(None))).scalars().first()
    if earlier_open is not None:
        raise RatingError(f"trial {earlier_open + 1} must be answered first", 409)

    listening = _listening(payload)
    pos_of = {ts.stimulus_id: ts.position for ts in trial.stimuli}
    store = trial.kind != ItemKind.training.value and not participant.is_preview
    now = utcnow()
    try:
        if store:
            for stim_id, qid, score, raw in rows:
                heard, plays = listening.get(pos_of.get(stim_id, -9), (None, None))
                db.session.add(Rating(participant_id=participant.id, trial_id=trial.id,
                                      stimulus_id=stim_id, question_id=qid, score=score,
                                      raw_score=raw, created_at=now,
                                      listening_time_s=heard, play_count=plays))
        trial.completed_at = now
        body = {"ok": True, "stored": len(rows) if store else 0, "next": next_url_position}
        if idempotency_key:
            db.session.add(IdempotencyRecord(participant_id=participant.id, key=idempotency_key,
                                             status_code=200, response=body))
        db.session.commit()
    except IntegrityError:
        # A concurrent retry won the race: answer as for a resubmission.
        db.session.rollback()
        trial = db.session.get(Trial, trial.id)
        if idempotency_key:
            prior = db.session.execute(select(IdempotencyRecord).where(
                IdempotencyRecord.participant_id == participant.id,
                IdempotencyRecord.key == idempotency_key)).scalar_one_or_none()
            if prior is not None:
                return Outcome(prior.status_code, prior.response)
        return _resubmission(participant, trial, rows, next_url_position)
    return Outcome(200, body)


def _resubmission(participant: Participant, trial: Trial,
                  rows: list[tuple[int, int, float, float]], next_position: int) -> Outcome:
    stored = {
        (r.stimulus_id, r.question_id): r.score
        for r in db.session.execute(select(Rating).where(Rating.trial_id == trial.id)).scalars()
    }
    if trial.kind == ItemKind.training.value or participant.is_preview:
        return Outcome(200, {"ok": True, "stored": 0, "next": next_position, "replayed": True})
    wanted = {(s, q): score for s, q, score, _ in rows}
    if stored == wanted:
        return Outcome(200, {"ok": True, "stored": 0, "next": next_position, "replayed": True})
    raise RatingError("this trial was already answered; answers cannot be changed", 409)


def record_events(participant: Participant, payload: Any) -> int:
    """Store a batch of page events; returns how many were stored.

    Events carry the page position of a stimulus, never its condition.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise RatingError("body must be a JSON object with an 'events' list", 400)
    events = payload["events"]
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise RatingError(f"at most {MAX_EVENTS_PER_BATCH} events per request", 413)
    trial_ids = {t.position: t.id for t in participant.trials}
    stored = 0
    for ev in events:
        if not isinstance(ev, dict) or ev.get("kind") not in EVENT_KINDS:
            raise RatingError(f"unknown event kind {ev.get('kind') if isinstance(ev, dict) else ev!r}"
                              f"; expected one of {sorted(EVENT_KINDS)}")
        trial_pos = ev.get("trial")
        stim = ev.get("stimulus")
        t_ms = ev.get("t_ms")
        data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        if "position_s" in ev and isinstance(ev["position_s"], (int, float)):
            data = {**data, "position_s": float(ev["position_s"])}
        db.session.add(Event(
            participant_id=participant.id,
            trial_id=trial_ids.get(trial_pos) if isinstance(trial_pos, int) else None,
            kind=ev["kind"],
            stimulus_position=stim if isinstance(stim, int) and not isinstance(stim, bool) else None,
            payload=data,
            client_time_ms=float(t_ms) if isinstance(t_ms, (int, float))
            and not isinstance(t_ms, bool) and math.isfinite(t_ms) else None,
        ))
        stored += 1
    db.session.commit()
    return stored
