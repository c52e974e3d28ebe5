"""Loudness alignment: BS.1770-4 calibration points, ffmpeg's ebur128 as a second meter."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mosplatform.audio.loudness import (
    LoudnessClippingError,
    integrated_loudness,
    normalize_loudness,
    normalize_to_lufs,
    peak_dbfs,
)

SR = 48000


def _sine(freq: float, amp: float, seconds: float = 5.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def _music_like(seed: int, gain: float = 0.1) -> np.ndarray:
    """Harmonic tones with an amplitude envelope over pink-ish noise, stereo."""
    rng = np.random.default_rng(seed)
    n = SR * 4
    t = np.arange(n) / SR
    f0 = 110 * (1 + rng.random())
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t) ** 2
    noise = np.cumsum(rng.standard_normal(n)) * 0.002
    noise -= np.convolve(noise, np.ones(2001) / 2001, mode="same")
    x = gain * (tone * env + noise)
    return np.stack([x, 0.8 * x], axis=1).astype(np.float32)


def _ffmpeg_lufs(path: Path) -> float:
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128", "-f", "null",
         "-"], capture_output=True, text=True, check=True, timeout=60).stderr
    summary = out[out.rindex("Summary:"):]
    return float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))


def test_bs1770_calibration_sine() -> None:
    # BS.1770-4: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS; in two channels,
    # whose powers add, 0.00 LKFS; a 6.02 dB lower amplitude reads 6.02 LU lower.
    assert integrated_loudness(_sine(997, 1.0), SR) == pytest.approx(-3.01, abs=0.05)
    assert integrated_loudness(_sine(997, 1.0, channels=2), SR) == pytest.approx(0.0, abs=0.05)
    assert integrated_loudness(_sine(997, 0.5), SR) == pytest.approx(-9.03, abs=0.05)


def test_silence_and_short_input() -> None:
    assert integrated_loudness(np.zeros((SR, 2)), SR) == -math.inf
    with pytest.raises(ValueError, match="at least"):
        integrated_loudness(np.zeros((100, 2)), SR)


@pytest.mark.parametrize("target", [-23.0, -30.0, -16.0])
def test_normalise_within_half_lu_by_an_independent_meter(tmp_path: Path, target: float
                                                          ) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    x = _music_like(1)
    y = normalize_to_lufs(x, SR, target)
    path = tmp_path / "y.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    assert abs(_ffmpeg_lufs(path) - target) <= 0.5
    assert abs(integrated_loudness(y, SR) - target) <= 0.5


def test_item_mode_keeps_relative_levels() -> None:
    ref = _music_like(2, gain=0.2)
    quiet = ref * 0.25  # a condition 12 dB down
    res = normalize_loudness({"ref": ref, "quiet": quiet}, SR, -23.0, mode="item",
                             reference="ref")
    assert res.gains_db["ref"] == res.gains_db["quiet"]
    assert integrated_loudness(res.signals["ref"], SR) == pytest.approx(-23.0, abs=0.5)
    diff = integrated_loudness(res.signals["ref"], SR) - integrated_loudness(
        res.signals["quiet"], SR)
    assert diff == pytest.approx(20 * np.log10(4), abs=0.05)
    np.testing.assert_allclose(res.signals["quiet"], 0.25 * res.signals["ref"], rtol=1e-5,
                               atol=1e-7)


def test_item_mode_without_reference_uses_energy_mean() -> None:
    a = _music_like(3, gain=0.2)
    b = a * 10 ** (-6 / 20)
    res = normalize_loudness({"a": a, "b": b}, SR, -23.0)
    la, lb = (integrated_loudness(res.signals[k], SR) for k in "ab")
    # The energy mean of the two sits at the target.
    assert 10 * np.log10((10 ** (la / 10) + 10 ** (lb / 10)) / 2) == pytest.approx(-23, abs=0.1)


def test_stimulus_mode_hits_target_each() -> None:
    signals = {"a": _music_like(4, gain=0.3), "b": _music_like(5, gain=0.02)}
    res = normalize_loudness(signals, SR, -26.0, mode="stimulus")
    for k in signals:
        assert integrated_loudness(res.signals[k], SR) == pytest.approx(-26.0, abs=0.5)
    assert res.gains_db["a"] != res.gains_db["b"]


def test_clipping_is_refused_or_flagged_with_peak() -> None:
    loud_peaky = _music_like(6, gain=0.05)
    loud_peaky[1000] = 0.9  # one spike: normalising the loudness up makes it clip
    with pytest.raises(LoudnessClippingError) as info:
        normalize_loudness({"x": loud_peaky}, SR, -10.0)
    assert "x" in info.value.peaks_dbfs and info.value.peaks_dbfs["x"] > 0
    assert "dBFS" in str(info.value)
    res = normalize_loudness({"x": loud_peaky}, SR, -10.0, on_clip="flag")
    assert res.clipped == ["x"]
    assert res.peak_dbfs["x"] == pytest.approx(peak_dbfs(res.signals["x"]))
    assert res.peak_dbfs["x"] > 0  # not clipped silently


def test_silent_reference_is_an_error() -> None:
    with pytest.raises(ValueError, match="silent"):
        normalize_loudness({"ref": np.zeros((SR, 2)), "b": _music_like(7)}, SR,
                           reference="ref")
    with pytest.raises(ValueError, match="silent"):
        normalize_loudness({"b": np.zeros((SR, 2))}, SR, mode="stimulus")
    with pytest.raises(ValueError, match="reference"):
        normalize_loudness({"b": _music_like(7)}, SR, reference="nope")
