"""TAGBOX-style steering of pretrained models, no separation training (Manilow et al. 2022).

A mixture ``x`` is encoded by an audio autoencoder, ``e = E(x)``.  For ``N`` steps the
latent is decoded, ``j = D(e)``, turned into a mask of the mixture at several STFT
resolutions, ``M_r = |J_r| / (max(|J_r|, |X_r|) + eps)``, the masked mixtures are inverted
and averaged, ``s = mean_r istft(M_r * X_r)``, a multi-label tagger scores ``s``, and ``e``
takes a gradient step on the binary cross-entropy between the tags of ``s`` and the
wanted tags.  The output is ``s`` and the remainder ``x - s``.

The autoencoder and the tagger are plug-in interfaces (:class:`AudioAutoencoder`,
:class:`AudioTagger`): anything with those methods works, e.g. larger pretrained models a
user brings.  This project ships small ones (:class:`SpectralAutoencoder` and the
:class:`~separation.models.query.SoundEventDetector` as tagger) trained on the demo music.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import register_model
from .query import SoundEventDetector
from .unet import istft, stft

__all__ = ["AudioAutoencoder", "AudioTagger", "SpectralAutoencoder", "TagboxSystem",
           "SteeringResult", "steer", "multires_masked_estimate"]


@runtime_checkable
class AudioAutoencoder(Protocol):
    """What the steering loop needs from an autoencoder.

    ``encode`` maps a mono waveform ``(batch, samples)`` at ``sample_rate`` to a latent
    tensor of any shape; ``decode`` maps it back to a waveform ``(batch, samples')``.  Both
    must be differentiable in the latent.
    """

    sample_rate: int

    def encode(self, audio: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latent: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class AudioTagger(Protocol):
    """What the steering loop needs from a tagger: ``tagger(audio) -> logits (batch, tags)``."""

    sample_rate: int
    classes: list[str]

    def __call__(self, audio: torch.Tensor) -> torch.Tensor: ...


@register_model(
    "tagbox_autoencoder",
    presets={
        "default": dict(n_fft=1024, hop_length=256, hidden=512, latent_dim=64, downsample=2),
        "small": dict(n_fft=512, hop_length=128, hidden=192, latent_dim=32, downsample=2),
    },
    description="Continuous spectral autoencoder (log-magnitude in, complex STFT out)",
)
class SpectralAutoencoder(nn.Module):
    """Continuous audio autoencoder working on STFT frames.

    Parameters
    ----------
    sample_rate : int
        Sample rate in Hz (mono).
    n_fft, hop_length : int
        STFT of the encoder input and of the decoder output, in samples.
    hidden : int
        Channels of the 1-D convolutions over frames.
    latent_dim : int
        Channels of the latent.
    downsample : int
        Number of stride-2 layers; the latent has ``frames / 2 ** downsample`` steps.

    Notes
    -----
    ``encode``: ``(batch, samples)`` -> log(1 + |X|) ``(batch, bins, frames)`` -> latent
    ``(batch, latent_dim, frames / 2 ** downsample)``.  ``decode``: latent -> real and
    imaginary STFT ``(batch, 2 * bins, frames)`` -> inverse STFT ``(batch, samples)``.
    Trained with :class:`separation.losses.MultiResolutionSTFTLoss`, so the phase of its output is only loosely
    constrained; TAGBOX uses magnitudes only.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, hop_length: int = 128,
                 hidden: int = 192, latent_dim: int = 32, downsample: int = 2) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.downsample = downsample
        bins = n_fft // 2 + 1
        self.bins = bins
        enc: list[nn.Module] = [nn.Conv1d(bins, hidden, 3, padding=1), nn.GELU()]
        for _ in range(downsample):
            enc += [nn.Conv1d(hidden, hidden, 4, stride=2, padding=1), nn.GELU()]
        enc += [nn.Conv1d(hidden, latent_dim, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv1d(latent_dim, hidden, 3, padding=1), nn.GELU()]
        for _ in range(downsample):
            dec += [nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1), nn.GELU()]
        dec += [nn.Conv1d(hidden, 2 * bins, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Latent ``(batch, latent_dim, steps)`` of a waveform ``(batch, samples)``."""
        frames = -(-(audio.shape[-1] // self.hop_length + 1) // 2 ** self.downsample)
        mag = stft(audio, self.n_fft, self.hop_length).abs()
        mag = F.pad(mag, (0, frames * 2 ** self.downsample - mag.shape[-1]))
        return self.encoder(torch.log1p(mag))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Waveform ``(batch, (frames - 1) * hop)`` from a latent."""
        out = self.decoder(latent)
        spec = torch.complex(out[:, : self.bins], out[:, self.bins:])
        length = (spec.shape[-1] - 1) * self.hop_length
        return istft(spec, self.n_fft, self.hop_length, length)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``audio`` ``(batch, samples)``, cut or padded to its length."""
        return _fit_length(self.decode(self.encode(audio)), audio.shape[-1])


def _fit_length(audio: torch.Tensor, length: int) -> torch.Tensor:
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return F.pad(audio, (0, length - audio.shape[-1]))


def multires_masked_estimate(decoded: torch.Tensor, mixture: torch.Tensor,
                             fft_sizes: Sequence[int] = (512, 1024, 2048),
                             eps: float = 1e-7,
                             mixture_specs: Sequence[torch.Tensor] | None = None
                             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Mask the mixture with the decoded audio at several resolutions and average.

    Parameters
    ----------
    decoded : torch.Tensor
        ``(batch, samples)`` decoder output ``j`` (cut or padded to the mixture's length).
    mixture : torch.Tensor
        ``(batch, samples)`` mixture ``x``.
    fft_sizes : sequence of int
        FFT sizes; hop = n_fft / 4, Hann window.
    eps : float
        Added to the mask's denominator.
    mixture_specs : sequence of torch.Tensor, optional
        The mixture's STFTs at ``fft_sizes``, when already computed.

    Returns
    -------
    estimate : torch.Tensor
        ``(batch, samples)``: ``mean_r istft(M_r * X_r)``.
    masks : list of torch.Tensor
        ``M_r = |J_r| / (max(|J_r|, |X_r|) + eps)``, each in [0, 1].
    """
    decoded = _fit_length(decoded, mixture.shape[-1])
    estimates, masks = [], []
    for r, n_fft in enumerate(fft_sizes):
        hop = n_fft // 4
        j = stft(decoded, n_fft, hop).abs()
        x = stft(mixture, n_fft, hop) if mixture_specs is None else mixture_specs[r]
        mask = j / (torch.maximum(j, x.abs()) + eps)
        masks.append(mask)
        estimates.append(istft(mask * x, n_fft, hop, mixture.shape[-1]))
    return torch.stack(estimates).mean(0), masks


@dataclass
class SteeringResult:
    """Output of :func:`steer`: ``estimate`` and ``remainder`` ``(batch, samples)``, the
    tagger's BCE at every step (``losses[0]`` before any update) and the final masks."""

    estimate: torch.Tensor
    remainder: torch.Tensor
    losses: list[float] = field(default_factory=list)
    masks: list[torch.Tensor] = field(default_factory=list)


def steer(mixture: torch.Tensor, target_tags: Sequence[str] | torch.Tensor,
          autoencoder: AudioAutoencoder, tagger: AudioTagger, steps: int = 100,
          lr: float = 0.05, fft_sizes: Sequence[int] = (512, 1024, 2048),
          eps: float = 1e-7) -> SteeringResult:
    """Steer the autoencoder's latent until the tagger hears only ``target_tags``.

    Parameters
    ----------
    mixture : torch.Tensor
        ``(batch, samples)`` or ``(samples,)`` mono at the models' sample rate.
    target_tags : sequence of str or torch.Tensor
        Tags wanted in the output (1), every other tag of the tagger is unwanted (0);
        or a ``(tags,)`` / ``(batch, tags)`` target vector in [0, 1].
    autoencoder : AudioAutoencoder
        Encoder/decoder (its parameters are not changed).
    tagger : AudioTagger
        Multi-label tagger returning logits (its parameters are not changed).
    steps : int
        Gradient steps on the latent (Adam).
    lr : float
        Adam learning rate.
    fft_sizes : sequence of int
        STFT sizes of the masks.
    eps : float
        Mask denominator offset.

    Returns
    -------
    SteeringResult
        The masked estimate ``s``, the remainder ``x - s``, and the loss history.
    """
    squeeze = mixture.dim() == 1
    x = mixture[None] if squeeze else mixture
    if isinstance(target_tags, torch.Tensor):
        target = target_tags.to(x)
    else:
        unknown = set(target_tags) - set(tagger.classes)
        if unknown:
            raise ValueError(f"unknown tags {sorted(unknown)}; the tagger knows {tagger.classes}")
        target = torch.tensor([float(t in target_tags) for t in tagger.classes]).to(x)
    target = target.expand(x.shape[0], -1)

    modules = [m for m in (autoencoder, tagger) if isinstance(m, nn.Module)]
    states = [(m, m.training, [p.requires_grad for p in m.parameters()]) for m in modules]
    for m in modules:
        m.eval()
        m.requires_grad_(False)
    try:
        with torch.no_grad():
            latent0 = autoencoder.encode(x)
            specs = [stft(x, n_fft, n_fft // 4) for n_fft in fft_sizes]
        latent = latent0.clone().requires_grad_(True)
        opt = torch.optim.Adam([latent], lr=lr)
        losses: list[float] = []

        def evaluate() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
            est, masks = multires_masked_estimate(autoencoder.decode(latent), x, fft_sizes, eps,
                                                  specs)
            loss = F.binary_cross_entropy_with_logits(tagger(est), target)
            return loss, est, masks

        for _ in range(steps):
            loss, _, _ = evaluate()
            losses.append(float(loss.detach()))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            loss, est, masks = evaluate()
        losses.append(float(loss.detach()))
    finally:
        for m, mode, flags in states:
            m.train(mode)
            for p, flag in zip(m.parameters(), flags, strict=True):
                p.requires_grad_(flag)
    est = est.detach()
    remainder = x - est
    if squeeze:
        est, remainder = est[0], remainder[0]
    return SteeringResult(est, remainder, losses, [m.detach() for m in masks])


@register_model(
    "tagbox",
    presets={
        "default": dict(autoencoder=dict(n_fft=1024, hop_length=256, hidden=512, latent_dim=64),
                        tagger=dict(channels=[64, 128, 256, 512], emb_dim=512)),
        "small": dict(autoencoder=dict(n_fft=512, hop_length=128, hidden=192, latent_dim=32),
                      tagger=dict(channels=[16, 32, 64], emb_dim=64)),
    },
    description="TAGBOX-style steering: spectral autoencoder + instrument tagger",
)
class TagboxSystem(nn.Module):
    """The shipped autoencoder and tagger, bundled so one checkpoint holds both.

    Parameters
    ----------
    tags : sequence of str
        Tagger classes (instrument families).
    sample_rate : int
        Sample rate in Hz of both models (mono).
    autoencoder : dict
        Keyword arguments of :class:`SpectralAutoencoder`.
    tagger : dict
        Keyword arguments of :class:`~separation.models.query.SoundEventDetector`.
    steps, lr : int, float
        Defaults of :meth:`separate` (steering steps and Adam learning rate).
    fft_sizes : sequence of int
        STFT sizes of the steering masks; (256, 512, 1024) at 16 kHz spans the same
        16-64 ms as (512, 1024, 2048) at 32 kHz.
    """

    def __init__(self, tags: Sequence[str] = ("drums", "bass", "other", "vocals"),
                 sample_rate: int = 16000, autoencoder: dict[str, Any] | None = None,
                 tagger: dict[str, Any] | None = None, steps: int = 100,
                 lr: float = 0.05, fft_sizes: Sequence[int] = (256, 512, 1024)) -> None:
        super().__init__()
        self.tags = list(tags)
        self.sample_rate = sample_rate
        self.steps = steps
        self.lr = lr
        self.fft_sizes = [int(n) for n in fft_sizes]
        self.autoencoder = SpectralAutoencoder(sample_rate=sample_rate, **(autoencoder or {}))
        self.tagger = SoundEventDetector(classes=self.tags, sample_rate=sample_rate,
                                         **(tagger or {}))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Tagger logits ``(batch, tags)`` of ``audio`` ``(batch, samples)``."""
        return self.tagger(audio)

    def separate(self, mixture: torch.Tensor, target_tags: Sequence[str],
                 steps: int | None = None, lr: float | None = None) -> torch.Tensor:
        """``(batch, 2, samples)``: the steered estimate of ``target_tags`` and the remainder."""
        result = steer(mixture, target_tags, self.autoencoder, self.tagger,
                       steps=self.steps if steps is None else steps,
                       lr=self.lr if lr is None else lr, fft_sizes=self.fft_sizes)
        return torch.stack([result.estimate, result.remainder], dim=-2)
