"""Lean reads for the participant's hot paths (trial page, ratings, audio).

A participant answers a trial every few seconds and each answer costs a handful of
requests, so these paths read plain rows with prebuilt Core statements on the
session's connection (same transaction as the ORM session) instead of building ORM
queries and objects per request: measured with ``bench/load/endpoint_cost.py``, a
Core row costs about a quarter of an ORM entity load.
"""

from __future__ import annotations

import contextlib
from collections import namedtuple
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, literal_column, or_, select, true
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import aliased

from ..database import defer_connection, kept_connection
from ..extensions import db
from ..models import Participant, Stimulus, Test, Trial, TrialStimulus
from .rawread import RawSelect


@dataclass(frozen=True)
class TestRef:
    """The columns of a test that participant requests read."""

    id: int
    public_id: str
    name: str
    kind: str
    status: str


@dataclass(frozen=True)
class ParticipantRef:
    """The columns of a participant that participant requests read, with its test."""

    id: int
    token: str
    language: str
    stage: str
    status: str
    excluded: bool
    is_preview: bool
    test: TestRef
    external_id: str | None = None
    completion_code: str | None = None
    finished: bool = False  # finished_at is set
    # (trials, answered trials) when read with the participant (:func:`participant_ref`)
    trial_counts: tuple[int, int] | None = None


_PARTICIPANT_COLUMNS = (
    Participant.id, Participant.token, Participant.language, Participant.stage,
    Participant.status, Participant.excluded, Participant.is_preview,
    Participant.external_id, Participant.completion_code,
    Participant.finished_at.is_not(None).label("finished"),
    Test.id.label("test_id"), Test.public_id, Test.name, Test.kind,
    Test.status.label("test_status"))
_COUNTED = aliased(Trial)
_PARTICIPANT = (
    select(*_PARTICIPANT_COLUMNS,
           *(select(func.count(column)).where(_COUNTED.participant_id == Participant.id)
             .correlate_except(_COUNTED).scalar_subquery().label(name)
             for column, name in ((_COUNTED.id, "trial_total"),
                                  (_COUNTED.completed_at, "trial_done"))))
    .join(Test, Test.id == Participant.test_id)
    .where(Participant.token == bindparam("token"))
)

_TRIAL_COLUMNS = (Trial.id, Trial.position, Trial.kind, Trial.item_id, Trial.flipped,
                  Trial.started_at, Trial.completed_at)
_TRIALS = (
    select(*_TRIAL_COLUMNS)
    .where(Trial.participant_id == bindparam("participant_id")).order_by(Trial.position)
)

_TRIAL_COUNTS = (
    select(func.count(Trial.id), func.count(Trial.completed_at))
    .where(Trial.participant_id == bindparam("participant_id"))
)

_FIRST_OPEN = (
    select(func.min(Trial.position))
    .where(Trial.participant_id == bindparam("participant_id"), Trial.completed_at.is_(None))
)

_STIMULUS_COLUMNS = (TrialStimulus.trial_id, TrialStimulus.position, TrialStimulus.token,
                     TrialStimulus.stimulus_id)
# One statement for one trial and one for two (an answer reads its trial's and the
# next one's): fixed parameters, where an expanding IN list would be rendered anew on
# every execution.
_STIMULI_OF_TRIAL = (
    select(*_STIMULUS_COLUMNS).where(TrialStimulus.trial_id == bindparam("t1"))
    .order_by(TrialStimulus.position)
)
_STIMULI_OF_TWO_TRIALS = (
    select(*_STIMULUS_COLUMNS)
    .where(TrialStimulus.trial_id.in_([bindparam("t1"), bindparam("t2")]))
    .order_by(TrialStimulus.trial_id, TrialStimulus.position)
)
_STIMULI_OF_TRIALS = (
    select(*_STIMULUS_COLUMNS)
    .where(TrialStimulus.trial_id.in_(bindparam("trial_ids", expanding=True)))
    .order_by(TrialStimulus.trial_id, TrialStimulus.position)
)

# An answer's read, in one statement: the participant with its test, each of its
# trials, and the stimuli of the trial answered (at ``position``) and of the trial
# that follows it (the first open one other than it, :func:`journey.trial_after`),
# one row per trial and stimulus.
_FOLLOWING = aliased(Trial)
_SHOWN = or_(  # the trial answered, or the first open one after it
    Trial.position == bindparam("position"),
    Trial.position == (select(func.min(_FOLLOWING.position))
                       .where(_FOLLOWING.participant_id == Participant.id,
                              _FOLLOWING.completed_at.is_(None),
                              _FOLLOWING.position != bindparam("position"))
                       .correlate_except(_FOLLOWING).scalar_subquery()))


def _answer_statement(lateral: bool) -> Select[Any]:
    """The answer's read. With ``lateral`` (PostgreSQL), the stimuli are read per trial
    by a LATERAL subquery that the planner cannot merge into the join (``OFFSET 0``),
    so always through the index on their trial: with the join in the open, a planner
    without statistics yet (a new database filling fast) scanned every trial's
    stimuli and hashed them. SQLite has no LATERAL and joins through indexes anyway.
    """
    stimuli: Any = TrialStimulus.__table__
    condition: Any = and_(TrialStimulus.trial_id == Trial.id, _SHOWN)
    if lateral:
        stimuli = (select(*_STIMULUS_COLUMNS[1:]).where(condition)
                   .offset(literal_column("0")).lateral("stimulus"))
        condition = true()
    return (
        select(*_PARTICIPANT_COLUMNS,
               *(c.label(f"trial_{c.key}") for c in _TRIAL_COLUMNS),
               *(stimuli.c[c.key].label(f"stimulus_{c.key}") for c in _STIMULUS_COLUMNS[1:]))
        .join(Test, Test.id == Participant.test_id)
        .outerjoin(Trial, Trial.participant_id == Participant.id)
        .outerjoin(stimuli, condition)
        .where(Participant.token == bindparam("token"))
        .order_by(Trial.position, stimuli.c.position)
    )


TrialRow = namedtuple("TrialRow", [c.key for c in _TRIAL_COLUMNS])  # type: ignore[misc]
StimulusRow = namedtuple("StimulusRow", [c.key for c in _STIMULUS_COLUMNS])  # type: ignore[misc]

_MEDIA = (
    select(Stimulus.path, Stimulus.content_hash, Participant.token)
    .join(TrialStimulus, TrialStimulus.stimulus_id == Stimulus.id)
    .join(Trial, Trial.id == TrialStimulus.trial_id)
    .join(Participant, Participant.id == Trial.participant_id)
    .where(TrialStimulus.token == bindparam("token"))
)


# Run on the DB-API cursor (see services/rawread.py): every participant request reads
# some of these.
_RAW_PARTICIPANT = RawSelect(_PARTICIPANT)
_RAW_TRIALS = RawSelect(_TRIALS)
_RAW_TRIAL_COUNTS = RawSelect(_TRIAL_COUNTS)
_RAW_FIRST_OPEN = RawSelect(_FIRST_OPEN)
_RAW_STIMULI_OF_TRIAL = RawSelect(_STIMULI_OF_TRIAL)
_RAW_STIMULI_OF_TWO_TRIALS = RawSelect(_STIMULI_OF_TWO_TRIALS)
_RAW_MEDIA = RawSelect(_MEDIA)
_RAW_ANSWER_LATERAL = RawSelect(_answer_statement(lateral=True))
_RAW_ANSWER_JOINED = RawSelect(_answer_statement(lateral=False))


# The connection of a block that runs without the ORM session (bound_connection).
_BOUND: ContextVar[Connection | None] = ContextVar("mosplatform_bound_connection",
                                                   default=None)


def connection() -> Connection:
    """The connection the participant services run on: the ORM session's (Core
    statements on it share its transaction), or the one :func:`bound_connection`
    gave the current block."""
    bound = _BOUND.get()
    return bound if bound is not None else db.session.connection()


@contextlib.contextmanager
def bound_connection(engine: Engine, keep: bool = False) -> Iterator[Connection]:
    """Run the participant services of this block on a pooled connection of their own.

    For a request that needs nothing of the ORM session but its connection (the
    answer's fast path, :mod:`mosplatform.api.fast`): the session's transaction
    bookkeeping, its commit and its teardown cost that request about as much as its
    statements. Inside the block :func:`connection`, :func:`commit` and
    :func:`rollback` act on this connection; on PostgreSQL it reads without a
    transaction until its first write (:func:`mosplatform.database.defer_connection`).
    Leaving the block returns the connection to the pool, which rolls back whatever
    was not committed; with ``keep`` the thread keeps the connection for its next
    block instead (:func:`mosplatform.database.kept_connection`), rolled back just
    the same.

    Parameters
    ----------
    engine : Engine
        The application's engine.
    keep : bool
        Use the connection this thread keeps (the fast paths) instead of one
        checked out of the pool for this block.

    Yields
    ------
    Connection
    """
    with (kept_connection(engine) if keep else engine.connect()) as conn:
        if not keep:  # a kept connection is deferred already
            defer_connection(conn)
        token = _BOUND.set(conn)
        try:
            yield conn
        finally:
            _BOUND.reset(token)


def commit() -> None:
    """Commit the work of the participant services (see :func:`connection`).

    A bound connection then reads without a transaction again: a read after the
    commit would otherwise open one that only the pool's ROLLBACK ends, and on
    PostgreSQL that ROLLBACK also drops every statement psycopg had prepared on the
    connection (see :mod:`mosplatform.database`).
    """
    _end("commit")


def rollback() -> None:
    """Roll back the work of the participant services (see :func:`connection`);
    a bound connection then reads without a transaction again."""
    _end("rollback")


def _end(how: str) -> None:
    bound = _BOUND.get()
    if bound is None:
        getattr(db.session, how)()
    elif bound.in_transaction():
        getattr(bound, how)()
        defer_connection(bound)


def participant_ref(token: str) -> ParticipantRef | None:
    """The participant of ``token`` and its test, with how many trials it has and has
    answered (read by the same statement), or None."""
    row = _RAW_PARTICIPANT.first(connection(), {"token": token})
    return None if row is None else _ref(row)


@dataclass(frozen=True)
class AnswerRead:
    """What an answer reads before it writes (:func:`answer_read`)."""

    participant: ParticipantRef
    trials: list[Any]  # rows as :func:`trials_of` gives them
    stimuli: dict[int, list[Any]]  # by trial id, rows as :func:`stimuli_of_trials` gives


def answer_read(token: str, position: int) -> AnswerRead | None:
    """The participant of ``token`` with its test and trials, and the stimuli of the
    trial at ``position`` and of the first open trial after it, in one statement; or
    None when no participant has that token.

    An answer needs all of these (:func:`mosplatform.services.ratings.submit_trial`);
    read one after another they took three round trips to the database.
    """
    conn = connection()
    statement = _RAW_ANSWER_LATERAL if conn.dialect.name == "postgresql" else _RAW_ANSWER_JOINED
    rows = statement.rows(conn, {"token": token, "position": position})
    if not rows:
        return None
    trials: list[Any] = []
    stimuli: dict[int, list[Any]] = {}
    for row in rows:
        if row.trial_id is None:  # a participant without trials
            break
        if not trials or trials[-1].id != row.trial_id:
            trials.append(TrialRow(row.trial_id, row.trial_position, row.trial_kind,
                                   row.trial_item_id, row.trial_flipped,
                                   row.trial_started_at, row.trial_completed_at))
        if row.stimulus_position is not None:
            stimuli.setdefault(row.trial_id, []).append(StimulusRow(
                row.trial_id, row.stimulus_position, row.stimulus_token,
                row.stimulus_stimulus_id))
    return AnswerRead(_ref(rows[0]), trials, stimuli)


def _ref(row: Any) -> ParticipantRef:
    return ParticipantRef(
        id=row.id, token=row.token, language=row.language, stage=row.stage,
        status=row.status, excluded=bool(row.excluded), is_preview=bool(row.is_preview),
        test=TestRef(id=row.test_id, public_id=row.public_id, name=row.name, kind=row.kind,
                     status=row.test_status),
        external_id=row.external_id, completion_code=row.completion_code,
        finished=bool(row.finished),
        trial_counts=(int(row.trial_total), int(row.trial_done))
        if hasattr(row, "trial_total") else None)


def trials_of(participant_id: int) -> list[Any]:
    """Every trial of a participant in order, as rows (id, position, kind, item_id,
    flipped, started_at, completed_at)."""
    return _RAW_TRIALS.rows(connection(), {"participant_id": participant_id})


def trial_counts(participant_id: int) -> tuple[int, int]:
    """How many trials a participant has, and how many of them are answered."""
    total, done = _RAW_TRIAL_COUNTS.rows(connection(), {"participant_id": participant_id})[0]
    return int(total), int(done)


def first_open_position(participant_id: int) -> int | None:
    """The position of a participant's first trial without an answer; None when every
    trial is answered."""
    (position,) = _RAW_FIRST_OPEN.rows(connection(), {"participant_id": participant_id})[0]
    return None if position is None else int(position)


def stimuli_of_trials(trial_ids: list[int]) -> dict[int, list[Any]]:
    """The stimuli of several trials in page order, as rows (trial_id, position, token,
    stimulus_id) by trial id, in one query."""
    out: dict[int, list[Any]] = {tid: [] for tid in trial_ids}
    ids = list(out)
    rows: Any
    if len(ids) == 1:
        rows = _RAW_STIMULI_OF_TRIAL.rows(connection(), {"t1": ids[0]})
    elif len(ids) == 2:
        rows = _RAW_STIMULI_OF_TWO_TRIALS.rows(connection(), {"t1": ids[0], "t2": ids[1]})
    else:
        rows = connection().execute(_STIMULI_OF_TRIALS, {"trial_ids": trial_ids})
    for row in rows:
        out[row.trial_id].append(row)
    return out


def trial_stimuli(trial_id: int) -> list[Any]:
    """A trial's stimuli in page order, as rows (trial_id, position, token, stimulus_id)."""
    return stimuli_of_trials([trial_id])[trial_id]


def media_row(token: str, engine: Engine | None = None, *, keep: bool = False) -> Any | None:
    """(path, content_hash, owner token) of the stimulus behind a media token, or None.

    Read on a connection of its own, outside the ORM session: the audio request
    reads this one row and writes nothing, and setting up the session's transaction
    (and closing it at the end of the request) cost more than the query itself. On
    PostgreSQL the read runs without a transaction
    (:func:`mosplatform.database.defer_connection`): BEGIN and ROLLBACK were two of
    the request's four statements. (SQLite's driver opens no transaction for a read.)
    ``engine`` defaults to the application's (which needs an application context);
    ``keep`` reads on the connection the thread keeps (:func:`bound_connection`).
    """
    engine = engine if engine is not None else db.engine
    with bound_connection(engine, keep=keep) as conn:
        return _RAW_MEDIA.first(conn, {"token": token})
