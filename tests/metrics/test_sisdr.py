"""SI-SDR and whole-signal SDR against their closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from mosplatform.metrics import MDX_DELTA, nsdr, si_sdr


def _orthogonal_noise(reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(reference.shape)
    return noise - (noise * reference).sum() / (reference * reference).sum() * reference


@pytest.mark.parametrize("shape", [(5000,), (5000, 2)])
@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5])
def test_si_sdr_closed_form(shape, alpha):
    rng = np.random.default_rng(0)
    s = rng.standard_normal(shape)
    n = 0.2 * _orthogonal_noise(s, rng)
    # e = alpha s + n with n orthogonal to s: the projection is exactly alpha s
    expected = 10 * np.log10(alpha**2 * (s**2).sum() / (n**2).sum())
    assert si_sdr(s, alpha * s + n) == pytest.approx(expected, abs=1e-10)


def test_si_sdr_is_scale_invariant_and_per_source():
    rng = np.random.default_rng(1)
    s = rng.standard_normal((3, 4000, 2))
    e = s + 0.3 * rng.standard_normal(s.shape)
    per_source = si_sdr(s, e)
    assert per_source.shape == (3,)
    np.testing.assert_allclose(si_sdr(s, 7.0 * e), per_source, atol=1e-10)
    np.testing.assert_allclose(per_source, [si_sdr(s[i], e[i]) for i in range(3)])


def test_si_sdr_limits_and_zero_mean():
    s = np.array([1.0, 2.0, 3.0, 4.0])
    assert si_sdr(s, 3 * s) == np.inf
    # zero_mean removes the offset before projecting: an offset copy is then perfect
    assert si_sdr(s, s + 10.0, zero_mean=True) == np.inf
    assert np.isfinite(si_sdr(s, s + 10.0))
    with pytest.raises(ValueError):
        si_sdr(s, s[:3])


def test_nsdr_closed_form_with_mdx_delta():
    s = np.ones((1000, 2))
    e = 0.9 * s
    num, den = 2000.0, 2000.0 * 0.01
    assert nsdr(s, e) == pytest.approx(10 * np.log10((num + MDX_DELTA) / (den + MDX_DELTA)))
    assert nsdr(s, e, delta=0.0) == pytest.approx(20.0)
    # the delta keeps perfect and silent cases finite, as in the challenge
    assert nsdr(s, s) == pytest.approx(10 * np.log10((num + 1e-7) / 1e-7))
    assert nsdr(np.zeros(10), np.zeros(10)) == 0.0
    per_source = nsdr(np.stack([s, 2 * s]), np.stack([e, s]), delta=0.0)
    np.testing.assert_allclose(per_source, [20.0, 10 * np.log10(4 / 1)])
