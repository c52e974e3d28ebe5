"""Weakly labelled clips and the training of the sound-event detector / tagger.

A weakly labelled clip is a random excerpt of a multitrack in which every stem is kept
or dropped at random (and given a random gain); its label says which stems are audible in
the clip, with no timing, like an AudioSet clip-level label.  The same detector serves as
the query encoder of the query-based system and as the tagger of TAGBOX.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..models.query import SoundEventDetector
from .common import MonoTrack, fit, random_segment

#: A stem counts as present in a clip when its RMS is within this many dB of the
#: loudest stem's RMS in the clip (quieter stems are practically inaudible).
PRESENCE_DB = -30.0


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def weak_clip_batch(tracks: Sequence[MonoTrack], classes: Sequence[str],
                    rng: np.random.Generator, batch_size: int, clip_samples: int,
                    keep_probability: float = 0.5,
                    gain_db: tuple[float, float] = (-6.0, 6.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random sub-mixes and their clip-level labels.

    Parameters
    ----------
    tracks : sequence of MonoTrack
        Multitracks with a stem per class.
    classes : sequence of str
        Stem names = label order.
    rng : numpy.random.Generator
        Source of randomness.
    batch_size, clip_samples : int
        Clips per batch and clip length in samples.
    keep_probability : float
        Probability of keeping each stem (at least one is always kept).
    gain_db : (float, float)
        Random gain range per stem.

    Returns
    -------
    audio : torch.Tensor
        ``(batch, clip_samples)``.
    labels : torch.Tensor
        ``(batch, classes)`` in {0, 1}.
    """
    clips = np.zeros((batch_size, clip_samples), dtype=np.float32)
    labels = np.zeros((batch_size, len(classes)), dtype=np.float32)
    for b in range(batch_size):
        track = tracks[int(rng.integers(len(tracks)))]
        a, stop = random_segment(rng, track.stems[classes[0]], clip_samples)
        keep = rng.random(len(classes)) < keep_probability
        if not keep.any():
            keep[int(rng.integers(len(classes)))] = True
        parts = []
        for k, name in enumerate(classes):
            if keep[k]:
                gain = 10 ** (rng.uniform(*gain_db) / 20)
                parts.append((k, gain * track.stems[name][a:stop]))
        rms = [_rms(p) for _, p in parts]
        loudest = max(rms) + 1e-12
        for (k, p), r in zip(parts, rms, strict=True):
            clips[b, : len(p)] += p
            labels[b, k] = float(r > 1e-5 and 20 * np.log10(r / loudest) > PRESENCE_DB)
    return torch.from_numpy(clips), torch.from_numpy(labels)


def train_detector(detector: SoundEventDetector, tracks: Sequence[MonoTrack], steps: int,
                   batch_size: int = 16, clip_seconds: float = 4.0, lr: float = 1e-3,
                   seed: int = 0, log_path=None, progress: bool = True,
                   desc: str = "sed") -> list[float]:
    """Train the detector with BCE on weakly labelled clips (clip-level pooled output).

    Returns
    -------
    list of float
        Loss per step.
    """
    clip = int(clip_seconds * detector.sample_rate)

    def loss_fn(rng: np.random.Generator) -> torch.Tensor:
        audio, labels = weak_clip_batch(tracks, detector.classes, rng, batch_size, clip)
        return F.binary_cross_entropy_with_logits(detector(audio), labels)

    return fit(detector, loss_fn, steps, lr, log_path, seed=seed, desc=desc, progress=progress)


@torch.no_grad()
def tagging_accuracy(detector: SoundEventDetector, tracks: Sequence[MonoTrack],
                     clips: int = 64, clip_seconds: float = 4.0, seed: int = 1) -> float:
    """Fraction of correct clip-level tag decisions (threshold 0.5) on random sub-mixes."""
    detector.eval()
    rng = np.random.default_rng(seed)
    audio, labels = weak_clip_batch(tracks, detector.classes, rng, clips,
                                    int(clip_seconds * detector.sample_rate))
    predicted = (detector.clip_probabilities(audio) > 0.5).float()
    return float((predicted == labels).float().mean())
