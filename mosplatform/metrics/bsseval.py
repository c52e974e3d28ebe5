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
matrix per track and then time-domain projections frame by frame. This module makes
two passes over the frames, a chunk of frames at a time:

1. it transforms each zero-padded frame of every reference and estimate channel
   (one FFT per channel and frame, whatever the number of estimates); the lagged
   correlations (reference/reference and reference/estimate, lags
   ``0 .. filter_length - 1``) are the sum over frames of the cross-spectra (one
   real matrix product per frequency and chunk) plus short FFTs of the
   ``filter_length - 1`` samples either side of each frame boundary;
2. it solves the normal equations ``(G + eps I) C = D`` (museval's regularisation)
   for all estimate channels at once by a block Levinson recursion, exploiting that
   ``G`` is block Toeplitz, and the projections on each target's own reference as
   small systems of that source's channels. A solution whose residual is not at
   rounding level falls back to a dense Cholesky factorisation (then LU, then least
   squares, as museval does);
3. it transforms the frames again and filters them in the frequency domain: per
   frequency one real matrix product gives ``P_all`` of every target channel and
   small ones give each ``P_j``; the differences are formed element-wise and every
   energy is taken by Parseval, without inverse transforms.

Transforming twice is cheaper than keeping a long track's spectra between the
passes: every megabyte of fresh memory costs page faults (on virtual machines as
much as transforming it again), so the working set stays at a couple of hundred
megabytes (one chunk of spectra, the summed cross-spectra, later the filter
responses in the same buffer), whatever the track length; the last chunk of the
first pass is reused by the second. With overlapping frames (``hop < window``)
step 1 uses blocks of its own instead. SDR needs none of that;
:func:`framewise_sdr` computes it alone.

With ``workers > 1`` the threads share every chunk (the FFTs by frames, the
per-frequency products by frequency ranges), so that the working set does not grow
with the threads. Step 2 stays on one thread: the recursion is a long chain of
small steps.
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

# Spectra of one chunk of frames (bytes): about ten 1 s frames of 4 stereo sources
# and their estimates, enough for efficient per-frequency products (whose size is
# the number of frames); more costs page faults for little speed.
_CHUNK_BYTES = 64 * 2**20
# Rows transformed by one FFT call, and the working set of one frequency band of the
# per-frequency products (fits the L2/L3 caches).
_FFT_BATCH_BYTES = 8 * 2**20
_BAND_BYTES = 2 * 2**20


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


def _any_active(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Whether each source of ``x`` has a non-zero channel sum in ``[start, stop)``.

    museval's test, a block at a time; it stops as soon as every source is found
    active, which in a frame of music is usually in its first block.
    """
    found = np.zeros(x.shape[0], dtype=bool)
    for a in range(start, stop, 4096):
        seg = x[:, a : min(a + 4096, stop)]
        total = seg[:, :, 0]
        if x.shape[2] > 1:
            total = np.add(total, seg[:, :, 1])
            for c in range(2, x.shape[2]):  # channel by channel, as museval's sum
                total += seg[:, :, c]
        found |= np.any(total != 0, axis=1)
        if found.all():
            break
    return found


def _frame_activity(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Whether each source is active (non-silent) in each frame: ``(sources, frames)``."""
    return np.stack([_any_active(x, a, b) for a, b in bounds], axis=1)


def _check_active(x: np.ndarray, active: np.ndarray, message: str) -> None:
    """Raise ``ValueError(message)`` if a source of ``x`` is all-zero.

    ``active`` (``(sources, frames)``) answers for the sources active in some frame;
    the others are looked at over the whole signal (trailing partial frame included).
    """
    unseen = np.flatnonzero(~active.any(axis=1))
    if len(unseen) and not _any_active(x[unseen], 0, x.shape[1]).all():
        raise ValueError(message)


def _validate(references: np.ndarray, estimates: np.ndarray, pad: bool, window, hop):
    """Check shapes and silence; return float64 images, frame bounds and silent frames.

    A frame is silent when any reference or estimate source is all-zero in it.
    """
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
    bounds = frame_bounds(refs.shape[1], window, hop)
    active_refs = _frame_activity(refs, bounds)
    _check_active(refs, active_refs,
                  "every reference source must be non-silent (museval refuses all-zero "
                  "references: they make the evaluation ambiguous)")
    active_ests = _frame_activity(ests, bounds)
    _check_active(ests, active_ests,
                  "every estimated source must be non-silent (museval refuses all-zero "
                  "estimates: the least-squares problem is underdetermined)")
    silent = ~(active_refs.all(axis=0) & active_ests.all(axis=0))
    return refs, ests, bounds, silent


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
        [_frame_activity(_as_images(x, "signal"), bounds) for x in (references, estimates)]
    )
    return ~active.all(axis=0)


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


def _sdr_energies(refs: np.ndarray, ests: np.ndarray, bounds: np.ndarray,
                 par: _Parallel = _SERIAL):
    """Energies of each target's reference ``s`` and of ``e - s`` in every frame.

    Returns two ``(targets, frames)`` arrays; frame by frame, so that the difference
    never exists at full length (threads take contiguous shares of the frames).
    """
    n_tgt = ests.shape[0]
    length = int(bounds[0, 1] - bounds[0, 0])
    signal = np.empty((n_tgt, len(bounds)))
    error = np.empty((n_tgt, len(bounds)))

    def frames(share: slice) -> None:
        for t in range(share.start, share.stop):
            start = int(bounds[t, 0])
            s = refs[:n_tgt, start : start + length]
            e = ests[:, start : start + length] - s
            signal[:, t] = np.einsum("snc,snc->s", s, s)
            error[:, t] = np.einsum("snc,snc->s", e, e)

    par.map(frames, par.slices(len(bounds)))
    return signal, error


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
    refs, ests, bounds, silent = _validate(references, estimates, pad, window, hop)
    sdr = _db(*_sdr_energies(refs, ests, bounds))
    sdr[:, silent] = np.nan
    return sdr


# ---------------------------------------------------------------- correlations, fits


def _fft_length(n: int) -> int:
    """A fast real FFT length of at least ``n``.

    Among the 5-smooth lengths up to 5 % above ``next_fast_len(n)``, the one with the
    most factors of two (pocketfft's fastest passes): e.g. 46080 = 2^10·45 for 44611
    (a 1 s frame at 44.1 kHz plus 511 filter taps) rather than ``next_fast_len``'s
    45000 = 2^3·3^2·5^4, a third faster.
    """
    n = int(n)
    first = sp_fft.next_fast_len(n, real=True)
    limit = max(first, int(1.05 * n))
    best = first
    odd = 1
    while odd <= limit:  # odd parts 3^b 5^c, each raised by powers of two past n
        part = odd
        while part <= limit:
            size = part << max(0, (n - 1) // part).bit_length()  # smallest part·2^a >= n
            if size <= limit and ((size & -size), -size) > ((best & -best), -best):
                best = size
            part *= 5
        odd *= 3
    return best


def _channel_rows(x: np.ndarray, start: int, stop: int, out: np.ndarray) -> None:
    """Write ``x[:, start:stop]`` (``(sources, samples, channels)``) as channel rows.

    ``out`` is ``(sources·channels, width)`` with ``width >= stop - start``; samples
    beyond the signal and the rest of each row are zero. Row ``i·channels + c`` holds
    channel ``c`` of source ``i``.
    """
    lo = max(start, 0)
    hi = max(min(stop, x.shape[1]), lo)
    n_src, _, n_ch = x.shape
    view = out.reshape(n_src, n_ch, -1)
    view[:, :, : lo - start] = 0.0
    view[:, :, lo - start : hi - start] = x[:, lo:hi].transpose(0, 2, 1)
    view[:, :, hi - start :] = 0.0


# NumPy >= 2 transforms into a given array: the spectra of every batch of frames then
# reuse one buffer instead of a fresh allocation per batch (fresh memory is slow to map).
_FFT_INTO = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


def _rfft_rows(rows: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """Real FFT of each row of ``rows`` (``(..., nfft)``), into ``out`` when given."""
    if out is None:
        return sp_fft.rfft(rows, axis=-1)
    out = out[: len(rows)]
    np.fft.rfft(rows, axis=-1, out=out)
    return out


class _FrameSpectra:
    """Spectra of zero-padded frames of the references and estimates, chunk by chunk.

    A chunk is ``(frames, F, P + K)`` complex: per frame and frequency the reference
    channels then the estimate channels, each frame one contiguous block (the layout
    that the per-frequency matrix products read, obtained from the FFT's row layout by
    one cheap transposition per frame). Every channel of every frame is transformed
    once per pass, however many estimates share the references. One chunk buffer and
    one FFT input buffer per thread serve every chunk of both passes: fresh memory is
    slow to map (page faults), and reusing a few tens of megabytes is cheaper than
    keeping the spectra of a whole track between the passes.
    """

    def __init__(self, refs, ests, length: int, nfft: int, n_frames: int,
                 par: _Parallel = _SERIAL):
        self.refs, self.ests, self.length, self.nfft, self.par = refs, ests, length, nfft, par
        self.n_ref = refs.shape[0] * refs.shape[2]
        self.n_rows = self.n_ref + ests.shape[0] * ests.shape[2]
        n_freq = nfft // 2 + 1
        per_frame = 16 * n_freq * self.n_rows
        size = max(1, min(n_frames, _CHUNK_BYTES // per_frame))
        self.chunk = np.empty((size, n_freq, self.n_rows), dtype=np.complex128)
        # each thread transforms a share of every chunk, a batch of frames at a time
        share = -(-size // min(par.workers, size))
        self.batch = max(1, min(share, _FFT_BATCH_BYTES // (8 * nfft * self.n_rows)))
        workers = min(par.workers, size)
        self.rows = [np.empty((self.batch, self.n_rows, nfft)) for _ in range(workers)]
        self.spec = [np.empty((self.batch, self.n_rows, n_freq), dtype=np.complex128)
                     for _ in range(workers)] if _FFT_INTO else [None] * workers
        self.held = np.empty(0, dtype=np.int64)  # start samples of the frames in chunk

    def chunks(self, starts: np.ndarray):
        """Yield ``(first, spectra)`` for chunks of the frames at ``starts``.

        ``spectra`` (frames ``first, first + 1, ...``) is overwritten by the next chunk.
        Frames whose spectra the buffer still holds from the previous pass (its last
        chunk) come first and are not transformed again.
        """
        starts = np.asarray(starts)
        skip = None
        inside = np.flatnonzero(np.isin(self.held, starts))  # not a remainder block
        if len(inside):
            run = self.held[inside[0] :]
            first = int(np.searchsorted(starts, run[0]))
            if np.array_equal(starts[first : first + len(run)], run):
                skip = (first, first + len(run))
                yield first, self.chunk[inside[0] : len(self.held)]
        step = len(self.chunk)
        spans = [(0, len(starts))] if skip is None else [(0, skip[0]), (skip[1], len(starts))]
        for a, b in spans:
            for first in range(a, b, step):
                part = self.chunk[: min(step, b - first)]
                self.held = starts[:0]
                jobs = [(starts[first:], part, worker, frames)
                        for worker, frames in enumerate(self.par.slices(len(part)))]
                self.par.map(self._transform, jobs)
                self.held = starts[first : first + len(part)]
                yield first, part

    def _transform(self, job) -> None:
        """Transform ``frames`` of a chunk (``starts``, ``out``) with ``worker``'s rows."""
        starts, out, worker, frames = job
        rows = self.rows[worker]
        for a in range(frames.start, frames.stop, self.batch):
            m = min(self.batch, frames.stop - a)
            for i in range(m):
                start = int(starts[a + i])
                _channel_rows(self.refs, start, start + self.length, rows[i, : self.n_ref])
                _channel_rows(self.ests, start, start + self.length, rows[i, self.n_ref :])
            spec = _rfft_rows(rows[:m], self.spec[worker])
            for i in range(m):
                np.copyto(out[a + i], spec[i].T)


def _add_cross(spec: np.ndarray, n_ref: int, cross: np.ndarray, first: bool = False,
               par: _Parallel = _SERIAL) -> None:
    """Add the frames' cross-spectra ``sum_t conj(X_t) Y_t`` to ``cross``.

    ``spec`` is ``(frames, F, P + K)`` complex (:class:`_FrameSpectra`), ``X`` its
    reference channels and ``Y`` all its channels; ``cross`` is ``(F, P, P + K)``
    complex (``first`` overwrites it). Per frequency, one real matrix product of the
    interleaved real and imaginary parts gives ``g = sum_t u_t^T v_t`` (faster than a
    complex product with a conjugated copy at these sizes); read as complex numbers
    along its last axis, its row ``(p, re)`` is ``sum Re(X_p) Y`` and its row
    ``(p, im)`` is ``sum Im(X_p) Y``, so ``sum conj(X_p) Y = row(p, re) - i
    row(p, im)``. Threads take disjoint frequency ranges.
    """
    real = spec.view(np.float64)  # (frames, F, 2(P + K))
    rows = 2 * n_ref
    band = max(1, _BAND_BYTES // (8 * rows * real.shape[2]))

    def accumulate(freqs: slice) -> None:
        size = min(band, freqs.stop - freqs.start)
        products = np.empty((size, rows, real.shape[2]))
        combined = np.empty((size, n_ref, real.shape[2] // 2), dtype=np.complex128)
        for f0 in range(freqs.start, freqs.stop, band):
            part = real[:, f0 : min(f0 + band, freqs.stop)]
            m = part.shape[1]
            g = products[:m]
            np.matmul(part[:, :, :rows].transpose(1, 2, 0), part.transpose(1, 0, 2), out=g)
            g = g.view(np.complex128)  # (m, 2P, P + K)
            dest = cross[f0 : f0 + m]
            out = dest if first else combined[:m]
            np.multiply(g[:, 1::2], -1j, out=out)
            out += g[:, 0::2]
            if not first:
                dest += out

    par.map(accumulate, par.slices(real.shape[1]))


def _cross_correlations(cross: np.ndarray, nfft: int, max_lag: int,
                        par: _Parallel = _SERIAL) -> np.ndarray:
    """Lags ``0 .. max_lag - 1`` of the correlations with cross-spectra ``cross``.

    ``cross`` is ``(F, P, P + K)`` (:func:`_add_cross`); returns ``(max_lag, P, P +
    K)``. One reference channel at a time, transformed as rows (contiguous transforms
    are the fast ones), so that the inverse transforms take little memory.
    """
    n_freq, n_ref, n_y = cross.shape
    corr = np.empty((max_lag, n_ref, n_y))

    def channels(share: slice) -> None:
        rows = np.empty((n_y, n_freq), dtype=np.complex128)
        out = np.empty((n_y, nfft)) if _FFT_INTO else None
        for p in range(share.start, share.stop):
            for f0 in range(0, n_freq, 512):  # a cache-sized block at a time
                np.copyto(rows[:, f0 : f0 + 512], cross[f0 : f0 + 512, p].T)
            if out is None:
                corr[:, p] = sp_fft.irfft(rows, n=nfft, axis=-1)[:, :max_lag].T
            else:
                np.fft.irfft(rows, n=nfft, axis=-1, out=out)
                corr[:, p] = out[:, :max_lag].T

    par.map(channels, par.slices(n_ref))
    return corr


def _edge_correlations(refs, ests, max_lag: int, boundaries: np.ndarray) -> np.ndarray:
    """The parts of the lagged correlations that cross the block ``boundaries``.

    Short FFTs of the ``max_lag - 1`` samples either side of each boundary, a group
    of boundaries at a time; returns ``(max_lag, P, P + K)`` (lag 0 is zero: it never
    crosses a boundary).
    """
    n_ref = refs.shape[0] * refs.shape[2]
    n_y = n_ref + ests.shape[0] * ests.shape[2]
    ext = max_lag - 1
    out = np.zeros((max_lag, n_ref, n_y))
    if ext == 0 or len(boundaries) == 0:
        return out
    small = sp_fft.next_fast_len(2 * ext, real=True)
    group = max(1, min(len(boundaries), _BAND_BYTES // (8 * small * (n_ref + n_y))))
    tails = np.zeros((group, n_ref, small))
    heads = np.zeros((group, n_y, small))
    cross = np.zeros((small // 2 + 1, n_ref, n_y), dtype=np.complex128)
    for g0 in range(0, len(boundaries), group):
        edges = boundaries[g0 : g0 + group]
        for i, edge in enumerate(edges):
            _channel_rows(refs, edge - ext, edge, tails[i, :, :ext])
            _channel_rows(refs, edge, edge + ext, heads[i, :n_ref, ext : 2 * ext])
            _channel_rows(ests, edge, edge + ext, heads[i, n_ref:, ext : 2 * ext])
        m = len(edges)
        lhs = np.conjugate(sp_fft.rfft(tails[:m], axis=-1).transpose(2, 1, 0))  # (F, P, b)
        rhs = sp_fft.rfft(heads[:m], axis=-1).transpose(2, 0, 1)  # (F, b, Q)
        cross += lhs @ rhs
    # tail sample i is edge - ext + i and head sample ext + u is edge + u, so index m
    # of the correlation is lag m
    out[1:] = sp_fft.irfft(cross, n=small, axis=0)[1:max_lag]
    return out


def _block_correlations(refs, ests, max_lag, length, n_blocks, nfft,
                        par: _Parallel = _SERIAL, spectra: _FrameSpectra | None = None,
                        cross: np.ndarray | None = None) -> np.ndarray:
    """Lagged correlations when the signal is cut into contiguous blocks (frames).

    ``r[m, p, q] = sum_t x_p(t) y_q(t + m)``, ``m = 0 .. max_lag - 1``, with ``x`` the
    reference channels and ``y`` the reference then estimate channels (zero outside
    the signals): ``(max_lag, P, P + K)``. The within-block parts come from the block
    spectra (``nfft >= length + max_lag - 1`` keeps them free of wrap-around), the
    parts that cross a block boundary from :func:`_edge_correlations`. ``spectra`` and
    ``cross`` (``(F, P, P + K)`` complex, overwritten) may be passed in for reuse.
    """
    n = refs.shape[1]
    n_ref = refs.shape[0] * refs.shape[2]
    n_y = n_ref + ests.shape[0] * ests.shape[2]
    starts = np.arange(n_blocks) * length
    if n > n_blocks * length:  # a remainder block, first: the last chunk then holds frames
        starts = np.append(n_blocks * length, starts)
    if spectra is None:
        spectra = _FrameSpectra(refs, ests, length, nfft, len(starts), par)
    if cross is None:
        cross = np.empty((nfft // 2 + 1, n_ref, n_y), dtype=np.complex128)
    for first, spec in spectra.chunks(starts):
        _add_cross(spec, n_ref, cross, first == 0, par)
    corr = _cross_correlations(cross, nfft, max_lag, par)
    corr += _edge_correlations(refs, ests, max_lag, np.sort(starts)[1:])
    return corr


def _lagged_correlations(refs: np.ndarray, ests: np.ndarray, max_lag: int,
                         par: _Parallel = _SERIAL) -> np.ndarray:
    """Correlations ``r[m, p, q]`` as :func:`_block_correlations`, any framing.

    Blocks of a size chosen for FFT efficiency, independent of the frames.
    """
    n = refs.shape[1]
    ext = max_lag - 1
    nfft = sp_fft.next_fast_len(max(16 * ext, 16384), real=True)
    if n + ext <= nfft:
        nfft = _fft_length(n + ext)
    block = nfft - ext
    return _block_correlations(refs, ests, max_lag, block, n // block, nfft, par)


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
    # two buffers per predictor, swapped at every order (no copies)
    fwd, fwd_next = np.zeros((batch, n * p, p)), np.zeros((batch, n * p, p))
    bwd, bwd_next = np.zeros((batch, n * p, p)), np.zeros((batch, n * p, p))
    sol = np.zeros((batch, n * p, m))
    inv0 = np.linalg.inv(blocks[:, 0])
    fwd[:, :p] = inv0
    bwd[:, :p] = inv0
    sol[:, :p] = inv0 @ rhs[:, 0]
    pair = np.empty((2, batch, p, p))
    for k in range(1, n):
        rows = k * p
        lead = forward_row[:, :, (n - 1 - k) * p : (n - 1) * p]  # [R(k) ... R(1)]
        err_f = lead @ fwd[:, :rows]
        err_b = backward_row[:, :, p : (k + 1) * p] @ bwd[:, :rows]
        np.matmul(err_b, err_f, out=pair[0])
        np.matmul(err_f, err_b, out=pair[1])
        np.subtract(eye, pair, out=pair)
        alpha, delta = np.linalg.inv(pair)  # one call for both
        theta = lead @ sol[:, :rows]
        # F' = [F; 0] alpha - [0; B] err_f alpha,  B' = [0; B] delta - [F; 0] err_b delta
        np.matmul(fwd[:, :rows], alpha, out=fwd_next[:, :rows])
        fwd_next[:, rows : rows + p] = 0.0
        fwd_next[:, p : rows + p] -= bwd[:, :rows] @ (err_f @ alpha)
        np.matmul(bwd[:, :rows], delta, out=bwd_next[:, p : rows + p])
        bwd_next[:, :p] = 0.0
        bwd_next[:, :rows] -= fwd[:, :rows] @ (err_b @ delta)
        fwd, fwd_next = fwd_next, fwd
        bwd, bwd_next = bwd_next, bwd
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
        ``(L, P, P + K)`` lagged correlations (:func:`_block_correlations`) of
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


def _filter_operators(filters: np.ndarray, nfft: int, n_ch: int,
                      out: np.ndarray | None = None,
                      par: _Parallel = _SERIAL) -> tuple[np.ndarray, np.ndarray]:
    """Frequency responses of the filters as real per-frequency matrices.

    Returns ``onto_all`` (``(F, 2P, 2K)``, the filters onto all references, in
    ``out`` if given) and ``onto_own`` (``(F, targets, 2c, 2c)``, each target's
    filters onto its own reference's ``c`` channels). A row vector of interleaved
    real and imaginary parts of reference spectra times such a matrix gives the
    interleaved parts of the filtered spectra: read as complex numbers along its last
    axis, the matrix of a complex response ``h`` has row ``(p, re) = h[p]`` and row
    ``(p, im) = i h[p]``.
    """
    n_ref, _, _, n_out = filters.shape
    n_freq = nfft // 2 + 1
    size = n_freq * 2 * n_ref * 2 * n_out
    out = np.empty(size) if out is None else out.reshape(-1).view(np.float64)
    onto_all = out[:size].reshape(n_freq, 2 * n_ref, 2 * n_out)
    onto_own = np.empty((n_freq, n_out // n_ch, 2 * n_ch, 2 * n_ch))
    rows_all = onto_all.view(np.complex128)  # (F, 2P, K)
    rows_own = onto_own.view(np.complex128).reshape(n_freq, n_out, 2, n_ch)

    def channel(p: int) -> None:  # one reference channel at a time: small temporaries
        rows_all[:, 2 * p] = sp_fft.rfft(filters[p, :, 0], n=nfft, axis=0)  # (F, K)
        np.multiply(rows_all[:, 2 * p], 1j, out=rows_all[:, 2 * p + 1])
        if p < n_out:  # a target's channel: its own source's filters
            chans = slice(p - p % n_ch, p - p % n_ch + n_ch)
            rows_own[:, p, 0] = sp_fft.rfft(filters[p, :, 1, chans], n=nfft, axis=0)
            np.multiply(rows_own[:, p, 0], 1j, out=rows_own[:, p, 1])

    par.map(channel, range(n_ref))
    return onto_all, onto_own


def _projection_energies(spectra: _FrameSpectra, starts: np.ndarray, filters: np.ndarray,
                         nfft: int, n_tgt: int, n_ch: int,
                         workspace: np.ndarray | None = None) -> np.ndarray:
    """Energies of the projections of every target, frame by frame.

    ``spectra`` transforms the frames starting at ``starts`` (:class:`_FrameSpectra`).
    Returns ``(5, targets, frames)`` holding, in this order, ``|P_j - s|^2``,
    ``|P_j|^2``, ``|P_all - P_j|^2``, ``|P_all|^2`` and ``|e - P_all|^2`` over each
    frame plus its ``filter_length - 1`` sample tail, each taken from the spectra by
    Parseval. Per frequency, one real matrix product gives ``P_all`` of every target
    channel and small ones (a target's channels by its own filters) each ``P_j``; the
    differences are then formed element-wise, as museval forms them in time. Threads
    take disjoint frequency ranges of every chunk.
    """
    par = spectra.par
    n_ref = filters.shape[0]
    n_out = n_tgt * n_ch
    n_freq = nfft // 2 + 1
    # Parseval for a real signal from its half spectrum
    weights = np.full(n_freq, 2.0 / nfft)
    weights[0] = 1.0 / nfft
    if nfft % 2 == 0:
        weights[-1] = 1.0 / nfft
    onto_all, onto_own = _filter_operators(filters, nfft, n_ch, workspace, par)
    out = np.empty((5, len(starts), n_out))

    for first, spec in spectra.chunks(starts):
        k = len(spec)
        real = spec.view(np.float64)  # (k, F, 2(P + K))
        band = max(1, _BAND_BYTES // (5 * 16 * k * n_out))

        def bands(freqs: slice, spec=spec, real=real, k=k, band=band) -> np.ndarray:
            buf = np.empty((5, k, min(band, freqs.stop - freqs.start), n_out),
                           dtype=np.complex128)
            acc = np.zeros((5, k, 2 * n_out))
            for f0 in range(freqs.start, freqs.stop, band):
                f1 = min(f0 + band, freqs.stop)
                z = buf[:, :, : f1 - f0]
                zr = z.view(np.float64)
                x = real[:, f0:f1, : 2 * n_ref].transpose(1, 0, 2)  # (f, k, 2P)
                np.matmul(x, onto_all[f0:f1], out=zr[3].transpose(1, 0, 2))  # P_all
                # P_j: each target's own channels times its own block
                np.matmul(
                    x.reshape(f1 - f0, k, -1, 2 * n_ch)[:, :, :n_tgt].transpose(0, 2, 1, 3),
                    onto_own[f0:f1],
                    out=zr[1].reshape(k, f1 - f0, n_tgt, 2 * n_ch).transpose(1, 2, 0, 3),
                )
                np.subtract(z[1], spec[:, f0:f1, :n_out], out=z[0])  # P_j - s
                np.subtract(z[3], z[1], out=z[2])  # P_all - P_j
                np.subtract(spec[:, f0:f1, n_ref:], z[3], out=z[4])  # e - P_all
                np.multiply(zr, zr, out=zr)
                acc += np.matmul(weights[f0:f1], zr)
            return acc

        total = sum(par.map(bands, par.slices(n_freq)))
        out[:, first : first + k] = total.reshape(5, k, n_out, 2).sum(axis=3)
    out = out.reshape(5, len(starts), n_tgt, n_ch).sum(axis=3)
    return out.transpose(0, 2, 1)


def _evaluate_projections(refs, ests, starts, length, filter_length, par=_SERIAL):
    """Fit the filters on the whole signal and project every frame (v4).

    Returns ``(5, targets, frames)`` energies (see :func:`_projection_energies`).
    """
    n_src, n, n_ch = refs.shape
    n_tgt = ests.shape[0]
    nfft = _fft_length(length + filter_length - 1)
    spectra = _FrameSpectra(refs, ests, length, nfft, len(starts), par)
    n_ref, n_y = n_src * n_ch, (n_src + n_tgt) * n_ch
    # one buffer holds the summed cross-spectra, then the filters onto all references
    workspace = np.empty((nfft // 2 + 1, n_ref, n_y), dtype=np.complex128)
    # Frames can be the correlation blocks when they tile the signal and are at least
    # as long as the filters (a lag may then cross at most one frame boundary).
    contiguous = len(starts) == 1 or (
        np.all(np.diff(starts) == length) and length >= filter_length - 1
    )
    if contiguous and starts[0] == 0:
        corr = _block_correlations(refs, ests, filter_length, length, len(starts), nfft,
                                   par, spectra, workspace)
    else:
        corr = _lagged_correlations(refs, ests, filter_length, par)
    filters = _fit_filters(corr, n_src, n_ch)
    return _projection_energies(spectra, starts, filters, nfft, n_tgt, n_ch, workspace)


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
        Threads for the FFTs, the per-frequency products and the frame energies
        (the filter fit stays on one thread). ``None`` (the default) means one
        thread, so that callers that already evaluate several tracks in parallel
        (and shared machines) are not oversubscribed; a negative value counts back from
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
    refs, ests, bounds, silent = _validate(references, estimates, pad, window, hop)
    n_tgt = ests.shape[0]
    length = int(bounds[0, 1] - bounds[0, 0])
    active = np.flatnonzero(~silent)
    energies = np.full((5, n_tgt, len(bounds)), np.nan)
    pool = ThreadPoolExecutor(n_workers) if n_workers > 1 else nullcontext()
    with pool:
        par = _Parallel(n_workers, pool if n_workers > 1 else None)
        energy_ref, energy_error = _sdr_energies(refs, ests, bounds, par)
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
    sdr = _db(energy_ref, energy_error)
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
