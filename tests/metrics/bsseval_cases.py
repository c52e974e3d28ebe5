"""Generated BSS Eval test cases shared by the tests and by ``make_fixtures.py``.

Signals come from a seeded ``numpy.random.default_rng`` and scipy filters only, so
that the museval outputs stored in ``fixtures/museval_reference.npz`` can be
recomputed here without museval. Every stem has a noise floor (dither): purely
band-limited stems make the Gram matrix of BSS Eval singular. The fixture file also
stores checksums of the generated signals; the tests fail loudly if the generator
ever produces different samples (then rerun ``make_fixtures.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter


@dataclass(frozen=True)
class Case:
    name: str
    sources: int
    channels: int
    sr: int
    seconds: float
    window: int
    hop: int
    filter_length: int = 512
    mode: str = "v4"
    kind: str = "mix"  # how the estimates are made, see make_case
    seed: int = 0
    estimate_shortfall: int = 0  # estimates this many samples shorter (museval pads)


CASES = [
    Case("stereo_mix_8k", 3, 2, 8000, 4.3, 8000, 8000, seed=1),
    Case("mono_mix_16k_overlap", 2, 1, 16000, 3.2, 16000, 8000, filter_length=256, seed=2),
    Case("stereo_silent_frames", 3, 2, 8000, 5.0, 8000, 8000, kind="silent_frames", seed=3),
    Case("stereo_equal", 2, 2, 8000, 3.0, 8000, 8000, kind="equal", seed=4),
    Case("stereo_scaled_filtered", 3, 2, 8000, 3.0, 8000, 8000, kind="scaled_filtered", seed=5),
    Case("mono_interference", 3, 1, 8000, 3.5, 8000, 8000, kind="interference", seed=6),
    Case("stereo_noise", 2, 2, 12000, 3.0, 12000, 12000, kind="noise", seed=7),
    Case("stereo_short_one_frame", 2, 2, 8000, 0.75, 8000, 8000, filter_length=128, seed=8),
    Case("stereo_padded_estimates", 2, 2, 8000, 3.0, 8000, 8000, seed=9,
         estimate_shortfall=1500),
    Case("stereo_v3", 2, 2, 8000, 3.0, 8000, 8000, mode="v3", seed=10),
    Case("mono_v3_silent", 2, 1, 8000, 4.0, 8000, 4000, filter_length=128, mode="v3",
         kind="silent_frames", seed=11),
    Case("stereo_4src_44k", 4, 2, 44100, 3.0, 44100, 44100, seed=12),
    Case("mono_frames_shorter_than_filters", 2, 1, 8000, 1.0, 100, 100, filter_length=128,
         seed=13),
]


def _stem(rng: np.random.Generator, n: int, channels: int, sr: int) -> np.ndarray:
    """One stem: coloured noise plus amplitude-modulated tones, panned, with dither."""
    t = np.arange(n) / sr
    pole = rng.uniform(0.5, 0.95)
    base = lfilter([1.0], [1.0, -pole], rng.standard_normal(n))
    for _ in range(3):
        freq = rng.uniform(50.0, sr / 4)
        rate = rng.uniform(0.5, 4.0)
        base = base + rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * freq * t) * (
            1.0 + 0.8 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
        )
    base /= np.sqrt(np.mean(base**2))
    gains = rng.uniform(0.3, 1.0, channels)
    stem = base[:, None] * gains[None, :] + 0.2 * rng.standard_normal((n, channels))
    return 0.1 * stem + 1e-3 * rng.standard_normal((n, channels))


def make_case(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(references, estimates)`` shaped ``(sources, samples, channels)``."""
    rng = np.random.default_rng(case.seed)
    n = int(round(case.seconds * case.sr))
    refs = np.stack([_stem(rng, n, case.channels, case.sr) for _ in range(case.sources)])
    noise = 0.02 * rng.standard_normal(refs.shape)
    rolled = np.roll(refs, -1, axis=0)
    if case.kind in ("mix", "silent_frames"):
        colour = lfilter([0.6, 0.3, 0.1], [1.0], refs, axis=1)
        ests = refs + 0.2 * rolled + 0.05 * colour + noise
    elif case.kind == "equal":
        ests = refs.copy()
    elif case.kind == "scaled_filtered":
        ests = refs.copy()
        ests[0] = 0.5 * refs[0]
        ests[1] = lfilter([0.7, -0.2, 0.1, 0.05], [1.0], refs[1], axis=0)
        ests[2] = np.concatenate([np.zeros((3, case.channels)), refs[2, :-3]])
    elif case.kind == "interference":
        ests = rolled.copy()
    elif case.kind == "noise":
        ests = 0.1 * rng.standard_normal(refs.shape)
    else:
        raise ValueError(case.kind)
    if case.kind == "silent_frames":
        w = case.window
        refs[0, w : 2 * w] = 0.0  # a silent reference frame
        ests[-1, 3 * w : 3 * w + w // 2] = 0.0  # a silent estimate (half) frame
        ests[1, -w:] = 0.0  # a silent estimate frame at the end
    if case.estimate_shortfall:
        ests = ests[:, : n - case.estimate_shortfall]
    return refs, ests


def checksum(refs: np.ndarray, ests: np.ndarray) -> np.ndarray:
    """A few sums that change if the generator changes."""
    return np.array([refs.sum(), (refs**2).sum(), ests.sum(), (ests**2).sum(),
                     refs[:, ::7].sum(), ests[:, 3::11].sum()])
