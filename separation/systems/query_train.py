"""Training and zero-shot evaluation of the query-based separator (Chen et al., AAAI 2022).

1. The sound-event detector learns from weakly labelled clips (:mod:`.sed`).
2. Frozen, it localises each class in the training stems (the best non-overlapping
   windows of its frame-wise probability) and embeds every localised clip.
3. The embedding-conditioned U-Net learns from mixtures of two localised clips of
   different classes, conditioned on the embedding of the target clip.  One class (the
   held-out class) never appears in this step, neither as target nor as interference.
4. A query is the (L2-normalised) mean embedding of a few example clips of a class, so a
   class unseen by the separator is separated from examples alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import save_checkpoint
from ..models.query import QuerySystem
from ..models.unet import masked_magnitude_l1
from ..registry import build_model, preset_kwargs
from .common import MonoTrack, fit, load_mono_tracks, whole_sdr
from .sed import tagging_accuracy, train_detector
from .unet_train import patch_magnitudes

CLASSES = ["drums", "bass", "other", "vocals"]


@dataclass
class LocalisedClip:
    """A clip the detector localised: class, source track, start sample, audio, embedding."""

    label: str
    track: str
    start: int
    audio: np.ndarray
    embedding: torch.Tensor


@dataclass
class QueryTrainConfig:
    """Settings of :func:`train_query`.

    Attributes
    ----------
    data, out : str
        Data root (``train/`` inside) and output folder (``query.pt``, logs).
    preset : str
        ``"small"`` (CPU) or ``"default"``.
    classes : list of str
        Stems that are the detector's weak-label classes.
    holdout : str or None
        Class kept out of separator training (queried zero-shot).
    sed_steps, sep_steps : int
        Steps of detector and separator training.
    batch_size, lr : int, float
        Batch size and Adam learning rate of both.
    weak_clip_seconds : float
        Length of the weakly labelled clips.
    clip_seconds : float
        Length of the localised clips.
    clips_per_stem : int
        Localised clips taken from every training stem.
    n_examples : int
        Example clips averaged into each stored query.
    overrides : dict
        Model keyword arguments replacing the preset's (``sed``, ``unet``).
    """

    data: str
    out: str
    preset: str = "small"
    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    holdout: str | None = "bass"
    sed_steps: int = 300
    sep_steps: int = 600
    batch_size: int = 8
    lr: float = 1e-3
    weak_clip_seconds: float = 4.0
    clip_seconds: float = 2.0
    clips_per_stem: int = 4
    n_examples: int = 4
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    max_tracks: int | None = None
    progress: bool = True


@torch.no_grad()
def localise_clips(system: QuerySystem, tracks: Sequence[MonoTrack], classes: Sequence[str],
                   clip_samples: int, count: int,
                   min_rms: float = 1e-3) -> dict[str, list[LocalisedClip]]:
    """Localise and embed up to ``count`` clips per class and track.

    The detector scores the class's stem frame by frame; the windows with the highest
    mean probability are cut out.  Near-silent windows (RMS below ``min_rms``) are skipped.
    """
    system.detector.eval()
    pool: dict[str, list[LocalisedClip]] = {c: [] for c in classes}
    for track in tracks:
        for label in classes:
            stem = torch.from_numpy(track.stems[label])
            index = system.classes.index(label)
            for start in system.detector.localise(stem, index, clip_samples, count):
                audio = track.stems[label][start: start + clip_samples]
                if len(audio) < clip_samples or np.sqrt(np.mean(audio ** 2)) < min_rms:
                    continue
                emb = system.detector.embed(torch.from_numpy(audio)[None])[0]
                pool[label].append(LocalisedClip(label, track.name, start, audio, emb))
    return pool


def sample_pairs(system: QuerySystem, pool: dict[str, list[LocalisedClip]],
                 classes: Sequence[str], rng: np.random.Generator, batch_size: int,
                 gain_db: tuple[float, float] = (-6.0, 6.0)
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixtures of two localised clips of different classes.

    Returns
    -------
    mixture, target : torch.Tensor
        ``(batch, samples)`` excerpts of ``patch_frames`` STFT frames.
    condition : torch.Tensor
        ``(batch, emb_dim)`` embedding of each target clip.
    """
    sep = system.separator
    length = (sep.patch_frames - 1) * sep.hop_length
    mixes, targets, conds = [], [], []
    for _ in range(batch_size):
        a, b = rng.choice(len(classes), size=2, replace=False)
        clip_a = pool[classes[a]][int(rng.integers(len(pool[classes[a]])))]
        clip_b = pool[classes[b]][int(rng.integers(len(pool[classes[b]])))]
        excerpts = []
        for clip in (clip_a, clip_b):
            start = int(rng.integers(0, max(1, len(clip.audio) - length)))
            x = clip.audio[start: start + length]
            x = np.pad(x, (0, length - len(x))) * 10 ** (rng.uniform(*gain_db) / 20)
            excerpts.append(x)
        mixes.append(excerpts[0] + excerpts[1])
        targets.append(excerpts[0])
        conds.append(clip_a.embedding)
    return (torch.from_numpy(np.stack(mixes).astype(np.float32)),
            torch.from_numpy(np.stack(targets).astype(np.float32)), torch.stack(conds))


def query_embeddings(pool: dict[str, list[LocalisedClip]], n_examples: int) -> dict[str, torch.Tensor]:
    """Query of each class: normalised mean embedding of its first ``n_examples`` clips
    (clips from different tracks first)."""
    queries = {}
    for label, clips in pool.items():
        if not clips:
            continue
        # Round-robin over tracks so the examples are varied.
        by_track: dict[str, list[LocalisedClip]] = {}
        for c in clips:
            by_track.setdefault(c.track, []).append(c)
        ordered = [c for group in zip(*by_track.values(), strict=False) for c in group] or clips
        chosen = ordered[:n_examples]
        queries[label] = F.normalize(torch.stack([c.embedding for c in chosen]).mean(0), dim=0)
    return queries


def train_query(config: QueryTrainConfig) -> dict[str, Any]:
    """Train detector and conditioned separator; write ``<out>/query.pt``.

    The checkpoint's ``meta["queries"]`` holds the query of every class (the held-out
    class included, from example clips of the training tracks) as a list of floats.
    """
    classes = list(config.classes)
    if config.holdout is not None and config.holdout not in classes:
        raise ValueError(f"holdout {config.holdout!r} is not one of {classes}")
    seen = [c for c in classes if c != config.holdout]
    torch.manual_seed(config.seed)
    kwargs = preset_kwargs("query", config.preset, classes=classes, **config.overrides)
    system: QuerySystem = build_model("query", config.preset, classes=classes,
                                      **config.overrides)
    tracks = load_mono_tracks(config.data, "train", classes, system.sample_rate,
                              max_tracks=config.max_tracks)
    out = Path(config.out)
    t0 = time.perf_counter()
    sed_losses = train_detector(system.detector, tracks, config.sed_steps, config.batch_size,
                                config.weak_clip_seconds, config.lr, config.seed,
                                out / "sed_log.csv", config.progress, desc="query-sed")
    accuracy = tagging_accuracy(system.detector, tracks, clip_seconds=config.weak_clip_seconds)
    system.detector.requires_grad_(False)
    clip_samples = int(config.clip_seconds * system.sample_rate)
    pool = localise_clips(system, tracks, classes, clip_samples, config.clips_per_stem)
    empty = [c for c in seen if not pool[c]]
    if empty:
        raise ValueError(f"no audible localised clips for {empty}")

    def loss_fn(rng: np.random.Generator) -> torch.Tensor:
        system.detector.eval()
        mix, tgt, cond = sample_pairs(system, pool, seen, rng, config.batch_size)
        mix_mag, tgt_mag = patch_magnitudes(system.separator, mix, tgt)
        return masked_magnitude_l1(system.separator(mix_mag, cond), mix_mag, tgt_mag)

    sep_losses = fit(system.separator, loss_fn, config.sep_steps, config.lr,
                     out / "separator_log.csv", seed=config.seed + 1, desc="query-unet",
                     progress=config.progress)
    system.eval()
    seconds = time.perf_counter() - t0
    queries = query_embeddings(pool, config.n_examples)
    meta = {"system": "query", "classes": classes, "seen": seen, "holdout": config.holdout,
            "sample_rate": system.sample_rate, "sources": ["target", "remainder"],
            "queries": {k: v.tolist() for k, v in queries.items()},
            "tagging_accuracy": accuracy, "sed_final_loss": float(np.mean(sed_losses[-20:])),
            "separator_final_loss": float(np.mean(sep_losses[-20:])),
            "localised_clips": {k: len(v) for k, v in pool.items()},
            "train_seconds": seconds, "config": asdict(config)}
    path = save_checkpoint(out / "query.pt", "query", kwargs, system.state_dict(), meta)
    return {"checkpoint": path, "sed_losses": sed_losses, "separator_losses": sep_losses,
            "seconds": seconds, "tagging_accuracy": accuracy}


@torch.no_grad()
def evaluate_query(system: QuerySystem, queries: dict[str, torch.Tensor],
                   tracks: Sequence[MonoTrack], holdout: str | None,
                   clip_seconds: float = 2.0) -> list[dict[str, Any]]:
    """SDR improvement for seen and unseen classes, queried by example embeddings.

    Two conditions per class and test track:

    - ``track``: the whole mixture of all stems, target = the class's stem;
    - ``pair``: a mixture of two clips the detector localised in the test stems (the
      class's best clip in this track plus the best clip of another class in the next
      track), as in training.

    Returns
    -------
    list of dict
        ``track, class, seen, condition, sdr, sdr_mixture, sdri`` (whole-signal SDR, dB).
    """
    system.eval()
    clip = int(clip_seconds * system.sample_rate)
    pool = localise_clips(system, tracks, list(queries), clip, 1)
    by_track = {c: {p.track: p for p in clips} for c, clips in pool.items()}
    rows = []
    names = [t.name for t in tracks]
    for i, track in enumerate(tracks):
        for label, query in queries.items():
            cases = [("track", track.stems["mixture"], track.stems[label])]
            own = by_track[label].get(track.name)
            others = [c for c in queries if c != label]
            other_label = others[i % len(others)] if others else None
            other = by_track[other_label].get(names[(i + 1) % len(names)]) if other_label else None
            if own is not None and other is not None:
                cases.append(("pair", own.audio + other.audio, own.audio))
            for condition, mix, ref in cases:
                if np.sqrt(np.mean(ref ** 2)) < 1e-4:
                    continue  # silent target: SDR undefined
                est = system.separate(torch.from_numpy(mix.astype(np.float32))[None],
                                      query)[0, 0].numpy()
                s, s0 = whole_sdr(est, ref), whole_sdr(mix, ref)
                rows.append({"track": track.name, "class": label, "seen": label != holdout,
                             "condition": condition, "sdr": s, "sdr_mixture": s0,
                             "sdri": s - s0})
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median SDR, mixture SDR and SDRi per (condition, class), seen flag kept."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["condition"], r["class"]), []).append(r)
    return [{"condition": cond, "class": label, "seen": items[0]["seen"], "n": len(items),
             "sdr": float(np.median([r["sdr"] for r in items])),
             "sdr_mixture": float(np.median([r["sdr_mixture"] for r in items])),
             "sdri": float(np.median([r["sdri"] for r in items]))}
            for (cond, label), items in sorted(groups.items())]


def load_queries(meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Query tensors stored in a checkpoint's metadata."""
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in meta.get("queries", {}).items()}
