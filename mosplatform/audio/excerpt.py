"""Excerpt selection and edge fades.

An excerpt is either given explicitly (start and length in seconds) or found
automatically: the window of the requested length where all sources play, as the
separation study chose its 8 s clips. Activity is measured on 50 ms frames: a
source is active in a frame when the frame's RMS is above ``threshold_db`` relative to
the track's peak (the largest absolute sample over all sources); gaps shorter than
``max_gap_s`` between active frames (between drum hits, breaths) are closed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .io import as_frames

__all__ = [
    "ExcerptSpan",
    "ExcerptWarning",
    "explicit_span",
    "find_active_span",
    "frame_activity_db",
    "raised_cosine_fade",
    "apply_fades",
    "cut_excerpt",
]


class ExcerptWarning(UserWarning):
    """Automatic selection could not find a span where all sources are active."""


@dataclass(frozen=True)
class ExcerptSpan:
    """A span of a track.

    Attributes
    ----------
    start_frame, num_frames : int
        Position and length in frames at ``sample_rate``.
    sample_rate : int
        Hz.
    min_active_fraction : float
        For automatic spans, the smallest (over sources) fraction of frames in the span
        where the source is active; 1.0 means every source is active throughout. NaN
        for explicit spans.
    fallback : bool
        True when automatic selection could not meet ``min_active_fraction`` (or the
        track was too short) and returned its best effort.
    reason : str
        How the span was chosen, for the import report.
    """

    start_frame: int
    num_frames: int
    sample_rate: int
    min_active_fraction: float = math.nan
    fallback: bool = False
    reason: str = ""

    @property
    def start_s(self) -> float:
        """Start in seconds."""
        return self.start_frame / self.sample_rate

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.sample_rate

    @property
    def stop_frame(self) -> int:
        """One past the last frame."""
        return self.start_frame + self.num_frames


def explicit_span(start_s: float, length_s: float, sample_rate: int, total_frames: int
                  ) -> ExcerptSpan:
    """Validate an explicit excerpt.

    Parameters
    ----------
    start_s, length_s : float
        Start and length in seconds.
    sample_rate : int
        Hz.
    total_frames : int
        Length of the track in frames.

    Returns
    -------
    ExcerptSpan

    Raises
    ------
    ValueError
        If the span is empty or reaches beyond the track.
    """
    start = int(round(start_s * sample_rate))
    n = int(round(length_s * sample_rate))
    if start < 0 or n <= 0:
        raise ValueError(
            f"excerpt start must be >= 0 and length > 0 (got {start_s} s, {length_s} s)")
    if start + n > total_frames:
        raise ValueError(
            f"excerpt {start_s:g} s + {length_s:g} s ends after the track "
            f"({total_frames / sample_rate:.3f} s)"
        )
    return ExcerptSpan(start, n, int(sample_rate), reason="explicit start and length")


def frame_activity_db(sources: Sequence[np.ndarray], sample_rate: int, frame_s: float = 0.05,
                      ) -> np.ndarray:
    """Frame RMS of each source in dB relative to the track peak.

    Parameters
    ----------
    sources : sequence of array_like
        Equal-length signals, each (frames,) or (frames, channels).
    sample_rate : int
        Hz.
    frame_s : float
        Frame length (non-overlapping frames, default 50 ms; a trailing partial frame is
        dropped).

    Returns
    -------
    numpy.ndarray
        Shape (n_sources, n_frames); ``-inf`` in digitally silent frames.
    """
    arrays = [as_frames(s) for s in sources]
    lengths = {a.shape[0] for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"sources differ in length: {sorted(lengths)}")
    hop = max(1, int(round(frame_s * sample_rate)))
    n_frames = arrays[0].shape[0] // hop
    peak = max((float(np.max(np.abs(a))) if a.size else 0.0) for a in arrays)
    out = np.full((len(arrays), n_frames), -np.inf)
    if peak == 0 or n_frames == 0:
        return out
    for i, a in enumerate(arrays):
        blocks = a[: n_frames * hop].astype(np.float64).reshape(n_frames, hop * a.shape[1])
        rms = np.sqrt(np.mean(blocks**2, axis=1))
        with np.errstate(divide="ignore"):
            out[i] = 20 * np.log10(rms / peak)
    return out


def _close_gaps(active: np.ndarray, max_gap: int) -> np.ndarray:
    """Morphological closing per row: fill inactive runs shorter than ``max_gap`` frames
    that lie between active frames, without moving where long silences start or end."""
    if max_gap <= 0:
        return active
    width = max_gap + 1
    padded = np.pad(active, ((0, 0), (width, width)), mode="edge")
    closed = ndimage.binary_closing(padded, structure=np.ones((1, width), dtype=bool))
    return closed[:, width:-width]


def find_active_span(
    sources: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    sample_rate: int,
    length_s: float,
    *,
    threshold_db: float = -40.0,
    min_active_fraction: float = 0.9,
    frame_s: float = 0.05,
    max_gap_s: float = 1.0,
) -> ExcerptSpan:
    """Find the window of ``length_s`` where all sources are most active.

    Parameters
    ----------
    sources : mapping or sequence of array_like
        The sources of one track (e.g. drums, bass, other, vocals), equal length.
    sample_rate : int
        Hz.
    length_s : float
        Excerpt length in seconds.
    threshold_db : float
        A frame of a source is active when its RMS is above this level relative to the
        track peak, the largest absolute sample over all sources (default -40 dB).
    min_active_fraction : float
        The span counts as "all sources active" when every source is active in at
        least this fraction of its frames (default 0.9, tolerating short rests such as
        a singer's breaths).
    frame_s : float
        Frame length and candidate-start step (default 50 ms).
    max_gap_s : float
        Quieter stretches shorter than this between active frames (the space between
        drum hits, plucked notes, rests between sung phrases) count as active (default
        1 s). Longer silences keep their exact edges.

    Returns
    -------
    ExcerptSpan
        The window maximising the minimum over sources of the active fraction; ties go
        to the larger minimum over sources of mean frame level, then to the earliest.

    Warns
    -----
    ExcerptWarning
        When no window reaches ``min_active_fraction`` (the best window is returned,
        ``fallback=True``) or the track is shorter than ``length_s`` (the whole track).

    Notes
    -----
    Window sums use cumulative sums, so the search is linear in the track length.
    """
    arrays = list(sources.values()) if isinstance(sources, Mapping) else list(sources)
    names = list(sources) if isinstance(sources, Mapping) else [str(i) for i in range(len(arrays))]
    if not arrays:
        raise ValueError("no sources given")
    total = as_frames(arrays[0]).shape[0]
    n = int(round(length_s * sample_rate))
    if n <= 0:
        raise ValueError(f"excerpt length must be positive, got {length_s}")
    if n >= total:
        msg = (f"track is {total / sample_rate:.2f} s, not longer than the requested "
               f"{length_s:g} s excerpt; using the whole track")
        warnings.warn(msg, ExcerptWarning, stacklevel=2)
        return ExcerptSpan(0, total, int(sample_rate), fallback=True, reason=msg)

    hop = max(1, int(round(frame_s * sample_rate)))
    levels = frame_activity_db(arrays, sample_rate, frame_s)
    active = _close_gaps(levels > threshold_db, int(max_gap_s / frame_s)).astype(np.float64)
    win = min(max(1, n // hop), levels.shape[1])
    n_starts = levels.shape[1] - win + 1
    csum = np.concatenate([np.zeros((len(arrays), 1)), np.cumsum(active, axis=1)], axis=1)
    frac = (csum[:, win:win + n_starts] - csum[:, :n_starts]) / win  # (sources, starts)
    floored = np.maximum(levels, threshold_db - 40.0)  # keep -inf out of the mean
    lsum = np.concatenate([np.zeros((len(arrays), 1)), np.cumsum(floored, axis=1)], axis=1)
    mean_level = (lsum[:, win:win + n_starts] - lsum[:, :n_starts]) / win
    min_frac = frac.min(axis=0)
    min_level = mean_level.min(axis=0)
    # Lexicographic: min active fraction first, then min mean level; argmax takes the earliest.
    best_frac = float(min_frac.max())
    candidates = np.flatnonzero(min_frac >= best_frac - 1e-12)
    best = int(candidates[np.argmax(min_level[candidates])])
    start = min(best * hop, total - n)
    if best_frac >= min_active_fraction:
        return ExcerptSpan(start, n, int(sample_rate), best_frac,
                           reason=f"all sources active in >= {best_frac:.0%} of frames")
    weakest = names[int(np.argmin(frac[:, best]))]
    msg = (f"no {length_s:g} s span with all sources active (>= {min_active_fraction:.0%} of "
           f"frames above {threshold_db:g} dB re. track peak); best span at "
           f"{start / sample_rate:.2f} s has {weakest!r} active in only {best_frac:.0%}")
    warnings.warn(msg, ExcerptWarning, stacklevel=2)
    return ExcerptSpan(start, n, int(sample_rate), best_frac, fallback=True, reason=msg)


def raised_cosine_fade(num_frames: int) -> np.ndarray:
    """Fade-in gain ``g[n] = 0.5 (1 - cos(pi n / N))`` for ``n = 0 .. N-1``.

    The first sample is exactly 0, and the curve would reach 1 at ``n = N``, the first
    sample after the fade, so the gain is continuous with the unfaded signal. Reverse
    it for a fade-out (the last sample is then exactly 0).

    Parameters
    ----------
    num_frames : int
        Fade length N in frames.

    Returns
    -------
    numpy.ndarray
        ``float64`` gains, shape (N,).
    """
    n = np.arange(int(num_frames), dtype=np.float64)
    return 0.5 * (1 - np.cos(np.pi * n / max(1, int(num_frames))))


def apply_fades(x: np.ndarray, sample_rate: int, fade_in_s: float = 0.02,
                fade_out_s: float = 0.02) -> np.ndarray:
    """Apply raised-cosine fades at the start and end.

    Parameters
    ----------
    x : array_like
        Samples, (frames,) or (frames, channels).
    sample_rate : int
        Hz.
    fade_in_s, fade_out_s : float
        Fade lengths in seconds (default 20 ms each; 0 disables). Each is limited to
        half the signal.

    Returns
    -------
    numpy.ndarray
        A faded ``float32`` copy, (frames, channels).
    """
    y = as_frames(x).copy()
    total = y.shape[0]
    n_in = min(int(round(fade_in_s * sample_rate)), total // 2)
    n_out = min(int(round(fade_out_s * sample_rate)), total // 2)
    if n_in > 0:
        y[:n_in] *= raised_cosine_fade(n_in)[:, None].astype(np.float32)
    if n_out > 0:
        y[total - n_out:] *= raised_cosine_fade(n_out)[::-1, None].astype(np.float32)
    return y


def cut_excerpt(x: np.ndarray, span: ExcerptSpan, fade_s: float = 0.02) -> np.ndarray:
    """Cut ``span`` out of ``x`` and fade its edges.

    Parameters
    ----------
    x : array_like
        Whole track, (frames,) or (frames, channels), at ``span.sample_rate``.
    span : ExcerptSpan
    fade_s : float
        Raised-cosine fade at both edges (default 20 ms).

    Returns
    -------
    numpy.ndarray
        ``float32`` (span.num_frames, channels).
    """
    arr = as_frames(x)
    if span.stop_frame > arr.shape[0]:
        raise ValueError(f"span ends at frame {span.stop_frame}, signal has {arr.shape[0]}")
    return apply_fades(arr[span.start_frame:span.stop_frame], span.sample_rate, fade_s, fade_s)
