"""Excerpt selection (all sources active) and raised-cosine edge fades."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mosplatform.audio.excerpt import (
    ExcerptWarning,
    apply_fades,
    cut_excerpt,
    explicit_span,
    find_active_span,
    raised_cosine_fade,
)

SR = 16000


def _sources(active: dict[str, tuple[float, float]], total_s: float = 20.0,
             seed: int = 0) -> dict[str, np.ndarray]:
    """Noise sources, each active (about -20 dBFS) only between its (start, stop) seconds."""
    rng = np.random.default_rng(seed)
    n = int(total_s * SR)
    out = {}
    for name, (a, b) in active.items():
        x = np.zeros((n, 2), dtype=np.float32)
        i, j = int(a * SR), int(b * SR)
        x[i:j] = 0.1 * rng.standard_normal((j - i, 2))
        out[name] = x
    return out


def test_finds_planted_span_where_all_sources_play() -> None:
    # All four overlap only in [6, 14] s; an 8 s excerpt must start at 6 s.
    src = _sources({"drums": (0, 14), "bass": (5, 20), "other": (2, 16), "vocals": (6, 18)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        span = find_active_span(src, SR, 8.0)
    assert span.start_s == pytest.approx(6.0, abs=0.05)
    assert span.num_frames == 8 * SR and not span.fallback
    assert span.min_active_fraction == pytest.approx(1.0)


def test_prefers_louder_minimum_among_fully_active_spans() -> None:
    # All active everywhere, but the vocals are 20 dB louder in [10, 18] s.
    src = _sources({"drums": (0, 20), "vocals": (0, 20)})
    src["vocals"][: 10 * SR] *= 0.1
    src["vocals"][18 * SR:] *= 0.1
    span = find_active_span(src, SR, 8.0)
    assert span.start_s == pytest.approx(10.0, abs=0.05)


def test_tolerates_short_rests_but_not_long_silence() -> None:
    src = _sources({"a": (0, 20), "b": (0, 20)})
    src["b"][int(5 * SR):int(5.3 * SR)] = 0  # a breath: 0.3 s of an 8 s window
    span = find_active_span(src, SR, 8.0, min_active_fraction=0.9)
    assert not span.fallback


def test_sparse_hits_count_as_active_but_long_silence_keeps_its_edges() -> None:
    src = _sources({"pad": (0, 20)})
    hits = np.zeros((20 * SR, 2), dtype=np.float32)
    rng = np.random.default_rng(1)
    for t in np.arange(0.0, 20.0, 0.6):  # 50 ms bursts every 0.6 s, like a sparse groove
        i = int(t * SR)
        hits[i:i + SR // 20] = 0.3 * rng.standard_normal((SR // 20, 2))
    hits[int(4 * SR):int(10 * SR)] = 0  # a 6 s break
    src["drums"] = hits
    span = find_active_span(src, SR, 8.0)
    assert not span.fallback and span.min_active_fraction == pytest.approx(1.0)
    assert span.start_s >= 10.0 - 0.05  # not before the drums come back


def test_fallback_warns_when_no_common_span() -> None:
    src = _sources({"a": (0, 8), "b": (10, 20)})
    with pytest.warns(ExcerptWarning, match="no 8 s span"):
        span = find_active_span(src, SR, 8.0)
    assert span.fallback and span.min_active_fraction < 0.9
    assert "'a'" in span.reason or "'b'" in span.reason


def test_track_shorter_than_excerpt() -> None:
    src = _sources({"a": (0, 5)}, total_s=5.0)
    with pytest.warns(ExcerptWarning, match="whole track"):
        span = find_active_span(src, SR, 8.0)
    assert span.start_frame == 0 and span.num_frames == 5 * SR and span.fallback


def test_sequence_input_and_threshold() -> None:
    src = _sources({"a": (0, 20), "b": (0, 20)})
    quiet = src["b"] * 10 ** (-50 / 20)  # -50 dB below the track peak: inactive at -40
    with pytest.warns(ExcerptWarning):
        find_active_span([src["a"], quiet], SR, 4.0)
    span = find_active_span([src["a"], quiet], SR, 4.0, threshold_db=-70)
    assert not span.fallback


def test_explicit_span_validation() -> None:
    span = explicit_span(1.5, 2.0, SR, 10 * SR)
    assert (span.start_frame, span.num_frames) == (int(1.5 * SR), 2 * SR)
    with pytest.raises(ValueError, match="ends after"):
        explicit_span(9.0, 2.0, SR, 10 * SR)
    with pytest.raises(ValueError):
        explicit_span(-1.0, 2.0, SR, 10 * SR)


def test_raised_cosine_shape() -> None:
    n = 320  # 20 ms at 16 kHz
    g = raised_cosine_fade(n)
    k = np.arange(n)
    np.testing.assert_allclose(g, np.sin(np.pi * k / (2 * n)) ** 2, atol=1e-12)  # sin^2 form
    assert g[0] == 0.0 and np.all(np.diff(g) > 0) and g[-1] < 1.0
    assert g[n // 2] == pytest.approx(0.5)


def test_apply_fades_edges_and_middle() -> None:
    x = np.ones((SR, 2), dtype=np.float32)
    y = apply_fades(x, SR, 0.02, 0.02)
    n = int(0.02 * SR)
    assert y[0, 0] == 0.0 and y[-1, 0] == 0.0
    np.testing.assert_array_equal(y[n:-n], x[n:-n])
    np.testing.assert_allclose(y[:n, 1], raised_cosine_fade(n), atol=1e-7)
    np.testing.assert_allclose(y[-n:, 1], raised_cosine_fade(n)[::-1], atol=1e-7)
    assert np.all(x == 1)  # input untouched


def test_cut_excerpt() -> None:
    x = np.tile(np.arange(10 * SR, dtype=np.float32)[:, None] / (10 * SR), (1, 2))
    span = explicit_span(2.0, 3.0, SR, len(x))
    y = cut_excerpt(x, span, fade_s=0.01)
    assert y.shape == (3 * SR, 2)
    mid = len(y) // 2
    assert y[mid, 0] == x[2 * SR + mid, 0]
    assert y[0, 0] == 0.0
