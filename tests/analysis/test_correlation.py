import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats

from mosplatform.analysis import (
    condition_points,
    correlation_ci,
    mos_vs_objective,
    p1401_linear_fit,
)


def _xy(seed: int = 0, n: int = 25):
    rng = np.random.default_rng(seed)
    x = rng.normal(6, 2, n)
    return x, 1.5 + 0.3 * x + rng.normal(0, 0.4, n)


@pytest.mark.parametrize("seed", [0, 1])
def test_pearson_and_interval_match_pingouin(seed):
    x, y = _xy(seed)
    ours = correlation_ci(x, y, "pearson")
    ref = pg.corr(x, y, method="pearson")
    assert ours["r"] == pytest.approx(float(ref["r"].iloc[0]))
    lo, hi = ref["CI95"].iloc[0]
    # pingouin rounds the interval to 2 decimals.
    assert ours["ci_low"] == pytest.approx(lo, abs=0.006)
    assert ours["ci_high"] == pytest.approx(hi, abs=0.006)
    assert ours["p_value"] == pytest.approx(float(ref["p_val"].iloc[0]))


def test_spearman_interval_by_hand():
    x, y = _xy(2, n=20)
    ours = correlation_ci(x, y, "spearman", confidence=0.9)
    rho = stats.spearmanr(x, y).statistic
    # Fieller et al.: σ_z = sqrt(1.06 / (n − 3)); z_{0.95} = 1.644854.
    half = 1.644854 * np.sqrt(1.06 / 17)
    assert ours["r"] == pytest.approx(rho)
    assert ours["ci_low"] == pytest.approx(np.tanh(np.arctanh(rho) - half), abs=1e-6)
    assert ours["ci_high"] == pytest.approx(np.tanh(np.arctanh(rho) + half), abs=1e-6)


def test_correlation_degenerate_inputs_give_nan():
    assert np.isnan(correlation_ci([1, 2], [3, 4])["r"])
    assert np.isnan(correlation_ci([1, 1, 1, 1], [1, 2, 3, 4])["r"])
    with pytest.raises(ValueError, match="same length"):
        correlation_ci([1, 2, 3], [1, 2])


def test_p1401_rmse_and_outliers_worked_example():
    # x = 0,1,2,3; MOS = 1,2,3,5 -> least squares: slope 6.5/5 = 1.3, intercept 0.8;
    # errors 0.2, -0.1, -0.4, 0.3; rmse = sqrt(0.30 / (4 - 2)) = 0.387298.
    out = p1401_linear_fit([1, 2, 3, 5], [0, 1, 2, 3], mos_se=[0.05, 0.06, 0.25, 0.1])
    assert out["slope"] == pytest.approx(1.3) and out["intercept"] == pytest.approx(0.8)
    assert out["rmse"] == pytest.approx(0.387298, abs=1e-6)
    # Thresholds 2·se = 0.1, 0.12, 0.5, 0.2: |errors| exceed them at points 1 and 4.
    assert out["outliers"] == 2 and out["outlier_ratio"] == 0.5


def test_mos_vs_objective_per_source_and_pooled(study):
    out = mos_vs_objective(study, "sdr").set_index(["question", "source"])
    points = condition_points(study, "sdr")
    points = points.loc[points["objective"].notna()]
    assert set(out.index.get_level_values("source")) == {"drums", "bass", "other", "vocals", "all"}
    for (q, s), part in points.groupby(["question", "source"]):
        r = stats.pearsonr(part["objective"], part["mos"]).statistic
        assert out.loc[(q, s), "pearson_r"] == pytest.approx(r)
        assert out.loc[(q, s), "n_points"] == 4  # ground truth has no SDR
    pooled = points.loc[points["question"] == "accuracy"]
    rho = stats.spearmanr(pooled["objective"], pooled["mos"]).statistic
    assert out.loc[("accuracy", "all"), "spearman_rho"] == pytest.approx(rho)
    assert out.loc[("accuracy", "all"), "n_points"] == 16
    # The mapping is a least-squares line: compare with numpy's.
    slope, intercept = np.polyfit(pooled["objective"], pooled["mos"], 1)
    assert out.loc[("accuracy", "all"), "slope"] == pytest.approx(slope)


def test_condition_points_weight_stimuli_by_ratings():
    d = pd.DataFrame({"question": "q", "source": "s", "condition": "a",
                      "score": [1, 2, 3], "sdr": [3.0, 3.0, 9.0]})
    r = condition_points(d).iloc[0]
    assert r["mos"] == 2 and r["objective"] == 5 and r["se"] == pytest.approx(1 / np.sqrt(3))


def test_outlier_basis_ci_is_stricter_than_se(study):
    se = mos_vs_objective(study, "sdr")
    ci = mos_vs_objective(study, "sdr", outlier_basis="ci")
    assert (ci["outliers"] <= se["outliers"]).all()
    points = condition_points(study, "sdr")
    pooled = points.loc[(points["question"] == "accuracy") & points["objective"].notna()]
    slope, intercept = np.polyfit(pooled["objective"], pooled["mos"], 1)
    err = np.abs(pooled["mos"] - (intercept + slope * pooled["objective"]))
    row = se.set_index(["question", "source"]).loc[("accuracy", "all")]
    assert row["outliers"] == int((err > 2 * pooled["se"]).sum())
    assert row["rmse"] == pytest.approx(np.sqrt((err**2).sum() / (len(err) - 2)))
