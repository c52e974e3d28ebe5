"""Chunked overlap-add inference: separate whole tracks with bounded memory.

The track is cut into chunks of ``segment`` samples with ``overlap`` (fraction) between
consecutive chunks; the last chunk is moved back to end at the track's end, so every
chunk the model sees is full length. Chunk outputs are blended with triangular weights
(zero-free) and normalised by the summed weights, so a model that acts sample by sample
gives exactly its one-shot output. The "shift trick" (Demucs) averages ``shifts``
passes over the input delayed by random offsets of up to half a second.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from tqdm import tqdm


def chunk_starts(length: int, segment: int, overlap: float) -> list[int]:
    """Start samples of the chunks covering ``length`` samples."""
    if length <= segment:
        return [0]
    stride = max(1, int(round(segment * (1 - overlap))))
    starts = list(range(0, length - segment + 1, stride))
    if starts[-1] + segment < length:
        starts.append(length - segment)
    return starts


def _triangle(segment: int, device: torch.device) -> torch.Tensor:
    t = torch.arange(segment, device=device, dtype=torch.float32)
    return torch.minimum(t + 1, segment - t)


@torch.no_grad()
def _apply_chunks(model: nn.Module, mix: torch.Tensor, segment: int, overlap: float,
                  batch_size: int, device: torch.device, progress: bool) -> torch.Tensor:
    batch, channels, length = mix.shape
    starts = chunk_starts(length, segment, overlap)
    if len(starts) == 1:  # short input: one shot
        return model(mix.to(device)).to(mix.device, torch.float32)
    weight = _triangle(segment, mix.device)
    out: torch.Tensor | None = None
    total = torch.zeros(length, device=mix.device)
    jobs = [(b, s) for b in range(batch) for s in starts]
    bar = tqdm(total=len(jobs), desc="separate", unit="chunk", disable=not progress,
               leave=False)
    for k in range(0, len(jobs), batch_size):
        group = jobs[k:k + batch_size]
        chunk = torch.stack([mix[b, :, s:s + segment] for b, s in group]).to(device)
        est = model(chunk).to(mix.device, torch.float32)  # (n, S, C, segment)
        if out is None:
            out = torch.zeros(batch, est.shape[1], channels, length, device=mix.device)
        for (b, s), e in zip(group, est, strict=True):
            out[b, :, :, s:s + segment] += e * weight
            if b == 0:
                total[s:s + segment] += weight
        bar.update(len(group))
    bar.close()
    assert out is not None
    return out / total


@torch.no_grad()
def apply_model(model: nn.Module, mix: torch.Tensor, segment: int, overlap: float = 0.25,
                shifts: int = 0, batch_size: int = 1, device: str | torch.device | None = None,
                progress: bool = False, seed: int = 0) -> torch.Tensor:
    """Separate a (long) mixture chunk by chunk.

    Parameters
    ----------
    model : nn.Module
        Maps ``(n, C, T)`` to ``(n, S, C, T)``; put in eval mode by this function.
    mix : Tensor
        ``(C, T)`` or ``(B, C, T)`` mixture; stays on its device (the output buffer is
        allocated there), chunks are moved to ``device``.
    segment : int
        Chunk length in samples.
    overlap : float
        Overlap between consecutive chunks as a fraction of ``segment`` (0 <= overlap < 1).
    shifts : int
        Number of randomly shifted passes to average (0 = one unshifted pass).
    batch_size : int
        Chunks evaluated together (memory bound: ``batch_size * segment`` samples).
    device : str or torch.device, optional
        Where the model runs (default: the model's device).
    progress : bool
        Show a tqdm bar over chunks.
    seed : int
        Seed of the random shifts.

    Returns
    -------
    Tensor
        ``(S, C, T)`` or ``(B, S, C, T)`` (matching ``mix``), float32.
    """
    if not 0 <= overlap < 1:
        raise ValueError("overlap must be in [0, 1)")
    squeeze = mix.dim() == 2
    if squeeze:
        mix = mix[None]
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        if shifts <= 0:
            out = _apply_chunks(model, mix, segment, overlap, batch_size, device, progress)
        else:
            sample_rate = int(getattr(model, "sample_rate", 44100))
            max_shift = sample_rate // 2
            gen = torch.Generator().manual_seed(seed)
            length = mix.shape[-1]
            padded = torch.nn.functional.pad(mix, (max_shift, max_shift))
            out = 0.0
            for _ in range(shifts):
                shift = int(torch.randint(0, max_shift, (1,), generator=gen))
                view = padded[..., shift:shift + length + max_shift]
                est = _apply_chunks(model, view, segment, overlap, batch_size, device, progress)
                out = out + est[..., max_shift - shift:max_shift - shift + length]
            out = out / shifts
    finally:
        model.train(was_training)
    return out[0] if squeeze else out
