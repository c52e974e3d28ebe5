"""Scale-invariant SDR and whole-signal SDR (the "nSDR" of the MDX challenges).

Both are closed-form energy ratios, cheap enough for every stimulus and every
validation step; neither fits distortion filters (see :mod:`.bsseval` for BSS Eval).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MDX_DELTA", "nsdr", "si_sdr"]

#: The constant added to both energies by the MDX 2021 challenge's SDR.
MDX_DELTA = 1e-7


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        raise ValueError(
            f"reference and estimate must have the same shape, got {reference.shape} and "
            f"{estimate.shape}"
        )
    if reference.ndim not in (1, 2, 3) or reference.size == 0:
        raise ValueError(
            "expected (samples,), (samples, channels) or (sources, samples, channels), "
            f"got shape {reference.shape}"
        )
    return reference, estimate


def _signal_axes(x: np.ndarray) -> tuple[int, ...]:
    """Axes summed into one energy: all but the source axis of a 3-D array."""
    return (1, 2) if x.ndim == 3 else tuple(range(x.ndim))


def si_sdr(
    reference: np.ndarray,
    estimate: np.ndarray,
    *,
    zero_mean: bool = False,
) -> float | np.ndarray:
    """Scale-invariant signal-to-distortion ratio in dB.

    Parameters
    ----------
    reference, estimate : numpy.ndarray
        Same shape: ``(samples,)`` or ``(samples, channels)`` for one signal, or
        ``(sources, samples, channels)`` for one value per source. The channels of a
        signal share one scale factor (they are treated as one long signal).
    zero_mean : bool, optional
        Remove each channel's mean first, as Le Roux et al. recommend; off by default
        (as torchmetrics and most separation code).

    Returns
    -------
    float or numpy.ndarray
        SI-SDR in dB (an array shaped ``(sources,)`` for 3-D input). ``inf`` when the
        estimate is an exact positive multiple of the reference; ``nan`` when the
        reference is silent or the estimate is orthogonal to it (``alpha = 0`` gives
        ``0 / |e|^2``, i.e. ``-inf``).

    Notes
    -----
    Le Roux, Wisdom, Erdogan and Hershey, "SDR - half-baked or well done?",
    ICASSP 2019::

        alpha = <e, s> / <s, s>
        SI-SDR = 10 log10(|alpha s|^2 / |alpha s - e|^2)

    Examples
    --------
    >>> import numpy as np
    >>> s = np.ones(4)
    >>> noise = np.array([1.0, -1.0, 1.0, -1.0])
    >>> round(float(si_sdr(s, 0.5 * s + 0.05 * noise)), 6)  # alpha = 0.5
    20.0
    """
    reference, estimate = _pair(reference, estimate)
    if zero_mean:
        time_axis = 1 if reference.ndim == 3 else 0
        reference = reference - reference.mean(axis=time_axis, keepdims=True)
        estimate = estimate - estimate.mean(axis=time_axis, keepdims=True)
    axes = _signal_axes(reference)
    ref_energy = np.sum(reference * reference, axis=axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.sum(reference * estimate, axis=axes) / ref_energy
        shape = alpha.shape + (1,) * (reference.ndim - alpha.ndim)
        target = np.reshape(alpha, shape) * reference
        target_energy = np.sum(target * target, axis=axes)
        noise_energy = np.sum((target - estimate) ** 2, axis=axes)
        out = 10.0 * np.log10(target_energy / noise_energy)
    out = np.where((noise_energy == 0) & (target_energy > 0), np.inf, out)
    return float(out) if np.ndim(out) == 0 else out


def nsdr(
    reference: np.ndarray,
    estimate: np.ndarray,
    *,
    delta: float = MDX_DELTA,
) -> float | np.ndarray:
    """SDR of the whole signal, as the MDX 2021 challenge defines it ("nSDR").

    Parameters
    ----------
    reference, estimate : numpy.ndarray
        Same shape: ``(samples,)`` or ``(samples, channels)`` for one signal, or
        ``(sources, samples, channels)`` for one value per source.
    delta : float, optional
        Added to both energies so that silent references and perfect estimates stay
        finite: ``1e-7`` in the challenge's evaluation code (for float signals in
        [-1, 1]); pass 0 for the plain ratio.

    Returns
    -------
    float or numpy.ndarray
        ``10 log10((sum s^2 + delta) / (sum (s - e)^2 + delta))`` in dB over all
        samples and channels (an array shaped ``(sources,)`` for 3-D input).

    Notes
    -----
    Mitsufuji et al., "Music Demixing Challenge 2021", Frontiers in Signal
    Processing, 2022; the Demucs papers report it as "nSDR". Unlike BSS Eval there
    are no frames, no median and no distortion filters, so a silent stretch simply
    contributes nothing to either energy.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.ones((100, 2))
    >>> round(float(nsdr(s, 0.9 * s, delta=0.0)), 2)
    20.0
    """
    reference, estimate = _pair(reference, estimate)
    axes = _signal_axes(reference)
    num = np.sum(reference * reference, axis=axes) + delta
    den = np.sum((reference - estimate) ** 2, axis=axes) + delta
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(num / den)
    return float(out) if np.ndim(out) == 0 else out
