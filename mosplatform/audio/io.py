"""Reading and writing audio files.

Every function in :mod:`mosplatform.audio` works on ``float32`` arrays of shape
``(frames, channels)`` (always 2-D, also for mono) plus a sample rate in Hz.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["read_audio", "write_audio", "as_frames", "SUBTYPES"]

#: Subtypes accepted by :func:`write_audio`, per container.
SUBTYPES = {
    "WAV": ("PCM_16", "PCM_24", "PCM_32", "FLOAT"),
    "FLAC": ("PCM_16", "PCM_24"),
}
_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


def as_frames(x: np.ndarray) -> np.ndarray:
    """Return ``x`` as a 2-D ``float32`` array of shape (frames, channels).

    Parameters
    ----------
    x : array_like
        1-D (mono) or 2-D (frames, channels) samples.

    Returns
    -------
    numpy.ndarray
        ``float32`` array, shape (frames, channels).

    Raises
    ------
    ValueError
        If ``x`` has more than two dimensions.
    """
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"audio must be 1-D or (frames, channels), got shape {arr.shape}")
    return arr


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as ``float32`` samples in [-1, 1].

    Parameters
    ----------
    path : path-like
        Any format libsndfile reads (WAV, FLAC, OGG, AIFF, ...).

    Returns
    -------
    x : numpy.ndarray
        ``float32`` array of shape (frames, channels).
    sample_rate : int
        Sample rate in Hz.

    Raises
    ------
    soundfile.LibsndfileError, OSError
        If the file is missing or cannot be decoded.
    """
    x, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    return x, int(sr)


def write_audio(path: str | os.PathLike, x: np.ndarray, sample_rate: int,
                subtype: str = "PCM_16") -> Path:
    """Write ``x`` to a WAV or FLAC file, the container chosen by the suffix.

    Parameters
    ----------
    path : path-like
        Destination ending in ``.wav`` or ``.flac``.
    x : array_like
        Samples, 1-D or (frames, channels), nominally in [-1, 1].
    sample_rate : int
        Sample rate in Hz.
    subtype : str
        ``PCM_16`` (default), ``PCM_24``, ``PCM_32`` or ``FLOAT`` (WAV only).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        On an unknown suffix or a subtype the container does not take, or non-finite samples.
    """
    p = Path(path)
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"{p}: unsupported suffix {p.suffix!r}; use .wav or .flac")
    if subtype not in SUBTYPES[fmt]:
        raise ValueError(f"{p}: subtype {subtype!r} not supported for {fmt}; "
                         f"use one of {SUBTYPES[fmt]}")
    arr = as_frames(x)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{p}: samples contain NaN or inf")
    sf.write(os.fspath(p), arr, int(sample_rate), subtype=subtype, format=fmt)
    return p
