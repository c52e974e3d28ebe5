"""Training losses of the three study variants: L1, multi-resolution STFT, LSGAN + StyleMelGAN.

All waveform tensors are ``(batch, sources, channels, time)`` unless stated otherwise.

Variants (:data:`VARIANTS`):

=============== ===========================================================
``l1``          ``lambda_l1 * L1``
``l1_stft``     ``lambda_l1 * L1 + lambda_stft * MRSTFT``
``l1_stft_adv`` ``... + lambda_adv * LSGAN generator term`` (StyleMelGAN D)
=============== ===========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.signal import firwin


# --------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms.

    ``lambda_adv`` = 0.01 is our choice (the study does not publish it): with the LSGAN
    generator term summed over the four StyleMelGAN sub-discriminators (about 1 early in
    training) it keeps the adversarial term an order of magnitude below L1 + STFT, so the
    discriminator shapes the residual noise rather than overriding the reconstruction.
    """

    lambda_l1: float = 1.0
    lambda_stft: float = 0.0
    lambda_adv: float = 0.0
    adv_start_epoch: int = 0


VARIANTS: dict[str, LossWeights] = {
    "l1": LossWeights(lambda_l1=1.0),
    "l1_stft": LossWeights(lambda_l1=1.0, lambda_stft=0.01),
    "l1_stft_adv": LossWeights(lambda_l1=1.0, lambda_stft=0.01, lambda_adv=0.01,
                               adv_start_epoch=1),
}


def variant_weights(variant: str, **overrides: float) -> LossWeights:
    """Weights of a named variant, with any field overridden (``None`` keeps the preset)."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown loss variant {variant!r}; choose from {sorted(VARIANTS)}")
    base = VARIANTS[variant]
    values = {k: getattr(base, k) for k in base.__dataclass_fields__}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return LossWeights(**values)


# --------------------------------------------------------------------------- L1
class WaveformL1(nn.Module):
    """Mean absolute error between estimated and reference waveforms (any equal shapes)."""

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return (estimate - reference).abs().mean()


# --------------------------------------------------------------------------- STFT
def _magnitude(x: torch.Tensor, fft_size: int, hop: int, win_length: int,
               window: torch.Tensor) -> torch.Tensor:
    """``(N, T)`` -> ``(N, frames, bins)`` magnitude, ``sqrt(max(re^2 + im^2, 1e-7))``."""
    spec = torch.stft(x, fft_size, hop, win_length, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    power = spec.real ** 2 + spec.imag ** 2
    return torch.sqrt(torch.clamp(power, min=1e-7)).transpose(1, 2)


class STFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1 at one resolution (Parallel WaveGAN).

    ``SC = ||Y| - |Y_hat||_F / ||Y||_F`` over the whole batch and
    ``LM = mean |log|Y| - log|Y_hat||``; ``forward`` returns ``(SC, LM)``.
    Input waveforms ``(N, T)``; Hann window of ``win_length`` centred in ``fft_size``.
    """

    def __init__(self, fft_size: int, hop: int, win_length: int) -> None:
        super().__init__()
        self.fft_size, self.hop, self.win_length = fft_size, hop, win_length

    def forward(self, estimate: torch.Tensor,
                reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        window = torch.hann_window(self.win_length, dtype=estimate.dtype,
                                   device=estimate.device)
        mag_est = _magnitude(estimate, self.fft_size, self.hop, self.win_length, window)
        mag_ref = _magnitude(reference, self.fft_size, self.hop, self.win_length, window)
        sc = torch.linalg.norm(mag_ref - mag_est) / torch.linalg.norm(mag_ref)
        lm = (torch.log(mag_ref) - torch.log(mag_est)).abs().mean()
        return sc, lm


def stft_resolutions(sample_rate: int) -> list[tuple[int, int, int]]:
    """The study's three ``(fft_size, hop, win_length)`` resolutions at ``sample_rate``.

    Defined at 24 kHz as FFT (1024, 2048, 512), hop (120, 240, 50), window
    (600, 1200, 240) and doubled at 44.1 kHz; we scale by the power of two nearest to
    ``sample_rate / 24000`` so FFT sizes stay powers of two (x2 at 44.1/48 kHz, x1 at
    22.05 kHz, x0.5 at 16 kHz).
    """
    scale = 2.0 ** round(math.log2(sample_rate / 24000))
    base = [(1024, 120, 600), (2048, 240, 1200), (512, 50, 240)]
    return [(int(f * scale), max(1, int(h * scale)), int(w * scale)) for f, h, w in base]


class MultiResolutionSTFTLoss(nn.Module):
    """Multi-resolution STFT loss: mean over resolutions of ``SC + LM``.

    Parameters
    ----------
    sample_rate : int
        Sample rate in Hz; picks the resolutions with :func:`stft_resolutions`.
    resolutions : list of (fft_size, hop, win_length), optional
        Explicit resolutions in samples, overriding ``sample_rate``.

    Notes
    -----
    Inputs of any shape ``(..., time)`` are flattened to ``(N, time)``; the spectral
    convergence norm is taken over the whole flattened batch.
    """

    def __init__(self, sample_rate: int = 44100,
                 resolutions: list[tuple[int, int, int]] | None = None) -> None:
        super().__init__()
        resolutions = resolutions or stft_resolutions(sample_rate)
        self.losses = nn.ModuleList(STFTLoss(f, h, w) for f, h, w in resolutions)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        est = estimate.reshape(-1, estimate.shape[-1])
        ref = reference.reshape(-1, reference.shape[-1])
        total = est.new_zeros(())
        for loss in self.losses:
            sc, lm = loss(est, ref)
            total = total + sc + lm
        return total / len(self.losses)


# --------------------------------------------------------------------------- PQMF
class PQMF(nn.Module):
    """Pseudo-QMF analysis bank: ``(N, 1, T)`` -> ``(N, bands, T // bands)``.

    Cosine-modulated filter bank (Nguyen 1994; as used in multi-band MelGAN): the
    prototype is a Kaiser-windowed low-pass with cutoff ``cutoff`` (fraction of Nyquist)
    and ``taps + 1`` coefficients; band ``k`` is
    ``2 h[n] cos((2k+1) pi/(2B) (n - taps/2) + (-1)^k pi/4)``, followed by decimation.
    With ``bands=1`` the bank is the identity.
    """

    _DEFAULT_CUTOFF = {2: 0.267, 4: 0.142, 8: 0.07949}

    def __init__(self, bands: int, taps: int = 62, cutoff: float | None = None,
                 beta: float = 9.0) -> None:
        super().__init__()
        self.bands = bands
        self.taps = taps
        if bands == 1:
            filters = np.zeros((1, taps + 1))
            filters[0, taps // 2] = 1.0
        else:
            cutoff = cutoff or self._DEFAULT_CUTOFF.get(bands, 0.5 / bands)
            proto = firwin(taps + 1, cutoff, window=("kaiser", beta))
            n = np.arange(taps + 1) - taps / 2
            filters = np.stack([
                2 * proto * np.cos((2 * k + 1) * np.pi / (2 * bands) * n
                                   + (-1) ** k * np.pi / 4)
                for k in range(bands)
            ])
        self.register_buffer("filters", torch.tensor(filters, dtype=torch.float32)[:, None],
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.taps // 2, self.taps // 2))
        return F.conv1d(x, self.filters.to(x.dtype), stride=self.bands)


# --------------------------------------------------------------------------- discriminator
class MelGANSubDiscriminator(nn.Module):
    """MelGAN-style 1-D conv discriminator on ``(N, in_channels, T)`` sub-band signals.

    Reflect-padded first conv (kernel 15), strided grouped convs (kernel ``10 s + 1``,
    stride ``s``, groups ``in // 4``) for every downsampling scale, then two plain convs
    to one output channel; weight norm everywhere and LeakyReLU(0.2) between layers.
    Output ``(N, 1, T / prod(downsample_scales))`` of per-frame scores.
    """

    def __init__(self, in_channels: int, channels: int = 16, max_channels: int = 512,
                 downsample_scales: tuple[int, ...] = (4, 4, 4, 1)) -> None:
        super().__init__()
        wn = nn.utils.parametrizations.weight_norm
        layers: list[nn.Module] = [
            nn.ReflectionPad1d(7), wn(nn.Conv1d(in_channels, channels, 15)),
            nn.LeakyReLU(0.2),
        ]
        chin = channels
        for scale in downsample_scales:
            chout = min(chin * scale, max_channels)
            layers += [
                wn(nn.Conv1d(chin, chout, 10 * scale + 1, stride=scale, padding=5 * scale,
                             groups=max(1, chin // 4))),
                nn.LeakyReLU(0.2),
            ]
            chin = chout
        layers += [wn(nn.Conv1d(chin, chin, 5, padding=2)), nn.LeakyReLU(0.2),
                   wn(nn.Conv1d(chin, 1, 3, padding=1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class StyleMelGANDiscriminator(nn.Module):
    """StyleMelGAN discriminator (Mustafa et al., ICASSP 2021) for one source.

    For each window size ``w`` in ``windows`` a random excerpt of ``w`` samples is cut
    (``repeats`` times), split by a PQMF into ``w / 512`` bands (1/2/4/8 for
    512/1024/2048/4096) and scored by its own MelGAN sub-discriminator.

    Input ``(N, 1, T)`` with ``T >= max(windows)``; output a list of
    ``len(windows) * repeats`` score tensors ``(N, 1, frames)``. ``offsets`` (one start
    per window and repeat) lets the caller score real and fake at the same positions.
    """

    def __init__(self, windows: tuple[int, ...] = (512, 1024, 2048, 4096), repeats: int = 1,
                 channels: int = 16, max_channels: int = 512) -> None:
        super().__init__()
        self.windows = tuple(windows)
        self.repeats = repeats
        base = min(self.windows)
        self.pqmfs = nn.ModuleList(PQMF(w // base) for w in self.windows)
        self.discriminators = nn.ModuleList(
            MelGANSubDiscriminator(w // base, channels, max_channels) for w in self.windows)

    def random_offsets(self, length: int, generator: torch.Generator | None = None) -> list[int]:
        """Random start sample of each excerpt for a signal of ``length`` samples."""
        if length < max(self.windows):
            raise ValueError(f"signal of {length} samples is shorter than the largest "
                             f"discriminator window {max(self.windows)}")
        return [int(torch.randint(0, length - w + 1, (1,), generator=generator))
                for _ in range(self.repeats) for w in self.windows]

    def forward(self, x: torch.Tensor, offsets: list[int] | None = None) -> list[torch.Tensor]:
        if offsets is None:
            offsets = self.random_offsets(x.shape[-1])
        scores = []
        k = 0
        for _ in range(self.repeats):
            for w, pqmf, disc in zip(self.windows, self.pqmfs, self.discriminators, strict=True):
                start = offsets[k]
                k += 1
                scores.append(disc(pqmf(x[..., start:start + w])))
        return scores


class SourceDiscriminators(nn.Module):
    """One :class:`StyleMelGANDiscriminator` per source.

    ``forward(waves, offsets)`` takes ``(B, S, C, T)`` and returns, for every source, the
    list of sub-discriminator scores; every audio channel is scored as a mono signal.
    """

    def __init__(self, n_sources: int, **kwargs) -> None:
        super().__init__()
        self.discs = nn.ModuleList(StyleMelGANDiscriminator(**kwargs) for _ in range(n_sources))

    def random_offsets(self, length: int) -> list[list[int]]:
        return [d.random_offsets(length) for d in self.discs]

    def forward(self, waves: torch.Tensor,
                offsets: list[list[int]] | None = None) -> list[list[torch.Tensor]]:
        if offsets is None:
            offsets = self.random_offsets(waves.shape[-1])
        out = []
        for s, disc in enumerate(self.discs):
            x = waves[:, s].reshape(-1, 1, waves.shape[-1])
            out.append(disc(x, offsets[s]))
        return out


def lsgan_generator_loss(fake_scores: list[list[torch.Tensor]]) -> torch.Tensor:
    """``mean((D(y_hat) - 1)^2)`` summed over sub-discriminators, averaged over sources."""
    per_source = [sum(((s - 1) ** 2).mean() for s in src) for src in fake_scores]
    return torch.stack(per_source).mean()


def lsgan_discriminator_loss(real_scores: list[list[torch.Tensor]],
                             fake_scores: list[list[torch.Tensor]]) -> torch.Tensor:
    """``mean((D(y) - 1)^2) + mean(D(y_hat)^2)``, summed over sub-discriminators.

    Averaged over sources, like :func:`lsgan_generator_loss`.
    """
    per_source = [
        sum(((r - 1) ** 2).mean() + (f ** 2).mean() for r, f in zip(rs, fs, strict=True))
        for rs, fs in zip(real_scores, fake_scores, strict=True)
    ]
    return torch.stack(per_source).mean()


# --------------------------------------------------------------------------- combined
@dataclass
class LossTerms:
    """Terms of one generator step; ``total`` is what is back-propagated."""

    total: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)


class SeparationLoss(nn.Module):
    """Generator loss of a variant: ``lambda_l1 L1 + lambda_stft MRSTFT + lambda_adv LSGAN``.

    The adversarial term needs the discriminators' scores of the estimate
    (``fake_scores``) and is only added when ``lambda_adv > 0`` and scores are given.
    """

    def __init__(self, weights: LossWeights, sample_rate: int = 44100) -> None:
        super().__init__()
        self.weights = weights
        self.l1 = WaveformL1()
        self.stft = MultiResolutionSTFTLoss(sample_rate) if weights.lambda_stft else None

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor,
                fake_scores: list[list[torch.Tensor]] | None = None) -> LossTerms:
        w = self.weights
        l1 = self.l1(estimate, reference)
        total = w.lambda_l1 * l1
        parts = {"l1": float(l1.detach())}
        if self.stft is not None:
            stft = self.stft(estimate, reference)
            total = total + w.lambda_stft * stft
            parts["stft"] = float(stft.detach())
        if w.lambda_adv and fake_scores is not None:
            adv = lsgan_generator_loss(fake_scores)
            total = total + w.lambda_adv * adv
            parts["adv_g"] = float(adv.detach())
        parts["loss"] = float(total.detach())
        return LossTerms(total, parts)
