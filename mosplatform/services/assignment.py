"""Participant arrival and balanced, reproducible trial assignment.

Each participant gets a stored random seed; the trial order, the per-trial condition
order and (for single-stimulus kinds) the condition drawn for each item all derive
from it, so every page a participant saw can be rebuilt. When participants rate a
subset, the least-filled (item, condition) cells are chosen first, counting only
participants who are not excluded and not previews; the counts are kept per cell
(:class:`~mosplatform.models.AssignedVotes`) so that an arrival reads one row per
cell however many participants came before. Concurrent arrivals are serialised per
test: PostgreSQL locks the test row (``SELECT ... FOR UPDATE``); SQLite takes its
single write lock by inserting the participant before counting.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached

from ..extensions import db
from ..models import (
    AssignedVotes,
    ConditionRole,
    ItemKind,
    Participant,
    Test,
    TestKind,
    TestStatus,
    Trial,
    TrialStimulus,
)
from . import lookup
from .rawread import (
    RawWrite,
    column_list,
    column_names,
    driver_integrity_errors,
    json_rows,
    json_rows_source,
)
from .testinfo import ItemRef, StimulusRef, test_info

RATED_ROLES = {r.value for r in ConditionRole} - {ConditionRole.reference.value}


class AssignmentError(Exception):
    """The test cannot take this participant (closed, paused, misconfigured)."""


@dataclass(frozen=True)
class Arrival:
    external_id: str | None = None
    study_id: str | None = None
    session_id: str | None = None
    language: str = "en"
    user_agent: str | None = None
    is_preview: bool = False


def new_token() -> str:
    """An unguessable URL-safe token (192 bits)."""
    return secrets.token_urlsafe(24)


def find_participant(test: Test, external_id: str | None) -> Participant | None:
    """The participant of ``test`` who arrived before with ``external_id``, if any."""
    if not external_id:
        return None
    return db.session.execute(
        _BY_EXTERNAL_ID, {"test_id": test.id, "external_id": external_id}).scalar_one_or_none()


# Prebuilt statements of every arrival.
_BY_EXTERNAL_ID = select(Participant).where(
    Participant.test_id == bindparam("test_id"),
    Participant.external_id == bindparam("external_id"),
    Participant.is_preview.is_(False),
)
_KEPT_VOTES = select(AssignedVotes.item_id, AssignedVotes.stimulus_id, AssignedVotes.votes
                     ).where(AssignedVotes.test_id == bindparam("test_id"))


def _lock_test(test_id: int) -> None:
    """PostgreSQL: hold the test row's lock until commit (arrivals take turns)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(Test.id).where(Test.id == test_id).with_for_update())


def admit_participant(test: Test, arrival: Arrival) -> Participant:
    """Create a participant and their trials in one transaction.

    Parameters
    ----------
    test : Test
        An open test (or any test for a preview).
    arrival : Arrival
        External ids and language from the link.

    Returns
    -------
    Participant
        Committed, with trials assigned; or, when a participant of this test arrived
        before with the same external id (the unique id refuses a second one), that
        participant.

    Raises
    ------
    AssignmentError
        If the test is not open (previews excepted).

    Notes
    -----
    On PostgreSQL, once the test is locked and its kept votes read, the participant,
    its trials and their stimuli and the votes are written by one statement
    (:class:`_ArrivalStatement`): an arrival holds the test's lock, so every
    statement it saves shortens the turn of every arrival queued behind it.
    """
    if not arrival.is_preview and test.status != TestStatus.open.value:
        raise AssignmentError(f"this test is {test.status}; it is not taking participants")
    values = {
        "test_id": test.id, "token": new_token(), "external_id": arrival.external_id,
        "study_id": arrival.study_id, "session_id": arrival.session_id,
        "language": arrival.language, "user_agent": (arrival.user_agent or "")[:500] or None,
        "is_preview": arrival.is_preview, "seed": secrets.randbits(31),
    }
    conn = lookup.connection()
    try:
        if conn.dialect.name == "postgresql":
            return _admit_in_one_statement(test, conn, values)
        _lock_test(test.id)
        participant = Participant(**values)
        db.session.add(participant)
        db.session.flush()  # SQLite: takes the write lock before we count
        assign_trials(test, participant)
    except (IntegrityError, *driver_integrity_errors(conn)):
        # The same crowd worker arrived twice at once: the first arrival won.
        db.session.rollback()
        existing = find_participant(test, arrival.external_id)
        if existing is None:
            raise
        return existing
    db.session.commit()
    return participant


def _admit_in_one_statement(test: Test, conn: Connection,
                            values: dict[str, Any]) -> Participant:
    """PostgreSQL's arrival: lock, read the kept votes, write everything in one
    statement, commit; the participant comes back as a persistent ORM object
    without being read again."""
    values = {**column_defaults(Participant.__table__, values), **values}
    _lock_test(test.id)
    kept = _kept_votes(test.id)
    plan = plan_trials(test, values["seed"], values["is_preview"], kept)
    dbapi = conn.connection.dbapi_connection
    with dbapi.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(*_ARRIVAL.prepare(conn.dialect, values, plan, kept, test.id))
        participant_id, stored = cursor.fetchone()
    if stored != len(plan.stimuli):
        raise RuntimeError(f"arrival stored {stored} of {len(plan.stimuli)} trial stimuli")
    db.session.commit()
    participant = Participant(id=participant_id, **values)
    make_transient_to_detached(participant)  # as if loaded: no SELECT to get it back
    db.session.add(participant)
    return participant


def column_defaults(table: Table, given: dict[str, Any]) -> dict[str, Any]:
    """The values a Core INSERT of ``given`` would store in ``table``'s other columns:
    each column's Python default (called where it is a function), None where it has
    none. Primary keys and columns with a server default are left to the database.
    """
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.key in given or column.primary_key or column.server_default is not None:
            continue
        default: Any = column.default
        if default is None:
            out[column.key] = None
        elif default.is_scalar:
            out[column.key] = default.arg
        elif default.is_callable:
            out[column.key] = default.arg(None)  # wrapped by SQLAlchemy: takes a context
    return out


class _ArrivalStatement:
    """PostgreSQL: an arrival's writes as one statement.

    The participant's INSERT is a data-modifying ``WITH`` query that returns its id;
    the trials are inserted from one JSON parameter joined to it, returning their ids
    and positions; the trial stimuli from another, joined to those on the trial's
    position (carried in the ``trial_id`` field); the kept votes of cells that have a
    row are raised by one UPDATE and the new cells inserted. A failing part fails the
    whole statement, which then changes nothing. The statement answers the
    participant's id and how many trial stimuli it stored. Built once per dialect.
    """

    def __init__(self) -> None:
        table = Participant.__table__
        self._keys = [c.key for c in table.columns if not c.primary_key]
        self._participant = RawWrite(table.insert().values(
            {k: bindparam(k) for k in self._keys}).returning(table.c.id))
        self._sql: dict[str, str] = {}
        self._lock = threading.Lock()

    def prepare(self, dialect: Dialect, values: dict[str, Any], plan: TrialPlan,
                kept: Counter[tuple[int, int]], test_id: int) -> tuple[str, dict[str, Any]]:
        """The SQL and its parameters (psycopg's named style)."""
        participant_sql, (params,) = self._participant.prepare(dialect, [values])
        sql = self._sql.get(dialect.driver)
        if sql is None:
            sql = self._build(dialect, participant_sql)
            with self._lock:
                self._sql[dialect.driver] = sql
        votes = [{"item_id": i, "stimulus_id": s, "votes": n, "test_id": test_id}
                 for (i, s), n in plan.votes.items() if n]
        trial, stimulus, table = Trial.__table__, TrialStimulus.__table__, AssignedVotes.__table__
        params["trials"] = json_rows(plan.trials, _TRIAL_KEYS, column_names(trial, _TRIAL_KEYS))
        params["stimuli"] = json_rows(plan.stimuli, ["trial", *_STIMULUS_KEYS[1:]],
                                      column_names(stimulus, _STIMULUS_KEYS))
        params["votes"] = json_rows(
            [v for v in votes if (v["item_id"], v["stimulus_id"]) in kept], _VOTE_KEYS[:3],
            column_names(table, _VOTE_KEYS[:3]))
        params["new_votes"] = json_rows(
            [v for v in votes if (v["item_id"], v["stimulus_id"]) not in kept], _VOTE_KEYS,
            column_names(table, _VOTE_KEYS))
        return sql, params

    @staticmethod
    def _build(dialect: Dialect, participant_sql: str) -> str:
        quote = dialect.identifier_preparer
        trial, stimulus, votes = (Trial.__table__, TrialStimulus.__table__,
                                  AssignedVotes.__table__)
        count = quote.quote(votes.c.votes.name)
        return (
            f"WITH p AS ({participant_sql}), "
            f"t AS (INSERT INTO {quote.format_table(trial)} "
            f"({column_list(dialect, trial, ['participant_id', *_TRIAL_KEYS])}) "
            f"SELECT p.id, {column_list(dialect, trial, _TRIAL_KEYS, 'x.')} FROM p, "
            f"{json_rows_source(dialect, trial, _TRIAL_KEYS, 'trials')} "
            f"RETURNING {column_list(dialect, trial, ['id', 'position'])}), "
            f"s AS (INSERT INTO {quote.format_table(stimulus)} "
            f"({column_list(dialect, stimulus, _STIMULUS_KEYS)}) "
            f"SELECT t.id, {column_list(dialect, stimulus, _STIMULUS_KEYS[1:], 'x.')} "
            f"FROM t JOIN {json_rows_source(dialect, stimulus, _STIMULUS_KEYS, 'stimuli')} "
            f"ON x.{quote.quote(stimulus.c.trial_id.name)} = t.position RETURNING 1), "
            f"v AS (UPDATE {quote.format_table(votes)} AS a SET {count} = a.{count} + x.{count} "
            f"FROM {json_rows_source(dialect, votes, _VOTE_KEYS[:3], 'votes')} WHERE "
            + " AND ".join(f"a.{name} = x.{name}" for name in (
                quote.quote(n) for n in column_names(votes, _VOTE_KEYS[:2]))) + "), "
            f"n AS (INSERT INTO {quote.format_table(votes)} "
            f"({column_list(dialect, votes, _VOTE_KEYS)}) "
            f"SELECT {column_list(dialect, votes, _VOTE_KEYS, 'x.')} FROM "
            f"{json_rows_source(dialect, votes, _VOTE_KEYS, 'new_votes')}) "
            "SELECT p.id, (SELECT count(*) FROM s) FROM p"
        )


_TRIAL_KEYS = ["item_id", "position", "kind", "seed", "flipped"]
# The stimuli's JSON rows carry their trial's position in the trial_id field.
_STIMULUS_KEYS = ["trial_id", "stimulus_id", "position", "token"]
_VOTE_KEYS = ["item_id", "stimulus_id", "votes", "test_id"]
_ARRIVAL = _ArrivalStatement()


def count_assigned_votes(test: Test) -> Counter[tuple[int, int]]:
    """Votes per (item id, stimulus id) counted from the trials themselves.

    The reference for the kept counts (:class:`AssignedVotes`): regular trials, rated
    positions, participants who are neither previews nor excluded. It reads every
    trial of the test, so assignment uses the kept counts instead.
    """
    rows = db.session.execute(
        select(Trial.item_id, TrialStimulus.stimulus_id, func.count())
        .join(TrialStimulus, TrialStimulus.trial_id == Trial.id)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(
            Participant.test_id == test.id,
            Participant.excluded.is_(False),
            Participant.is_preview.is_(False),
            Trial.kind == ItemKind.regular.value,
            TrialStimulus.position >= 0,
        )
        .group_by(Trial.item_id, TrialStimulus.stimulus_id)
    ).all()
    return Counter({(i, s): n for i, s, n in rows})


def _kept_votes(test_id: int) -> Counter[tuple[int, int]]:
    """The kept votes per (item id, stimulus id) of a test: one row per cell."""
    rows = lookup.connection().execute(_KEPT_VOTES, {"test_id": test_id})
    return Counter({(i, s): n for i, s, n in rows})


_ADD_VOTES = (AssignedVotes.__table__.update()
              .where(AssignedVotes.__table__.c.item_id == bindparam("i"),
                     AssignedVotes.__table__.c.stimulus_id == bindparam("s"))
              .values(votes=AssignedVotes.__table__.c.votes + bindparam("n")))


def _add_votes(test_id: int, deltas: Counter[tuple[int, int]],
               kept: Counter[tuple[int, int]]) -> None:
    """Add ``deltas`` to the kept counts (``kept``: the cells that have a row)."""
    changes = [{"i": i, "s": s, "n": n} for (i, s), n in deltas.items() if n and (i, s) in kept]
    new = [{"item_id": i, "stimulus_id": s, "test_id": test_id, "votes": n}
           for (i, s), n in deltas.items() if n and (i, s) not in kept]
    conn = lookup.connection()
    if changes:
        conn.execute(_ADD_VOTES, changes)
    if new:
        conn.execute(AssignedVotes.__table__.insert(), new)


def change_votes(participant: Participant, sign: int) -> None:
    """Remove (``sign=-1``, on exclusion) or give back (``+1``) a participant's votes.

    Takes the test's assignment lock, like an arrival; the caller commits.
    """
    if participant.is_preview:
        return
    _lock_test(participant.test_id)
    cells = db.session.execute(
        select(Trial.item_id, TrialStimulus.stimulus_id)
        .join(TrialStimulus, TrialStimulus.trial_id == Trial.id)
        .where(Trial.participant_id == participant.id, Trial.kind == ItemKind.regular.value,
               TrialStimulus.position >= 0)).all()
    deltas = Counter({cell: sign * n for cell, n in Counter(map(tuple, cells)).items()})
    _add_votes(participant.test_id, deltas, _kept_votes(participant.test_id))


_INSERT_TRIALS = Trial.__table__.insert().returning(Trial.__table__.c.id,
                                                    sort_by_parameter_order=True)


@dataclass(frozen=True)
class TrialPlan:
    """A participant's trials, chosen but not yet stored (:func:`plan_trials`).

    Attributes
    ----------
    trials : list of dict
        Trial rows without ``participant_id`` (item_id, position, kind, seed,
        flipped), ``position`` counting from 0 in list order.
    stimuli : list of dict
        Trial stimulus rows with ``trial`` (the trial's position) instead of
        ``trial_id`` (stimulus_id, position, token; position -1 for a reference).
    votes : Counter
        Votes to add per (item id, stimulus id) (none for a preview).
    """

    trials: list[dict[str, Any]]
    stimuli: list[dict[str, Any]]
    votes: Counter[tuple[int, int]]


def assign_trials(test: Test, participant: Participant) -> list[int]:
    """Choose and store this participant's trials (:func:`plan_trials`) and add its
    votes to the kept counts.

    Parameters
    ----------
    test : Test
        The test, already locked for assignment.
    participant : Participant
        A flushed participant with its seed.

    Returns
    -------
    list of int
        The new trials' ids, in presentation order.
    """
    kept = _kept_votes(test.id)
    plan = plan_trials(test, participant.seed, participant.is_preview, kept)
    # Plain inserts on the session's connection (no ORM objects: an arrival writes a
    # few dozen rows); the trials' ids come back in the order of the rows.
    conn = lookup.connection()
    trial_ids = list(conn.execute(_INSERT_TRIALS, [
        {**row, "participant_id": participant.id} for row in plan.trials]).scalars())
    conn.execute(TrialStimulus.__table__.insert(), [
        {"trial_id": trial_ids[row["trial"]], "stimulus_id": row["stimulus_id"],
         "position": row["position"], "token": row["token"]} for row in plan.stimuli])
    _add_votes(test.id, plan.votes, kept)
    return trial_ids


def plan_trials(test: Test, seed: int, is_preview: bool,
                kept: Counter[tuple[int, int]]) -> TrialPlan:
    """Choose a participant's trials (training, regular, quality control).

    Parameters
    ----------
    test : Test
        The test, already locked for assignment.
    seed : int
        The participant's seed: the same seed and counts give the same trials.
    is_preview : bool
        A preview's trials add no votes.
    kept : Counter
        The kept votes per (item id, stimulus id), read under the lock.

    Returns
    -------
    TrialPlan

    Notes
    -----
    Items are taken least-filled first (ties broken by the participant's seed). For
    single-stimulus kinds (ACR, DCR, CCR) each trial presents one condition of its
    item: the least-voted condition of that item, preferring conditions this
    participant has seen least, so a participant hears every condition about equally
    often. MUSHRA trials present every rated condition of the item; AB trials the
    least-voted pair.
    """
    rng = np.random.default_rng(seed)
    info = test_info(test)  # conditions, items and stimuli never change: read once
    design = info.definition.get("design", {})
    kind = test.kind
    structure = info.structure()
    rated = [c for c in structure.conditions if c.role in RATED_ROLES]
    reference = next((c for c in structure.conditions
                      if c.role == ConditionRole.reference.value), None)
    by_item = structure.by_item
    regular = [i for i in structure.items if i.kind == ItemKind.regular.value]
    qc_items = [i for i in structure.items
                if i.kind in (ItemKind.gold.value, ItemKind.trap.value)]
    if not regular or not rated:
        raise AssignmentError("the test has no items or no rated conditions")
    counts = Counter(kept)

    n_trials = design.get("trials_per_participant") or len(regular)
    n_trials = min(n_trials, len(regular))
    tiebreak = rng.random(len(regular))
    item_load = [
        sum(counts[(it.id, s.id)] for s in by_item.get(it.id, {}).values()) for it in regular
    ]
    order = sorted(range(len(regular)), key=lambda k: (item_load[k], tiebreak[k]))
    chosen = [regular[k] for k in order[:n_trials]]
    chosen = [chosen[k] for k in rng.permutation(len(chosen))]

    # Trials are planned in memory, then written with one flush and one bulk insert,
    # so the section that holds the assignment lock stays short.
    planned: list[tuple[ItemRef, list[StimulusRef], str, StimulusRef | None, bool]] = []

    def rated_stimuli(item: ItemRef) -> list[StimulusRef]:
        stims = by_item.get(item.id, {})
        return [stims[c.id] for c in rated if c.id in stims]

    def ref_stimulus(item: ItemRef) -> StimulusRef | None:
        if reference is None:
            return None
        return by_item.get(item.id, {}).get(reference.id)

    # Training: all conditions of one item; ratings are discarded (BS.1534-3).
    training = design.get("training", True)
    if training:
        training_item = next((i for i in structure.items if i.kind == ItemKind.training.value),
                             regular[int(rng.integers(len(regular)))])
        stims = rated_stimuli(training_item)
        stims = [stims[k] for k in rng.permutation(len(stims))]
        planned.append((training_item, stims, ItemKind.training.value,
                        ref_stimulus(training_item), False))

    seen_conditions: Counter[int] = Counter()
    for item in chosen:
        stims = rated_stimuli(item)
        if not stims:
            continue
        if kind == TestKind.mushra.value:
            max_n = int(design.get("max_conditions_per_trial", 12))
            stims = [stims[k] for k in rng.permutation(len(stims))][:max_n]
            planned.append((item, stims, ItemKind.regular.value, ref_stimulus(item), False))
        elif kind == TestKind.ab.value:
            pair = _least_filled_pair(stims, counts, item, rng)
            counts.update({(item.id, s.id): 1 for s in pair})
            planned.append((item, pair, ItemKind.regular.value, ref_stimulus(item), False))
        else:
            jitter = rng.random(len(stims))
            k = min(range(len(stims)), key=lambda j: (
                counts[(item.id, stims[j].id)],
                seen_conditions[stims[j].condition_id],
                jitter[j],
            ))
            stim = stims[k]
            counts[(item.id, stim.id)] += 1
            seen_conditions[stim.condition_id] += 1
            ref = ref_stimulus(item)
            if kind == TestKind.ccr.value:
                if ref is None:
                    raise AssignmentError(f"item {item.key} has no reference for CCR")
                # Half the pairs put the processed signal first (P.800 Annex E).
                flipped = bool(rng.integers(2))
                pair = [stim, ref] if flipped else [ref, stim]
                planned.append((item, pair, ItemKind.regular.value, None, flipped))
            else:
                planned.append((item, [stim], ItemKind.regular.value,
                                ref if kind == TestKind.dcr.value else None, False))

    # Quality-control clips at random positions after the first regular trial.
    head, body = planned[:int(training)], planned[int(training):]
    for qc in qc_items:
        stim = by_item.get(qc.id, {}).get(-1)
        if stim is None:
            continue
        slot = int(rng.integers(1, len(body) + 1)) if body else 0
        body.insert(slot, (qc, [stim], qc.kind, None, False))
    planned = head + body

    trials = [{"item_id": item.id, "position": pos, "kind": kind_,
               "seed": int(rng.integers(0, 2**31 - 1)), "flipped": flipped}
              for pos, (item, _, kind_, _, flipped) in enumerate(planned)]
    stimuli = []
    for pos, (_, stims, _, ref, _) in enumerate(planned):
        stimuli += [{"trial": pos, "stimulus_id": st.id, "position": k, "token": new_token()}
                    for k, st in enumerate(stims)]
        if ref is not None:
            stimuli.append({"trial": pos, "stimulus_id": ref.id, "position": -1,
                            "token": new_token()})
    votes: Counter[tuple[int, int]] = Counter()
    if not is_preview:
        for item, stims, kind_, _, _ in planned:
            if kind_ == ItemKind.regular.value:
                votes.update((item.id, st.id) for st in stims)
    return TrialPlan(trials, stimuli, votes)


def _least_filled_pair(stims: list[StimulusRef], counts: Counter[tuple[int, int]],
                       item: ItemRef, rng: np.random.Generator) -> list[StimulusRef]:
    pairs = [(a, b) for i, a in enumerate(stims) for b in stims[i + 1:]]
    jitter = rng.random(len(pairs))
    k = min(range(len(pairs)), key=lambda j: (
        counts[(item.id, pairs[j][0].id)] + counts[(item.id, pairs[j][1].id)], jitter[j]))
    pair = list(pairs[k])
    if rng.integers(2):
        pair.reverse()
    return pair
