import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mosplatform.analysis import listeners_needed, n_for_half_width


def _brute(sd: float, h: float, confidence: float) -> int:
    n = 2
    while stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n) > h:
        n += 1
    return n


@pytest.mark.parametrize("sd,h,confidence", [(1.0, 0.5, 0.95), (0.9, 0.1, 0.95),
                                             (15.0, 5.0, 0.95), (1.2, 0.3, 0.99),
                                             (0.8, 2.0, 0.95)])
def test_n_for_half_width_is_the_smallest_n(sd, h, confidence):
    n = n_for_half_width(sd, h, confidence)
    assert n == _brute(sd, h, confidence)


def test_worked_example():
    # s = 1, h = 0.5: n = 17 gives t(0.975,16)/√17 = 2.1199/4.1231 = 0.5142 > 0.5;
    # n = 18 gives 2.1098/4.2426 = 0.4973 <= 0.5.
    assert n_for_half_width(1.0, 0.5) == 18


def test_listeners_needed_table():
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"participant": np.repeat(np.arange(10), 4), "question": "q",
                      "condition": "a", "score": rng.integers(1, 6, 40).astype(float)})
    r = listeners_needed(d, 0.2, by=["question", "condition"]).iloc[0]
    s = d["score"].std()
    assert r["votes_needed"] == _brute(s, 0.2, 0.95)
    assert r["listeners_needed"] == np.ceil(r["votes_needed"] / 4)
    assert r["additional_listeners"] == r["listeners_needed"] - 10
    assert r["half_width"] == pytest.approx(stats.t.ppf(0.975, 39) * s / np.sqrt(40))


def test_bad_target():
    with pytest.raises(ValueError, match="half_width must be positive"):
        n_for_half_width(1.0, 0.0)
