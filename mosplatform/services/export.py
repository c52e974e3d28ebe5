"""Export the long-format (tidy) tables of a test: ratings, participants, events.

One row per rating with every column an analysis needs; the analysis package reads
exactly this table (``mosplatform.analysis``), from the database or from a CSV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sqlalchemy import func, select

from ..extensions import db
from ..models import (
    Condition,
    Event,
    Item,
    ObjectiveScore,
    Participant,
    Question,
    Rating,
    Stimulus,
    Test,
    Trial,
    TrialStimulus,
)

RATING_COLUMNS = [
    "participant", "external_id", "test", "kind", "item", "item_kind", "track", "source",
    "condition", "role", "question", "score", "raw_score", "expected_score", "scale_min",
    "scale_max", "trial_position", "condition_position", "flipped", "play_count",
    "listening_time_s", "heard_fraction", "rated_at", "trial_started_at", "excluded",
    "exclusion_reason", "participant_status", "sdr", "si_sdr", "isr", "sir", "sar", "nsdr",
]
OBJECTIVE_METRICS = ("sdr", "si_sdr", "isr", "sir", "sar", "nsdr")


class ExportError(ValueError):
    """A test that cannot be found or written."""


def resolve_test(ref: str) -> Test:
    """A test by numeric id or public id."""
    test = None
    if ref.isdigit():
        test = db.session.get(Test, int(ref))
    if test is None:
        test = db.session.execute(select(Test).where(Test.public_id == ref)).scalar_one_or_none()
    if test is None:
        raise ExportError(f"no test with id or public id {ref!r}")
    return test


def ratings_frame(test: Test, include_preview: bool = False) -> pd.DataFrame:
    """The long-format ratings table of ``test``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RATING_COLUMNS`; one row per stored rating.
    """
    rows = db.session.execute(
        select(Rating, Participant, Trial, Stimulus, Item, Question, Condition, TrialStimulus)
        .join(Participant, Participant.id == Rating.participant_id)
        .join(Trial, Trial.id == Rating.trial_id)
        .join(Stimulus, Stimulus.id == Rating.stimulus_id)
        .join(Item, Item.id == Stimulus.item_id)
        .join(Question, Question.id == Rating.question_id)
        .outerjoin(Condition, Condition.id == Stimulus.condition_id)
        .outerjoin(TrialStimulus, (TrialStimulus.trial_id == Trial.id)
                   & (TrialStimulus.stimulus_id == Stimulus.id))
        .where(Participant.test_id == test.id)
        .where(Participant.is_preview.is_(False) if not include_preview else True)
        .order_by(Participant.id, Trial.position, TrialStimulus.position, Question.position)
    ).all()
    objective = _objective(test)
    records: list[dict[str, Any]] = []
    for r, p, t, s, it, q, c, ts in rows:
        scale = q.scale
        if scale["type"] == "categorical":
            scores = [float(cat["score"]) for cat in scale["categories"]]
            smin, smax = min(scores), max(scores)
        else:
            smin, smax = float(scale.get("min", 0)), float(scale.get("max", 100))
        expected = (it.expected or {}).get(q.key)
        obj = objective.get(s.id, {})
        records.append({
            "participant": p.token[:12], "external_id": p.external_id, "test": test.public_id,
            "kind": test.kind, "item": it.key, "item_kind": it.kind, "track": it.track,
            "source": it.source, "condition": c.key if c else f"qc:{it.kind}",
            "role": c.role if c else it.kind, "question": q.key, "score": r.score,
            "raw_score": r.raw_score, "expected_score": expected, "scale_min": smin,
            "scale_max": smax, "trial_position": t.position,
            "condition_position": ts.position if ts else None, "flipped": t.flipped,
            "play_count": r.play_count, "listening_time_s": r.listening_time_s,
            "heard_fraction": (r.listening_time_s / s.duration_s)
            if r.listening_time_s is not None and s.duration_s else None,
            "rated_at": r.created_at.isoformat() if r.created_at else None,
            "trial_started_at": t.started_at.isoformat() if t.started_at else None,
            "excluded": bool(p.excluded), "exclusion_reason": p.exclusion_reason,
            "participant_status": p.status,
            **{m: obj.get(m) for m in OBJECTIVE_METRICS},
        })
    return pd.DataFrame.from_records(records, columns=RATING_COLUMNS)


def _objective(test: Test) -> dict[int, dict[str, float | None]]:
    out: dict[int, dict[str, float | None]] = {}
    for sid, metric, value in db.session.execute(
        select(ObjectiveScore.stimulus_id, ObjectiveScore.metric, ObjectiveScore.value)
        .join(Stimulus, Stimulus.id == ObjectiveScore.stimulus_id)
        .join(Item, Item.id == Stimulus.item_id).where(Item.test_id == test.id)
    ):
        out.setdefault(sid, {})[metric] = value
    return out


def participants_frame(test: Test, include_preview: bool = False) -> pd.DataFrame:
    """One row per participant: ids, status, timings, screening and questionnaire."""
    done = dict(db.session.execute(
        select(Trial.participant_id, func.count()).where(Trial.completed_at.is_not(None))
        .group_by(Trial.participant_id)).all())
    records = []
    for p in test.participants:
        if p.is_preview and not include_preview:
            continue
        rec = {"participant": p.token[:12], "external_id": p.external_id,
               "study_id": p.study_id, "session_id": p.session_id, "status": p.status,
               "stage": p.stage, "language": p.language, "seed": p.seed,
               "started_at": p.started_at.isoformat() if p.started_at else None,
               "consent_at": p.consent_at.isoformat() if p.consent_at else None,
               "finished_at": p.finished_at.isoformat() if p.finished_at else None,
               "trials_done": done.get(p.id, 0), "trials_total": len(p.trials),
               "excluded": p.excluded, "exclusion_reason": p.exclusion_reason,
               "completion_code": p.completion_code, "user_agent": p.user_agent}
        for k, v in (p.screening or {}).items():
            rec[f"screening.{k}"] = v if not isinstance(v, dict) else v.get("passed")
        for k, v in (p.questionnaire or {}).items():
            rec[f"questionnaire.{k}"] = v
        records.append(rec)
    return pd.DataFrame.from_records(records)


def events_frame(test: Test) -> pd.DataFrame:
    """Page events (plays, switches, loops...) with trial position and stimulus position."""
    rows = db.session.execute(
        select(Event, Participant.token, Trial.position)
        .join(Participant, Participant.id == Event.participant_id)
        .outerjoin(Trial, Trial.id == Event.trial_id)
        .where(Participant.test_id == test.id).order_by(Event.id)).all()
    return pd.DataFrame.from_records([
        {"participant": tok[:12], "trial_position": pos, "kind": e.kind,
         "stimulus_position": e.stimulus_position, "client_time_ms": e.client_time_ms,
         "created_at": e.created_at.isoformat() if e.created_at else None,
         **{f"data.{k}": v for k, v in (e.payload or {}).items()}}
        for e, tok, pos in rows])


def _write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        try:
            df.to_parquet(path, index=False)
        except ImportError as exc:
            raise ExportError("Parquet export needs pyarrow: pip install pyarrow") from exc
    elif path.suffix in (".csv", ""):
        df.to_csv(path, index=False)
    else:
        raise ExportError(f"unknown export format {path.suffix!r}; use .csv or .parquet")


def export_test(test: Test, out: Path, include_preview: bool = False) -> list[tuple[Path, int]]:
    """Write the ratings table to a file, or every table to a folder.

    Parameters
    ----------
    test : Test
    out : Path
        ``*.csv`` / ``*.parquet``: the ratings table. Otherwise a folder that receives
        ratings.csv, ratings.parquet (if pyarrow is present), participants.csv,
        events.csv and definition.yaml.
    """
    ratings = ratings_frame(test, include_preview)
    if out.suffix in (".csv", ".parquet"):
        _write(ratings, out)
        return [(out, len(ratings))]
    out.mkdir(parents=True, exist_ok=True)
    written = [(out / "ratings.csv", ratings)]
    try:
        import pyarrow  # noqa: F401

        written.append((out / "ratings.parquet", ratings))
    except ImportError:
        pass
    written += [(out / "participants.csv", participants_frame(test, include_preview)),
                (out / "events.csv", events_frame(test))]
    for path, df in written:
        _write(df, path)
    (out / "definition.yaml").write_text(
        yaml.safe_dump(test.definition, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return [(p, len(df)) for p, df in written]


def load_ratings_from_database(source: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Ratings table and definition of a test, for ``mosplatform report``.

    Needs an application context; creates one when called from the command line.
    """
    from flask import current_app, has_app_context

    if not has_app_context():
        from .. import create_app

        with create_app().app_context():
            return load_ratings_from_database(source)
    del current_app
    test = resolve_test(source)
    return ratings_frame(test), dict(test.definition)
