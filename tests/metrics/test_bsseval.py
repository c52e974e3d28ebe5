"""BSS Eval v4/v3 against museval's stored outputs (tests/metrics/make_fixtures.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import scipy.linalg

from mosplatform.metrics import bss_eval, bss_eval_v3, bss_eval_v4, frame_bounds, framewise_sdr
from mosplatform.metrics.bsseval import _block_levinson


def _load_cases():
    """The shared case generator (also loaded by conftest.py under the same name)."""
    name = "mosplatform_metrics_test_cases"
    if name not in sys.modules:
        path = Path(__file__).with_name("bsseval_cases.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cases = _load_cases()
METRICS = ("SDR", "ISR", "SIR", "SAR")
TOLERANCE_DB = 1e-4
# Above this, a ratio is set by floating-point rounding (e.g. the interference of an
# estimate equal to its reference, ~1e-14 of the signal): museval and any other
# implementation then print different large numbers. Such values must stay large.
ROUNDING_REGIME_DB = 200.0


@pytest.fixture(scope="module")
def ours(generated_cases):
    out = {}
    for name, (case, refs, ests) in generated_cases.items():
        out[name] = bss_eval(refs, ests, window=case.window, hop=case.hop,
                             filter_length=case.filter_length, mode=case.mode)
    return out


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("case", [c.name for c in cases.CASES])
def test_matches_museval(case, metric, ours, museval_reference):
    expected = museval_reference[f"{case}__{metric}"]
    got = ours[case][metric]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    regular = np.isfinite(expected) & (np.abs(expected) < ROUNDING_REGIME_DB)
    np.testing.assert_allclose(got[regular], expected[regular], rtol=0, atol=TOLERANCE_DB)
    rounding = np.isfinite(expected) & ~regular
    assert np.all(got[rounding] > ROUNDING_REGIME_DB)


def test_fixture_cases_cover_what_the_issue_asks(museval_reference):
    names = {c.name for c in cases.CASES}
    kinds = {c.kind for c in cases.CASES}
    assert {"equal", "scaled_filtered", "interference", "noise", "silent_frames"} <= kinds
    assert {1, 2} == {c.channels for c in cases.CASES}
    assert {"v3", "v4"} == {c.mode for c in cases.CASES}
    assert any(c.sr == 44100 and c.filter_length == 512 for c in cases.CASES)
    # silent frames really are NaN in museval, and a trailing partial frame is dropped
    # (a reference silent in frame 1, an estimate in frame 4; half a frame is not silent)
    silent = np.isnan(museval_reference["stereo_silent_frames__SDR"])
    np.testing.assert_array_equal(silent.all(axis=0), [False, True, False, False, True])
    assert not silent.any(axis=0)[3]
    assert museval_reference["stereo_mix_8k__SDR"].shape[1] == 4  # 4.3 s of 1 s frames
    assert "stereo_4src_44k" in names


def test_framewise_sdr_is_the_v4_sdr(generated_cases, museval_reference):
    case, refs, ests = generated_cases["stereo_silent_frames"]
    got = framewise_sdr(refs, ests, window=case.window, hop=case.hop)
    np.testing.assert_allclose(got, museval_reference["stereo_silent_frames__SDR"],
                               atol=TOLERANCE_DB, rtol=0)


def test_v3_and_v4_wrappers(generated_cases):
    case, refs, ests = generated_cases["stereo_v3"]
    kwargs = dict(window=case.window, hop=case.hop, filter_length=64)
    v4 = bss_eval_v4(refs, ests, **kwargs)
    v3 = bss_eval_v3(refs, ests, **kwargs)
    np.testing.assert_allclose(v3.sdr, v4.sdr)  # SDR does not depend on the filters
    assert not np.allclose(v3.sir, v4.sir)
    assert (v4.mode, v3.mode) == ("v4", "v3")


def test_one_target_with_all_references_equals_the_full_evaluation(generated_cases):
    # The metrics of source j depend only on all references and estimate j.
    case, refs, ests = generated_cases["stereo_4src_44k"]
    full = bss_eval_v4(refs, ests)
    for j in (0, 2):
        order = [j] + [i for i in range(len(refs)) if i != j]
        single = bss_eval_v4(refs[order], ests[j][None])
        for metric in METRICS:
            np.testing.assert_allclose(single[metric][0], full[metric][j], atol=1e-9, rtol=0)


def test_frame_bounds_follow_museval_framing():
    # floor((N - W + H) / H) frames starting at t * H; the partial frame is dropped
    np.testing.assert_array_equal(frame_bounds(10, 4, 4), [[0, 4], [4, 8]])
    np.testing.assert_array_equal(frame_bounds(10, 4, 3), [[0, 4], [3, 7], [6, 10]])
    np.testing.assert_array_equal(frame_bounds(10, 10, 10), [[0, 10]])
    np.testing.assert_array_equal(frame_bounds(7, 100, 100), [[0, 7]])
    np.testing.assert_array_equal(frame_bounds(7, None, None), [[0, 7]])
    with pytest.raises(ValueError):
        frame_bounds(10, 0, 4)


def test_silent_sources_and_bad_shapes_are_refused():
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((2, 4000, 2))
    with pytest.raises(ValueError, match="reference"):
        bss_eval_v4(np.stack([refs[0], np.zeros_like(refs[1])]), refs, window=2000, hop=2000)
    with pytest.raises(ValueError, match="estimated"):
        bss_eval_v4(refs, np.stack([refs[0], np.zeros_like(refs[1])]), window=2000, hop=2000)
    with pytest.raises(ValueError, match="same shape"):
        bss_eval_v4(refs, refs[:, :, :1], window=2000, hop=2000)
    with pytest.raises(ValueError, match="mode"):
        bss_eval(refs, refs, mode="v2")


def test_estimates_are_padded_or_cut_like_museval_evaluate():
    rng = np.random.default_rng(1)
    refs = rng.standard_normal((2, 6000, 1))
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    kwargs = dict(window=2000, hop=2000, filter_length=32)
    longer = np.concatenate([ests, rng.standard_normal((2, 500, 1))], axis=1)
    np.testing.assert_allclose(bss_eval_v4(refs, longer, **kwargs).sar,
                               bss_eval_v4(refs, ests, **kwargs).sar)
    with pytest.raises(ValueError):
        bss_eval_v4(refs, longer, pad=False, **kwargs)


def test_block_levinson_against_dense_solve():
    rng = np.random.default_rng(2)
    n, p, m = 40, 3, 4
    x = rng.standard_normal((p, 4000))
    # covariance sequence of a real multichannel signal: SPD block Toeplitz
    blocks = np.stack([x[:, : 4000 - k] @ x[:, k:].T for k in range(n)])
    dense = np.block([[blocks[a - b] if a >= b else blocks[b - a].T for b in range(n)]
                      for a in range(n)])
    rhs = rng.standard_normal((n, p, m))
    expected = scipy.linalg.solve(dense, rhs.reshape(n * p, m), assume_a="pos")
    got = _block_levinson(blocks[None], rhs[None])[0].reshape(n * p, m)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_singular_gram_falls_back_without_failing():
    # Two identical references make the Gram matrix singular; museval then relies on
    # its solver's fallbacks. SDR (filter-free) must still be exact.
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((3000, 1))
    refs = np.stack([ref, ref])
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    res = bss_eval_v4(refs, ests, window=1000, hop=1000, filter_length=16)
    expected = 10 * np.log10((refs[0, :1000] ** 2).sum() / ((ests - refs)[0, :1000] ** 2).sum())
    assert res.sdr[0, 0] == pytest.approx(expected, abs=1e-9)
    assert res.sdr.shape == (2, 3)


def test_result_object():
    rng = np.random.default_rng(4)
    refs = rng.standard_normal((2, 3000, 2))
    res = bss_eval_v4(refs, refs + 0.05 * refs[::-1], window=1000, hop=1000, filter_length=8)
    assert set(res.as_dict()) == set(METRICS)
    assert res["sdr"] is res.sdr
    assert res.n_frames == 3 and res.window == 1000 and res.filter_length == 8


@pytest.mark.parametrize("chunk_bytes, band_bytes", [(1, 1), (1_500_000, 100_000)])
@pytest.mark.parametrize("case", ["stereo_mix_8k", "stereo_silent_frames"])
def test_chunks_batches_and_bands(case, chunk_bytes, band_bytes, generated_cases,
                                  museval_reference, monkeypatch):
    # Frames are transformed a chunk at a time (here one or two frames per chunk, one
    # per FFT call) and the products run over bands of frequencies (here one or a
    # few frequencies, so that the last band of each range is partial).
    from mosplatform.metrics import bsseval

    monkeypatch.setattr(bsseval, "_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(bsseval, "_FFT_BATCH_BYTES", 1)
    monkeypatch.setattr(bsseval, "_BAND_BYTES", band_bytes)
    spec, refs, ests = generated_cases[case]
    res = bss_eval_v4(refs, ests, window=spec.window, hop=spec.hop)
    for metric in METRICS:
        expected = museval_reference[f"{case}__{metric}"]
        finite = np.isfinite(expected)
        np.testing.assert_allclose(res[metric][finite], expected[finite], atol=TOLERANCE_DB)


@pytest.mark.parametrize("n, length, max_lag",
                         [(1000, 50, 16), (700, 700, 32), (90, 30, 8), (1000, 300, 16)])
def test_block_correlations_against_direct_sums(n, length, max_lag):
    # (1000, 300, 16): three blocks and a remainder block of 100 samples
    from mosplatform.metrics.bsseval import _block_correlations, _lagged_correlations

    rng = np.random.default_rng(5)
    refs = rng.standard_normal((2, n, 2))
    ests = rng.standard_normal((1, n, 2))
    x = refs.transpose(0, 2, 1).reshape(4, n)
    y = np.concatenate([x, ests.transpose(0, 2, 1).reshape(2, n)])
    expected = np.array([[[np.dot(x[p, : n - m], y[q, m:]) for q in range(6)]
                          for p in range(4)] for m in range(max_lag)])
    nfft = length + max_lag - 1
    got = _block_correlations(refs, ests, max_lag, length, n // length, nfft)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    np.testing.assert_allclose(_lagged_correlations(refs, ests, max_lag), expected, atol=1e-9)


def test_fft_length_prefers_powers_of_two():
    from mosplatform.metrics.bsseval import _fft_length

    # 1 s at 44.1 kHz plus 511 taps: 46080 = 2^10·45 rather than 45000 = 2^3·3^2·5^4
    assert _fft_length(44611) == 46080
    for n in (1, 7, 100, 8127, 12511, 44611, 1_000_003):
        size = _fft_length(n)
        assert n <= size <= max(scipy.fft.next_fast_len(n, real=True), 1.05 * n)
        odd = size // (size & -size)
        for factor in (3, 5):
            while odd % factor == 0:
                odd //= factor
        assert odd == 1  # 5-smooth


def test_cross_spectra_and_filter_operators_against_complex_products():
    from mosplatform.metrics.bsseval import _add_cross, _filter_operators

    rng = np.random.default_rng(7)
    frames, n_freq, n_ref, n_out = 3, 9, 4, 2
    spec = rng.standard_normal((frames, n_freq, n_ref + n_out)) + 1j * rng.standard_normal(
        (frames, n_freq, n_ref + n_out))
    expected = np.einsum("tfp,tfq->fpq", np.conjugate(spec[:, :, :n_ref]), spec)
    cross = np.empty((n_freq, n_ref, n_ref + n_out), dtype=np.complex128)
    _add_cross(spec[:2], n_ref, cross, first=True)
    _add_cross(spec[2:], n_ref, cross)
    np.testing.assert_allclose(cross, expected, rtol=1e-12)

    # filters (P, L, 2, K): onto all references, then onto the target's own (2 channels)
    n_ch, nfft = 2, 16
    filters = rng.standard_normal((n_ref, 5, 2, n_out))
    filters[2:, :, 1] = 0.0
    onto_all, onto_own = _filter_operators(filters, nfft, n_ch)
    x = spec[0, :, :n_ref]
    responses = np.fft.rfft(filters, n=nfft, axis=1)  # (P, F, 2, K)
    real_x = x.view(np.float64)
    got_all = np.einsum("fa,fab->fb", real_x, onto_all).view(np.complex128)
    np.testing.assert_allclose(got_all, np.einsum("fp,pfk->fk", x, responses[:, :, 0]),
                               rtol=1e-12)
    got_own = np.einsum("fa,fab->fb", real_x[:, : 2 * n_ch], onto_own[:, 0])
    np.testing.assert_allclose(got_own.view(np.complex128),
                               np.einsum("fp,pfk->fk", x[:, :n_ch], responses[:n_ch, :, 1]),
                               rtol=1e-12)


@pytest.mark.parametrize("workers", [1, 2])
def test_frame_spectra_chunks_and_reuse(workers, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from mosplatform.metrics import bsseval

    rng = np.random.default_rng(8)
    refs = rng.standard_normal((2, 700, 2))
    ests = rng.standard_normal((1, 700, 2))
    length, nfft = 100, 128
    monkeypatch.setattr(bsseval, "_CHUNK_BYTES", 3 * 16 * (nfft // 2 + 1) * 6)  # 3 frames
    with ThreadPoolExecutor(workers) as pool:
        par = bsseval._Parallel(workers, pool)
        spectra = bsseval._FrameSpectra(refs, ests, length, nfft, 7, par)
        calls = []
        transform = spectra._transform
        monkeypatch.setattr(spectra, "_transform", lambda job: calls.append(job) or transform(job))
        starts = np.arange(7) * length
        first_pass = [(first, len(spec)) for first, spec in spectra.chunks(starts)]
        assert first_pass == [(0, 3), (3, 3), (6, 1)]
        calls.clear()
        seen = {}
        for first, spec in spectra.chunks(starts):  # the second pass: frame 6 is held
            for i in range(len(spec)):
                seen[first + i] = spec[i].copy()
    assert sorted(seen) == list(range(7))
    assert sum(job[3].stop - job[3].start for job in calls) == 6  # frame 6 reused
    for t, start in enumerate(starts):
        x = np.concatenate([refs, ests])[:, start : start + length].transpose(0, 2, 1)
        expected = np.fft.rfft(x.reshape(6, length), n=nfft, axis=-1).T
        np.testing.assert_allclose(seen[t], expected, rtol=1e-10, atol=1e-10)


def test_a_source_active_only_in_the_dropped_partial_frame_is_accepted():
    # museval refuses all-zero sources over the whole signal, including the trailing
    # partial frame that no frame covers; such a source is silent in every frame.
    from mosplatform.metrics import silent_frames

    rng = np.random.default_rng(9)
    refs = rng.standard_normal((2, 2500, 1))
    refs[1, :2000] = 0.0
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    res = bss_eval_v4(refs, ests, window=1000, hop=1000, filter_length=8)
    assert np.isnan(res.sdr).all()
    np.testing.assert_array_equal(silent_frames(refs, ests, frame_bounds(2500, 1000, 1000)),
                                  [True, True])
    refs[1] = 0.0
    with pytest.raises(ValueError, match="reference"):
        bss_eval_v4(refs, ests, window=1000, hop=1000, filter_length=8)


def test_frames_shorter_than_the_filters():
    # 100-sample frames with 128 taps: a lag can cross several frames, so the frames
    # cannot serve as correlation blocks (museval comparison: the fixture case
    # mono_frames_shorter_than_filters); here the shapes and the filter-free SDR.
    rng = np.random.default_rng(6)
    refs = rng.standard_normal((2, 3000, 1))
    ests = refs + 0.3 * refs[::-1] + 0.1 * rng.standard_normal(refs.shape)
    short = bss_eval_v4(refs, ests, window=100, hop=100, filter_length=128)
    assert short.sdr.shape == (2, 30)
    expected = [10 * np.log10((refs[j, :100] ** 2).sum() / ((ests - refs)[j, :100] ** 2).sum())
                for j in range(2)]
    np.testing.assert_allclose(short.sdr[:, 0], expected)
    assert np.all(np.isfinite(short.sir))


@pytest.mark.parametrize("case", [c.name for c in cases.CASES])
def test_threads_give_the_single_thread_results(case, generated_cases, ours):
    # workers > 1 splits frequencies and frames between threads and runs the two filter
    # fits side by side: only the order of a few sums may change.
    spec, refs, ests = generated_cases[case]
    threaded = bss_eval(refs, ests, window=spec.window, hop=spec.hop,
                        filter_length=spec.filter_length, mode=spec.mode, workers=3)
    for metric in METRICS:
        one, many = ours[case][metric], threaded[metric]
        np.testing.assert_array_equal(np.isnan(many), np.isnan(one))
        np.testing.assert_array_equal(np.isposinf(many), np.isposinf(one))
        regular = np.isfinite(one) & (np.abs(one) < ROUNDING_REGIME_DB)
        np.testing.assert_allclose(many[regular], one[regular], rtol=0, atol=1e-10)
        assert np.all(many[np.isfinite(one) & ~regular] > ROUNDING_REGIME_DB)


def test_threads_with_recomputed_spectra_and_worker_counts(generated_cases, monkeypatch):
    from mosplatform.metrics import bsseval

    spec, refs, ests = generated_cases["stereo_silent_frames"]
    kwargs = dict(window=spec.window, hop=spec.hop, filter_length=spec.filter_length)
    one = bss_eval_v4(refs, ests, workers=1)  # default window: one frame per 44100
    monkeypatch.setattr(bsseval, "_CHUNK_BYTES", 1)  # one frame per chunk
    framed_one = bss_eval_v3(refs, ests, **kwargs)
    framed_all = bss_eval_v3(refs, ests, workers=-1, **kwargs)
    np.testing.assert_allclose(framed_all.sar, framed_one.sar, rtol=0, atol=1e-10)
    for workers in (2, -1, None):
        res = bss_eval_v4(refs, ests, workers=workers)
        for metric in METRICS:
            np.testing.assert_allclose(res[metric], one[metric], rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="workers"):
        bss_eval_v4(refs, ests, workers=0)
