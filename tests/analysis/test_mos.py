import numpy as np
import pandas as pd
import pytest

from mosplatform.analysis import mos_table, vote_distribution, vote_weighted_mos

# A small vote table, worked by hand:
# votes 5,5,5,4,4,4,3,3,2,1 -> counts {5: 3, 4: 3, 3: 2, 2: 1, 1: 1}, n = 10
# MOS = (5*3 + 4*3 + 3*2 + 2*1 + 1*1) / 10 = 36/10 = 3.6
# Σ(v - 3.6)² = 3*1.96 + 3*0.16 + 2*0.36 + 2.56 + 6.76 = 16.4, s² = 16.4/9, s = 1.349897
# t(0.975, 9) = 2.262157 -> half-width = 2.262157 * 1.349897 / √10 = 0.965658
VOTES = [5, 5, 5, 4, 4, 4, 3, 3, 2, 1]


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "participant": [f"p{i}" for i in range(10)], "item": "t1/vocals", "question": "accuracy",
        "condition": "l1", "source": "vocals", "score": VOTES,
    })


def test_vote_distribution_worked_example():
    dist = vote_distribution(_table(), categories=[1, 2, 3, 4, 5])
    assert dist["category"].tolist() == [1, 2, 3, 4, 5]
    assert dist["count"].tolist() == [1, 1, 2, 3, 3]
    assert dist["share"].tolist() == pytest.approx([0.1, 0.1, 0.2, 0.3, 0.3])
    assert (dist["n"] == 10).all()


def test_vote_weighted_mos_and_t_interval_worked_example():
    dist = vote_distribution(_table(), categories=[1, 2, 3, 4, 5])
    assert vote_weighted_mos(dist)["mos"].iloc[0] == pytest.approx(3.6)
    row = mos_table(_table(), pooled=None).iloc[0]
    assert row["mos"] == pytest.approx(3.6)
    assert row["sd"] == pytest.approx(1.349897, abs=1e-6)
    assert row["ci_half_width"] == pytest.approx(0.965658, abs=2e-6)
    assert row["n"] == 10 and row["n_listeners"] == 10
    assert row["ci_method"] == "t" and row["confidence"] == 0.95


def test_empty_categories_get_zero_share_and_off_scale_votes_are_reported():
    d = _table().assign(score=[5] * 10)
    dist = vote_distribution(d, categories=[1, 2, 3, 4, 5])
    assert dist["share"].tolist() == [0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="outside the categories"):
        vote_distribution(_table(), categories=[1, 2, 3])


def test_vote_weighted_mos_equals_groupby_mean(study):
    by = ["question", "condition", "source"]
    mos = vote_weighted_mos(vote_distribution(study, by=by), by=by)
    ref = study.groupby(by)["score"].mean()
    merged = mos.set_index(by)["mos"].reindex(ref.index)
    assert np.allclose(merged.to_numpy(), ref.to_numpy())


def test_pooled_rows_over_sources(study):
    mos = mos_table(study)
    pooled = mos.loc[mos["source"] == "all"].set_index(["question", "condition"])
    ref = study.groupby(["question", "condition"])["score"].agg(["mean", "count", "std"])
    assert np.allclose(pooled["mos"], ref["mean"].reindex(pooled.index))
    assert (pooled["n"] == ref["count"].reindex(pooled.index)).all()
    assert set(mos["source"]) == {"drums", "bass", "other", "vocals", "all"}


def test_mos_table_without_source_column():
    d = _table().drop(columns="source")
    out = mos_table(d)
    assert "source" not in out.columns and len(out) == 1


def test_mos_table_bootstrap_says_so(study):
    out = mos_table(study, method="bootstrap", n_boot=200)
    assert set(out["ci_method"]) == {"bootstrap"}
    assert (out["ci_low"] <= out["mos"]).all() and (out["mos"] <= out["ci_high"]).all()
