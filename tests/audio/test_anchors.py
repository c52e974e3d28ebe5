"""BS.1534-3 anchors: attenuation and ripple measured on the filter and on signals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from mosplatform.audio.anchors import (
    LOW_ANCHOR_3K5,
    MID_ANCHOR_7K,
    anchor_response_db,
    anchor_sos,
    low_anchor_3k5,
    measure_anchor_design,
    mid_anchor_7k,
)

SPECS = [(LOW_ANCHOR_3K5, low_anchor_3k5), (MID_ANCHOR_7K, mid_anchor_7k)]
RATES = [44100, 48000]


def _impulse_response_db(func, sr: int, n: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude response of the whole anchor function, from its output for an impulse."""
    x = np.zeros(n, dtype=np.float32)
    x[n // 2] = 1.0
    h = func(x, sr)[:, 0].astype(np.float64)
    spec = np.abs(np.fft.rfft(h))
    return np.fft.rfftfreq(n, 1 / sr), 20 * np.log10(np.maximum(spec, 1e-20))


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("spec,func", SPECS)
def test_filter_response_meets_bs1534(spec, func, sr: int) -> None:
    # Independent of the module's own helpers: scipy's sosfreqz on the sections, squared
    # for the forward-backward pass.
    sos = anchor_sos(spec, sr)
    f_pass = np.linspace(1, spec.cutoff_hz, 2000)
    _, h = signal.sosfreqz(sos, worN=f_pass, fs=sr)
    pass_db = 40 * np.log10(np.abs(h))
    assert pass_db.max() <= 0.1 and pass_db.min() >= -0.1
    for f_req, att in spec.min_attenuation_db:
        f_stop = np.linspace(f_req, sr / 2, 4000)
        _, h = signal.sosfreqz(sos, worN=f_stop, fs=sr)
        assert -40 * np.log10(np.abs(h)).max() >= att, f"{f_req} Hz"
    # The module's own report agrees.
    report = measure_anchor_design(spec, sr)
    assert abs(report["passband_min_db"]) <= spec.max_ripple_db
    for f_req, att in spec.min_attenuation_db:
        assert report[f"attenuation_db_at_{int(f_req)}"] >= att


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("spec,func", SPECS)
def test_impulse_response_of_anchor_function(spec, func, sr: int) -> None:
    freqs, mag = _impulse_response_db(func, sr)
    passband = mag[(freqs > 20) & (freqs <= spec.cutoff_hz)]
    assert np.max(np.abs(passband)) <= spec.max_ripple_db
    for f_req, att in spec.min_attenuation_db:
        assert mag[freqs >= f_req].max() <= -att, f"{f_req} Hz"


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("spec,func", SPECS)
def test_attenuation_on_white_noise_welch(spec, func, sr: int) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((sr * 8, 2)) * 0.1
    y = func(x, sr)
    assert y.shape == x.shape and y.dtype == np.float32
    f, p_in = signal.welch(x[:, 0], fs=sr, nperseg=4096)
    _, p_out = signal.welch(y[:, 0].astype(np.float64), fs=sr, nperseg=4096)
    ratio_db = 10 * np.log10(p_out / p_in)
    for f_req, att in spec.min_attenuation_db:
        k = np.argmin(np.abs(f - f_req))
        assert ratio_db[k] <= -att, f"{f_req} Hz: {ratio_db[k]:.1f} dB"
    # Pass band: the PSD ratio of a linear filter is its |H|^2, up to estimation noise
    # that cancels because both PSDs come from the same noise realisation.
    band = (f > 100) & (f < 0.9 * spec.cutoff_hz)
    assert np.max(np.abs(ratio_db[band])) < 0.2


@pytest.mark.parametrize("spec,func", SPECS)
def test_anchor_is_zero_phase_and_time_aligned(spec, func) -> None:
    sr = 48000
    rng = np.random.default_rng(3)
    # Band-limited noise inside the pass band must come out unchanged and aligned.
    b = signal.firwin(501, 0.8 * spec.cutoff_hz, fs=sr)
    x = signal.filtfilt(b, [1.0], rng.standard_normal(sr * 2))
    y = func(x, sr)[:, 0]
    core = slice(sr // 4, -sr // 4)
    xcorr = signal.correlate(y[core], x[core], mode="full")
    lag = int(np.argmax(xcorr)) - (len(x[core]) - 1)
    assert lag == 0
    err = np.sqrt(np.mean((y[core] - x[core]) ** 2) / np.mean(x[core] ** 2))
    assert err < 0.02  # 0.1 dB of ripple is at most ~1.2 % amplitude error


def test_response_helper_matches_definition() -> None:
    sr = 44100
    f = np.array([1000.0, 4000.0, 4500.0])
    _, h = signal.sosfreqz(anchor_sos(LOW_ANCHOR_3K5, sr), worN=f, fs=sr)
    np.testing.assert_allclose(anchor_response_db(LOW_ANCHOR_3K5, sr, f),
                               40 * np.log10(np.abs(h)))


def test_too_low_sample_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="too low"):
        mid_anchor_7k(np.zeros(1000), 16000)
    with pytest.raises(ValueError, match="too low"):
        low_anchor_3k5(np.zeros(1000), 8000)


def test_short_and_mono_input() -> None:
    assert low_anchor_3k5(np.zeros(1), 44100).shape == (1, 1)
    y = low_anchor_3k5(np.ones(10), 44100)
    assert y.shape == (10, 1) and np.all(np.isfinite(y))
