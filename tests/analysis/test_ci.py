import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from mosplatform.analysis import bootstrap_ci, mean_ci, t_ci, t_half_width


def test_t_interval_worked_example():
    # Votes 2, 3, 4, 5: mean 3.5, s = sqrt(5/3) = 1.290994, t(0.975, 3) = 3.182446,
    # half-width = 3.182446 * 1.290994 / 2 = 2.054260 (by hand, t from a table).
    d = pd.DataFrame({"condition": "a", "score": [2, 3, 4, 5]})
    r = t_ci(d).iloc[0]
    assert r["mean"] == 3.5
    assert r["ci_half_width"] == pytest.approx(2.054260, abs=2e-6)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((1.445740, 5.554260), abs=2e-6)
    assert r["ci_method"] == "t"


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_t_interval_matches_scipy(confidence):
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"condition": np.repeat(["a", "b"], 30),
                      "score": rng.integers(1, 6, 60).astype(float)})
    ours = t_ci(d, confidence=confidence).set_index("condition")
    for c, part in d.groupby("condition"):
        x = part["score"].to_numpy()
        lo, hi = stats.t.interval(confidence, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert ours.loc[c, "ci_low"] == pytest.approx(lo)
        assert ours.loc[c, "ci_high"] == pytest.approx(hi)


def test_t_half_width_needs_two_votes():
    assert np.isnan(t_half_width(1.0, 1))


def test_vote_bootstrap_agrees_with_scipy_bootstrap():
    # Resampling single votes (no clusters): the percentile interval should match
    # scipy.stats.bootstrap's percentile interval up to Monte Carlo error.
    rng = np.random.default_rng(1)
    x = rng.integers(1, 6, 300).astype(float)
    d = pd.DataFrame({"condition": "a", "score": x})
    ours = bootstrap_ci(d, subject=None, item=None, n_boot=4000, seed=2).iloc[0]
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile",
                          random_state=3).confidence_interval
    assert ours["ci_low"] == pytest.approx(ref.low, abs=0.03)
    assert ours["ci_high"] == pytest.approx(ref.high, abs=0.03)
    assert ours["ci_method"] == "bootstrap"


def test_listener_bootstrap_matches_cluster_robust_standard_error():
    # Listener-clustered data: the listener bootstrap SE should match the
    # cluster-robust (sandwich) SE of the mean from statsmodels, and exceed the naive SE.
    rng = np.random.default_rng(5)
    n_listeners, per = 60, 8
    listener = np.repeat(np.arange(n_listeners), per)
    y = 3 + rng.normal(0, 0.8, n_listeners)[listener] + rng.normal(0, 0.5, len(listener))
    d = pd.DataFrame({"participant": listener, "item": np.tile(np.arange(per), n_listeners),
                      "condition": "a", "score": y})
    ours = bootstrap_ci(d, item=None, n_boot=4000, seed=0).iloc[0]
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": listener})
    assert ours["se"] == pytest.approx(float(fit.bse[0]), rel=0.1)
    assert ours["se"] > 1.5 * y.std(ddof=1) / np.sqrt(len(y))


def test_two_way_bootstrap_is_wider_than_listener_only_and_reproducible():
    rng = np.random.default_rng(6)
    listener = np.repeat(np.arange(30), 10)
    item = np.tile(np.arange(10), 30)
    y = rng.normal(0, 0.5, 30)[listener] + rng.normal(0, 0.7, 10)[item] + rng.normal(0, 0.5, 300)
    d = pd.DataFrame({"participant": listener, "item": item, "condition": "a", "score": y})
    both = bootstrap_ci(d, n_boot=2000, seed=1)
    again = bootstrap_ci(d, n_boot=2000, seed=1)
    only = bootstrap_ci(d, item=None, n_boot=2000, seed=1)
    pd.testing.assert_frame_equal(both, again)
    assert both["ci_half_width"].iloc[0] > 1.3 * only["ci_half_width"].iloc[0]
    assert both["ci_low"].iloc[0] < y.mean() < both["ci_high"].iloc[0]


def test_bootstrap_groups_and_chunking_do_not_change_the_means():
    rng = np.random.default_rng(7)
    d = pd.DataFrame({"participant": rng.integers(0, 50, 500), "item": rng.integers(0, 20, 500),
                      "condition": rng.choice(["a", "b", "c"], 500),
                      "score": rng.integers(1, 6, 500).astype(float)})
    ours = bootstrap_ci(d, n_boot=50).set_index("condition")
    ref = d.groupby("condition")["score"].agg(["mean", "count"])
    assert np.allclose(ours["mean"], ref["mean"]) and (ours["n"] == ref["count"]).all()


def test_mean_ci_rejects_unknown_method():
    d = pd.DataFrame({"condition": "a", "score": [1.0, 2.0]})
    with pytest.raises(ValueError, match="ci method must be one of"):
        mean_ci(d, method="normal")
