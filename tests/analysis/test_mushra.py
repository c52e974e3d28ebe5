import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mosplatform.analysis import mixed_model, mushra_post_screening, mushra_summary


def _listener(name: str, n_items: int, hr_low: int = 0, mid_high: int = 0,
              mid_high_items: list[int] | None = None) -> list[tuple]:
    """One assessor's hidden-reference and mid-anchor ratings over ``n_items`` items."""
    rows = []
    high = set(mid_high_items if mid_high_items is not None else range(mid_high))
    for i in range(n_items):
        rows.append((name, f"item{i}", "q", "hidden_reference", 80 if i < hr_low else 100))
        rows.append((name, f"item{i}", "q", "mid_anchor", 95 if i in high else 60))
        rows.append((name, f"item{i}", "q", "system", 50))
    return rows


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["participant", "item", "question", "role", "score"])


def test_hidden_reference_boundary_15_percent():
    # 20 items: 3 low ratings = 15 % exactly (kept), 4 = 20 % (more than 15 %: excluded).
    rows = _listener("at", 20, hr_low=3) + _listener("over", 20, hr_low=4) + \
        _listener("clean", 20)
    out = mushra_post_screening(_frame(rows)).set_index("participant")
    assert not out.loc["at", "excluded"] and out.loc["at", "hidden_reference_fraction"] == 0.15
    assert out.loc["over", "excluded"]
    assert "hidden reference < 90 on 4/20" in out.loc["over", "reason"]
    assert not out.loc["clean", "excluded"]


def test_hidden_reference_exactly_90_is_not_low():
    rows = [("p", f"i{k}", "q", "hidden_reference", 90) for k in range(5)]
    assert not mushra_post_screening(_frame(rows))["excluded"].iloc[0]


def test_mid_anchor_boundary_15_percent():
    # Twenty other assessors keep every item's share of high mid-anchor ratings low.
    rows = _listener("at", 20, mid_high=3) + _listener("over", 20, mid_high_items=[5, 6, 7, 8])
    for k in range(20):
        rows += _listener(f"ok{k}", 20)
    out = mushra_post_screening(_frame(rows)).set_index("participant")
    assert not out.loc["at", "excluded"] and out.loc["at", "n_mid_anchor_high"] == 3
    assert out.loc["over", "excluded"] and out.loc["over", "mid_anchor_fraction"] == 0.2
    assert "mid anchor > 90 on 4/20" in out.loc["over", "reason"]


def _assessor_rule_case(others_high: int) -> pd.DataFrame:
    """8 assessors; "x" rates the mid anchor > 90 on items 0-3 (20 % of 20 items);
    ``others_high`` other assessors do the same on each of those items."""
    rows = _listener("x", 20, mid_high_items=[0, 1, 2, 3])
    for k in range(7):
        # The first ``others_high`` assessors also rate the mid anchor > 90 on items 0-3.
        items = [0, 1, 2, 3] if k < others_high else []
        rows += _listener(f"o{k}", 20, mid_high_items=items)
    return _frame(rows)


def test_mid_anchor_item_exemption_at_25_percent_counts():
    # 2 of 8 assessors (25 %, not more) on items 0-3: the items still count -> x excluded.
    out = mushra_post_screening(_assessor_rule_case(1)).set_index("participant")
    assert out.loc["x", "excluded"] and out.loc["x", "n_mid_anchor_high"] == 4


def test_mid_anchor_item_exemption_over_25_percent():
    # 3 of 8 assessors (37.5 %) on items 0-3: those items are exempt for everyone.
    out = mushra_post_screening(_assessor_rule_case(2)).set_index("participant")
    assert not out.loc["x", "excluded"] and out.loc["x", "n_mid_anchor_high"] == 0
    assert not out["excluded"].any()


def test_exemption_boundary_exactly_25_percent_with_4_assessors():
    # 4 assessors, 1 of them high on an item = 25 %: counts; 2 of 4 = 50 %: exempt.
    rows = _listener("x", 5, mid_high_items=[0]) + sum(
        (_listener(f"o{k}", 5) for k in range(3)), [])
    out = mushra_post_screening(_frame(rows)).set_index("participant")
    assert out.loc["x", "n_mid_anchor_high"] == 1 and out.loc["x", "excluded"]  # 1/5 > 15 %
    rows = _listener("x", 5, mid_high_items=[0]) + _listener("o0", 5, mid_high_items=[0]) + \
        sum((_listener(f"o{k}", 5) for k in range(1, 3)), [])
    out = mushra_post_screening(_frame(rows)).set_index("participant")
    assert out.loc["x", "n_mid_anchor_high"] == 0 and not out.loc["x", "excluded"]


def test_summary_matches_numpy_and_scipy(mushra):
    out = mushra_summary(mushra, by=["question", "condition"]).set_index("condition")
    for c, part in mushra.groupby("condition"):
        x = part["score"].to_numpy(dtype=float)
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        assert out.loc[c, "median"] == pytest.approx(med)
        assert out.loc[c, "iqr"] == pytest.approx(q3 - q1)
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert (out.loc[c, "ci_low"], out.loc[c, "ci_high"]) == pytest.approx((lo, hi))


def test_mixed_model_recovers_condition_effects():
    rng = np.random.default_rng(0)
    n, items = 30, 4
    d = pd.DataFrame([(p, i, c) for p in range(n) for i in range(items) for c in "abc"],
                     columns=["participant", "item", "condition"])
    effect = d["condition"].map({"a": 0.0, "b": 10.0, "c": 20.0})
    d["score"] = 50 + effect + rng.normal(0, 6, n)[d["participant"]] + \
        rng.normal(0, 4, len(d))
    d["question"] = "q"
    out = mixed_model(d).set_index("term")
    for term, true in (("condition[T.b]", 10.0), ("condition[T.c]", 20.0)):
        assert out.loc[term, "ci_low"] < true < out.loc[term, "ci_high"]
    # Fixed effects of a balanced design equal the differences of condition means.
    means = d.groupby("condition")["score"].mean()
    assert out.loc["condition[T.b]", "estimate"] == pytest.approx(means["b"] - means["a"],
                                                                  abs=1e-4)
    crossed = mixed_model(d, crossed=True).set_index("term")
    assert crossed.loc["condition[T.c]", "estimate"] == pytest.approx(
        means["c"] - means["a"], abs=1e-4)


def test_post_screening_on_simulated_complete_design(mushra):
    out = mushra_post_screening(mushra)
    assert len(out) == mushra["participant"].nunique()
    assert not out["excluded"].any()  # the simulator's hidden reference is always >= 90
