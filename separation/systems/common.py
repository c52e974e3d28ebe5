"""Shared pieces of the systems' training code: track loading, the training loop, SDR."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from ..data import list_tracks, read_audio, sdr

#: The systems of this package work on mono audio at this rate (Jansson et al. 2017).
SAMPLE_RATE = 16000


@dataclass
class MonoTrack:
    """A multitrack in memory: ``stems[name]`` are mono float32 arrays of equal length."""

    name: str
    stems: dict[str, np.ndarray]

    @property
    def length(self) -> int:
        return len(next(iter(self.stems.values())))


def load_mono_tracks(root: str | Path, split: str, sources: Sequence[str],
                     sample_rate: int = SAMPLE_RATE, with_mixture: bool = True,
                     max_tracks: int | None = None) -> list[MonoTrack]:
    """Read every complete track of ``root/split`` as mono at ``sample_rate``.

    Parameters
    ----------
    root : path
        Data set root (MUSDB18 layout: ``root/split/<track>/<source>.wav``).
    split : str
        ``"train"`` or ``"test"``.
    sources : sequence of str
        Stems to read.
    sample_rate : int
        Target rate in Hz.
    with_mixture : bool
        Also read ``mixture.wav`` (as stem ``"mixture"``), or the sum of the stems when
        the file is missing.
    max_tracks : int, optional
        Read only the first tracks (in name order).
    """
    tracks = list_tracks(root, split, list(sources))[:max_tracks]
    out = []
    for t in tracks:
        stems = {s: read_audio(t.path(s), sample_rate, 1)[0][:, 0] for s in sources}
        if with_mixture:
            if t.path("mixture").exists():
                stems["mixture"] = read_audio(t.path("mixture"), sample_rate, 1)[0][:, 0]
            else:
                stems["mixture"] = np.sum([stems[s] for s in sources], axis=0)
        n = min(len(a) for a in stems.values())
        out.append(MonoTrack(t.name, {k: np.ascontiguousarray(v[:n]) for k, v in stems.items()}))
    return out


def whole_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Whole-signal SDR in dB of mono arrays (:func:`separation.data.sdr`, lengths aligned)."""
    n = min(len(estimate), len(reference))
    est = torch.as_tensor(np.asarray(estimate[:n], dtype=np.float64))[None]
    ref = torch.as_tensor(np.asarray(reference[:n], dtype=np.float64))[None]
    return float(sdr(est, ref))


def random_segment(rng: np.random.Generator, audio: np.ndarray, length: int) -> tuple[int, int]:
    """``(start, stop)`` of a random window of ``length`` samples (whole array if shorter)."""
    if len(audio) <= length:
        return 0, len(audio)
    start = int(rng.integers(0, len(audio) - length))
    return start, start + length


def fit(model: nn.Module, loss_fn: Callable[[np.random.Generator], torch.Tensor], steps: int,
        lr: float, log_path: str | Path | None = None, seed: int = 0, desc: str = "train",
        params: Sequence[torch.nn.Parameter] | None = None, clip_grad: float | None = 5.0,
        progress: bool = True) -> list[float]:
    """Minimise ``loss_fn(rng)`` with Adam for ``steps`` steps.

    Parameters
    ----------
    model : nn.Module
        Put in training mode during the loop, eval mode after it.
    loss_fn : callable
        Draws a batch with the given generator and returns the scalar loss.
    steps : int
        Optimisation steps.
    lr : float
        Adam learning rate.
    log_path : path, optional
        CSV file with ``step, loss, seconds``.
    seed : int
        Seeds the batch generator and torch (dropout).
    desc : str
        Progress-bar label.
    params : sequence of Parameter, optional
        What to optimise (default: every parameter that requires a gradient).
    clip_grad : float, optional
        Gradient-norm clipping.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    list of float
        Loss of every step.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    params = list(params) if params is not None else [
        p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    losses: list[float] = []
    writer = None
    handle = None
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_path, "w", newline="")
        writer = csv.writer(handle)
        writer.writerow(["step", "loss", "seconds"])
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    try:
        for step in bar:
            loss = loss_fn(rng)
            opt.zero_grad()
            loss.backward()
            if clip_grad:
                nn.utils.clip_grad_norm_(params, clip_grad)
            opt.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"{desc}: loss became {value} at step {step}")
            losses.append(value)
            if writer is not None:
                writer.writerow([step, f"{value:.6f}", f"{time.perf_counter() - t0:.2f}"])
                if step % 50 == 0:
                    handle.flush()
            if step % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}")
    finally:
        if handle is not None:
            handle.close()
        model.eval()
    return losses
