"""After a run: compare what the server acknowledged with what the database holds."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from simulator import Ledger
from sqlalchemy import create_engine, text

STORED = text("""
SELECT p.token, t.position, ts.position, q.key, r.score
FROM rating r
JOIN participant p ON p.id = r.participant_id
JOIN test ON test.id = p.test_id
JOIN trial t ON t.id = r.trial_id
JOIN trial_stimulus ts ON ts.trial_id = r.trial_id AND ts.stimulus_id = r.stimulus_id
JOIN question q ON q.id = r.question_id
WHERE test.public_id = :pid
""")

DUPLICATES = text("""
SELECT count(*) FROM (
  SELECT r.participant_id, r.stimulus_id, r.question_id FROM rating r
  GROUP BY r.participant_id, r.stimulus_id, r.question_id HAVING count(*) > 1) d
""")

CELLS = text("""
SELECT t.item_id, ts.stimulus_id, count(*)
FROM trial t
JOIN trial_stimulus ts ON ts.trial_id = t.id
JOIN participant p ON p.id = t.participant_id
JOIN test ON test.id = p.test_id
WHERE test.public_id = :pid AND p.excluded = :false AND p.is_preview = :false
  AND t.kind = 'regular' AND ts.position >= 0
GROUP BY t.item_id, ts.stimulus_id
""")

COUNTS = text("""
SELECT
  (SELECT count(*) FROM participant p JOIN test ON test.id = p.test_id
   WHERE test.public_id = :pid) AS participants,
  (SELECT count(*) FROM trial t JOIN participant p ON p.id = t.participant_id
   JOIN test ON test.id = p.test_id
   WHERE test.public_id = :pid AND t.completed_at IS NOT NULL) AS completed_trials,
  (SELECT count(*) FROM event) AS events,
  (SELECT count(*) FROM idempotency_record) AS idempotency_records
""")


def check_database(db_url: str, public_id: str, ledger: Ledger) -> dict[str, Any]:
    """Every acknowledged rating stored exactly once with its score; balance per item.

    Returns
    -------
    dict
        ``acked_trials``, ``acked_ratings``, ``lost`` (acknowledged but missing or with
        another score), ``duplicated``, ``stored_unacked_trials`` (stored, but the client
        never saw the answer: only possible for clients that gave up),
        ``max_cell_spread`` (largest max-min of votes over one item's conditions), counts.
    """
    eng = create_engine(db_url)
    stored: dict[tuple[str, int], dict[tuple[int, str], list[float]]] = defaultdict(
        lambda: defaultdict(list))
    with eng.connect() as conn:
        for token, tpos, spos, qkey, score in conn.execute(STORED, {"pid": public_id}):
            stored[(token, tpos)][(spos, qkey)].append(float(score))
        duplicates_sql = conn.execute(DUPLICATES).scalar_one()
        cells = conn.execute(CELLS, {"pid": public_id, "false": False}).all()
        counts = dict(conn.execute(COUNTS, {"pid": public_id}).mappings().one())
    eng.dispose()

    lost = []
    for key, answers in ledger.acked.items():
        got = stored.get(key, {})
        want = {k: [v] for k, v in answers.items()}
        if {k: v[:1] for k, v in got.items()} != want:
            lost.append(key)
    duplicated = sum(1 for trial in stored.values() for v in trial.values() if len(v) > 1)
    unacked = [k for k in stored if k not in ledger.acked]
    per_item: dict[int, list[int]] = defaultdict(list)
    for item, _stim, n in cells:
        per_item[item].append(n)
    spreads = [max(v) - min(v) for v in per_item.values()]
    return {
        "acked_trials": len(ledger.acked),
        "acked_ratings": sum(len(a) for a in ledger.acked.values()),
        "stored_ratings": sum(len(v) for t in stored.values() for v in t.values()),
        "lost": len(lost),
        "lost_examples": [f"{t[:8]}/trial {p}" for t, p in lost[:5]],
        "duplicated": duplicated + int(duplicates_sql),
        "stored_unacked_trials": len(unacked),
        "max_cell_spread": max(spreads) if spreads else 0,
        "cells": len(cells),
        **{k: int(v) for k, v in counts.items()},
    }
