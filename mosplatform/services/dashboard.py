"""Live progress of a test for the researcher dashboard, as plain functions.

Everything here reads the database and knows nothing of the request. Preview
participants (an admin trying the test) never count. Votes are counted per
(item, condition) cell from stored ratings of participants who are not excluded,
on regular trials only (training grades are discarded, quality-control clips belong
to no condition); a participant who answers several questions about one stimulus
casts one vote for that cell.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select

from ..extensions import db
from ..models import (
    ConditionRole,
    Event,
    Item,
    ItemKind,
    Participant,
    ParticipantStatus,
    Rating,
    Stimulus,
    Test,
    Trial,
    TrialStimulus,
)

DEFAULT_TARGET_VOTES = 20


@dataclass
class ParticipantCounts:
    """Participants of a test by state (previews never counted).

    ``started`` is everyone who arrived; the other four partition them: excluded
    wins over any other state, then finished, returned, and in progress.
    """

    started: int = 0
    finished: int = 0
    excluded: int = 0
    returned: int = 0
    in_progress: int = 0


@dataclass
class VoteTable:
    """Votes per item x condition against the target of the design.

    ``votes[(item_id, condition_id)]`` counts stored votes and ``pending`` the trials
    assigned to participants still in progress; a cell absent from ``votes`` has no
    stimulus (the item lacks that condition).
    """

    target: int
    items: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    votes: dict[tuple[int, int], int] = field(default_factory=dict)
    pending: dict[tuple[int, int], int] = field(default_factory=dict)

    @property
    def cells(self) -> int:
        return len(self.votes)

    @property
    def total_votes(self) -> int:
        return sum(self.votes.values())

    @property
    def cells_complete(self) -> int:
        return sum(v >= self.target for v in self.votes.values())

    def fill_fraction(self) -> float:
        """Share of the target reached over all cells (each cell capped at the target)."""
        if not self.votes:
            return 0.0
        return sum(min(v, self.target) for v in self.votes.values()) / (self.cells * self.target)

    def condition_totals(self) -> dict[int, int]:
        out = {c["id"]: 0 for c in self.conditions}
        for (_, cid), v in self.votes.items():
            out[cid] += v
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form: ``cells[i][j]`` is ``{votes, pending}`` or ``None``."""
        rows = []
        for it in self.items:
            row: list[dict[str, int] | None] = []
            for c in self.conditions:
                key = (it["id"], c["id"])
                row.append({"votes": self.votes[key], "pending": self.pending.get(key, 0)}
                           if key in self.votes else None)
            rows.append(row)
        return {"target": self.target, "items": self.items, "conditions": self.conditions,
                "cells": rows, "total_votes": self.total_votes, "cells_total": self.cells,
                "cells_complete": self.cells_complete,
                "fill_fraction": round(self.fill_fraction(), 4)}


@dataclass
class ScreeningRate:
    """How many participants took a screening check and how many passed it."""

    check: str
    taken: int
    passed: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.taken if self.taken else None


@dataclass
class TrialTiming:
    """Median seconds from opening a trial page to submitting it, over ``n`` trials."""

    n: int
    median_s: float | None
    q1_s: float | None = None
    q3_s: float | None = None


def _real(stmt: Any) -> Any:
    return stmt.where(Participant.is_preview.is_(False))


def target_votes(test: Test) -> int:
    """``design.target_votes`` of the test definition (20 when absent)."""
    design = (test.definition or {}).get("design") or {}
    return int(design.get("target_votes") or DEFAULT_TARGET_VOTES)


def participant_counts(test: Test) -> ParticipantCounts:
    """Count the participants of ``test`` by state.

    Parameters
    ----------
    test : Test

    Returns
    -------
    ParticipantCounts
    """
    rows = db.session.execute(_real(
        select(Participant.status, Participant.excluded, Participant.finished_at.is_not(None),
               func.count())
        .where(Participant.test_id == test.id)
        .group_by(Participant.status, Participant.excluded, Participant.finished_at.is_not(None))
    )).all()
    counts = ParticipantCounts()
    for status, excluded, finished, n in rows:
        counts.started += n
        if excluded or status == ParticipantStatus.excluded.value:
            counts.excluded += n
        elif finished or status == ParticipantStatus.finished.value:
            counts.finished += n
        elif status == ParticipantStatus.returned.value:
            counts.returned += n
        else:
            counts.in_progress += n
    return counts


def vote_table(test: Test) -> VoteTable:
    """Votes and pending assignments per (regular item, rated condition).

    Parameters
    ----------
    test : Test

    Returns
    -------
    VoteTable
    """
    table = VoteTable(target=target_votes(test))
    items = [i for i in test.items if i.kind == ItemKind.regular.value]
    conditions = [c for c in test.conditions if c.role != ConditionRole.reference.value]
    table.items = [{"id": i.id, "key": i.key, "track": i.track, "source": i.source}
                   for i in items]
    table.conditions = [{"id": c.id, "key": c.key, "role": c.role} for c in conditions]
    wanted_items = {i.id for i in items}
    wanted_conditions = {c.id for c in conditions}
    for item_id, cond_id in db.session.execute(
        select(Stimulus.item_id, Stimulus.condition_id).join(Item, Item.id == Stimulus.item_id)
        .where(Item.test_id == test.id)
    ).all():
        if item_id in wanted_items and cond_id in wanted_conditions:
            table.votes[(item_id, cond_id)] = 0
    voted = db.session.execute(_real(
        select(Stimulus.item_id, Stimulus.condition_id,
               func.count(func.distinct(Rating.participant_id)))
        .join(Rating, Rating.stimulus_id == Stimulus.id)
        .join(Participant, Participant.id == Rating.participant_id)
        .join(Trial, Trial.id == Rating.trial_id)
        .where(Participant.test_id == test.id, Participant.excluded.is_(False),
               Trial.kind == ItemKind.regular.value)
        .group_by(Stimulus.item_id, Stimulus.condition_id)
    )).all()
    for item_id, cond_id, n in voted:
        if (item_id, cond_id) in table.votes:
            table.votes[(item_id, cond_id)] = int(n)
    pending = db.session.execute(_real(
        select(Stimulus.item_id, Stimulus.condition_id, func.count())
        .join(TrialStimulus, TrialStimulus.stimulus_id == Stimulus.id)
        .join(Trial, Trial.id == TrialStimulus.trial_id)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.test_id == test.id, Participant.excluded.is_(False),
               Participant.finished_at.is_(None),
               Participant.status == ParticipantStatus.started.value,
               Trial.kind == ItemKind.regular.value, Trial.completed_at.is_(None),
               TrialStimulus.position >= 0)
        .group_by(Stimulus.item_id, Stimulus.condition_id)
    )).all()
    for item_id, cond_id, n in pending:
        if (item_id, cond_id) in table.votes:
            table.pending[(item_id, cond_id)] = int(n)
    return table


def _aware(t: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def trial_durations(test: Test) -> list[float]:
    """Seconds from ``Trial.started_at`` to ``completed_at`` of completed regular trials.

    Only participants who are not previews and not excluded count.
    """
    rows = db.session.execute(_real(
        select(Trial.started_at, Trial.completed_at)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.test_id == test.id, Participant.excluded.is_(False),
               Trial.kind == ItemKind.regular.value,
               Trial.started_at.is_not(None), Trial.completed_at.is_not(None))
    )).all()
    out = []
    for start, end in rows:
        seconds = (_aware(end) - _aware(start)).total_seconds()
        if seconds >= 0:
            out.append(seconds)
    return out


def trial_timing(test: Test) -> TrialTiming:
    """Median (and quartiles) of :func:`trial_durations`.

    Notes
    -----
    Quartiles use :func:`statistics.quantiles` with the inclusive method (the same
    as ``numpy.percentile``'s default linear interpolation).
    """
    durations = trial_durations(test)
    if not durations:
        return TrialTiming(n=0, median_s=None)
    if len(durations) == 1:
        return TrialTiming(n=1, median_s=durations[0], q1_s=durations[0], q3_s=durations[0])
    q1, _, q3 = statistics.quantiles(durations, n=4, method="inclusive")
    return TrialTiming(n=len(durations), median_s=statistics.median(durations), q1_s=q1, q3_s=q3)


def screening_passed(value: Any) -> bool | None:
    """The pass/fail of one ``Participant.screening`` entry, or None if it has none.

    Entries are ``{"passed": bool, ...}`` or a bare bool.
    """
    if isinstance(value, dict):
        value = value.get("passed")
    return value if isinstance(value, bool) else None


def screening_rates(test: Test) -> list[ScreeningRate]:
    """Pass rates of every screening check recorded for the participants of ``test``.

    Excluded participants count (screening is often why they were excluded);
    previews do not.
    """
    taken: dict[str, int] = {}
    passed: dict[str, int] = {}
    for (screening,) in db.session.execute(_real(
        select(Participant.screening).where(Participant.test_id == test.id)
    )).all():
        for check, value in (screening or {}).items():
            result = screening_passed(value)
            if result is None:
                continue
            taken[check] = taken.get(check, 0) + 1
            passed[check] = passed.get(check, 0) + int(result)
    return [ScreeningRate(check=k, taken=taken[k], passed=passed[k]) for k in sorted(taken)]


def progress_summary(test: Test) -> dict[str, Any]:
    """Everything the live progress panel shows, JSON-serialisable.

    Parameters
    ----------
    test : Test

    Returns
    -------
    dict
        ``status``, ``participants`` (counts), ``votes`` (:meth:`VoteTable.to_json`),
        ``trial_time`` (median and quartiles in seconds, ``n``) and ``screening``.
    """
    counts = participant_counts(test)
    timing = trial_timing(test)
    return {
        "test": test.id,
        "status": test.status,
        "participants": asdict(counts),
        "votes": vote_table(test).to_json(),
        "trial_time": {"n": timing.n, "median_s": timing.median_s, "q1_s": timing.q1_s,
                       "q3_s": timing.q3_s},
        "screening": [{"check": s.check, "taken": s.taken, "passed": s.passed,
                       "rate": s.rate} for s in screening_rates(test)],
        "generated_at": datetime.now(timezone.utc).isoformat(),
    }


def participant_rows(test: Test, include_preview: bool = False, limit: int | None = None,
                     offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Summary rows for the participants list, newest first, and how many there are.

    Parameters
    ----------
    test : Test
    include_preview : bool
        Also list preview participants.
    limit, offset : int
        The page of rows to return (all rows when ``limit`` is None).

    Returns
    -------
    rows : list of dict
        ``participant``, ``trials_done``, ``trials_total`` and ``screening_failed``
        (the checks this participant failed).
    total : int
        Number of participants over all pages.
    """
    where = [Participant.test_id == test.id]
    if not include_preview:
        where.append(Participant.is_preview.is_(False))
    total = db.session.execute(select(func.count()).select_from(Participant).where(*where)
                               ).scalar_one()
    stmt = select(Participant).where(*where) \
        .order_by(Participant.started_at.desc(), Participant.id.desc()).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    page = list(db.session.execute(stmt).scalars())
    ids = [p.id for p in page]
    done: dict[int, int] = {}
    assigned: dict[int, int] = {}
    if ids:
        for pid, n_all, n_done in db.session.execute(
            select(Trial.participant_id, func.count(), func.count(Trial.completed_at))
            .where(Trial.participant_id.in_(ids)).group_by(Trial.participant_id)
        ).all():
            assigned[pid], done[pid] = n_all, n_done
    rows = []
    for p in page:
        failed = [k for k, v in (p.screening or {}).items() if screening_passed(v) is False]
        rows.append({"participant": p, "trials_done": done.get(p.id, 0),
                     "trials_total": assigned.get(p.id, 0), "screening_failed": failed})
    return rows, int(total)


def participant_answers(participant: Participant) -> list[dict[str, Any]]:
    """The stored ratings of one participant with item, condition and question keys."""
    from .export import ratings_frame

    df = ratings_frame(participant.test, include_preview=True, participant_id=participant.id)
    df = df.astype(object).where(df.notna(), None)
    return [{"trial": int(r["trial_position"]) + 1, "trial_kind": r["item_kind"],
             "item": r["item"], "source": r["source"], "condition": r["condition"],
             "role": r["role"], "question": r["question"], "score": r["score"],
             "raw_score": r["raw_score"], "stimulus_position": r["condition_position"],
             "listening_time_s": r["listening_time_s"], "play_count": r["play_count"],
             "rated_at": r["rated_at"]}
            for r in df.to_dict("records")]


def participant_events(participant: Participant, limit: int = 2000) -> list[Event]:
    """The participant's page events in arrival order (the first ``limit``)."""
    return list(db.session.execute(
        select(Event).where(Event.participant_id == participant.id)
        .order_by(Event.id).limit(limit)).scalars())
