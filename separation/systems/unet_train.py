"""Training and evaluation of the U-Net spectrogram mask (Jansson et al., ISMIR 2017).

Two tasks on MUSDB-layout folders, both mono at 16 kHz:

- ``vocals``: singing voice vs accompaniment (``vocals.wav`` vs the rest of the mix);
- ``speech``: speech vs background music (folders written by :mod:`.speech`, with
  ``speech.wav`` and ``music.wav``).

Training patches are random excerpts of ``patch_frames`` STFT frames; target and
remainder get random gains, and half of the patches take the remainder from another
track (remixing), which stretches the few demo tracks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..models.unet import UNetMask, masked_magnitude_l1
from ..registry import build_model, preset_kwargs
from .common import SAMPLE_RATE, MonoTrack, fit, load_mono_tracks, random_segment, whole_sdr

#: Task name -> stems of the data folders, the target stem, and output source names.
TASKS: dict[str, dict[str, Any]] = {
    "vocals": dict(stems=["drums", "bass", "other", "vocals"], target="vocals",
                   sources=["vocals", "accompaniment"]),
    "speech": dict(stems=["speech", "music"], target="speech", sources=["speech", "music"]),
}


@dataclass
class UNetTrainConfig:
    """Settings of :func:`train_unet`.

    Attributes
    ----------
    data, out : str
        Data root (``train/`` inside) and output folder (``unet.pt``, ``train_log.csv``).
    task : str
        ``"vocals"`` or ``"speech"`` (see :data:`TASKS`).
    preset : str
        Model preset (``"small"`` for the CPU, ``"default"`` = the paper).
    steps, batch_size, lr : int, int, float
        Adam steps, patches per batch, learning rate.
    gain_range : tuple of float
        Random linear gain range of target and remainder.
    remix_probability : float
        Probability that a patch takes its remainder from another track.
    seed : int
        Seed of batches and initialisation.
    overrides : dict
        Model keyword arguments replacing the preset's.
    max_tracks : int, optional
        Use only the first training tracks.
    """

    data: str
    out: str
    task: str = "vocals"
    preset: str = "small"
    steps: int = 600
    batch_size: int = 8
    lr: float = 1e-3
    gain_range: tuple[float, float] = (0.5, 1.5)
    remix_probability: float = 0.5
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    max_tracks: int | None = None
    progress: bool = True


def patch_magnitudes(model: UNetMask, mixture: torch.Tensor,
                     target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised magnitude patches ``(batch, 1, n_fft // 2, frames)`` of mixture and target.

    Both are divided by the mixture patch's maximum (one scale), the Nyquist bin dropped.
    """
    mix = model.spectrogram(mixture).abs()[:, None, : model.n_bins]
    tgt = model.spectrogram(target).abs()[:, None, : model.n_bins]
    return model.normalise(mix, tgt)


def sample_patches(model: UNetMask, tracks: list[MonoTrack], target: str,
                   rng: np.random.Generator, batch_size: int,
                   gain_range: tuple[float, float] = (0.5, 1.5),
                   remix_probability: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training waveforms ``(mixture, target)``, each ``(batch, samples)``.

    ``samples = (patch_frames - 1) * hop_length`` so the centred STFT has exactly
    ``patch_frames`` frames.
    """
    length = (model.patch_frames - 1) * model.hop_length
    mixes, targets = [], []
    for _ in range(batch_size):
        track = tracks[int(rng.integers(len(tracks)))]
        a, b = random_segment(rng, track.stems[target], length)
        tgt = track.stems[target][a:b]
        other = tracks[int(rng.integers(len(tracks)))] if rng.random() < remix_probability \
            else track
        c, d = random_segment(rng, other.stems["mixture"], length)
        rest = other.stems["mixture"][c:d] - other.stems[target][c:d]
        n = min(len(tgt), len(rest))
        g_t, g_r = rng.uniform(*gain_range, size=2)
        tgt = np.pad(g_t * tgt[:n], (0, length - n))
        rest = np.pad(g_r * rest[:n], (0, length - n))
        mixes.append(tgt + rest)
        targets.append(tgt)
    return (torch.from_numpy(np.stack(mixes).astype(np.float32)),
            torch.from_numpy(np.stack(targets).astype(np.float32)))


def train_unet(config: UNetTrainConfig) -> dict[str, Any]:
    """Train a U-Net mask and write ``<out>/unet.pt``.

    Returns
    -------
    dict
        ``checkpoint`` (path), ``losses`` (per step) and ``seconds``.
    """
    import time

    if config.task not in TASKS:
        raise ValueError(f"unknown task {config.task!r}; choose from {sorted(TASKS)}")
    task = TASKS[config.task]
    torch.manual_seed(config.seed)
    kwargs = preset_kwargs("unet", config.preset, sources=task["sources"], **config.overrides)
    model = build_model("unet", config.preset, sources=task["sources"], **config.overrides)
    tracks = load_mono_tracks(config.data, "train", task["stems"], model.sample_rate,
                              max_tracks=config.max_tracks)

    def loss_fn(rng: np.random.Generator) -> torch.Tensor:
        mix, tgt = sample_patches(model, tracks, task["target"], rng, config.batch_size,
                                  config.gain_range, config.remix_probability)
        mix_mag, tgt_mag = patch_magnitudes(model, mix, tgt)
        return masked_magnitude_l1(model(mix_mag), mix_mag, tgt_mag)

    out = Path(config.out)
    t0 = time.perf_counter()
    losses = fit(model, loss_fn, config.steps, config.lr, out / "train_log.csv",
                 seed=config.seed, desc=f"unet-{config.task}", progress=config.progress)
    seconds = time.perf_counter() - t0
    meta = {"system": "unet", "task": config.task, "target": task["target"],
            "sources": task["sources"], "sample_rate": model.sample_rate,
            "steps": config.steps, "final_loss": float(np.mean(losses[-20:])),
            "train_seconds": seconds, "train_tracks": [t.name for t in tracks],
            "config": asdict(config)}
    path = save_checkpoint(out / "unet.pt", "unet", kwargs, model.state_dict(), meta)
    return {"checkpoint": path, "losses": losses, "seconds": seconds}


@torch.no_grad()
def evaluate_unet(model: UNetMask, tracks: list[MonoTrack], target: str) -> list[dict[str, Any]]:
    """Whole-signal SDR of target and remainder per track, beside the mixture baseline.

    Returns
    -------
    list of dict
        ``track, source, sdr, sdr_mixture`` for the target and the remainder.
    """
    model.eval()
    rows = []
    for track in tracks:
        mix = torch.from_numpy(track.stems["mixture"])[None]
        est = model.separate(mix)[0].numpy()
        refs = [track.stems[target], track.stems["mixture"] - track.stems[target]]
        for name, e, r in zip(model.sources, est, refs, strict=True):
            rows.append({"track": track.name, "source": name, "sdr": whole_sdr(e, r),
                         "sdr_mixture": whole_sdr(track.stems["mixture"], r)})
    return rows


__all__ = ["TASKS", "UNetTrainConfig", "train_unet", "evaluate_unet", "sample_patches",
           "patch_magnitudes", "SAMPLE_RATE"]
