"""Lean reads for the participant's hot paths (trial page, ratings, audio).

A participant answers a trial every few seconds and each answer costs a handful of
requests, so these paths read plain rows with prebuilt Core statements on the
session's connection (same transaction as the ORM session) instead of building ORM
queries and objects per request: measured with ``bench/load/endpoint_cost.py``, a
Core row costs about a quarter of an ORM entity load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection, Engine

from ..database import defer_connection
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


_PARTICIPANT = (
    select(Participant.id, Participant.token, Participant.language, Participant.stage,
           Participant.status, Participant.excluded, Participant.is_preview,
           Participant.external_id, Participant.completion_code,
           Participant.finished_at.is_not(None).label("finished"),
           Test.id.label("test_id"), Test.public_id, Test.name, Test.kind,
           Test.status.label("test_status"))
    .join(Test, Test.id == Participant.test_id)
    .where(Participant.token == bindparam("token"))
)

_TRIALS = (
    select(Trial.id, Trial.position, Trial.kind, Trial.item_id, Trial.flipped,
           Trial.started_at, Trial.completed_at)
    .where(Trial.participant_id == bindparam("participant_id")).order_by(Trial.position)
)

_TRIAL_COUNTS = (
    select(func.count(Trial.id), func.count(Trial.completed_at))
    .where(Trial.participant_id == bindparam("participant_id"))
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
_RAW_STIMULI_OF_TRIAL = RawSelect(_STIMULI_OF_TRIAL)
_RAW_STIMULI_OF_TWO_TRIALS = RawSelect(_STIMULI_OF_TWO_TRIALS)
_RAW_MEDIA = RawSelect(_MEDIA)


def connection() -> Connection:
    """The ORM session's connection: Core statements on it share its transaction."""
    return db.session.connection()


def participant_ref(token: str) -> ParticipantRef | None:
    """The participant of ``token`` and its test, or None."""
    row = _RAW_PARTICIPANT.first(connection(), {"token": token})
    if row is None:
        return None
    return ParticipantRef(
        id=row.id, token=row.token, language=row.language, stage=row.stage,
        status=row.status, excluded=bool(row.excluded), is_preview=bool(row.is_preview),
        test=TestRef(id=row.test_id, public_id=row.public_id, name=row.name, kind=row.kind,
                     status=row.test_status),
        external_id=row.external_id, completion_code=row.completion_code,
        finished=bool(row.finished))


def trials_of(participant_id: int) -> list[Any]:
    """Every trial of a participant in order, as rows (id, position, kind, item_id,
    flipped, started_at, completed_at)."""
    return _RAW_TRIALS.rows(connection(), {"participant_id": participant_id})


def trial_counts(participant_id: int) -> tuple[int, int]:
    """How many trials a participant has, and how many of them are answered."""
    total, done = _RAW_TRIAL_COUNTS.rows(connection(), {"participant_id": participant_id})[0]
    return int(total), int(done)


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


def media_row(token: str, engine: Engine | None = None) -> Any | None:
    """(path, content_hash, owner token) of the stimulus behind a media token, or None.

    Read on a pooled connection of its own, outside the ORM session: the audio request
    reads this one row and writes nothing, and setting up the session's transaction
    (and closing it at the end of the request) cost more than the query itself. On
    PostgreSQL the read runs without a transaction
    (:func:`mosplatform.database.defer_connection`): BEGIN and ROLLBACK were two of
    the request's four statements. (SQLite's driver opens no transaction for a read.)
    ``engine`` defaults to the application's (which needs an application context).
    """
    engine = engine if engine is not None else db.engine
    with engine.connect() as conn:
        defer_connection(conn)
        return _RAW_MEDIA.first(conn, {"token": token})
