"""Benchmark: the dashboard's live-progress endpoint on a large test.

Every open dashboard tab polls ``/admin/tests/<id>/progress.json`` every 10 s, so its
cost matters while a crowd study runs. Builds a synthetic ACR test in a SQLite file
(items x conditions, participants x trials, one rating per trial; 10 % of the
participants still in progress), then times, median of ``--repeats`` runs:

- ``progress_summary`` (counts, votes per item x condition, trial times, screening),
- the JSON endpoint end to end through the Flask test client (logged-in admin),
- the anchor, measured in the same run: ``ratings_frame``, the long-format export
  every analysis reads.

Prints the times and the ratios to the anchor. Run::

    .venv/bin/python bench/admin_progress.py [--participants 2000] [--trials 20]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(participants: int, trials: int, items: int, conditions: int) -> int:
    """Insert the synthetic test with bulk inserts; returns its id."""
    import numpy as np
    from sqlalchemy import insert

    from mosplatform.extensions import db
    from mosplatform.models import (
        Condition,
        Item,
        Participant,
        Question,
        Rating,
        Stimulus,
        Test,
        Trial,
        TrialStimulus,
    )
    from mosplatform.services.accounts import create_admin

    owner = create_admin("bench", "bench-password")
    test = Test(public_id=secrets.token_hex(6), name="bench", kind="acr", status="open",
                owner=owner, definition={"design": {"target_votes": 30}}, settings={}, seed=0)
    db.session.add(test)
    q = Question(test=test, key="quality", position=0, label={"en": "Q"},
                 scale={"type": "categorical",
                        "categories": [{"score": s, "label": {"en": str(s)}} for s in range(1, 6)]})
    db.session.add(q)
    conds = [Condition(test=test, key=f"c{j}", role="hidden_reference" if j == 0 else "system",
                       position=j) for j in range(conditions)]
    its = [Item(test=test, key=f"i{k}", position=k, track=f"t{k}", source="vocals",
                kind="regular", start_s=0, duration_s=8) for k in range(items)]
    db.session.add_all(conds + its)
    db.session.flush()
    stim_rows = [{"item_id": it.id, "condition_id": c.id, "content_hash": secrets.token_hex(32),
                  "path": f"x/{k}_{j}.wav", "sample_rate": 44100, "channels": 2,
                  "num_frames": 352800, "duration_s": 8.0}
                 for k, it in enumerate(its) for j, c in enumerate(conds)]
    db.session.execute(insert(Stimulus), stim_rows)
    stims = {(s.item_id, s.condition_id): s.id
             for s in db.session.execute(db.select(Stimulus)).scalars()}
    rng = np.random.default_rng(0)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    p_rows = [{"test_id": test.id, "token": secrets.token_urlsafe(24), "seed": int(i),
               "status": "finished" if i % 10 else "started", "is_preview": False,
               "excluded": i % 50 == 0, "started_at": t0,
               "finished_at": t0 + timedelta(minutes=20) if i % 10 else None,
               "screening": {"headphone_check": {"passed": bool(i % 7)}}}
              for i in range(participants)]
    db.session.execute(insert(Participant), p_rows)
    pids = list(db.session.execute(db.select(Participant.id).where(
        Participant.test_id == test.id)).scalars())
    trial_rows = []
    for pid in pids:
        chosen = rng.choice(items, size=min(trials, items), replace=False)
        for pos, k in enumerate(chosen):
            start = t0 + timedelta(seconds=30 * pos)
            done = pos < trials - 2 or pid % 10
            trial_rows.append({"participant_id": pid, "item_id": its[k].id, "position": pos,
                               "kind": "regular", "seed": pos, "started_at": start,
                               "completed_at": start + timedelta(seconds=float(
                                   rng.uniform(10, 60))) if done else None})
    db.session.execute(insert(Trial), trial_rows)
    trials_db = db.session.execute(db.select(Trial.id, Trial.participant_id, Trial.item_id,
                                             Trial.completed_at)).all()
    ts_rows, r_rows = [], []
    for tid, pid, item_id, completed in trials_db:
        cond = conds[int(rng.integers(conditions))].id
        sid = stims[(item_id, cond)]
        ts_rows.append({"trial_id": tid, "stimulus_id": sid, "position": 0,
                        "token": secrets.token_urlsafe(24)})
        if completed is not None:
            r_rows.append({"participant_id": pid, "trial_id": tid, "stimulus_id": sid,
                           "question_id": q.id, "score": float(rng.integers(1, 6)),
                           "raw_score": 3.0, "created_at": completed})
    db.session.execute(insert(TrialStimulus), ts_rows)
    db.session.execute(insert(Rating), r_rows)
    db.session.commit()
    return test.id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=2000)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--conditions", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from mosplatform import create_app
    from mosplatform.extensions import db
    from mosplatform.models import Rating, Test
    from mosplatform.services import dashboard
    from mosplatform.services.export import ratings_frame

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/bench.sqlite",
                          "INSTANCE_PATH": tmp, "WTF_CSRF_ENABLED": False})
        with app.app_context():
            db.create_all()
            t0 = time.perf_counter()
            test_id = build(args.participants, args.trials, args.items, args.conditions)
            n_ratings = db.session.query(Rating).count()
            print(f"built {args.participants} participants, {n_ratings} ratings, "
                  f"{args.items} items x {args.conditions} conditions in "
                  f"{time.perf_counter() - t0:.1f} s")

            def summary() -> None:
                db.session.expire_all()
                dashboard.progress_summary(db.session.get(Test, test_id))

            def anchor() -> None:
                db.session.expire_all()
                ratings_frame(db.session.get(Test, test_id))

            client = app.test_client()
            client.post("/admin/login", data={"username": "bench",
                                              "password": "bench-password"})
            url = f"/admin/tests/{test_id}/progress.json"
            assert client.get(url).status_code == 200

            def endpoint() -> None:
                assert client.get(url).status_code == 200

            # Fresh sessions between phases: the export fills the identity map with
            # every rating, which would slow whatever runs after it in the same session.
            db.session.remove()
            t_endpoint = _timed(endpoint, args.repeats)
            db.session.remove()
            t_summary = _timed(summary, args.repeats)
            db.session.remove()
            t_anchor = _timed(anchor, args.repeats)
            db.session.remove()
            db.engine.dispose()
    print(f"anchor ratings_frame      {t_anchor * 1000:8.1f} ms")
    print(f"progress_summary          {t_summary * 1000:8.1f} ms   "
          f"ratio {t_summary / t_anchor:.3f}")
    print(f"GET progress.json         {t_endpoint * 1000:8.1f} ms   "
          f"ratio {t_endpoint / t_anchor:.3f}")


if __name__ == "__main__":
    main()
