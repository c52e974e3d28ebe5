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


def ratings_frame(test: Test, include_preview: bool = False,
                  participant_id: int | None = None) -> pd.DataFrame:
    """The long-format ratings table of ``test``.

    Parameters
    ----------
    test : Test
    include_preview : bool
        Include preview participants (their ratings are never stored; kept for symmetry).
    participant_id : int, optional
        Only this participant's ratings (the admin's per-participant view).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RATING_COLUMNS`; one row per stored rating.

    Notes
    -----
    One column-level query (no ORM objects per row) joined in pandas with the small
    per-test tables (questions, objective scores), so exporting 200,000 ratings
    takes seconds.
    """
    stmt = (
        select(
            Participant.token.label("participant"), Participant.external_id,
            Item.key.label("item"), Item.kind.label("item_kind"), Item.track, Item.source,
            Item.expected, Condition.key.label("condition"), Condition.role,
            Question.key.label("question"), Rating.score, Rating.raw_score,
            Trial.position.label("trial_position"),
            TrialStimulus.position.label("condition_position"), Trial.flipped,
            Rating.play_count, Rating.listening_time_s, Stimulus.duration_s,
            Rating.created_at.label("rated_at"), Trial.started_at.label("trial_started_at"),
            Participant.excluded, Participant.exclusion_reason,
            Participant.status.label("participant_status"), Rating.stimulus_id,
        )
        .select_from(Rating)
        .join(Participant, Participant.id == Rating.participant_id)
        .join(Trial, Trial.id == Rating.trial_id)
        .join(Stimulus, Stimulus.id == Rating.stimulus_id)
        .join(Item, Item.id == Stimulus.item_id)
        .join(Question, Question.id == Rating.question_id)
        .outerjoin(Condition, Condition.id == Stimulus.condition_id)
        .outerjoin(TrialStimulus, (TrialStimulus.trial_id == Trial.id)
                   & (TrialStimulus.stimulus_id == Stimulus.id))
        .where(Participant.test_id == test.id)
        .order_by(Participant.id, Trial.position, TrialStimulus.position, Question.position)
    )
    if not include_preview:
        stmt = stmt.where(Participant.is_preview.is_(False))
    if participant_id is not None:
        stmt = stmt.where(Participant.id == participant_id)
    result = db.session.execute(stmt)
    df = pd.DataFrame(result.all(), columns=list(result.keys()))
    if df.empty:
        return pd.DataFrame(columns=RATING_COLUMNS)
    df["participant"] = df["participant"].str[:12]
    df["test"] = test.public_id
    df["kind"] = test.kind
    qc = df["condition"].isna()
    df.loc[qc, "condition"] = "qc:" + df.loc[qc, "item_kind"]
    df.loc[qc, "role"] = df.loc[qc, "item_kind"]
    df["expected_score"] = [
        (exp or {}).get(q) for exp, q in zip(df["expected"], df["question"], strict=True)]
    limits = {}
    for q in test.questions:
        if q.scale["type"] == "categorical":
            scores = [float(c["score"]) for c in q.scale["categories"]]
            limits[q.key] = (min(scores), max(scores))
        else:
            limits[q.key] = (float(q.scale.get("min", 0)), float(q.scale.get("max", 100)))
    df["scale_min"] = df["question"].map(lambda k: limits[k][0])
    df["scale_max"] = df["question"].map(lambda k: limits[k][1])
    df["heard_fraction"] = df["listening_time_s"] / df["duration_s"]
    for col in ("rated_at", "trial_started_at"):
        df[col] = pd.to_datetime(df[col], utc=True).map(
            lambda t: t.isoformat() if pd.notna(t) else None)
    df["excluded"] = df["excluded"].astype(bool)
    objective = _objective(test)
    for metric in OBJECTIVE_METRICS:
        df[metric] = df["stimulus_id"].map(lambda sid, m=metric: objective.get(sid, {}).get(m))
    return df[RATING_COLUMNS].reset_index(drop=True)


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
