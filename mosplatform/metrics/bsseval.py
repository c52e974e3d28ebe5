"""BSS Eval v4 and v3 (image variant), numerically equal to museval, many times faster.

The definitions follow BSS Eval v3 (Vincent, Gribonval and Févotte, "Performance
measurement in blind audio source separation", IEEE TASLP 14(4), 2006) and its
version 4 (Liutkus, Stöter and Ito, "The 2018 Signal Separation Evaluation
Campaign", LVA/ICA 2018), exactly as ``museval.evaluate`` computes them, including
its framing, its handling of silent frames and its regularisation ``G + eps·I``.

How the computation is organised (and why it is fast)
----------------------------------------------------
For a target source ``j`` with estimate ``e_j`` (all arrays are images: samples x
channels), BSS Eval v4 fits, once on the whole track, two sets of multichannel FIR
distortion filters of ``filter_length`` taps by least squares:

* ``P_all``: the projection of ``e_j`` on the delayed copies of *all* references,
* ``P_j``: the projection of ``e_j`` on the delayed copies of reference ``j`` only.

Per frame the filters are applied to the references cut to that frame (so every
frame's projection also has a tail of ``filter_length - 1`` samples) and::

    SDR = 10 log10(|s|^2 / |e - s|^2)          (the filters cancel: a plain SNR)
    ISR = 10 log10(|s|^2 / |P_j - s|^2)
    SIR = 10 log10(|P_j|^2 / |P_all - P_j|^2)
    SAR = 10 log10(|P_all|^2 / |e - P_all|^2)

with ``s`` the reference image ``j`` in the frame. museval computes a full-length
FFT per pair of channels, four dense LU solves of the (sources·channels·512)² Gram
matrix per track and then time-domain projections frame by frame. This module

1. transforms each zero-padded frame of every reference and estimate channel once;
   the lagged correlations (reference/reference and reference/estimate, lags
   ``0 .. filter_length - 1``) are the sum over frames of the cross-spectra (one
   batched matrix product per chunk of frames) plus short FFTs of the
   ``filter_length - 1`` samples either side of each frame boundary;
2. solves the normal equations ``(G + eps I) C = D`` (museval's regularisation) for
   all estimate channels at once by a block Levinson recursion, exploiting that
   ``G`` is block Toeplitz; the projections on each target's own reference solve its
   block-diagonal part in the same recursion. A solution whose residual is not at
   rounding level falls back to a dense Cholesky factorisation (then LU, then least
   squares, as museval does);
3. filters each frame in the frequency domain, reusing the frame spectra of step 1
   when they fit in memory, and takes every energy by Parseval, without inverse
   transforms.

With overlapping frames (``hop < window``) step 1 uses blocks of its own instead.
SDR needs none of that; :func:`framewise_sdr` computes it alone.

With ``workers > 1`` the chunks of frames of steps 1 and 3 are dealt out to threads
(each thread sums its own cross-spectra; the sums are added at the end) and the
FFTs of whole-track arrays use pocketfft's threads. Step 2 stays on one thread: the
recursion is a long chain of small steps.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import scipy.fft as sp_fft
import scipy.linalg as sp_linalg

__all__ = [
    "BSSEvalResult",
    "bss_eval",
    "bss_eval_v3",
    "bss_eval_v4",
    "frame_bounds",
    "framewise_sdr",
    "silent_frames",
]

METRICS = ("SDR", "ISR", "SIR", "SAR")

# Working-set target for the frequency-domain stages (bytes); keeps 180 s tracks far
# below 2 GB while large enough for efficient batched products.
_CHUNK_BYTES = 96 * 2**20
# Frame spectra up to this size are kept between fitting and projecting (a 30 s
# 4-source stereo track needs about 170 MB); the frames of longer tracks beyond it
# are transformed a second time. Sized so that a 180 s track stays under 2 GB in all.
_KEEP_SPECTRA_BYTES = 384 * 2**20


@dataclass(frozen=True)
class BSSEvalResult:
    """Framewise BSS Eval metrics.

    Attributes
    ----------
    sdr, isr, sir, sar : numpy.ndarray
        Arrays shaped ``(sources, frames)`` in dB; NaN in silent frames, ``inf``
        where a denominator energy is exactly zero.
    window, hop : int
        Frame length and hop in samples actually used (``window`` equals the signal
        length when the whole signal is one frame).
    filter_length : int
        Number of distortion filter taps.
    mode : str
        ``"v4"`` (filters fitted once on the whole track) or ``"v3"`` (filters fitted
        per frame).
    """

    sdr: np.ndarray
    isr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    window: int
    hop: float
    filter_length: int
    mode: str

    def __getitem__(self, metric: str) -> np.ndarray:
        """Return one metric by name (``"SDR"``, ``"ISR"``, ``"SIR"`` or ``"SAR"``)."""
        return getattr(self, metric.lower())

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return self.sdr.shape[1]

    def as_dict(self) -> dict[str, np.ndarray]:
        """Return ``{"SDR": ..., "ISR": ..., "SIR": ..., "SAR": ...}``."""
        return {m: self[m] for m in METRICS}


# ----------------------------------------------------------------------------- input


def _as_images(x: np.ndarray, name: str) -> np.ndarray:
    """Return ``x`` as float64 ``(sources, samples, channels)`` (museval's atleast_3d)."""
    x = np.asarray(x)
    if x.ndim > 3:
        raise ValueError(f"{name} must have at most 3 dimensions, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    return np.atleast_3d(x).astype(np.float64, copy=False)


def _pad_or_truncate(estimates: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad or cut the estimates to the reference length (museval.evaluate does)."""
    n = estimates.shape[1]
    if n > n_samples:
        return estimates[:, :n_samples]
    if n < n_samples:
        return np.pad(estimates, [(0, 0), (0, n_samples - n), (0, 0)])
    return estimates


def _active_samples(x: np.ndarray) -> np.ndarray:
    """Samples whose channel sum is non-zero, ``(sources, samples)`` (museval's test)."""
    out = np.empty(x.shape[:2], dtype=bool)
    ones = np.ones(x.shape[2])
    step = 1 << 18
    for a in range(0, x.shape[1], step):
        seg = x[:, a : a + step]
        if x.shape[2] <= 2:  # a sum of at most two terms is exact in any order
            total = seg @ ones
        else:
            total = seg[:, :, 0].copy()
            for c in range(1, x.shape[2]):
                total += seg[:, :, c]
        np.not_equal(total, 0, out=out[:, a : a + step])
    return out


def _validate(references: np.ndarray, estimates: np.ndarray, pad: bool):
    """Check shapes and silence; return float64 images and their active samples."""
    refs = _as_images(references, "references")
    ests = _as_images(estimates, "estimates")
    if pad and refs.shape[::2] == ests.shape[::2]:
        ests = _pad_or_truncate(ests, refs.shape[1])
    if refs.shape[1:] != ests.shape[1:] or ests.shape[0] > refs.shape[0]:
        raise ValueError(
            f"references and estimates must have the same shape, got {refs.shape} and "
            f"{ests.shape}"
        )
    if refs.size == 0:
        raise ValueError("references and estimates are empty")
    active_refs = _active_samples(refs)
    active_ests = _active_samples(ests)
    if not active_refs.any(axis=1).all():
        raise ValueError(
            "every reference source must be non-silent (museval refuses all-zero "
            "references: they make the evaluation ambiguous)"
        )
    if not active_ests.any(axis=1).all():
        raise ValueError(
            "every estimated source must be non-silent (museval refuses all-zero "
            "estimates: the least-squares problem is underdetermined)"
        )
    return refs, ests, np.concatenate([active_refs, active_ests])


# --------------------------------------------------------------------------- framing


def frame_bounds(n_samples: int, window: float | None, hop: float | None) -> np.ndarray:
    """Start and stop sample of every frame, as museval frames a signal.

    Parameters
    ----------
    n_samples : int
        Signal length.
    window, hop : float or None
        Frame length and hop in samples; ``None`` or ``inf`` means one frame
        covering the whole signal.

    Returns
    -------
    numpy.ndarray
        Integer array shaped ``(frames, 2)`` of ``[start, stop)`` bounds.

    Notes
    -----
    ``n_frames = floor((n_samples - window + hop) / hop)`` if ``window < n_samples``,
    else one frame holding the whole signal; frame ``t`` starts at
    ``floor(t * hop)``. A trailing partial frame is therefore dropped, and a signal
    shorter than one window is evaluated as a single frame.
    """
    window = np.inf if window is None else float(window)
    hop = np.inf if hop is None else float(hop)
    if window <= 0 or hop <= 0 or np.isnan(window) or np.isnan(hop):
        raise ValueError(f"window and hop must be positive, got {window} and {hop}")
    if window < n_samples:
        if not np.isfinite(hop):
            hop = window
        n_frames = int(np.floor((n_samples - window + hop) / hop))
        starts = np.floor(np.arange(n_frames) * hop).astype(np.int64)
        stops = np.minimum(np.floor(np.arange(n_frames) * hop + window), n_samples)
        return np.stack([starts, stops.astype(np.int64)], axis=1)
    return np.array([[0, n_samples]], dtype=np.int64)


def silent_frames(references: np.ndarray, estimates: np.ndarray, bounds: np.ndarray):
    """Frames in which any reference or any estimate source is all-zero.

    museval sums the channels and marks the frame NaN for every source when a
    source's channel sum is zero at every sample of the frame.

    Parameters
    ----------
    references, estimates : numpy.ndarray
        Arrays shaped ``(sources, samples, channels)`` (the estimates may hold fewer
        sources).
    bounds : numpy.ndarray
        Output of :func:`frame_bounds`.

    Returns
    -------
    numpy.ndarray
        Boolean array shaped ``(frames,)``.
    """
    active = np.concatenate(
        [_active_samples(_as_images(x, "signal")) for x in (references, estimates)]
    )
    return _silent_from_active(active, bounds)


def _silent_from_active(active: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.array([not active[:, a:b].any(axis=1).all() for a, b in bounds], dtype=bool)


def _db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``10 log10(num / den)``; ``inf`` where ``den == 0`` (museval's ``_safe_db``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(num / den)
    return np.where(den == 0, np.inf, out)


# ------------------------------------------------------------------------- threading


def _resolve_workers(workers: int | None) -> int:
    """Number of threads for ``workers`` (``None`` -> 1; negative counts back from
    ``os.cpu_count()``, as ``scipy.fft``: -1 is every core)."""
    if workers is None:
        return 1
    workers = int(workers)
    if workers == 0:
        raise ValueError("workers must be non-zero")
    if workers < 0:
        workers = max(1, (os.cpu_count() or 1) + 1 + workers)
    return workers


class _Parallel:
    """Thread count and (when more than one) the pool that the stages share.

    Only calls that release the GIL (pocketfft, BLAS matrix products, NumPy
    element-wise loops on large arrays) are handed to the pool, so the threads run
    concurrently.
    """

    def __init__(self, workers: int, pool: Executor | None = None):
        self.workers = workers
        self.pool = pool

    def slices(self, n: int) -> list[slice]:
        """Split ``range(n)`` into at most ``workers`` contiguous, near-equal parts."""
        parts = max(1, min(self.workers, n))
        edges = np.linspace(0, n, parts + 1).round().astype(int)
        return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]

    def map(self, fn, items):
        """``[fn(item) for item in items]``, on the pool when there is one."""
        items = list(items)
        if self.pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(self.pool.map(fn, items))


_SERIAL = _Parallel(1)


# ------------------------------------------------------------------------------- SDR


def _frame_energies(x: np.ndarray, bounds: np.ndarray, y: np.ndarray | None = None):
    """Energy of ``x`` (or of ``y - x``) in every frame: ``(sources, frames)``.

    Frame by frame, so that the difference never exists at full length.
    """
    length = int(bounds[0, 1] - bounds[0, 0])
    out = np.empty((x.shape[0], len(bounds)))
    for t, (start, _) in enumerate(bounds):
        seg = x[:, start : start + length]
        if y is not None:
            seg = y[:, start : start + length] - seg
        out[:, t] = np.einsum("snc,snc->s", seg, seg)
    return out


def framewise_sdr(
    references: np.ndarray,
    estimates: np.ndarray,
    *,
    window: float | None = 44100,
    hop: float | None = 44100,
    pad: bool = True,
) -> np.ndarray:
    """BSS Eval v4 SDR per source and frame, without fitting any filter.

    Parameters
    ----------
    references, estimates : numpy.ndarray
        Arrays shaped ``(sources, samples, channels)``.
    window, hop : float or None, optional
        Frame length and hop in samples (museval's defaults: 44100); ``None``
        evaluates the whole signal as one frame.
    pad : bool, optional
        Zero-pad or cut the estimates to the reference length, as
        ``museval.evaluate`` does.

    Returns
    -------
    numpy.ndarray
        SDR in dB shaped ``(sources, frames)``, equal to ``bss_eval_v4(...).sdr``.

    Notes
    -----
    With image-based BSS Eval the distortion, interference and artifact components
    sum to ``e - s``, so the v4 SDR of a frame is
    ``10 log10(sum s^2 / sum (e - s)^2)`` over the frame and all channels,
    whatever the filters are.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> s = rng.standard_normal((2, 8000, 2))
    >>> framewise_sdr(s, 1.1 * s, window=4000, hop=4000).round(2)
    array([[20., 20.],
           [20., 20.]])
    """
    refs, ests, active = _validate(references, estimates, pad)
    refs = refs[: ests.shape[0]]
    bounds = frame_bounds(refs.shape[1], window, hop)
    sdr = _db(_frame_energies(refs, bounds), _frame_energies(refs, bounds, ests))
    sdr[:, _silent_from_active(active, bounds)] = np.nan
    return sdr


# ---------------------------------------------------------------- correlations, fits


def _channel_rows(x: np.ndarray, start: int, stop: int, out: np.ndarray) -> None:
    """Write ``x[:, start:stop]`` (``(sources, samples, channels)``) as channel rows.

    ``out`` is ``(sources·channels, width)`` with ``width >= stop - start``; samples
    beyond the signal and the rest of each row are zero. Row ``i·channels + c`` holds
    channel ``c`` of source ``i``.
    """
    lo = max(start, 0)
    hi = min(stop, x.shape[1])
    n_src, _, n_ch = x.shape
    view = out.reshape(n_src, n_ch, -1)
    view[...] = 0.0
    if hi > lo:
        view[:, :, lo - start : hi - start] = x[:, lo:hi].transpose(0, 2, 1)


def _chunk_ranges(n_frames: int, n_rows: int, nfft: int) -> list[tuple[int, int]]:
    """Consecutive ``[first, stop)`` frame ranges whose spectra fit ``_CHUNK_BYTES``."""
    step = max(1, _CHUNK_BYTES // (3 * 16 * (nfft // 2 + 1) * n_rows))
    return [(a, min(a + step, n_frames)) for a in range(0, n_frames, step)]


def _chunk_spectrum(refs, ests, starts, length, nfft) -> np.ndarray:
    """Spectra of the zero-padded frames starting at ``starts``: ``(F, k, P + K)``.

    The reference channels then the estimate channels of each frame. Every channel
    of every frame is transformed once, however many estimates share the references.
    """
    n_ref = refs.shape[0] * refs.shape[2]
    n_out = ests.shape[0] * ests.shape[2]
    rows = np.empty((len(starts), n_ref + n_out, nfft))
    for i, start in enumerate(starts):
        _channel_rows(refs, start, start + length, rows[i, :n_ref])
        _channel_rows(ests, start, start + length, rows[i, n_ref:])
    spec = sp_fft.rfft(rows, axis=-1)
    del rows
    return np.ascontiguousarray(spec.transpose(2, 0, 1))


def _cross_spectrum(spec: np.ndarray, n_ref: int) -> np.ndarray:
    """``sum_k conj(X_kp) Y_kq`` per frequency: ``(F, P, P + K)``."""
    lhs = np.conjugate(spec[:, :, :n_ref]).transpose(0, 2, 1)
    return lhs @ spec


def _contiguous_correlations(refs, ests, max_lag, length, n_blocks, nfft, keep_bytes,
                             par: _Parallel = _SERIAL):
    """Lagged correlations when the signal is cut into contiguous blocks (frames).

    ``r[m, p, q] = sum_t x_p(t) y_q(t + m)``, ``m = 0 .. max_lag - 1``, with ``x`` the
    reference channels and ``y`` the reference then estimate channels (zero outside
    the signals). The within-block parts come from the block spectra (``nfft >=
    length + max_lag - 1`` keeps them free of wrap-around), the parts that cross a
    block boundary from short FFTs of the ``max_lag - 1`` samples either side of each
    boundary. Returns the correlations and the list of the first chunks of block
    spectra, up to ``keep_bytes``, for reuse by the projections.
    """
    n = refs.shape[1]
    n_ref = refs.shape[0] * refs.shape[2]
    n_y = n_ref + ests.shape[0] * ests.shape[2]
    ext = max_lag - 1
    starts = np.arange(n_blocks) * length
    remainder = n - n_blocks * length
    block_starts = np.append(starts, n_blocks * length) if remainder > 0 else starts
    n_freq = nfft // 2 + 1
    chunks = _chunk_ranges(len(block_starts), n_y, nfft)
    # the spectra of the first chunks are kept, up to keep_bytes (not the remainder)
    keep = []
    for a, b in chunks:
        nbytes = 16 * n_freq * (b - a) * n_y
        keep.append(keep_bytes >= nbytes and a < n_blocks)
        keep_bytes = keep_bytes - nbytes if keep[-1] else 0

    def accumulate(worker):
        # each thread takes every ``workers``-th chunk and sums its own cross-spectra
        cross = np.zeros((n_freq, n_ref, n_y), dtype=np.complex128)
        kept = []
        for c in range(worker, len(chunks), par.workers):
            a, b = chunks[c]
            spec = _chunk_spectrum(refs, ests, block_starts[a:b], length, nfft)
            cross += _cross_spectrum(spec, n_ref)
            if keep[c]:
                kept.append((c, a, spec[:, : n_blocks - a]))
            del spec
        return cross, kept

    results = par.map(accumulate, range(min(par.workers, len(chunks))))
    cross = results[0][0]
    for other, _ in results[1:]:
        cross += other
    kept = [(a, spec) for _, a, spec in sorted(
        (item for _, items in results for item in items), key=lambda item: item[0])]
    del results
    corr = sp_fft.irfft(cross, n=nfft, axis=0, workers=par.workers)[:max_lag]
    del cross
    boundaries = block_starts[1:]
    if ext > 0 and len(boundaries):
        small = sp_fft.next_fast_len(2 * ext, real=True)
        tails = np.zeros((len(boundaries), n_ref, small))
        heads = np.zeros((len(boundaries), n_y, small))
        for i, edge in enumerate(boundaries):
            _channel_rows(refs, edge - ext, edge, tails[i, :, :ext])
            _channel_rows(refs, edge, edge + ext, heads[i, :n_ref, ext : 2 * ext])
            _channel_rows(ests, edge, edge + ext, heads[i, n_ref:, ext : 2 * ext])
        lhs = np.conjugate(sp_fft.rfft(tails, axis=-1).transpose(2, 1, 0))  # (F, P, b)
        rhs = sp_fft.rfft(heads, axis=-1).transpose(2, 0, 1)  # (F, b, Q)
        edge_corr = sp_fft.irfft(lhs @ rhs, n=small, axis=0)
        # tail sample i is edge - ext + i and head sample ext + u is edge + u, so
        # index m of the correlation is lag m; lag 0 never crosses an edge
        corr[1:] += edge_corr[1:max_lag]
    return corr, kept


def _lagged_correlations(refs: np.ndarray, ests: np.ndarray, max_lag: int,
                         par: _Parallel = _SERIAL) -> np.ndarray:
    """Correlations ``r[m, p, q]`` as :func:`_contiguous_correlations`, any framing.

    Blocks of a size chosen for FFT efficiency, independent of the frames.
    """
    n = refs.shape[1]
    ext = max_lag - 1
    nfft = sp_fft.next_fast_len(max(16 * ext, 16384), real=True)
    if n + ext <= nfft:
        nfft = sp_fft.next_fast_len(n + ext, real=True)
    block = nfft - ext
    return _contiguous_correlations(refs, ests, max_lag, block, n // block, nfft, 0, par)[0]


def _block_levinson(blocks: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``T x = y`` for symmetric block Toeplitz systems ``T[a, b] = R(a - b)``.

    Block Levinson recursion (Whittle 1963; Akaike 1973) in ``O(n^2 p^3)`` operations
    instead of the ``O(n^3 p^3)`` of a dense factorisation; several independent
    systems of the same size are solved together.

    Parameters
    ----------
    blocks : numpy.ndarray
        ``(batch, n, p, p)`` with ``blocks[:, k] = R(k)``; ``R(-k) = R(k)^T``.
    rhs : numpy.ndarray
        ``(batch, n, p, m)`` right-hand sides, block row by block row.

    Returns
    -------
    numpy.ndarray
        ``(batch, n, p, m)`` solutions.
    """
    batch, n, p, _ = blocks.shape
    m = rhs.shape[3]
    eye = np.eye(p)
    # [R(n-1) ... R(1) R(0)] side by side: columns (n-1-k)p .. (n-1)p give
    # [R(k) ... R(1)]; [R(0)^T R(1)^T ... R(n-1)^T]: columns p .. (k+1)p give
    # [R(1)^T ... R(k)^T].
    forward_row = np.ascontiguousarray(
        blocks[:, ::-1].transpose(0, 2, 1, 3).reshape(batch, p, n * p)
    )
    backward_row = np.ascontiguousarray(blocks.transpose(0, 3, 1, 2).reshape(batch, p, n * p))
    fwd = np.zeros((batch, n * p, p))
    bwd = np.zeros((batch, n * p, p))
    sol = np.zeros((batch, n * p, m))
    inv0 = np.linalg.inv(blocks[:, 0])
    fwd[:, :p] = inv0
    bwd[:, :p] = inv0
    sol[:, :p] = inv0 @ rhs[:, 0]
    for k in range(1, n):
        rows = k * p
        lead = forward_row[:, :, (n - 1 - k) * p : (n - 1) * p]  # [R(k) ... R(1)]
        err_f = lead @ fwd[:, :rows]
        err_b = backward_row[:, :, p : (k + 1) * p] @ bwd[:, :rows]
        alpha = np.linalg.inv(eye - err_b @ err_f)
        delta = np.linalg.inv(eye - err_f @ err_b)
        theta = lead @ sol[:, :rows]
        f_old = fwd[:, :rows].copy()
        fwd[:, :rows] = f_old @ alpha
        fwd[:, rows : rows + p] = 0.0
        fwd[:, p : rows + p] -= bwd[:, :rows] @ (err_f @ alpha)
        bwd[:, p : rows + p] = bwd[:, :rows] @ delta
        bwd[:, :p] = 0.0
        bwd[:, :rows] -= f_old @ (err_b @ delta)
        sol[:, : rows + p] += bwd[:, : rows + p] @ (rhs[:, k] - theta)
    return sol.reshape(batch, n, p, m)


def _toeplitz_matmul(blocks: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``T x`` for block Toeplitz ``T[a, b] = R(a - b)`` by FFT; shapes as Levinson."""
    batch, n, p, _ = blocks.shape
    nfft = sp_fft.next_fast_len(3 * n - 2, real=True)
    two_sided = np.zeros((batch, nfft, p, p))
    two_sided[:, n - 1 : 2 * n - 1] = blocks  # R(k) at n - 1 + k
    two_sided[:, : n - 1] = blocks[:, :0:-1].transpose(0, 1, 3, 2)  # R(-k) = R(k)^T
    spec = sp_fft.rfft(two_sided, axis=1) @ sp_fft.rfft(x, n=nfft, axis=1)
    return sp_fft.irfft(spec, n=nfft, axis=1)[:, n - 1 : 2 * n - 1]


def _dense_gram(blocks: np.ndarray) -> np.ndarray:
    """The ``(p·n)²`` matrix of ``T[(i, a), (j, b)] = R(a - b)[i, j]`` (channel-major)."""
    n, p, _ = blocks.shape
    two_sided = np.empty((p, p, 2 * n - 1))
    two_sided[:, :, n - 1 :] = blocks.transpose(1, 2, 0)
    two_sided[:, :, : n - 1] = blocks[:0:-1].transpose(2, 1, 0)
    windows = np.lib.stride_tricks.sliding_window_view(two_sided, n, axis=2)
    gram = np.empty((p, n, p, n))
    gram[...] = windows[:, :, :, ::-1].transpose(0, 2, 1, 3)  # [i, a, j, b] = d(a - b)
    return gram.reshape(p * n, p * n)


def _solve_toeplitz_systems(blocks: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``(G + eps I) x = D``, museval's regularised normal equations, per batch.

    ``blocks`` (``(batch, lags, p, p)``) are the Toeplitz blocks ``R(k)`` of ``G`` in
    lag-major order and ``rhs`` is ``(batch, lags, p, m)``. A block Levinson
    solution is accepted when its residual is at rounding level; otherwise a
    Cholesky factorisation (then LU, then least squares, as museval falls back) of
    the dense matrix decides. Returns ``(batch, lags, p, m)``.
    """
    batch, n, p, m = rhs.shape
    eps = np.finfo(float).eps
    regularised = blocks.copy()
    regularised[:, 0] += eps * np.eye(p)
    with np.errstate(all="ignore"):
        try:
            sols = _block_levinson(regularised, rhs)
        except np.linalg.LinAlgError:
            sols = np.full(rhs.shape, np.nan)
        residual = _toeplitz_matmul(regularised, sols) - rhs
        scale = (np.sqrt(np.sum(blocks**2, axis=(1, 2, 3)) * n)
                 * np.sqrt(np.sum(sols**2, axis=(1, 2, 3)))
                 + np.sqrt(np.sum(rhs**2, axis=(1, 2, 3))))
        error = np.sqrt(np.sum(residual**2, axis=(1, 2, 3)))
    for i in range(batch):
        if not (np.all(np.isfinite(sols[i])) and error[i] <= 1e-11 * scale[i]):
            sols[i] = _solve_dense(blocks[i], rhs[i])
    return sols


def _solve_dense(blocks: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    n, p, m = rhs.shape
    gram = _dense_gram(blocks)
    dense_rhs = rhs.transpose(1, 0, 2).reshape(p * n, m)
    regularised = gram + np.finfo(float).eps * np.eye(gram.shape[0])
    try:
        factor = sp_linalg.cho_factor(regularised, lower=True, check_finite=False)
        sol = sp_linalg.cho_solve(factor, dense_rhs, check_finite=False)
    except np.linalg.LinAlgError:
        try:
            sol = np.linalg.solve(regularised, dense_rhs)
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(gram, dense_rhs, rcond=None)[0]
    return sol.reshape(p, n, m).transpose(1, 0, 2)


def _fit_filters(corr: np.ndarray, n_src: int, n_ch: int) -> np.ndarray:
    """Least-squares distortion filters of every estimate channel.

    Parameters
    ----------
    corr : numpy.ndarray
        ``(L, P, P + K)`` lagged correlations (:func:`_contiguous_correlations`) of
        the ``P = n_src·n_ch`` reference channels with themselves and with the
        ``K = targets·n_ch`` estimate channels.

    Returns
    -------
    numpy.ndarray
        ``(P, L, 2, K)``: index 0 of the third axis holds the filters onto all
        references (``P_all``), index 1 the filters onto the target's own reference
        only (``P_j``, zero elsewhere).

    Notes
    -----
    ``Gram[(p, a), (q, b)] = <x_p delayed by a, x_q delayed by b> = R(a - b)[p, q]``
    with ``R(k)[p, q] = r_pq(k)`` and ``R(-k) = R(k)^T``, and ``D[(p, a), k] = <x_p
    delayed by a, e_k> = r_pk(a)``. The projections on each target's own reference
    solve the same system restricted to that source's channels, one small block
    Toeplitz system per target (``n_ch`` channels instead of ``P``), all solved in
    one batched Levinson recursion.
    """
    length, n_ref, _ = corr.shape
    n_out = corr.shape[2] - n_ref
    n_tgt = n_out // n_ch
    blocks = np.ascontiguousarray(corr[:, :, :n_ref])  # (L, P, P)
    cross = np.ascontiguousarray(corr[:, :, n_ref:])  # (L, P, K)
    own_blocks = np.empty((n_tgt, length, n_ch, n_ch))
    own_cross = np.empty((n_tgt, length, n_ch, n_ch))
    for j in range(n_tgt):
        chans = slice(j * n_ch, (j + 1) * n_ch)
        own_blocks[j] = blocks[:, chans, chans]
        own_cross[j] = cross[:, chans, chans]
    # one after the other: the recursions are many small steps that hold the GIL
    sol_all = _solve_toeplitz_systems(blocks[None], cross[None])
    sol_own = _solve_toeplitz_systems(own_blocks, own_cross)
    filters = np.zeros((n_ref, length, 2, n_out))
    filters[:, :, 0] = sol_all[0].transpose(1, 0, 2)
    for j in range(n_tgt):
        chans = slice(j * n_ch, (j + 1) * n_ch)
        filters[chans, :, 1, chans] = sol_own[j].transpose(1, 0, 2)
    return filters


def _projection_energies(tasks, spectrum, n_frames, filters, nfft, n_tgt, n_ch,
                         par: _Parallel = _SERIAL) -> np.ndarray:
    """Energies of the projections of every target, frame by frame.

    ``tasks`` is a list of ``(first, payload)`` chunks of frames: ``payload`` is
    either their spectra (``(F, k, P + K)``, :func:`_chunk_spectrum`; released once
    used) or the start samples of the frames, transformed by ``spectrum(starts)``.
    Returns ``(5, targets, frames)`` holding, in this order, ``|P_j - s|^2``,
    ``|P_j|^2``, ``|P_all - P_j|^2``, ``|P_all|^2`` and ``|e - P_all|^2`` over each
    frame plus its ``filter_length - 1`` sample tail, each taken from the spectra by
    Parseval. With several threads each takes every ``workers``-th chunk; every
    chunk is computed exactly as with one thread.
    """
    n_ref = filters.shape[0]
    n_out = n_tgt * n_ch
    n_freq = nfft // 2 + 1
    # Parseval for a real signal from its half spectrum
    weights = np.full(n_freq, 2.0 / nfft)
    weights[0] = 1.0 / nfft
    if nfft % 2 == 0:
        weights[-1] = 1.0 / nfft
    # Transforms of the filters onto all references, and of the non-zero (diagonal)
    # blocks of the filters onto each target's own reference.
    h_all = sp_fft.rfft(filters[:, :, 0], n=nfft, axis=1, workers=par.workers)  # (P, F, K)
    own = np.stack([filters[j * n_ch : (j + 1) * n_ch, :, 1, j * n_ch : (j + 1) * n_ch]
                    for j in range(n_tgt)])  # (targets, c, L, c)
    h_own = sp_fft.rfft(own, n=nfft, axis=2, workers=par.workers)  # (targets, c, F, c)
    del own
    # The differences are linear in the references, so they are filters too:
    # P_j - s = X (H_j - I), P_all - P_j = X (H_all - H_j). Target channel k is
    # reference row k, so "I" is a unit on the diagonal of the first K rows.
    combined = np.empty((n_freq, n_ref, 4, n_out), dtype=np.complex128)

    def build(band):
        part = combined[band]
        part[:, :, :2] = 0.0
        for j in range(n_tgt):
            chans = slice(j * n_ch, (j + 1) * n_ch)
            part[:, chans, 1, chans] = h_own[j, :, band].transpose(1, 0, 2)
        part[:, :, 0] = part[:, :, 1]
        part[:, np.arange(n_out), 0, np.arange(n_out)] -= 1.0
        part[:, :, 3] = h_all[:, band].transpose(1, 0, 2)
        np.subtract(part[:, :, 3], part[:, :, 1], out=part[:, :, 2])

    par.map(build, par.slices(n_freq))
    combined = combined.reshape(n_freq, n_ref, 4 * n_out)

    out = np.empty((5, n_frames, n_out))

    def project(worker):
        for c in range(worker, len(tasks), par.workers):
            f0, spec = tasks[c]
            tasks[c] = None  # kept spectra are released once projected
            if spec.ndim == 1:
                spec = spectrum(spec)
            k = spec.shape[1]
            z = spec[..., :n_ref] @ combined  # (F, k, 4K)
            artifacts = np.subtract(spec[..., n_ref:], z[..., 3 * n_out :])  # e - P_all
            del spec
            # sum_f w_f |z_f|^2 for every frame and channel as one matrix-vector product
            for part, first in ((z, 0), (artifacts, 4)):
                flat = part.view(np.float64).reshape(n_freq, -1)
                np.multiply(flat, flat, out=flat)
                energies = (weights @ flat).reshape(k, -1, n_out, 2).sum(axis=3)
                out[first : first + energies.shape[1], f0 : f0 + k] = energies.transpose(
                    1, 0, 2)

    par.map(project, range(min(par.workers, len(tasks))))
    out = out.reshape(5, n_frames, n_tgt, n_ch).sum(axis=3)
    return out.transpose(0, 2, 1)


def _evaluate_projections(refs, ests, starts, length, filter_length, par=_SERIAL):
    """Fit the filters on the whole signal and project every frame (v4).

    Returns ``(5, targets, frames)`` energies (see :func:`_projection_energies`).
    """
    n_src, n, n_ch = refs.shape
    n_tgt = ests.shape[0]
    nfft = sp_fft.next_fast_len(length + filter_length - 1, real=True)
    # Frames can be the correlation blocks when they tile the signal and are at least
    # as long as the filters (a lag may then cross at most one frame boundary).
    contiguous = len(starts) == 1 or (
        np.all(np.diff(starts) == length) and length >= filter_length - 1
    )
    if contiguous and starts[0] == 0:
        # every further thread holds a chunk and a cross-spectrum sum of its own: keep
        # fewer spectra instead, so that the peak memory does not grow with threads
        n_rows = n_src * n_ch + n_tgt * n_ch
        per_thread = _CHUNK_BYTES + 16 * (nfft // 2 + 1) * n_src * n_ch * n_rows
        keep_bytes = max(0, _KEEP_SPECTRA_BYTES - (par.workers - 1) * per_thread)
        corr, kept = _contiguous_correlations(
            refs, ests, filter_length, length, len(starts), nfft, keep_bytes, par
        )
    else:
        corr, kept = _lagged_correlations(refs, ests, filter_length, par), []
    filters = _fit_filters(corr, n_src, n_ch)
    n_kept = sum(spec.shape[1] for _, spec in kept)
    n_rows = n_src * n_ch + n_tgt * n_ch
    tasks = kept + [(n_kept + a, starts[n_kept + a : n_kept + b])
                    for a, b in _chunk_ranges(len(starts) - n_kept, n_rows, nfft)]
    del kept

    def spectrum(chunk_starts):
        return _chunk_spectrum(refs, ests, chunk_starts, length, nfft)

    return _projection_energies(tasks, spectrum, len(starts), filters, nfft, n_tgt, n_ch, par)


# ----------------------------------------------------------------------- public API


def bss_eval(
    references: np.ndarray,
    estimates: np.ndarray,
    *,
    window: float | None = 44100,
    hop: float | None = 44100,
    filter_length: int = 512,
    mode: str = "v4",
    pad: bool = True,
    workers: int | None = None,
) -> BSSEvalResult:
    """Framewise BSS Eval images metrics (SDR, ISR, SIR, SAR), as ``museval.evaluate``.

    Parameters
    ----------
    references : numpy.ndarray
        True source images shaped ``(sources, samples, channels)`` (``(sources,
        samples)`` is read as mono). Every source must be non-silent.
    estimates : numpy.ndarray
        Estimated images, same sources and channels. The first ``k`` estimates may
        be given alone (``k < sources``): the metrics of source ``j`` depend only on
        all references and estimate ``j``, so a single-stimulus evaluation needs only
        the estimate of the target.
    window, hop : float or None, optional
        Frame length and hop in samples (museval's defaults: 44100, i.e. 1 s at
        44.1 kHz); ``None`` evaluates the whole signal as one frame.
    filter_length : int, optional
        Distortion filter taps (512 in museval).
    mode : {"v4", "v3"}, optional
        ``"v4"`` fits the filters once on the whole track (SiSEC 2018 onwards);
        ``"v3"`` fits them anew in every frame (``bss_eval_images_framewise``).
    pad : bool, optional
        Zero-pad or cut the estimates to the reference length, as
        ``museval.evaluate`` does.
    workers : int or None, optional
        Threads for the batched FFTs, the frequency-domain products and the two
        independent filter fits. ``None`` (the default) means one thread, so that
        callers that already evaluate several tracks in parallel (and shared
        machines) are not oversubscribed; a negative value counts back from
        ``os.cpu_count()`` as in ``scipy.fft`` (``-1``: every core). The results
        equal those of one thread up to floating-point summation order (far below
        1e-10 dB). BLAS threads are governed separately (``OPENBLAS_NUM_THREADS``).

    Returns
    -------
    BSSEvalResult
        ``sdr``, ``isr``, ``sir`` and ``sar`` shaped ``(targets, frames)``.

    Raises
    ------
    ValueError
        On mismatched shapes, or an all-zero reference or estimate source (as
        museval).

    Notes
    -----
    For target ``j`` with reference image ``s`` and estimate ``e``, and the
    least-squares projections ``P_j`` (on delayed copies of ``s``) and ``P_all`` (on
    delayed copies of all references), every metric is taken over the frame::

        SDR = 10 log10(|s|^2 / |e - s|^2)
        ISR = 10 log10(|s|^2 / |P_j - s|^2)
        SIR = 10 log10(|P_j|^2 / |P_all - P_j|^2)
        SAR = 10 log10(|P_all|^2 / |e - P_all|^2)

    A frame in which any reference or estimate is all-zero (channel sum zero at every
    sample) is NaN for every source; a zero denominator gives ``inf``. A trailing
    partial frame is dropped (:func:`frame_bounds`). Results agree with museval to
    about 1e-12 dB on the test cases; metrics above about 200 dB (e.g. the SIR of an
    estimate equal to its reference) are set by floating-point rounding in both
    implementations and differ between them.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> refs = rng.standard_normal((2, 4000, 2))
    >>> ests = refs + 0.1 * refs[::-1]
    >>> res = bss_eval(refs, ests, window=2000, hop=2000, filter_length=32)
    >>> res.sdr.shape
    (2, 2)
    >>> bool(abs(res.sdr[0, 0] - 20) < 0.5)
    True
    """
    if mode not in ("v4", "v3"):
        raise ValueError(f"mode must be 'v4' or 'v3', got {mode!r}")
    filter_length = int(filter_length)
    if filter_length < 1:
        raise ValueError(f"filter_length must be positive, got {filter_length}")
    n_workers = _resolve_workers(workers)
    refs, ests, active = _validate(references, estimates, pad)
    n_tgt = ests.shape[0]
    bounds = frame_bounds(refs.shape[1], window, hop)
    length = int(bounds[0, 1] - bounds[0, 0])
    silent = _silent_from_active(active, bounds)
    energy_ref = _frame_energies(refs[:n_tgt], bounds)
    sdr = _db(energy_ref, _frame_energies(refs[:n_tgt], bounds, ests))

    active = np.flatnonzero(~silent)
    energies = np.full((5, n_tgt, len(bounds)), np.nan)
    pool = ThreadPoolExecutor(n_workers) if n_workers > 1 else nullcontext()
    with pool:
        par = _Parallel(n_workers, pool if n_workers > 1 else None)
        if mode == "v4" and len(active):
            energies[:] = _evaluate_projections(
                refs, ests, bounds[:, 0], length, filter_length, par
            )
        elif mode == "v3":
            for t in active:
                start, stop = bounds[t]
                energies[:, :, t] = _evaluate_projections(
                    refs[:, start:stop], ests[:, start:stop], np.array([0]), stop - start,
                    filter_length, par,
                )[..., 0]
    isr = _db(energy_ref, energies[0])
    sir = _db(energies[1], energies[2])
    sar = _db(energies[3], energies[4])
    for metric in (sdr, isr, sir, sar):
        metric[:, silent] = np.nan
    return BSSEvalResult(
        sdr=sdr,
        isr=isr,
        sir=sir,
        sar=sar,
        window=length,
        hop=float(bounds[1, 0] - bounds[0, 0]) if len(bounds) > 1 else float(length),
        filter_length=filter_length,
        mode=mode,
    )


def bss_eval_v4(
    references: np.ndarray,
    estimates: np.ndarray,
    *,
    window: float | None = 44100,
    hop: float | None = 44100,
    filter_length: int = 512,
    pad: bool = True,
    workers: int | None = None,
) -> BSSEvalResult:
    """BSS Eval v4 (``museval.evaluate(..., mode="v4")``); see :func:`bss_eval`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> refs = rng.standard_normal((2, 6000, 1))
    >>> bss_eval_v4(refs, refs + 0.01 * rng.standard_normal(refs.shape),
    ...             window=3000, hop=3000, filter_length=16).sdr.shape
    (2, 2)
    """
    return bss_eval(
        references, estimates, window=window, hop=hop, filter_length=filter_length,
        mode="v4", pad=pad, workers=workers,
    )


def bss_eval_v3(
    references: np.ndarray,
    estimates: np.ndarray,
    *,
    window: float | None = 44100,
    hop: float | None = 44100,
    filter_length: int = 512,
    pad: bool = True,
    workers: int | None = None,
) -> BSSEvalResult:
    """BSS Eval v3 framewise images (``museval.evaluate(..., mode="v3")``).

    The distortion filters are fitted anew in every frame; see :func:`bss_eval`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> refs = rng.standard_normal((2, 6000, 1))
    >>> bss_eval_v3(refs, refs[::-1] + refs, window=3000, hop=3000,
    ...             filter_length=16).sir.shape
    (2, 2)
    """
    return bss_eval(
        references, estimates, window=window, hop=hop, filter_length=filter_length,
        mode="v3", pad=pad, workers=workers,
    )
