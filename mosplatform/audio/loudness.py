"""Loudness measurement and alignment (ITU-R BS.1770-4 via pyloudnorm).

Two ways to align an item's stimuli to a target loudness:

``mode="item"`` (default)
    One gain for every condition of an item, chosen so that the reference (or, with
    no reference named, the energy average of the conditions) reaches the target.
    Relative level differences between conditions are kept, so a system that loses
    energy (e.g. misses part of the target source) still sounds quieter, as it does.
``mode="stimulus"``
    Each stimulus gets its own gain and reaches the target on its own. Level
    differences then cannot drive the ratings, but neither can a real loss of energy.

Either way a gain that would push a sample peak above ``peak_limit_dbfs`` is refused
(:class:`LoudnessClippingError`, with the peaks) or, with ``on_clip="flag"``, reported in
:attr:`LoudnessResult.clipped` and left to the caller; samples are never clipped here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .io import as_frames

__all__ = [
    "integrated_loudness",
    "peak_dbfs",
    "LoudnessResult",
    "LoudnessClippingError",
    "normalize_loudness",
    "normalize_to_lufs",
]

_MIN_SECONDS = 0.4  # one BS.1770 gating block


class LoudnessClippingError(ValueError):
    """Normalisation would push sample peaks above the limit.

    Attributes
    ----------
    peaks_dbfs : dict of str to float
        Peak (dBFS) each offending stimulus would reach after the gain.
    """

    def __init__(self, message: str, peaks_dbfs: dict[str, float]) -> None:
        super().__init__(message)
        self.peaks_dbfs = peaks_dbfs


@dataclass
class LoudnessResult:
    """Output of :func:`normalize_loudness`.

    Attributes
    ----------
    signals : dict of str to numpy.ndarray
        Gained ``float32`` signals, (frames, channels), same keys as the input.
    gains_db : dict of str to float
        Gain applied to each signal (equal for all in ``item`` mode).
    loudness_lufs : dict of str to float
        Integrated loudness before the gain (``-inf`` for silence).
    peak_dbfs : dict of str to float
        Sample peak after the gain.
    clipped : list of str
        Keys whose peak exceeds the limit (only non-empty with ``on_clip="flag"``).
    mode : str
        ``"item"`` or ``"stimulus"``.
    target_lufs : float
        The target.
    """

    signals: dict[str, np.ndarray]
    gains_db: dict[str, float]
    loudness_lufs: dict[str, float]
    peak_dbfs: dict[str, float]
    mode: str
    target_lufs: float
    clipped: list[str] = field(default_factory=list)


def integrated_loudness(x: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4, K-weighting, gated), via pyloudnorm.

    Parameters
    ----------
    x : array_like
        Samples, (frames,) or (frames, channels), up to 5 channels (L, R, C, Ls, Rs).
    sample_rate : int
        Hz.

    Returns
    -------
    float
        LUFS; ``-inf`` when every gating block is below the -70 LUFS absolute gate
        (silence).

    Raises
    ------
    ValueError
        If the signal is shorter than one 400 ms gating block.

    Notes
    -----
    BS.1770-4 calibration: a 0 dBFS 1 kHz sine in one channel reads -3.01 LUFS.
    """
    import pyloudnorm

    arr = as_frames(x).astype(np.float64)
    if arr.shape[0] < int(math.ceil(_MIN_SECONDS * sample_rate)):
        raise ValueError(
            f"loudness needs at least {_MIN_SECONDS} s of audio, "
            f"got {arr.shape[0] / sample_rate:.3f} s"
        )
    meter = pyloudnorm.Meter(int(sample_rate))
    with np.errstate(divide="ignore"):
        value = float(meter.integrated_loudness(arr))
    return value if math.isfinite(value) else -math.inf


def peak_dbfs(x: np.ndarray) -> float:
    """Sample peak in dBFS (``20 log10 max|x|``; ``-inf`` for silence)."""
    peak = float(np.max(np.abs(x))) if np.size(x) else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def _energy_mean_db(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return -math.inf
    return 10 * math.log10(float(np.mean([10 ** (v / 10) for v in finite])))


def normalize_loudness(
    signals: Mapping[str, np.ndarray],
    sample_rate: int,
    target_lufs: float = -23.0,
    *,
    mode: Literal["item", "stimulus"] = "item",
    reference: str | None = None,
    peak_limit_dbfs: float = -0.1,
    on_clip: Literal["raise", "flag"] = "raise",
) -> LoudnessResult:
    """Align the stimuli of one item to a target integrated loudness.

    Parameters
    ----------
    signals : mapping of str to array_like
        The item's stimuli by condition name, each (frames,) or (frames, channels).
    sample_rate : int
        Hz (all signals share it; resample first).
    target_lufs : float
        Target integrated loudness (default -23 LUFS, EBU R 128).
    mode : {"item", "stimulus"}
        One gain per item (keeps relative levels) or one per stimulus; see the module
        documentation.
    reference : str, optional
        In ``item`` mode, the key whose loudness sets the gain (typically the
        reference). Without it, the energy average of the finite loudness values.
    peak_limit_dbfs : float
        Highest sample peak allowed after the gain (default -0.1 dBFS).
    on_clip : {"raise", "flag"}
        Raise :class:`LoudnessClippingError` or list the keys in ``clipped``.

    Returns
    -------
    LoudnessResult

    Raises
    ------
    ValueError
        On an unknown mode or reference, or when the loudness that sets a gain is
        ``-inf`` (silence).
    LoudnessClippingError
        When a peak would exceed the limit and ``on_clip="raise"``.

    Examples
    --------
    >>> res = normalize_loudness({"ref": ref, "sysA": a}, 44100, -23.0,
    ...                          reference="ref")  # doctest: +SKIP
    >>> res.gains_db["ref"] == res.gains_db["sysA"]  # doctest: +SKIP
    True
    """
    if mode not in ("item", "stimulus"):
        raise ValueError(f"mode must be 'item' or 'stimulus', got {mode!r}")
    if on_clip not in ("raise", "flag"):
        raise ValueError(f"on_clip must be 'raise' or 'flag', got {on_clip!r}")
    if not signals:
        raise ValueError("no signals to normalise")
    if reference is not None and reference not in signals:
        raise ValueError(f"reference {reference!r} is not one of {sorted(signals)}")
    arrays = {k: as_frames(v) for k, v in signals.items()}
    loudness = {k: integrated_loudness(v, sample_rate) for k, v in arrays.items()}

    gains: dict[str, float] = {}
    if mode == "item":
        basis = loudness[reference] if reference is not None else _energy_mean_db(
            list(loudness.values()))
        if not math.isfinite(basis):
            who = f"reference {reference!r}" if reference is not None else "every stimulus"
            raise ValueError(f"cannot normalise loudness: {who} is silent (-inf LUFS)")
        gains = dict.fromkeys(arrays, target_lufs - basis)
    else:
        for k, lufs in loudness.items():
            if not math.isfinite(lufs):
                raise ValueError(f"cannot normalise loudness: {k!r} is silent (-inf LUFS)")
            gains[k] = target_lufs - lufs

    out = {k: (v.astype(np.float64) * 10 ** (gains[k] / 20)).astype(np.float32)
           for k, v in arrays.items()}
    peaks = {k: peak_dbfs(v) for k, v in out.items()}
    clipped = [k for k, p in peaks.items() if p > peak_limit_dbfs]
    if clipped and on_clip == "raise":
        detail = ", ".join(f"{k}: {peaks[k]:+.2f} dBFS" for k in clipped)
        raise LoudnessClippingError(
            f"normalising to {target_lufs:g} LUFS would push sample peaks above "
            f"{peak_limit_dbfs:g} dBFS ({detail}); lower the target or use a limiter first",
            {k: peaks[k] for k in clipped},
        )
    return LoudnessResult(signals=out, gains_db=gains, loudness_lufs=loudness, peak_dbfs=peaks,
                          mode=mode, target_lufs=float(target_lufs), clipped=clipped)


def normalize_to_lufs(x: np.ndarray, sample_rate: int, target_lufs: float = -23.0, *,
                      peak_limit_dbfs: float = -0.1) -> np.ndarray:
    """Gain one signal to ``target_lufs``; raises :class:`LoudnessClippingError` on clipping.

    Parameters
    ----------
    x : array_like
        Samples, (frames,) or (frames, channels).
    sample_rate : int
        Hz.
    target_lufs : float
        Target integrated loudness.
    peak_limit_dbfs : float
        Highest sample peak allowed after the gain.

    Returns
    -------
    numpy.ndarray
        ``float32`` (frames, channels).
    """
    res = normalize_loudness({"signal": x}, sample_rate, target_lufs, mode="stimulus",
                             peak_limit_dbfs=peak_limit_dbfs)
    return res.signals["signal"]
