"""Headphone screening signals: antiphase (Woods et al. 2017), Huggins pitch (Milne et al. 2021)."""

from __future__ import annotations

import numpy as np
import pytest

from mosplatform.audio.headphone import (
    antiphase_option,
    antiphase_trial,
    huggins_noise,
    huggins_option,
    huggins_trial,
)

SR = 44100


def _rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2))


@pytest.mark.parametrize("seed", range(6))
def test_antiphase_trial_structure(seed: int) -> None:
    trial = antiphase_trial(SR, seed=seed)
    quiet = trial.options[trial.answer]
    others = [o for i, o in enumerate(trial.options) if i != trial.answer]
    # The answer is 6 dB below the others, and in phase.
    for o in others:
        assert _rms_db(o) - _rms_db(quiet) == pytest.approx(6.0, abs=0.01)
    np.testing.assert_array_equal(quiet[:, 0], quiet[:, 1])
    # Exactly one of the others is in antiphase (left = -right), the other in phase.
    anti = [bool(np.allclose(o[:, 0], -o[:, 1]) and np.any(o)) for o in others]
    same = [bool(np.array_equal(o[:, 0], o[:, 1])) for o in others]
    assert sorted(anti) == [False, True] and sorted(same) == [False, True]
    # Over a "loudspeaker" (channels summed in the air) the antiphase tone vanishes and
    # would be chosen as softest; over headphones each ear gets the standard level.
    summed = [o[:, 0] + o[:, 1] for o in trial.options]
    assert int(np.argmin([np.mean(s**2) for s in summed])) != trial.answer
    # 200 Hz tone, 1 s, with gaps between intervals.
    spec = np.abs(np.fft.rfft(quiet[:, 0]))
    assert np.fft.rfftfreq(len(quiet), 1 / SR)[np.argmax(spec)] == pytest.approx(200, abs=1)
    assert trial.audio.shape == (3 * SR + 2 * SR // 2, 2)
    assert trial.onsets_s == pytest.approx((0.0, 1.5, 3.0))


def test_answers_vary_with_seed_and_are_reproducible() -> None:
    answers = {antiphase_trial(SR, seed=s).answer for s in range(30)}
    assert answers == {0, 1, 2}
    assert {huggins_trial(8000, seed=s).answer for s in range(30)} == {0, 1, 2}
    a, b = antiphase_trial(SR, seed=4), antiphase_trial(SR, seed=4)
    assert a.answer == b.answer and np.array_equal(a.audio, b.audio)
    h1, h2 = huggins_trial(SR, seed=9), huggins_trial(SR, seed=9)
    assert h1.answer == h2.answer and np.array_equal(h1.audio, h2.audio)


def test_option_api_is_consistent_per_seed() -> None:
    # The same seed and answer give the same antiphase interval whichever option is asked.
    for correct in range(3):
        opts = [antiphase_option(i, correct, sr=SR, seed=11) for i in range(3)]
        assert sum(bool(np.allclose(o[:, 0], -o[:, 1]) and np.any(o)) for o in opts) == 1
        assert int(np.argmin([_rms_db(o) for o in opts])) == correct
    with pytest.raises(ValueError):
        antiphase_option(3, 0)


def test_huggins_pitch_interval() -> None:
    x = huggins_noise(SR, with_pitch=True, seed=1)
    left, right = x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)
    n = len(left)
    # Ramps aside, each ear alone has the same magnitude spectrum: no monaural cue.
    core = slice(int(0.02 * SR), n - int(0.02 * SR))
    L, R = np.fft.rfft(left[core]), np.fft.rfft(right[core])
    fc = np.fft.rfftfreq(len(left[core]), 1 / SR)
    assert np.corrcoef(np.abs(L), np.abs(R))[0, 1] > 0.95
    # Interaural phase: inverted within 600 Hz +/- 6 %, identical elsewhere.
    cross = L * np.conj(R)
    band = (fc > 600 * 0.95) & (fc < 600 * 1.05)
    outside = (fc > 1000) & (fc < 5000)
    assert np.mean(np.cos(np.angle(cross[band]))) < -0.9
    assert np.mean(np.cos(np.angle(cross[outside]))) > 0.99
    assert _rms_db(left) == pytest.approx(-20.0, abs=0.3)


def test_huggins_reference_intervals_are_diotic_and_distinct() -> None:
    opts = [huggins_option(i, correct=2, sr=SR, seed=5) for i in range(3)]
    for o in opts[:2]:
        np.testing.assert_array_equal(o[:, 0], o[:, 1])
    assert not np.array_equal(opts[2][:, 0], opts[2][:, 1])
    assert not np.array_equal(opts[0], opts[1])  # fresh noise per interval


@pytest.mark.parametrize("seed", [-1, 2**63 - 1, 2**70 + 3])
def test_any_integer_seed(seed: int) -> None:
    a = antiphase_option(0, 1, sr=8000, seed=seed)
    assert a.shape == (8000, 2)
    assert np.array_equal(huggins_option(1, 1, sr=8000, seed=seed),
                          huggins_option(1, 1, sr=8000, seed=seed))
