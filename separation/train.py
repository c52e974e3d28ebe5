"""Training loop: one dataclass config, any registered model, the three loss variants.

``train(TrainConfig(...))`` trains on a MUSDB18-HQ-layout folder and writes to
``config.out``:

* ``last.pt``  - model, optimisers, EMA, RNG state, history (resumable checkpoint);
* ``best.pt``  - weights with the best validation SDR (EMA weights when EMA is on);
* ``metrics.csv`` / ``metrics.json`` - one row per epoch (losses, validation SDR).

A run is a deterministic function of its config: training segments depend only on
``(seed, epoch, index)`` and the torch RNG state is checkpointed, so a run interrupted
after any epoch and resumed continues exactly as the uninterrupted run.

Multi-GPU / multi-process: launch under ``torchrun``; with ``WORLD_SIZE > 1`` the model
is wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU) and each process
trains on its share of every epoch's segments.

Models must map ``(batch, channels, time)`` to ``(batch, sources, channels, time)`` and
expose ``sources``, ``sample_rate`` and ``audio_channels`` attributes.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from .apply import apply_model
from .checkpoint import load_checkpoint, resolved_kwargs, save_checkpoint
from .data import (
    Augment,
    SegmentDataset,
    list_tracks,
    load_track,
    sdr,
    split_train_valid,
)
from .losses import (
    SeparationLoss,
    SourceDiscriminators,
    lsgan_discriminator_loss,
    variant_weights,
)
from .registry import build_from_kwargs, preset_kwargs


@dataclass
class TrainConfig:
    """Configuration of a training run.

    Attributes
    ----------
    data : str
        MUSDB18-HQ-layout root (``train/<track>/<source>.wav``).
    out : str
        Run folder (checkpoints and metrics).
    variant : str
        Loss variant: ``l1``, ``l1_stft`` or ``l1_stft_adv``.
    model : str
        Registry name of the model.
    preset : str
        Model preset (``tiny``, ``light``, ``default``).
    model_kwargs : dict
        Constructor overrides on top of the preset.
    epochs : int
        Total number of epochs (a resumed run trains up to this number).
    batch_size : int
        Segments per optimisation step (per process under DDP).
    segment : float, optional
        Training segment in seconds; default the model's ``segment`` attribute or 4 s.
    samples_per_epoch : int
        Random segments per epoch (over all processes).
    lr, betas : float, (float, float)
        Generator Adam settings (study: 3e-4, (0.5, 0.9)).
    d_lr, d_betas : float, (float, float)
        Discriminator Adam settings (study: 2e-4, (0.5, 0.9)).
    grad_clip : float
        Max global gradient norm (0 = no clipping).
    ema_decay : float
        Exponential moving average of the weights per step (0 = off); validation and
        ``best.pt`` then use the averaged weights.
    lambda_l1, lambda_stft, lambda_adv : float, optional
        Override the variant's loss weights.
    adv_start_epoch : int, optional
        Override the epoch at which the adversarial term starts.
    disc_channels, disc_max_channels : int
        Width of the StyleMelGAN sub-discriminators (paper: 16 and 512).
    augment : bool
        Random gain, channel swap, sign flip and remixing across tracks.
    valid_tracks : list of str, optional
        Names of held-out ``train`` tracks (default: see ``split_train_valid``).
    valid_seconds : float, optional
        Only the first seconds of each validation track (``None`` = whole tracks).
    seed : int
    device : str
        ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``...
    workers : int
        DataLoader worker processes.
    threads : int, optional
        torch CPU threads of this process (``None`` = torch's default). On a loaded
        machine 1 thread is often faster than several contending ones.
    resume : bool
        Continue from ``out/last.pt`` when it exists.
    progress : bool
        Show the tqdm bar.
    """

    data: str
    out: str
    variant: str = "l1_stft"
    model: str = "hdemucs"
    preset: str = "tiny"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 4
    segment: float | None = None
    samples_per_epoch: int = 400
    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.9)
    d_lr: float = 2e-4
    d_betas: tuple[float, float] = (0.5, 0.9)
    grad_clip: float = 0.0
    ema_decay: float = 0.0
    lambda_l1: float | None = None
    lambda_stft: float | None = None
    lambda_adv: float | None = None
    adv_start_epoch: int | None = None
    disc_channels: int = 16
    disc_max_channels: int = 512
    augment: bool = True
    valid_tracks: list[str] | None = None
    valid_seconds: float | None = None
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    threads: int | None = None
    resume: bool = True
    progress: bool = True


# --------------------------------------------------------------------------- helpers
def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


class EMA:
    """Exponential moving average of a model's floating-point state."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.state[k].copy_(v)


def _write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    (out / "metrics.json").write_text(json.dumps(history, indent=1))
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    with open(out / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def evaluate(model: nn.Module, tracks: list[tuple[str, torch.Tensor, torch.Tensor]],
             sources: list[str], segment: int, device: torch.device) -> dict[str, float]:
    """Whole-signal SDR per source (median over tracks) and their mean, ``valid_sdr``."""
    per_source: list[list[float]] = [[] for _ in sources]
    for _, mix, ref in tracks:
        est = apply_model(model, mix, segment=segment, overlap=0.25, device=device)
        for s, value in enumerate(sdr(est, ref).tolist()):
            per_source[s].append(value)
    medians = {f"valid_sdr_{name}": float(torch.tensor(v).median())
               for name, v in zip(sources, per_source, strict=True)}
    return {"valid_sdr": sum(medians.values()) / len(medians), **medians}


def mixture_baseline(tracks: list[tuple[str, torch.Tensor, torch.Tensor]],
                     sources: list[str]) -> dict[str, float]:
    """SDR of the trivial estimate "every source = the mixture", aggregated as in evaluate."""
    per_source: list[list[float]] = [[] for _ in sources]
    for _, mix, ref in tracks:
        est = mix[None].expand_as(ref)
        for s, value in enumerate(sdr(est, ref).tolist()):
            per_source[s].append(value)
    medians = {f"baseline_sdr_{name}": float(torch.tensor(v).median())
               for name, v in zip(sources, per_source, strict=True)}
    return {"baseline_sdr": sum(medians.values()) / len(medians), **medians}


# --------------------------------------------------------------------------- train
def train(config: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a run; see :class:`TrainConfig`.

    Returns
    -------
    dict
        ``out``, ``best`` and ``last`` checkpoint paths, ``best_valid_sdr``,
        ``baseline_sdr``, ``epochs`` trained in total and the metrics ``history``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, local_rank)
    distributed = world > 1
    if config.threads:
        torch.set_num_threads(config.threads)
    if distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        elif not config.threads:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    is_main = rank == 0
    try:
        return _train(config, device, rank, world, is_main)
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, device: torch.device, rank: int, world: int,
           is_main: bool) -> dict[str, Any]:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(config.seed)

    kwargs = resolved_kwargs(config.model, preset_kwargs(config.model, config.preset,
                                                         **config.model_kwargs))
    model = build_from_kwargs(config.model, kwargs).to(device)
    sources: list[str] = list(model.sources)
    sample_rate = int(model.sample_rate)
    channels = int(getattr(model, "audio_channels", 2))
    segment_s = config.segment or float(getattr(model, "segment", 4.0))
    segment = int(round(segment_s * sample_rate))

    weights = variant_weights(config.variant, lambda_l1=config.lambda_l1,
                              lambda_stft=config.lambda_stft, lambda_adv=config.lambda_adv,
                              adv_start_epoch=config.adv_start_epoch)
    criterion = SeparationLoss(weights, sample_rate).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=tuple(config.betas))
    disc: SourceDiscriminators | None = None
    d_optimizer = None
    if weights.lambda_adv:
        disc = SourceDiscriminators(len(sources), channels=config.disc_channels,
                                    max_channels=config.disc_max_channels).to(device)
        d_optimizer = torch.optim.Adam(disc.parameters(), lr=config.d_lr,
                                       betas=tuple(config.d_betas))
    ema = EMA(model, config.ema_decay) if config.ema_decay else None

    all_tracks = list_tracks(config.data, "train", sources)
    train_tracks, valid_tracks = split_train_valid(all_tracks, config.valid_tracks)
    augment = Augment() if config.augment else Augment.off()
    dataset = SegmentDataset(train_tracks, sources, segment_s, sample_rate, channels,
                             config.samples_per_epoch, augment, config.seed)
    sampler = None
    if world > 1:
        sampler = torch.utils.data.DistributedSampler(dataset, world, rank, shuffle=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, sampler=sampler,
                                         num_workers=config.workers, drop_last=True)
    valid_data = []
    if is_main:
        for track in valid_tracks:
            mix, ref = load_track(track, sources, sample_rate, channels)
            if config.valid_seconds:
                n = int(config.valid_seconds * sample_rate)
                mix, ref = mix[..., :n], ref[..., :n]
            valid_data.append((track.name, mix, ref))
    baseline = mixture_baseline(valid_data, sources) if valid_data else {}

    history: list[dict[str, Any]] = []
    start_epoch, best_sdr, step = 0, -math.inf, 0
    last_path, best_path = out / "last.pt", out / "best.pt"
    if config.resume and last_path.exists():
        package = load_checkpoint(last_path)
        if package["model"] != config.model or resolved_kwargs(
                config.model, package["kwargs"]) != kwargs:
            raise ValueError(f"{last_path} was trained with another model configuration")
        ts = package["train_state"]
        model.load_state_dict(ts["raw_state"])
        optimizer.load_state_dict(ts["optimizer"])
        if disc is not None:
            disc.load_state_dict(ts["disc"])
            d_optimizer.load_state_dict(ts["d_optimizer"])
        if ema is not None:
            ema.state = {k: v.to(device) for k, v in package["state"].items()}
        start_epoch, step = int(ts["epoch"]), int(ts["step"])
        best_sdr = float(ts["best_sdr"])
        history = json.loads(ts["history"])
        _set_rng_state(ts["rng"], device)

    model_ddp: nn.Module = model
    disc_ddp: nn.Module | None = disc
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        model_ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if disc is not None:
            disc_ddp = nn.parallel.DistributedDataParallel(disc, device_ids=ids)

    meta_base = {"config": asdict(config), "sources": sources, "sample_rate": sample_rate,
                 "audio_channels": channels, "segment": segment_s, "variant": config.variant,
                 "loss_weights": asdict(weights), **baseline}

    for epoch in range(start_epoch, config.epochs):
        dataset.set_epoch(epoch)
        model.train()
        adv_on = disc is not None and epoch >= weights.adv_start_epoch
        sums: dict[str, float] = {}
        n_steps = 0
        t0 = time.time()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (
            is_main and config.progress), leave=False)
        for mix, ref in bar:
            mix, ref = mix.to(device), ref.to(device)
            est = model_ddp(mix)
            fake_scores = None
            parts: dict[str, float] = {}
            if adv_on:
                assert disc is not None and disc_ddp is not None and d_optimizer is not None
                offsets = disc.random_offsets(est.shape[-1])
                scores = disc_ddp(torch.cat([ref, est.detach()]), offsets)
                n = ref.shape[0]
                d_loss = lsgan_discriminator_loss([[s[:n] for s in src] for src in scores],
                                                  [[s[n:] for s in src] for src in scores])
                d_optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(disc.parameters(), config.grad_clip)
                d_optimizer.step()
                parts["adv_d"] = float(d_loss.detach())
                disc.requires_grad_(False)
                fake_scores = disc(est, offsets)  # plain module: no DDP sync needed
            terms = criterion(est, ref, fake_scores)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            if config.grad_clip:
                parts["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(),
                                                                    config.grad_clip))
            optimizer.step()
            if disc is not None:
                disc.requires_grad_(True)
            if ema is not None:
                ema.update(model)
            parts.update(terms.parts)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            n_steps += 1
            step += 1
            bar.set_postfix({k: f"{v:.4g}" for k, v in parts.items() if k != "grad_norm"})
        bar.close()

        means = {k: v / max(1, n_steps) for k, v in sums.items()}
        if world > 1:
            keys = sorted(means)
            packed = torch.tensor([means[k] for k in keys], dtype=torch.float64, device=device)
            dist.all_reduce(packed)
            means = dict(zip(keys, (packed / world).tolist(), strict=True))
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step,
                               "train_seconds": round(time.time() - t0, 3), **means}

        if is_main:
            eval_model = model
            if ema is not None:
                eval_model = copy.deepcopy(model)
                eval_model.load_state_dict(ema.state)
            if valid_data:
                row.update(evaluate(eval_model, valid_data, sources, segment, device))
            history.append(row)
            _write_metrics(out, history)
            state = ema.state if ema is not None else model.state_dict()
            score = row.get("valid_sdr", -math.inf if valid_data else float(epoch))
            if score > best_sdr or not best_path.exists():
                best_sdr = max(best_sdr, score)
                save_checkpoint(best_path, config.model, kwargs, state,
                                {**meta_base, "epoch": epoch + 1, "metrics": row})
            train_state = {
                "epoch": epoch + 1, "step": step, "best_sdr": best_sdr,
                "raw_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(device),
                "history": json.dumps(history),
            }
            if disc is not None:
                train_state["disc"] = disc.state_dict()
                train_state["d_optimizer"] = d_optimizer.state_dict()
            save_checkpoint(last_path, config.model, kwargs, state,
                            {**meta_base, "epoch": epoch + 1, "metrics": row},
                            train_state=train_state)
            if config.progress:
                shown = {k: round(v, 4) for k, v in row.items()
                         if k in ("loss", "l1", "stft", "adv_g", "adv_d", "valid_sdr")}
                tqdm.write(f"epoch {epoch + 1}: {shown}")
        if world > 1:
            dist.barrier()

    return {"out": str(out), "best": str(best_path), "last": str(last_path),
            "best_valid_sdr": best_sdr, "baseline_sdr": baseline.get("baseline_sdr"),
            "epochs": config.epochs, "history": history}
