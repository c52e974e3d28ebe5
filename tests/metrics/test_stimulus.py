"""stimulus_scores against museval's stored outputs and simple limits."""

from __future__ import annotations

import numpy as np
import pytest

from mosplatform.metrics import framewise_sdr, nsdr, si_sdr, stimulus_scores


def test_matches_museval_medians_for_one_target(generated_cases, museval_reference):
    case, refs, ests = generated_cases["stereo_mix_8k"]
    assert case.window == case.sr  # stimulus_scores uses one-second frames
    scores = stimulus_scores(refs[0], ests[0], case.sr, interferers=list(refs[1:]))
    for metric in ("SDR", "ISR", "SIR", "SAR"):
        expected = np.median(museval_reference[f"stereo_mix_8k__{metric}"][0])
        assert scores[metric.lower()] == pytest.approx(expected, abs=1e-4)
    assert scores["si_sdr"] == pytest.approx(si_sdr(refs[0], ests[0]))
    assert scores["nsdr"] == pytest.approx(nsdr(refs[0], ests[0]))


def test_without_interferers_sir_is_infinite_and_sdr_unchanged(generated_cases):
    case, refs, ests = generated_cases["stereo_mix_8k"]
    alone = stimulus_scores(refs[0], ests[0], case.sr)
    assert alone["sir"] == np.inf
    expected = np.median(framewise_sdr(refs[:1], ests[:1], window=case.sr, hop=case.sr))
    assert alone["sdr"] == pytest.approx(expected)


def test_short_excerpt_is_one_frame():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((3000, 2))
    est = ref + 0.1 * rng.standard_normal(ref.shape)
    scores = stimulus_scores(ref, est, 8000)  # 0.375 s < one window
    expected = 10 * np.log10((ref**2).sum() / ((est - ref) ** 2).sum())
    assert scores["sdr"] == pytest.approx(expected)
    tiny = stimulus_scores(ref[:100], est[:100], 8000)  # shorter than the filters
    assert tiny["sdr"] == pytest.approx(
        10 * np.log10((ref[:100] ** 2).sum() / ((est - ref)[:100] ** 2).sum()))


def test_silent_signals_give_nan_bss_scores_not_errors():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(8000)
    silent = stimulus_scores(ref, np.zeros(8000), 8000)
    assert np.isnan(silent["sdr"]) and silent["nsdr"] == pytest.approx(0.0, abs=1e-6)
    # a silent interferer is left out instead of failing
    est = ref + 0.1 * rng.standard_normal(8000)
    with_silent = stimulus_scores(ref, est, 8000, interferers=[np.zeros(8000)])
    alone = stimulus_scores(ref, est, 8000)
    assert with_silent == pytest.approx(alone)
    with pytest.raises(ValueError):
        stimulus_scores(ref, np.zeros((8000, 2)), 8000)
