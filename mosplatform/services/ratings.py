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

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import (
    Event,
    IdempotencyRecord,
    ItemKind,
    Participant,
    ParticipantStatus,
    Rating,
    TestKind,
    TestStatus,
    Trial,
    utcnow,
)
from . import lookup
from .journey import TrialPage, trial_after
from .rawread import (
    RawWrite,
    column_list,
    column_names,
    driver_integrity_errors,
    json_rows,
    json_rows_source,
)
from .testinfo import QuestionInfo, test_info

EVENT_KINDS = {"play", "pause", "switch", "loop", "seek", "page_load", "heard", "ended",
               "visibility", "error", "calibration", "headphone"}
MAX_EVENTS_PER_BATCH = 500
MAX_STIMULUS_POSITION = 1024  # far above the 12 + reference a trial page can show
MAX_IDEMPOTENCY_KEY = 80
INT32_MAX = 2**31 - 1


class RatingError(Exception):
    """A submission that is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Outcome:
    """The answer to a submission: HTTP status and JSON body.

    ``trials`` are the participant's trials as the submission read them (before it
    stored anything), and ``next_page`` the trial that follows with its stimuli, when
    the submission read them: the answer brings that trial's page.
    """

    status: int
    body: dict[str, Any]
    trials: list[Any] = field(default_factory=list)
    next_page: TrialPage | None = None


def _finite_float(value: Any) -> float | None:
    """``value`` as a finite float, or None (booleans, strings, huge integers, NaN, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        out = float(value)
    except OverflowError:  # an integer beyond the float range
        return None
    return out if math.isfinite(out) else None


def _small_int(value: Any, lo: int, hi: int) -> int | None:
    """``value`` if it is an integer (not a boolean) in ``[lo, hi]``, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        return None
    return value


def _validate_score(question: QuestionInfo, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RatingError(f"question '{question.key}': score must be a number")
    score = _finite_float(value)
    if score is None:
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


def _parse(kind: str, trial_kind: str, rated_positions: list[int],
           questions: tuple[QuestionInfo, ...], payload: Any) -> dict[tuple[int, int], float]:
    """Map (stimulus position or -2 for pair-level, question id) -> score."""
    if not isinstance(payload, dict) or not isinstance(payload.get("ratings"), list):
        raise RatingError("body must be a JSON object with a 'ratings' list", 400)
    if trial_kind == ItemKind.training.value:
        # Training answers are discarded (BS.1534-3); accept whatever the page sends.
        return {}
    pair_level = kind in (TestKind.ccr.value, TestKind.ab.value)
    by_key = {q.key: q for q in questions}
    answers: dict[tuple[int, int], float] = {}
    for entry in payload["ratings"]:
        if not isinstance(entry, dict):
            raise RatingError("each rating must be an object {stimulus, question, score}", 400)
        qkey = entry.get("question")
        if not isinstance(qkey, str) or qkey not in by_key:
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
    if missing:
        raise RatingError(f"missing ratings for (stimulus, question) {missing[:5]}")
    return answers


def _expand(kind: str, flipped: bool, by_pos: dict[int, int],
            answers: dict[tuple[int, int], float]) -> list[tuple[int, int, float, float]]:
    """Turn page answers into stored rows (stimulus id, question id, score, raw score).

    ``by_pos`` maps the trial's page positions to stimulus ids.
    """
    rows = []
    for (pos, qid), raw in answers.items():
        if pos != -2:
            rows.append((by_pos[pos], qid, raw, raw))
        elif kind == TestKind.ccr.value:
            # The page asks about the second signal relative to the first. Stored:
            # processed relative to reference, so flip when the processed came first.
            processed = by_pos[0] if flipped else by_pos[1]
            rows.append((processed, qid, -raw if flipped else raw, raw))
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
        # Reported by the page, informative only: unusable values are stored as unknown.
        out[entry["stimulus"]] = (_finite_float(entry.get("heard_s")),
                                  _small_int(entry.get("plays"), 0, INT32_MAX))
    return out


def _check_key(idempotency_key: str | None) -> None:
    if idempotency_key:
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise RatingError(
                f"Idempotency-Key is too long (max {MAX_IDEMPOTENCY_KEY} characters)", 400)
        if not all("!" <= ch <= "~" for ch in idempotency_key):
            raise RatingError("Idempotency-Key must be printable ASCII without spaces", 400)


def _prior(participant: Participant | lookup.ParticipantRef,
           idempotency_key: str | None) -> Outcome | None:
    """The stored answer to an earlier request with this key, if any."""
    if not idempotency_key:
        return None
    prior = lookup.connection().execute(
        select(IdempotencyRecord.status_code, IdempotencyRecord.response).where(
            IdempotencyRecord.participant_id == participant.id,
            IdempotencyRecord.key == idempotency_key)).first()
    return None if prior is None else Outcome(prior.status_code, prior.response)


def submit_trial(participant: Participant | lookup.ParticipantRef, position: int, payload: Any,
                 idempotency_key: str | None = None, *,
                 shown: Callable[[int], datetime | None] | None = None,
                 read: lookup.AnswerRead | None = None) -> Outcome:
    """Validate and store the ratings of one trial, and the page events sent with them.

    Parameters
    ----------
    participant : Participant or ParticipantRef
        The participant identified by their token.
    position : int
        The trial position (0-based) the page shows.
    payload : Any
        The decoded JSON body (see :mod:`mosplatform.api`); an optional ``events``
        list is validated as for :func:`record_events` and stored in the same
        transaction, so a page sends its events with its answer in one request.
    idempotency_key : str, optional
        Client-chosen key; a retry with the same key replays the first answer.
    shown : callable, optional
        ``shown(trial_id)`` gives when the answered page was shown (from the stamp the
        page sent, :func:`journey.shown_time`), stored as the trial's ``started_at``
        unless one is stored already.
    read : AnswerRead, optional
        The participant's trials and stimuli as :func:`lookup.answer_read` read them
        for this ``position`` (one statement with the participant); by default they
        are read here.

    Returns
    -------
    Outcome
        HTTP status and JSON body: ``next_trial`` is the 1-based number of the
        participant's next open trial, or None after the last.

    Raises
    ------
    RatingError
        With a status of 400, 404, 409, 413 or 422 and a message for the participant.
    """
    _check_key(idempotency_key)
    # Every trial of the participant (a few dozen small rows): the one answered, the
    # order check and the next trial come from the same read.
    trials = read.trials if read is not None else lookup.trials_of(participant.id)
    outcome = _submit(participant, position, payload, idempotency_key, shown, trials,
                      read.stimuli if read is not None else None)
    outcome.trials = trials
    return outcome


def _submit(participant: Participant | lookup.ParticipantRef, position: int, payload: Any,
            idempotency_key: str | None, shown: Callable[[int], datetime | None] | None,
            trials: list[Any], stimuli: dict[int, list[Any]] | None) -> Outcome:
    trial = next((t for t in trials if t.position == position), None)
    if trial is not None and trial.completed_at is not None:
        # Only a completed trial can have an acknowledged answer to replay.
        replay = _prior(participant, idempotency_key)
        if replay is not None:
            return replay
    test = participant.test
    if participant.excluded or participant.status == ParticipantStatus.excluded.value:
        raise RatingError("this participation has ended", 403)
    if test.status != TestStatus.open.value and not participant.is_preview:
        raise RatingError(f"the test is {test.status}; answers are no longer accepted", 409)
    if trial is None:
        raise RatingError("no such trial", 404)
    info = test_info(test)
    # The trial that comes next, whose page the answer brings: its stimuli are read
    # with this trial's, in one query and before the transaction writes.
    upcoming = trial_after(trials, position)
    if stimuli is None:
        stimuli = lookup.stimuli_of_trials(
            [trial.id] if upcoming is None else [trial.id, upcoming.id])
    by_pos = {ts.position: ts.stimulus_id for ts in stimuli.get(trial.id, [])}
    rated_positions = sorted(p for p in by_pos if p >= 0)
    answers = _parse(info.kind, trial.kind, rated_positions, info.questions, payload)
    rows = _expand(info.kind, trial.flipped, by_pos, answers)
    following = next((t.position for t in trials
                      if t.position > position and t.completed_at is None), None)
    body = {"ok": True, "stored": 0, "next": position + 1,
            "next_trial": None if following is None else following + 1}
    next_page = None
    if upcoming is not None and upcoming.position == following:
        next_page = TrialPage(upcoming, trials, stimuli.get(upcoming.id, []), position)
    store = trial.kind != ItemKind.training.value and not participant.is_preview

    if trial.completed_at is not None:
        return replace(_resubmission(store, trial.id, rows, body), next_page=next_page)
    earlier_open = next((t.position for t in trials
                         if t.position < position and t.completed_at is None), None)
    if earlier_open is not None:
        raise RatingError(f"trial {earlier_open + 1} must be answered first", 409)
    events = payload.get("events")
    if events is not None:
        _check_events(events)
        events = _event_rows(participant.id, events, {t.position: t.id for t in trials})

    listening = _listening(payload)
    now = utcnow()
    started = shown(trial.id) if shown is not None else None
    values = []
    if store:
        position_of = {stim_id: pos for pos, stim_id in by_pos.items()}
        for stim_id, qid, score, raw in rows:
            heard, plays = listening.get(position_of[stim_id], (None, None))
            values.append({"participant_id": participant.id, "trial_id": trial.id,
                           "stimulus_id": stim_id, "question_id": qid, "score": score,
                           "raw_score": raw, "created_at": now,
                           "listening_time_s": heard, "play_count": plays})
    body["stored"] = len(values)
    conn = lookup.connection()
    complete = {"trial_id": trial.id, "now": now,
                "shown": started if started and started <= now else None}
    inserts = [(_INSERT_RATINGS, values), (_INSERT_EVENTS, events or []),
               (_INSERT_IDEMPOTENCY, [{
                   "participant_id": participant.id, "key": idempotency_key,
                   "status_code": 200, "response": body, "created_at": now}]
                if idempotency_key else [])]
    try:
        _store(conn, complete, inserts)
    except (IntegrityError, _Raced, *driver_integrity_errors(conn)):
        # A concurrent retry won the race: answer as it was answered.
        lookup.rollback()
        replay = _prior(participant, idempotency_key)
        if replay is not None:
            return replace(replay, next_page=next_page)
        return replace(_resubmission(store, trial.id, rows, body), next_page=next_page)
    return Outcome(200, body, next_page=next_page)


_TRIAL = Trial.__table__.c
_COMPLETE = (Trial.__table__.update()
             .where(_TRIAL.id == bindparam("trial_id"), _TRIAL.completed_at.is_(None))
             .values(completed_at=bindparam("now"),
                     started_at=func.coalesce(_TRIAL.started_at,
                                              bindparam("shown", type_=_TRIAL.started_at.type))))


_INSERT_RATINGS = Rating.__table__.insert()
_INSERT_EVENTS = Event.__table__.insert()
_INSERT_IDEMPOTENCY = IdempotencyRecord.__table__.insert()


_sqlite_writers = threading.Lock()


def _store(conn: Connection, complete: dict[str, Any],
           inserts: list[tuple[Any, list[dict[str, Any]]]]) -> None:
    """Complete the trial and insert the answer's rows, atomically, committed.

    Completing the trial comes first: a concurrent twin that got there first leaves
    nothing to update (:class:`_Raced`), and the unique constraint on ratings refuses
    a second copy (``IntegrityError``).

    On PostgreSQL all of it is one statement (:class:`_OneStatement`): one round
    trip, atomic without BEGIN and COMMIT. On SQLite, one transaction; everything is
    built before the first write, so the write lock (one per database) is held only
    for the statements themselves.
    """
    if conn.dialect.name == "postgresql":
        dbapi = conn.connection.dbapi_connection
        with dbapi.cursor() as cursor:
            cursor.execute(*_ONE_STATEMENT.prepare(conn.dialect, complete, inserts))
            completed = cursor.fetchone()[0]
        if not dbapi.autocommit:  # a session that did not defer its transaction
            dbapi.commit()
        lookup.commit()  # the session's transaction ends (nothing left to send)
        if completed != 1:
            raise _Raced()
        return
    with _write_section(conn):
        if conn.execute(_COMPLETE, complete).rowcount != 1:
            raise _Raced()
        for statement, rows in inserts:
            if rows:  # one statement for all rows
                conn.execute(statement, rows)
        lookup.commit()


class _OneStatement:
    """The answer's writes as one PostgreSQL statement.

    The trial's update and the inserts are data-modifying ``WITH`` queries; each
    insert takes its rows from one JSON parameter (``json_to_recordset``, which turns
    each value into its column's type) and from the update's ``RETURNING``, so
    nothing is inserted when the trial was completed already, and the statement
    answers how many trials it completed (0 or 1). A failing insert fails the whole
    statement, which then changes nothing. The SQL is built once per set of tables and
    columns, and sent as one round trip where BEGIN, the update, each insert and
    COMMIT took one each (or two pipelined). One JSON text per table, encoded by
    :func:`json.dumps`, costs the driver far less than one array per column, whose
    elements psycopg dumps one by one in Python.
    """

    def __init__(self) -> None:
        self._update = RawWrite(_COMPLETE.returning(_TRIAL.id))
        self._sql: dict[tuple[Any, ...], tuple[str, list[tuple[list[str], list[str]]]]] = {}
        self._lock = threading.Lock()

    def prepare(self, dialect: Any, complete: dict[str, Any],
                inserts: list[tuple[Any, list[dict[str, Any]]]]) -> tuple[str, dict[str, Any]]:
        """The SQL and its parameters (psycopg's named style)."""
        update_sql, (params,) = self._update.prepare(dialect, [complete])
        present = [(statement, rows) for statement, rows in inserts if rows]
        key = (dialect.driver, *((statement.table.name, tuple(rows[0]))
                                 for statement, rows in present))
        built = self._sql.get(key)
        if built is None:
            built = self._build(dialect, update_sql, present)
            with self._lock:
                self._sql[key] = built
        sql, names = built
        for i, ((_, rows), (keys, columns)) in enumerate(zip(present, names, strict=True)):
            params[f"rows{i}"] = json_rows(rows, keys, columns)
        return sql, params

    @staticmethod
    def _build(dialect: Any, update_sql: str, present: list[tuple[Any, list[dict[str, Any]]]]
               ) -> tuple[str, list[tuple[list[str], list[str]]]]:
        parts = [f"done AS ({update_sql})"]
        names = []
        for i, (statement, rows) in enumerate(present):
            table = statement.table
            keys = list(rows[0])
            parts.append(f"i{i} AS (INSERT INTO "
                         f"{dialect.identifier_preparer.format_table(table)} "
                         f"({column_list(dialect, table, keys)}) SELECT x.* FROM done, "
                         f"{json_rows_source(dialect, table, keys, f'rows{i}')})")
            names.append((keys, column_names(table, keys)))
        return "WITH " + ", ".join(parts) + " SELECT count(*) FROM done", names


_ONE_STATEMENT = _OneStatement()


@contextlib.contextmanager
def _write_section(conn: Connection) -> Iterator[None]:
    """On SQLite, one writing thread per process at a time.

    SQLite has one write lock per database; threads of the same process that queue
    for it in SQLite's busy handler sleep in growing steps (1, 2, 5, 10 ms...) and
    often miss the moment it is free. Queueing them on a process lock instead hands
    the database lock on at once; processes still take turns through SQLite.
    PostgreSQL locks rows, so nothing is serialised there.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    with _sqlite_writers:
        yield


class _Raced(Exception):
    """The trial was completed by a concurrent request."""


def _resubmission(store: bool, trial_id: int, rows: list[tuple[int, int, float, float]],
                  body: dict[str, Any]) -> Outcome:
    """Answer a second submission of a completed trial: same answers succeed, others 409."""
    replayed = {**body, "stored": 0, "replayed": True}
    if not store:
        return Outcome(200, replayed)
    stored = {
        (r.stimulus_id, r.question_id): r.score
        for r in lookup.connection().execute(
            select(Rating.stimulus_id, Rating.question_id, Rating.score)
            .where(Rating.trial_id == trial_id))
    }
    wanted = {(s, q): score for s, q, score, _ in rows}
    if stored == wanted:
        return Outcome(200, replayed)
    raise RatingError("this trial was already answered; answers cannot be changed", 409)


def record_events(participant: Participant | lookup.ParticipantRef,
                  payload: Any) -> int:
    """Store a batch of page events; returns how many were stored.

    Events carry the page position of a stimulus, never its condition.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise RatingError("body must be a JSON object with an 'events' list", 400)
    events = payload["events"]
    _check_events(events)
    positions = {ev.get("trial") for ev in events
                 if _small_int(ev.get("trial"), 0, INT32_MAX) is not None}
    trial_ids: dict[int, int] = {}
    if positions:
        trial_ids = dict(db.session.execute(select(Trial.position, Trial.id).where(
            Trial.participant_id == participant.id, Trial.position.in_(positions))).all())
    rows = _event_rows(participant.id, events, trial_ids)
    if rows:
        lookup.connection().execute(_INSERT_EVENTS, rows)
        db.session.commit()
    return len(rows)


def _check_events(events: Any) -> None:
    """Refuse the whole batch if any event is malformed (nothing of it is stored)."""
    if not isinstance(events, list):
        raise RatingError("'events' must be a list", 400)
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise RatingError(f"at most {MAX_EVENTS_PER_BATCH} events per request", 413)
    for ev in events:
        if not isinstance(ev, dict) or not isinstance(ev.get("kind"), str) \
                or ev["kind"] not in EVENT_KINDS:
            kind = ev.get("kind") if isinstance(ev, dict) else ev
            raise RatingError(f"unknown event kind {str(kind)[:40]!r}"
                              f"; expected one of {sorted(EVENT_KINDS)}")
        stim = ev.get("stimulus")
        if stim is not None and _small_int(stim, -1, MAX_STIMULUS_POSITION) is None:
            raise RatingError(f"event stimulus must be null or a page position, not "
                              f"{str(stim)[:40]!r}")


def _event_rows(participant_id: int, events: Any,
                trial_ids: dict[int, int]) -> list[dict[str, Any]]:
    """Turn checked ``events`` into ``Event`` rows (``trial_ids``: position -> id)."""
    now = utcnow()
    rows = []
    for ev in events:
        trial_pos = ev.get("trial")
        data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        position_s = _finite_float(ev.get("position_s"))
        if position_s is not None:
            data = {**data, "position_s": position_s}
        rows.append({
            "participant_id": participant_id,
            "trial_id": trial_ids.get(trial_pos)
            if _small_int(trial_pos, 0, INT32_MAX) is not None else None,
            "kind": ev["kind"],
            "stimulus_position": ev.get("stimulus"),
            "payload": data,
            "client_time_ms": _finite_float(ev.get("t_ms")),
            "created_at": now,
        })
    return rows
