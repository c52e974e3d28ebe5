"""TAGBOX-style steering: train the two pretrained parts, then separate by steering.

Nothing here trains a separator.  The autoencoder learns to reconstruct music (random
sub-mixes of the demo stems, multi-resolution STFT loss) and the tagger learns which
instrument families play in a clip (weak labels, :mod:`.sed`).  Separation is the
latent optimisation of :func:`separation.models.tagbox.steer`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..losses import MultiResolutionSTFTLoss
from ..models.tagbox import TagboxSystem, steer
from ..registry import build_model, preset_kwargs
from .common import MonoTrack, fit, load_mono_tracks, whole_sdr
from .sed import tagging_accuracy, train_detector, weak_clip_batch

TAGS = ["drums", "bass", "other", "vocals"]


@dataclass
class TagboxTrainConfig:
    """Settings of :func:`train_tagbox`.

    Attributes
    ----------
    data, out : str
        Data root (``train/`` inside) and output folder (``tagbox.pt``, logs).
    preset : str
        ``"small"`` (CPU) or ``"default"``.
    tags : list of str
        Stems that are the tagger's classes.
    ae_steps, tagger_steps : int
        Training steps of the autoencoder and of the tagger.
    batch_size, lr : int, float
        Batch size and Adam learning rate.
    ae_seconds, tagger_seconds : float
        Excerpt lengths for the two trainings.
    steer_steps, steer_lr : int, float
        Defaults stored in the model for separation.
    overrides : dict
        Model keyword arguments replacing the preset's (``autoencoder``, ``tagger``, ...).
    """

    data: str
    out: str
    preset: str = "small"
    tags: list[str] = field(default_factory=lambda: list(TAGS))
    ae_steps: int = 600
    tagger_steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    ae_seconds: float = 1.0
    tagger_seconds: float = 4.0
    steer_steps: int = 40
    steer_lr: float = 0.2
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    max_tracks: int | None = None
    progress: bool = True


def train_tagbox(config: TagboxTrainConfig) -> dict[str, Any]:
    """Train autoencoder and tagger; write ``<out>/tagbox.pt`` (registry name ``"tagbox"``)."""
    tags = list(config.tags)
    torch.manual_seed(config.seed)
    kwargs = preset_kwargs("tagbox", config.preset, tags=tags, steps=config.steer_steps,
                           lr=config.steer_lr, **config.overrides)
    system: TagboxSystem = build_model("tagbox", config.preset, **kwargs)
    tracks = load_mono_tracks(config.data, "train", tags, system.sample_rate,
                              max_tracks=config.max_tracks)
    out = Path(config.out)
    stft_loss = MultiResolutionSTFTLoss(system.sample_rate)
    ae_samples = int(config.ae_seconds * system.sample_rate)
    t0 = time.perf_counter()

    def ae_loss(rng: np.random.Generator) -> torch.Tensor:
        # Music the autoencoder must reproduce: whole mixes and sub-mixes of the stems.
        audio, _ = weak_clip_batch(tracks, tags, rng, config.batch_size, ae_samples,
                                   keep_probability=0.6)
        return stft_loss(system.autoencoder(audio), audio)

    ae_losses = fit(system.autoencoder, ae_loss, config.ae_steps, config.lr,
                    out / "autoencoder_log.csv", seed=config.seed, desc="tagbox-ae",
                    progress=config.progress)
    tag_losses = train_detector(system.tagger, tracks, config.tagger_steps, config.batch_size,
                                config.tagger_seconds, config.lr, config.seed + 1,
                                out / "tagger_log.csv", config.progress, desc="tagbox-tagger")
    accuracy = tagging_accuracy(system.tagger, tracks, clip_seconds=config.tagger_seconds)
    seconds = time.perf_counter() - t0
    system.eval()
    meta = {"system": "tagbox", "tags": tags, "sample_rate": system.sample_rate,
            "sources": ["target", "remainder"], "tagging_accuracy": accuracy,
            "autoencoder_final_loss": float(np.mean(ae_losses[-20:])),
            "tagger_final_loss": float(np.mean(tag_losses[-20:])),
            "train_seconds": seconds, "config": asdict(config)}
    path = save_checkpoint(out / "tagbox.pt", "tagbox", kwargs, system.state_dict(), meta)
    return {"checkpoint": path, "ae_losses": ae_losses, "tagger_losses": tag_losses,
            "seconds": seconds, "tagging_accuracy": accuracy}


def steer_long(system: TagboxSystem, mixture: np.ndarray, target_tags: Sequence[str],
               steps: int | None = None, lr: float | None = None,
               segment_seconds: float = 10.0) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Steer a long mono recording in consecutive segments (memory stays bounded).

    Returns
    -------
    estimate, remainder : numpy.ndarray
        Mono arrays of the input's length.
    final_losses : list of float
        Tagger BCE after steering, per segment (``losses[-1]`` of :func:`steer`).
    """
    seg = int(segment_seconds * system.sample_rate)
    estimate = np.zeros_like(mixture, dtype=np.float32)
    finals = []
    for start in range(0, len(mixture), seg):
        chunk = torch.from_numpy(np.ascontiguousarray(mixture[start: start + seg],
                                                      dtype=np.float32))
        if chunk.shape[-1] < max(system.fft_sizes):  # too short for the largest STFT: keep it in the remainder
            continue
        result = steer(chunk, target_tags, system.autoencoder, system.tagger,
                       steps=system.steps if steps is None else steps,
                       lr=system.lr if lr is None else lr, fft_sizes=system.fft_sizes)
        estimate[start: start + seg] = result.estimate.numpy()
        finals.append(result.losses[-1])
    return estimate, mixture - estimate, finals


def evaluate_tagbox(system: TagboxSystem, tracks: Sequence[MonoTrack], targets: Sequence[str],
                    steps: int | None = None, seconds: float | None = None) -> list[dict[str, Any]]:
    """Whole-signal SDR of steered estimates beside the mixture baseline.

    Parameters
    ----------
    seconds : float, optional
        Evaluate only the first seconds of each track (steering is the slow part).

    Returns
    -------
    list of dict
        ``track, source, sdr, sdr_mixture, tagger_bce``.
    """
    rows = []
    for track in tracks:
        n = track.length if seconds is None else min(track.length,
                                                     int(seconds * system.sample_rate))
        mix = track.stems["mixture"][:n]
        for tag in targets:
            est, _, finals = steer_long(system, mix, [tag], steps)
            ref = track.stems[tag][:n]
            rows.append({"track": track.name, "source": tag, "sdr": whole_sdr(est, ref),
                         "sdr_mixture": whole_sdr(mix, ref),
                         "tagger_bce": float(np.mean(finals))})
    return rows


__all__ = ["TAGS", "TagboxTrainConfig", "train_tagbox", "steer_long", "evaluate_tagbox",
           "load_mono_tracks"]
