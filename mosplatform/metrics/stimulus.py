"""Objective scores of one listening-test stimulus against its reference stem."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .bsseval import bss_eval
from .sisdr import nsdr, si_sdr

__all__ = ["stimulus_scores"]


def _as_signal(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be (samples,) or (samples, channels), got {x.shape}")
    return x


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[0] >= n:
        return x[:n]
    return np.pad(x, [(0, n - x.shape[0]), (0, 0)])


def _silent(x: np.ndarray) -> bool:
    # museval's test: the channel sum is zero at every sample
    return bool(np.all(x.sum(axis=1) == 0))


def stimulus_scores(
    reference: np.ndarray,
    estimate: np.ndarray,
    sr: int,
    *,
    interferers: Sequence[np.ndarray] | np.ndarray | None = None,
    filter_length: int = 512,
) -> dict[str, float]:
    """SDR (BSS Eval v4), ISR, SIR, SAR, SI-SDR and nSDR of one stimulus.

    Parameters
    ----------
    reference : numpy.ndarray
        The true target stem of the excerpt, ``(samples,)`` or ``(samples,
        channels)``.
    estimate : numpy.ndarray
        The stimulus (a system's output, an anchor, ...); zero-padded or cut to the
        reference length, as ``museval.evaluate`` does.
    sr : int
        Sample rate: the BSS Eval window and hop are one second (``window = hop =
        sr``), museval's setting at 44.1 kHz.
    interferers : sequence of numpy.ndarray, optional
        The other reference stems of the same excerpt (same shape as
        ``reference``). BSS Eval v4 projects the estimate on all references, so SIR
        is meaningful only with them; without them the evaluation has one source
        and SIR is ``inf``. All-zero interferers are left out (museval refuses
        silent references).
    filter_length : int, optional
        Distortion filter taps (museval: 512); reduced to the excerpt length for
        excerpts shorter than that.

    Returns
    -------
    dict of str to float
        ``sdr``, ``isr``, ``sir``, ``sar``: medians over frames of the v4 framewise
        metrics (NaN frames skipped; NaN when every frame is silent, or when the
        reference or the estimate is all-zero, which BSS Eval cannot score);
        ``si_sdr`` (:func:`~mosplatform.metrics.sisdr.si_sdr`) and ``nsdr``
        (:func:`~mosplatform.metrics.sisdr.nsdr`) over the whole excerpt.

    Notes
    -----
    An excerpt shorter than one window is one frame holding the whole excerpt
    (museval's framing does the same); a trailing partial frame of a longer excerpt
    is dropped, so a 2.5 s stimulus is scored on its first two seconds by ``sdr``
    but on all of it by ``si_sdr`` and ``nsdr``. SDR of a frame does not depend on
    the interferers; ISR, SIR and SAR do.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> vocals, drums = rng.standard_normal((2, 16000, 2))
    >>> scores = stimulus_scores(vocals, vocals + 0.1 * drums, 8000, interferers=[drums])
    >>> round(scores["sdr"], 1), round(scores["nsdr"], 1)
    (19.9, 19.9)
    """
    sr = int(sr)
    if sr <= 0:
        raise ValueError(f"sr must be positive, got {sr}")
    ref = _as_signal(reference, "reference")
    n, n_ch = ref.shape
    est = _as_signal(estimate, "estimate")
    if est.shape[1] != n_ch:
        raise ValueError(f"estimate has {est.shape[1]} channels, reference {n_ch}")
    est = _fit_length(est, n)
    others = []
    if interferers is not None:
        for i, x in enumerate(interferers):
            x = _fit_length(_as_signal(x, f"interferers[{i}]"), n)
            if x.shape[1] != n_ch:
                raise ValueError(f"interferers[{i}] has {x.shape[1]} channels, reference {n_ch}")
            if not _silent(x):
                others.append(x)
    scores = {
        "sdr": float("nan"),
        "isr": float("nan"),
        "sir": float("nan"),
        "sar": float("nan"),
        "si_sdr": float(si_sdr(ref, est)),
        "nsdr": float(nsdr(ref, est)),
    }
    if _silent(ref) or _silent(est):
        return scores
    result = bss_eval(
        np.stack([ref, *others]),
        est[None],
        window=sr,
        hop=sr,
        filter_length=max(1, min(int(filter_length), n)),
        mode="v4",
    )
    for key in ("sdr", "isr", "sir", "sar"):
        values = result[key.upper()][0]
        values = values[~np.isnan(values)]
        scores[key] = float(np.median(values)) if values.size else float("nan")
    return scores
