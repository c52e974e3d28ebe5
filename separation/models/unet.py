"""U-Net spectrogram mask for two-source separation (Jansson et al., ISMIR 2017).

The network sees a patch of the mixture magnitude spectrogram, normalised to [0, 1],
and predicts a soft mask in [0, 1] for the target (singing voice, speech, or a queried
source).  The target estimate is ``mask * X`` (the mixture phase is kept) and the
remainder, e.g. the accompaniment, is ``(1 - mask) * X``.

Architecture of the paper: six strided 5x5 convolutions (16 -> 512 channels) with batch
norm and leaky ReLU 0.2; six strided 5x5 transposed convolutions with skip concatenations,
ReLU, 50 % dropout on the first three, and a sigmoid on the last.  ``cond_dim > 0`` adds a
FiLM layer (feature-wise scale and shift computed from a conditioning vector) after every
convolution block, which the query-based system (:mod:`separation.models.query`) uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import register_model

__all__ = ["UNetMask", "masked_magnitude_l1", "stft", "istft"]


def stft(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT with a periodic Hann window and centred frames.

    Parameters
    ----------
    audio : torch.Tensor
        Waveform, shape ``(..., samples)``.
    n_fft, hop_length : int
        Window (= FFT) length and hop, in samples.

    Returns
    -------
    torch.Tensor
        Complex tensor, shape ``(..., n_fft // 2 + 1, frames)``.
    """
    shape = audio.shape
    flat = audio.reshape(-1, shape[-1])
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(flat, n_fft, hop_length, window=window, center=True, return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, n_fft: int, hop_length: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`; returns a waveform of ``length`` samples."""
    shape = spec.shape
    flat = spec.reshape(-1, *shape[-2:])
    window = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
    audio = torch.istft(flat, n_fft, hop_length, window=window, center=True, length=length)
    return audio.reshape(*shape[:-2], length)


def masked_magnitude_l1(mask: torch.Tensor, mixture_mag: torch.Tensor,
                        target_mag: torch.Tensor) -> torch.Tensor:
    """L1 loss of the paper: ``mean(|mask * |X| - |Y||)``.

    Parameters
    ----------
    mask : torch.Tensor
        Predicted mask in [0, 1].
    mixture_mag, target_mag : torch.Tensor
        Normalised mixture and target magnitudes, same shape as ``mask``.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    return (mask * mixture_mag - target_mag).abs().mean()


class _FiLM(nn.Module):
    """Feature-wise linear modulation: ``h * (1 + gamma(c)) + beta(c)``."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        # Start as the identity so conditioning is learnt from a working plain U-Net.
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond).chunk(2, dim=-1)
        return h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


@register_model(
    "unet",
    presets={
        # Jansson et al. 2017: 16 kHz mono, window 1024, hop 768, 128 x 512 patches.
        "default": dict(channels=[16, 32, 64, 128, 256, 512], n_fft=1024, hop_length=768,
                        patch_frames=128, sample_rate=16000, dropout=0.5),
        # CPU preset: half the frequency resolution, shorter patches, five thinner layers.
        "small": dict(channels=[8, 16, 32, 64, 128], n_fft=512, hop_length=128,
                      patch_frames=64, sample_rate=16000, dropout=0.5),
    },
    description="U-Net spectrogram mask (Jansson et al. 2017), target vs remainder",
)
class UNetMask(nn.Module):
    """U-Net that predicts a soft magnitude mask for one target source.

    Parameters
    ----------
    channels : sequence of int
        Output channels of each encoder layer, e.g. ``[16, 32, 64, 128, 256, 512]``.
    n_fft : int
        STFT window length in samples; the model uses the lowest ``n_fft // 2`` bins
        (the Nyquist bin reuses the mask of the bin below).
    hop_length : int
        STFT hop in samples.
    patch_frames : int
        Frames per patch; must be divisible by ``2 ** len(channels)``.
    sample_rate : int
        Sample rate in Hz the model works at (mono).
    dropout : float
        Dropout probability on the first three decoder layers.
    kernel_size : int
        Convolution kernel size (5 in the paper).
    sources : sequence of str
        Names of the two outputs: the masked target and the remainder.
    cond_dim : int
        Size of an optional conditioning vector (FiLM at every block); 0 disables it.

    Notes
    -----
    ``forward`` maps a normalised magnitude patch ``(batch, 1, n_fft // 2, patch_frames)``
    (values in [0, 1]) to a mask of the same shape.  :meth:`separate` maps a waveform
    ``(batch, samples)`` to ``(batch, 2, samples)``: target and remainder.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128, 256, 512), n_fft: int = 1024,
                 hop_length: int = 768, patch_frames: int = 128, sample_rate: int = 16000,
                 dropout: float = 0.5, kernel_size: int = 5,
                 sources: Sequence[str] = ("vocals", "accompaniment"), cond_dim: int = 0) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        depth = len(channels)
        n_bins = n_fft // 2
        if n_bins % 2 ** depth or patch_frames % 2 ** depth:
            raise ValueError(f"n_fft // 2 ({n_bins}) and patch_frames ({patch_frames}) must be "
                             f"divisible by 2 ** depth ({2 ** depth})")
        if len(sources) != 2:
            raise ValueError("sources must name the target and the remainder")
        self.channels = channels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.patch_frames = patch_frames
        self.sample_rate = sample_rate
        self.n_bins = n_bins
        self.sources = list(sources)
        self.cond_dim = cond_dim
        pad = kernel_size // 2

        self.encoder = nn.ModuleList()
        in_ch = 1
        for ch in channels:
            self.encoder.append(nn.Sequential(
                nn.Conv2d(in_ch, ch, kernel_size, stride=2, padding=pad),
                nn.BatchNorm2d(ch),
                nn.LeakyReLU(0.2),
            ))
            in_ch = ch

        self.decoder = nn.ModuleList()
        outs = list(reversed(channels[:-1])) + [1]
        for i, ch in enumerate(outs):
            in_ch = channels[-1] if i == 0 else 2 * outs[i - 1]
            deconv = nn.ConvTranspose2d(in_ch, ch, kernel_size, stride=2, padding=pad,
                                        output_padding=1)
            if i == len(outs) - 1:
                self.decoder.append(nn.Sequential(deconv))
            else:
                layers: list[nn.Module] = [deconv, nn.BatchNorm2d(ch), nn.ReLU()]
                if i < 3:
                    layers.append(nn.Dropout(dropout))
                self.decoder.append(nn.Sequential(*layers))

        if cond_dim:
            self.enc_film = nn.ModuleList(_FiLM(cond_dim, ch) for ch in channels)
            self.dec_film = nn.ModuleList(_FiLM(cond_dim, ch) for ch in outs[:-1])

    def forward(self, mag: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Mask for a normalised magnitude patch.

        Parameters
        ----------
        mag : torch.Tensor
            ``(batch, 1, n_bins, frames)``, values in [0, 1]; ``frames`` divisible by
            ``2 ** depth``.
        cond : torch.Tensor, optional
            ``(batch, cond_dim)`` conditioning vector (required when ``cond_dim > 0``).

        Returns
        -------
        torch.Tensor
            Mask in [0, 1], same shape as ``mag``.
        """
        if self.cond_dim and cond is None:
            raise ValueError("this U-Net is conditioned: pass cond")
        skips = []
        h = mag
        for i, block in enumerate(self.encoder):
            h = block(h)
            if self.cond_dim:
                h = self.enc_film[i](h, cond)
            skips.append(h)
        for i, block in enumerate(self.decoder):
            if i > 0:
                h = torch.cat([h, skips[-1 - i]], dim=1)
            h = block(h)
            if self.cond_dim and i < len(self.decoder) - 1:
                h = self.dec_film[i](h, cond)
        return torch.sigmoid(h)

    # -- spectrogram helpers -------------------------------------------------------------

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``(..., n_fft // 2 + 1, frames)`` of a waveform ``(..., samples)``."""
        return stft(audio, self.n_fft, self.hop_length)

    @staticmethod
    def normalise(mix_mag: torch.Tensor, *others: torch.Tensor,
                  eps: float = 1e-8) -> tuple[torch.Tensor, ...]:
        """Scale magnitudes to [0, 1] by the mixture's maximum, one scale for all inputs.

        Parameters
        ----------
        mix_mag : torch.Tensor
            ``(batch, ..., bins, frames)`` mixture magnitude.
        *others : torch.Tensor
            Magnitudes (e.g. the target) scaled by the same factor.
        """
        scale = mix_mag.flatten(1).amax(dim=1).clamp_min(eps)
        scale = scale.view(-1, *([1] * (mix_mag.dim() - 1)))
        return (mix_mag / scale, *(o / scale for o in others))

    def predict_mask(self, mix_mag: torch.Tensor, cond: torch.Tensor | None = None,
                     patch_batch: int = 32) -> torch.Tensor:
        """Mask over a whole magnitude spectrogram, patch by patch.

        Parameters
        ----------
        mix_mag : torch.Tensor
            ``(batch, n_fft // 2 + 1, frames)`` mixture magnitude (any scale).
        cond : torch.Tensor, optional
            ``(batch, cond_dim)``.
        patch_batch : int
            Patches per forward pass.

        Returns
        -------
        torch.Tensor
            Mask in [0, 1], same shape as ``mix_mag``.
        """
        batch, _, frames = mix_mag.shape
        p = self.patch_frames
        n_patches = max(1, -(-frames // p))
        padded = F.pad(mix_mag[:, : self.n_bins], (0, n_patches * p - frames))
        # (batch, bins, n, p) -> (batch * n, 1, bins, p); each patch normalised on its own,
        # as in training.
        patches = padded.view(batch, self.n_bins, n_patches, p).permute(0, 2, 1, 3)
        patches = patches.reshape(batch * n_patches, 1, self.n_bins, p)
        (patches,) = self.normalise(patches)
        c = None if cond is None else cond.repeat_interleave(n_patches, dim=0)
        # Bounded memory on long inputs: at most ``patch_batch`` patches at once.
        mask = torch.cat([
            self.forward(patches[i: i + patch_batch],
                         None if c is None else c[i: i + patch_batch])
            for i in range(0, patches.shape[0], patch_batch)])
        mask = mask.view(batch, n_patches, self.n_bins, p).permute(0, 2, 1, 3)
        mask = mask.reshape(batch, self.n_bins, n_patches * p)[..., :frames]
        # The Nyquist bin is not modelled: reuse the mask of the bin below it.
        return torch.cat([mask, mask[:, -1:]], dim=1)

    def separate(self, mixture: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Separate a mono waveform into target and remainder.

        Parameters
        ----------
        mixture : torch.Tensor
            ``(batch, samples)`` at :attr:`sample_rate`.
        cond : torch.Tensor, optional
            ``(batch, cond_dim)`` conditioning vector.

        Returns
        -------
        torch.Tensor
            ``(batch, 2, samples)``: ``mask * X`` and ``(1 - mask) * X`` after the inverse
            STFT, with the mixture phase.
        """
        spec = self.spectrogram(mixture)
        mask = self.predict_mask(spec.abs(), cond)
        est = torch.stack([mask * spec, (1 - mask) * spec], dim=1)
        return istft(est, self.n_fft, self.hop_length, mixture.shape[-1])
