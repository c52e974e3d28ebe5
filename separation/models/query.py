"""Query-based zero-shot separation (Chen et al., AAAI 2022).

Three parts, one registered system ``"query"``:

- :class:`SoundEventDetector`: a log-mel CNN trained on weakly labelled clips (which
  instrument families occur, no timing).  Its frame-wise probabilities localise a class in
  time; its time-pooled latent (before the classifier) is the embedding of a clip.
- A U-Net mask (:class:`~separation.models.unet.UNetMask`) conditioned on that embedding by
  FiLM at every convolution block.
- The query: the embedding of the target clip during training, and the mean embedding of
  a few example clips for any class, seen or not, at inference (zero-shot).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import register_model
from .unet import UNetMask, stft

__all__ = ["LogMel", "SoundEventDetector", "QuerySystem", "mel_filterbank", "linear_softmax_pool"]


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular mel filterbank (HTK mel scale), shape ``(n_mels, n_fft // 2 + 1)``.

    Notes
    -----
    ``mel(f) = 2595 log10(1 + f / 700)``; filters are triangles between adjacent centre
    frequencies equally spaced on that scale, with peak value 1.
    """
    fmax = sample_rate / 2 if fmax is None else fmax

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def linear_softmax_pool(frame_probs: torch.Tensor) -> torch.Tensor:
    """Clip probability from frame probabilities ``(..., frames)``: ``sum p^2 / sum p``.

    Notes
    -----
    Linear-softmax pooling (Wang, Li and Metze, ICASSP 2019): frames weigh themselves by
    their own probability, so a clip is positive when some frames are confidently so.
    """
    return (frame_probs * frame_probs).sum(-1) / frame_probs.sum(-1).clamp_min(1e-7)


class LogMel(nn.Module):
    """Log-mel spectrogram front end: waveform ``(batch, samples)`` -> ``(batch, mels, frames)``."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 320,
                 n_mels: int = 64) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("fb", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)),
                             persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        power = stft(audio, self.n_fft, self.hop_length).abs() ** 2
        return torch.log(torch.einsum("mf,bft->bmt", self.fb, power) + 1e-6)


@register_model(
    "sed",
    presets={
        "default": dict(classes=["drums", "bass", "other", "vocals"], channels=[64, 128, 256, 512],
                        emb_dim=512, n_mels=64),
        "small": dict(classes=["drums", "bass", "other", "vocals"], channels=[16, 32, 64],
                      emb_dim=64, n_mels=64),
    },
    description="Weakly supervised sound-event detector / multi-label tagger (log-mel CNN)",
)
class SoundEventDetector(nn.Module):
    """Log-mel CNN sound-event detector trained from clip-level (weak) labels.

    Parameters
    ----------
    classes : sequence of str
        Class (tag) names.
    channels : sequence of int
        Channels of the conv blocks (two 3x3 convs, batch norm, ReLU; 2x2 average pooling
        in frequency, 2x in time except after the last block).
    emb_dim : int
        Size of the frame and clip embeddings.
    sample_rate, n_fft, hop_length, n_mels : int
        Front-end settings (Hz, samples, samples, bands).

    Notes
    -----
    ``frame_outputs(audio)`` gives frame-wise logits ``(batch, classes, frames')`` and
    embeddings ``(batch, emb_dim, frames')``.  Clip-level probabilities use
    linear-softmax pooling, ``sum p^2 / sum p`` over frames (Wang et al. 2019), which lets
    weak labels train frame-wise detectors; ``forward`` returns the clip-level logits
    (the logit of that pooled probability), so it is also a multi-label tagger.
    """

    def __init__(self, classes: Sequence[str] = ("drums", "bass", "other", "vocals"),
                 channels: Sequence[int] = (16, 32, 64), emb_dim: int = 64,
                 sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 320,
                 n_mels: int = 64) -> None:
        super().__init__()
        self.classes = list(classes)
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.emb_dim = emb_dim
        self.frontend = LogMel(sample_rate, n_fft, hop_length, n_mels)
        self.input_norm = nn.BatchNorm2d(1)
        blocks = []
        in_ch = 1
        self.time_pools = []
        for i, ch in enumerate(channels):
            blocks.append(nn.Sequential(
                nn.Conv2d(in_ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(),
                nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(),
            ))
            self.time_pools.append(1 if i == len(channels) - 1 else 2)
            in_ch = ch
        self.blocks = nn.ModuleList(blocks)
        self.embed_proj = nn.Conv1d(in_ch, emb_dim, 1)
        self.classifier = nn.Conv1d(emb_dim, len(self.classes), 1)

    @property
    def frame_hop(self) -> int:
        """Samples between two frame-wise outputs."""
        return self.hop_length * math.prod(self.time_pools)

    def frame_outputs(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-wise logits and embeddings.

        Parameters
        ----------
        audio : torch.Tensor
            ``(batch, samples)`` at :attr:`sample_rate`.

        Returns
        -------
        logits : torch.Tensor
            ``(batch, classes, frames')``.
        embeddings : torch.Tensor
            ``(batch, emb_dim, frames')``, non-negative.
        """
        h = self.input_norm(self.frontend(audio)[:, None])
        for block, tp in zip(self.blocks, self.time_pools, strict=True):
            h = block(h)
            h = F.avg_pool2d(h, (2, tp)) if h.shape[2] >= 2 else F.avg_pool2d(h, (1, tp))
        h = h.mean(dim=2)  # over frequency -> (batch, ch, frames')
        emb = F.relu(self.embed_proj(h))
        return self.classifier(emb), emb

    def clip_probabilities(self, audio: torch.Tensor) -> torch.Tensor:
        """Clip-level probabilities ``(batch, classes)`` by linear-softmax pooling."""
        logits, _ = self.frame_outputs(audio)
        return linear_softmax_pool(torch.sigmoid(logits))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Clip-level logits ``(batch, classes)``, for BCE-with-logits training."""
        p = self.clip_probabilities(audio).clamp(1e-6, 1 - 1e-6)
        return torch.log(p) - torch.log1p(-p)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """Clip embedding ``(batch, emb_dim)``: time-averaged latent, L2-normalised."""
        _, emb = self.frame_outputs(audio)
        return F.normalize(emb.mean(-1), dim=-1)

    def localise(self, audio: torch.Tensor, class_index: int, clip_samples: int,
                 count: int = 1) -> list[int]:
        """Start samples of the ``count`` best non-overlapping windows for one class.

        Parameters
        ----------
        audio : torch.Tensor
            ``(samples,)`` one recording.
        class_index : int
            Index into :attr:`classes`.
        clip_samples : int
            Window length in samples.
        count : int
            How many windows to return (fewer if the recording is short).

        Returns
        -------
        list of int
            Start samples, best first, by the mean frame-wise probability of the class.
        """
        if audio.shape[-1] <= clip_samples:
            return [0]
        logits, _ = self.frame_outputs(audio[None])
        prob = torch.sigmoid(logits[0, class_index])
        hop = self.frame_hop
        win = max(1, clip_samples // hop)
        scores = F.avg_pool1d(prob[None, None], win, stride=1)[0, 0]
        max_start = (audio.shape[-1] - clip_samples) // hop
        scores = scores[: max_start + 1].clone()
        starts: list[int] = []
        for _ in range(count):
            if scores.numel() == 0 or torch.isinf(scores).all():
                break
            best = int(scores.argmax())
            if not torch.isfinite(scores[best]):
                break
            starts.append(best * hop)
            scores[max(0, best - win + 1): best + win] = -math.inf
        return starts or [0]


@register_model(
    "query",
    presets={
        "default": dict(sed=dict(channels=[64, 128, 256, 512], emb_dim=512),
                        unet=dict(channels=[16, 32, 64, 128, 256, 512], n_fft=1024,
                                  hop_length=256, patch_frames=128, dropout=0.5)),
        "small": dict(sed=dict(channels=[16, 32, 64], emb_dim=64),
                      unet=dict(channels=[8, 16, 32, 64, 128], n_fft=512, hop_length=128,
                                patch_frames=64, dropout=0.5)),
    },
    description="Query-based zero-shot separation (Chen et al. 2022): SED + conditioned U-Net",
)
class QuerySystem(nn.Module):
    """Sound-event detector plus an embedding-conditioned U-Net mask.

    Parameters
    ----------
    classes : sequence of str
        Weak-label classes of the detector.
    sample_rate : int
        Sample rate in Hz of both parts (mono).
    sed : dict
        Keyword arguments of :class:`SoundEventDetector` (``classes`` and
        ``sample_rate`` are filled in).
    unet : dict
        Keyword arguments of :class:`~separation.models.unet.UNetMask` (``cond_dim``,
        ``sample_rate`` and ``sources`` are filled in).

    Notes
    -----
    :meth:`separate` maps a mixture ``(batch, samples)`` and a query embedding
    ``(batch, emb_dim)`` to ``(batch, 2, samples)``: the queried source and the remainder.
    """

    def __init__(self, classes: Sequence[str] = ("drums", "bass", "other", "vocals"),
                 sample_rate: int = 16000, sed: dict[str, Any] | None = None,
                 unet: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.classes = list(classes)
        self.sample_rate = sample_rate
        sed_kwargs = {**(sed or {}), "classes": self.classes, "sample_rate": sample_rate}
        self.detector = SoundEventDetector(**sed_kwargs)
        unet_kwargs = {**(unet or {}), "cond_dim": self.detector.emb_dim,
                       "sample_rate": sample_rate, "sources": ["target", "remainder"]}
        self.separator = UNetMask(**unet_kwargs)

    @torch.no_grad()
    def query_from_examples(self, examples: Sequence[torch.Tensor]) -> torch.Tensor:
        """Query embedding ``(emb_dim,)``: the mean embedding of example clips, L2-normalised
        like the single-clip embeddings the separator is trained with.

        Parameters
        ----------
        examples : sequence of torch.Tensor
            Mono clips ``(samples,)`` of the wanted source (any lengths).
        """
        was_training = self.detector.training
        self.detector.eval()
        embs = torch.stack([self.detector.embed(e[None])[0] for e in examples])
        self.detector.train(was_training)
        return F.normalize(embs.mean(0), dim=0)

    def forward(self, mixture: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`separate`."""
        return self.separate(mixture, query)

    def separate(self, mixture: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Separate the source described by ``query`` from ``mixture``.

        Parameters
        ----------
        mixture : torch.Tensor
            ``(batch, samples)`` mono at :attr:`sample_rate`.
        query : torch.Tensor
            ``(emb_dim,)`` or ``(batch, emb_dim)``.

        Returns
        -------
        torch.Tensor
            ``(batch, 2, samples)``: estimate of the queried source, and the remainder.
        """
        if query.dim() == 1:
            query = query.expand(mixture.shape[0], -1)
        return self.separator.separate(mixture, query)
