"""Sample-rate conversion by an exact rational factor."""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

from .io import as_frames

__all__ = ["resample", "resampled_length"]


def resampled_length(num_frames: int, sr_in: int, sr_out: int) -> int:
    """Number of frames :func:`resample` returns: ``ceil(num_frames * sr_out / sr_in)``.

    Parameters
    ----------
    num_frames : int
        Input length in frames.
    sr_in, sr_out : int
        Input and output sample rates in Hz.

    Returns
    -------
    int
        Output length in frames.
    """
    return -(-int(num_frames) * int(sr_out) // int(sr_in))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the time axis with a polyphase filter (``scipy.signal.resample_poly``).

    Parameters
    ----------
    x : array_like
        Samples, 1-D or (frames, channels).
    sr_in, sr_out : int
        Input and output sample rates in Hz (integers, so the ratio is exact:
        44100 -> 48000 uses up=160, down=147).

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape (``resampled_length(frames, sr_in, sr_out)``, channels);
        ``x`` itself (as float32, 2-D) when the rates are equal.

    Notes
    -----
    ``resample_poly`` applies a Kaiser-windowed FIR anti-aliasing filter (beta 5) and
    compensates its delay, so the output stays time-aligned with the input. The
    computation runs in float64.
    """
    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} and {sr_out}")
    arr = as_frames(x)
    if sr_in == sr_out:
        return arr
    g = gcd(sr_in, sr_out)
    y = resample_poly(arr.astype(np.float64), sr_out // g, sr_in // g, axis=0)
    return y.astype(np.float32)
