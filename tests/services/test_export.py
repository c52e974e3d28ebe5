"""The long-format export holds every rating once, with the analysis columns."""

from __future__ import annotations

import pandas as pd

from mosplatform.services.assignment import Arrival, admit_participant
from mosplatform.services.export import RATING_COLUMNS, export_test, ratings_frame
from mosplatform.services.ratings import submit_trial


def _complete(test, participant, score):  # type: ignore[no-untyped-def]
    for trial in participant.trials:
        body = {"ratings": [{"stimulus": ts.position, "question": q.key, "score": score}
                            for ts in trial.stimuli if ts.position >= 0
                            for q in test.questions]}
        submit_trial(participant, trial.position, body)


def test_export_rows_and_columns(acr_test, tmp_path):
    participants = [admit_participant(acr_test, Arrival(external_id=f"w{i}")) for i in range(3)]
    for i, p in enumerate(participants):
        _complete(acr_test, p, [1, 3, 5][i])
    df = ratings_frame(acr_test)
    assert list(df.columns) == RATING_COLUMNS
    # 3 participants x 2 trials x 2 questions
    assert len(df) == 12
    assert set(df["question"]) == {"accuracy", "contamination"}
    assert set(df["external_id"]) == {"w0", "w1", "w2"}
    assert df.groupby("external_id")["score"].first().to_dict() == {"w0": 1, "w1": 3, "w2": 5}
    assert df["condition"].isin(["truth", "sysA", "sysB"]).all()
    assert (df["role"].isin(["hidden_reference", "system"])).all()
    assert df["source"].notna().all() and df["track"].str.startswith("track").all()
    assert (df["scale_min"] == 1).all() and (df["scale_max"] == 5).all()
    written = dict(export_test(acr_test, tmp_path / "out"))
    assert written[tmp_path / "out" / "ratings.csv"] == 12
    back = pd.read_csv(tmp_path / "out" / "ratings.csv")
    assert len(back) == 12 and (tmp_path / "out" / "definition.yaml").exists()
    assert pd.read_parquet(tmp_path / "out" / "ratings.parquet").shape == df.shape
    parts = pd.read_csv(tmp_path / "out" / "participants.csv")
    assert set(parts["status"]) == {"started"} and (parts["trials_done"] == 2).all()
