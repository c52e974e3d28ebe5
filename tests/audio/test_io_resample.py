"""Reading/writing and rational resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mosplatform.audio.io import read_audio, write_audio
from mosplatform.audio.resample import resample, resampled_length


@pytest.mark.parametrize("suffix,subtype,tol", [(".wav", "PCM_16", 2**-15), (".wav", "FLOAT", 0),
                                                (".flac", "PCM_24", 2**-23)])
def test_round_trip(tmp_path: Path, suffix: str, subtype: str, tol: float) -> None:
    x = np.random.default_rng(0).uniform(-0.9, 0.9, (1000, 2)).astype(np.float32)
    path = write_audio(tmp_path / f"x{suffix}", x, 22050, subtype=subtype)
    y, sr = read_audio(path)
    assert sr == 22050 and y.shape == (1000, 2) and y.dtype == np.float32
    assert np.max(np.abs(y - x)) <= tol


def test_mono_is_two_dimensional(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "m.wav", np.zeros(10), 8000)
    y, _ = read_audio(path)
    assert y.shape == (10, 1)


def test_write_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="suffix"):
        write_audio(tmp_path / "x.mp3", np.zeros(10), 8000)
    with pytest.raises(ValueError, match="subtype"):
        write_audio(tmp_path / "x.flac", np.zeros(10), 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "x.wav", np.full(10, np.nan), 8000)


@pytest.mark.parametrize("n", [1, 7, 1000, 44100, 44101])
@pytest.mark.parametrize("rates", [(44100, 48000), (48000, 44100), (16000, 44100)])
def test_resample_length(n: int, rates: tuple[int, int]) -> None:
    a, b = rates
    y = resample(np.zeros((n, 2)), a, b)
    assert y.shape == (int(np.ceil(n * b / a)), 2) == (resampled_length(n, a, b), 2)


def test_resample_preserves_a_sine() -> None:
    # Compare against the analytic sine sampled at the new rate (away from the edges).
    f, a, b = 1000.0, 44100, 48000
    x = np.sin(2 * np.pi * f * np.arange(a) / a)
    y = resample(np.stack([x, -x], axis=1), a, b)
    expected = np.sin(2 * np.pi * f * np.arange(len(y)) / b)
    core = slice(1000, -1000)
    assert np.max(np.abs(y[core, 0] - expected[core])) < 1e-3
    np.testing.assert_allclose(y[:, 1], -y[:, 0], atol=1e-6)


def test_resample_same_rate_and_errors() -> None:
    x = np.ones(5)
    assert resample(x, 8000, 8000).shape == (5, 1)
    with pytest.raises(ValueError):
        resample(x, 0, 8000)
