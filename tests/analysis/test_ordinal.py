import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from mosplatform.analysis import (
    ccr_sign,
    cmos,
    friedman_test,
    holm_adjust,
    pairwise_wilcoxon,
    per_subject,
)
from mosplatform.analysis.ordinal import signed_rank_test


def _complete(seed: int = 0, n: int = 15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n):
        for i in range(3):
            for c, shift in (("a", 0.0), ("b", 0.6), ("c", 1.0), ("d", 0.2)):
                rows.append((f"p{p}", f"i{i}", "q", c,
                             float(np.clip(np.rint(3 + shift + rng.normal(0, 1)), 1, 5))))
    return pd.DataFrame(rows, columns=["participant", "item", "question", "condition", "score"])


def test_friedman_worked_example():
    # Ranks within listeners: (1,2,3), (1,3,2), (1,2,3) -> R = 3, 7, 8;
    # χ² = 12/(n k (k+1)) ΣR² − 3n(k+1) = 12/36 · 122 − 36 = 4.6667, df 2.
    d = pd.DataFrame({"participant": [1, 1, 1, 2, 2, 2, 3, 3, 3],
                      "condition": ["a", "b", "c"] * 3, "score": [1, 2, 3, 1, 3, 2, 2, 3, 4]})
    r = friedman_test(d, by=None).iloc[0]
    assert r["chi2"] == pytest.approx(14 / 3)
    assert r["dof"] == 2 and r["n_subjects"] == 3
    assert r["p_value"] == pytest.approx(np.exp(-(14 / 3) / 2))  # χ²(2) survival = e^(−x/2)


def test_friedman_matches_pingouin():
    d = _complete()
    ours = friedman_test(d).iloc[0]
    means = per_subject(d, by=None)
    ref = pg.friedman(data=means, dv="score", within="condition", subject="participant")
    assert ours["chi2"] == pytest.approx(float(ref["Q"].iloc[0]))
    assert ours["p_value"] == pytest.approx(float(ref["p_unc"].iloc[0]))
    assert ours["kendall_w"] == pytest.approx(float(ref["W"].iloc[0]))


def test_friedman_drops_incomplete_listeners():
    d = _complete()
    d = d.loc[~((d["participant"] == "p0") & (d["condition"] == "a"))]
    r = friedman_test(d).iloc[0]
    assert r["n_subjects"] == 14 and r["n_dropped"] == 1


def test_pairwise_wilcoxon_matches_pingouin_with_holm():
    d = _complete(seed=2)
    # pingouin applies the continuity correction of the normal approximation.
    ours = pairwise_wilcoxon(d, correction=True).set_index(["A", "B"])
    means = per_subject(d, by=None)
    ref = pg.pairwise_tests(data=means, dv="score", within="condition", subject="participant",
                            parametric=False, padjust="holm").set_index(["A", "B"])
    assert len(ours) == 6
    for key in ref.index:
        assert ours.loc[key, "W"] == pytest.approx(float(ref.loc[key, "W_val"]))
        assert ours.loc[key, "p_unc"] == pytest.approx(float(ref.loc[key, "p_unc"]))
        assert ours.loc[key, "p_adj"] == pytest.approx(float(ref.loc[key, "p_corr"]))


def test_pairwise_wilcoxon_matches_scipy_directly():
    d = _complete(seed=3)
    ours = pairwise_wilcoxon(d, agg="median").set_index(["A", "B"])
    wide = d.groupby(["participant", "condition"])["score"].median().unstack()
    res = stats.wilcoxon(wide["a"], wide["c"])
    assert ours.loc[("a", "c"), "p_unc"] == pytest.approx(res.pvalue)
    assert ours.loc[("a", "c"), "median_diff"] == pytest.approx(
        float(np.median(wide["a"] - wide["c"])))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_matches_statsmodels(seed):
    p = np.random.default_rng(seed).uniform(0, 0.2, 9)
    assert holm_adjust(p) == pytest.approx(multipletests(p, method="holm")[1])


def test_holm_worked_example_and_nan():
    # Sorted 0.01, 0.03, 0.04 -> 3·0.01 = 0.03, 2·0.03 = 0.06, 1·0.04 -> max(0.06, 0.04).
    out = holm_adjust([0.01, np.nan, 0.04, 0.03])
    assert out[[0, 2, 3]] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(out[1])


def test_ccr_sign_handling():
    d = pd.DataFrame({"raw_score": [3, -1, 2, 0], "flipped": [False, True, "true", "0"]})
    assert ccr_sign(d)["score"].tolist() == [3, 1, -2, 0]


def test_cmos_against_scipy():
    rng = np.random.default_rng(4)
    d = pd.DataFrame({"participant": np.repeat(np.arange(10), 3), "item": np.tile([0, 1, 2], 10),
                      "question": "q", "condition": "sys",
                      "score": rng.integers(-1, 3, 30).astype(float)})
    r = cmos(d).iloc[0]
    x = d["score"].to_numpy()
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert r["cmos"] == pytest.approx(x.mean())
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi))
    per = d.groupby("participant")["score"].mean()
    assert r["p_value"] == pytest.approx(stats.wilcoxon(per).pvalue)
    assert r["n_listeners"] == 10


@pytest.mark.parametrize("n,seed", [(6, 0), (9, 1), (9, 2), (20, 3), (60, 4)])
def test_signed_rank_test_matches_scipy_auto(n, seed):
    # Ties and zeros (integer votes) exercise every branch: exact conditional
    # enumeration (n <= 13), normal approximation with tie correction, > 50 pairs.
    d = np.random.default_rng(seed).integers(-2, 4, n).astype(float)
    ref = stats.wilcoxon(d)
    w, p = signed_rank_test(d)
    assert w == pytest.approx(float(ref.statistic)) and p == pytest.approx(float(ref.pvalue))
    d = np.random.default_rng(seed).normal(size=n)  # no ties: exact distribution
    ref = stats.wilcoxon(d)
    assert signed_rank_test(d)[1] == pytest.approx(float(ref.pvalue))
