"""Hybrid Demucs: a waveform U-Net and a spectrogram U-Net that share their innermost layers.

Architecture after Défossez, "Hybrid Spectrogram and Waveform Source Separation"
(MDX workshop 2021), written for this project from the paper's description:

* **Spectral branch.** The mixture's STFT (Hann window, ``nfft`` bins, hop ``nfft // 4``)
  is fed as *complex as channels* (real and imaginary parts of every audio channel are
  input channels). Encoder layers are convolutions over the frequency axis (kernel
  ``kernel_size``, stride ``stride``) until a single frequency row is left.
* **Time branch.** A parallel 1-D U-Net on the waveform with the same strides; when the
  spectral branch has collapsed to one frequency row, both branches have the same frame
  rate, the time branch's output is added in and the remaining (``depth`` minus the
  spectral layers) layers are shared. The decoder splits again symmetrically.
* **Frequency embedding** added after the first spectral layer (Isik et al. 2020) so that
  convolutions over frequency need not be translation invariant.
* **DConv residual branches**: dilated 1-D convolutions with LayerScale, GLU and group
  norm; in the innermost layers a chunked bidirectional LSTM and a local attention with
  learned decay are added to the branch.
* **Output** = iSTFT of the spectral decoder's complex estimate + the time decoder's
  waveform, for every source.

Shapes: ``forward(mix)`` takes ``(batch, audio_channels, time)`` and returns
``(batch, len(sources), audio_channels, time)`` at the same sample rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import register_model

DEFAULT_SOURCES = ["drums", "bass", "other", "vocals"]


# --------------------------------------------------------------------------- helpers
def pad_reflect(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect-pad the last axis, zero-extending first when the input is too short.

    ``F.pad(mode="reflect")`` needs the padding to be smaller than the input; short
    chunks (the end of a track, tests) are first zero-extended on the right.
    """
    length = x.shape[-1]
    need = max(left, right) - length + 1
    if need > 0:
        extra_right = min(right, need)
        extra_left = need - extra_right
        x = F.pad(x, (extra_left, extra_right))
        left, right = left - extra_left, right - extra_right
    return F.pad(x, (left, right), mode="reflect")


def rescale_weights(module: nn.Module, reference: float) -> None:
    """Rescale every convolution so that its weight std moves towards ``reference``.

    Dividing weight and bias by ``sqrt(std / reference)`` is the initialisation trick of
    Demucs (v2 paper, §4): it makes the initial output scale of deep stacks reasonable.
    """
    for sub in module.modules():
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)):
            std = sub.weight.detach().std()
            scale = (std / reference) ** 0.5
            sub.weight.data /= scale
            if sub.bias is not None:
                sub.bias.data /= scale


class LayerScale(nn.Module):
    """Per-channel learnable scale (CaiT), initialised small so a residual starts ~identity."""

    def __init__(self, channels: int, init: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        return self.scale[:, None] * x


class ChunkedBiLSTM(nn.Module):
    """Bidirectional LSTM over time, run on overlapping windows of ``max_steps`` frames.

    Long inputs are cut into windows of ``max_steps`` with 50 % overlap and only the
    central half of each window is kept, which bounds the recurrent context (and memory)
    independently of the input length. Output has the input's shape, ``x + lstm(x)``.
    """

    def __init__(self, dim: int, layers: int = 2, max_steps: int = 200) -> None:
        super().__init__()
        if max_steps % 4:
            raise ValueError("max_steps must be a multiple of 4")
        self.max_steps = max_steps
        self.lstm = nn.LSTM(dim, dim, num_layers=layers, bidirectional=True)
        self.proj = nn.Linear(2 * dim, dim)

    def _run(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, T) -> (N, C, T)
        y = x.permute(2, 0, 1)  # (T, N, C)
        y, _ = self.lstm(y)
        return self.proj(y).permute(1, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, length = x.shape
        width = self.max_steps
        if length <= width:
            return x + self._run(x)
        hop = width // 2
        n_frames = math.ceil((length - width) / hop) + 1
        padded = F.pad(x, (0, (n_frames - 1) * hop + width - length))
        frames = padded.unfold(-1, width, hop)  # (B, C, n, width)
        frames = frames.permute(0, 2, 1, 3).reshape(batch * n_frames, channels, width)
        out = self._run(frames).reshape(batch, n_frames, channels, width)
        quarter = width // 4
        pieces = []
        for k in range(n_frames):
            start = 0 if k == 0 else quarter
            stop = width if k == n_frames - 1 else width - quarter
            pieces.append(out[:, k, :, start:stop])
        y = torch.cat(pieces, dim=-1)[..., :length]
        return x + y


class LocalAttention(nn.Module):
    """Multi-head self-attention over time with a learned, query-dependent distance decay.

    Each head adds ``-sum_f q_f(t) * f * |t - s| / sqrt(ndecay)`` to its attention logits
    (``q_f`` in ``[0, 0.5]`` predicted from the input), so it can choose how local it is.
    A position never attends to itself. Input and output ``(batch, channels, time)``.
    """

    def __init__(self, channels: int, heads: int = 4, ndecay: int = 4) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError("channels must be divisible by heads")
        self.heads = heads
        self.ndecay = ndecay
        self.query = nn.Conv1d(channels, channels, 1)
        self.key = nn.Conv1d(channels, channels, 1)
        self.value = nn.Conv1d(channels, channels, 1)
        self.decay_query = nn.Conv1d(channels, heads * ndecay, 1)
        # start with a gentle decay: small weights, negative bias (sigmoid ~ 0.12)
        self.decay_query.weight.data *= 0.01
        self.decay_query.bias.data[:] = -2.0
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, length = x.shape
        h = self.heads
        q = self.query(x).view(batch, h, -1, length)
        k = self.key(x).view(batch, h, -1, length)
        v = self.value(x).view(batch, h, -1, length)
        logits = torch.einsum("bhct,bhcs->bhts", q, k) / math.sqrt(q.shape[2])
        pos = torch.arange(length, device=x.device, dtype=x.dtype)
        dist = (pos[:, None] - pos[None, :]).abs()  # (t, s)
        rates = torch.arange(1, self.ndecay + 1, device=x.device, dtype=x.dtype)
        decay_w = torch.sigmoid(self.decay_query(x)).view(batch, h, self.ndecay, length) / 2
        # (b, h, t, 1) * (t, s) summed over f
        decay = torch.einsum("bhft,f->bht", decay_w, rates)[..., None] * dist
        logits = logits - decay / math.sqrt(self.ndecay)
        eye = torch.eye(length, dtype=torch.bool, device=x.device)
        logits = logits.masked_fill(eye, -100.0)
        weights = torch.softmax(logits, dim=-1)  # over s
        out = torch.einsum("bhts,bhcs->bhct", weights, v).reshape(batch, channels, length)
        return x + self.proj(out)


class DConv(nn.Module):
    """Residual branch of dilated convolutions (dilation ``2**d`` at depth ``d``).

    Each of the ``depth`` residual blocks is: conv k=3 (dilated) to ``channels // compress``,
    GroupNorm, GELU, [BiLSTM], [attention], 1x1 conv to ``2 * channels``, GroupNorm, GLU,
    LayerScale(``init``). Input and output ``(batch, channels, time)``.
    """

    def __init__(self, channels: int, compress: float = 4, depth: int = 2, init: float = 1e-3,
                 lstm: bool = False, attn: bool = False, kernel_size: int = 3) -> None:
        super().__init__()
        hidden = max(1, int(channels / compress))
        self.blocks = nn.ModuleList()
        for d in range(depth):
            dilation = 2 ** d
            layers: list[nn.Module] = [
                nn.Conv1d(channels, hidden, kernel_size, dilation=dilation,
                          padding=dilation * (kernel_size // 2)),
                nn.GroupNorm(1, hidden),
                nn.GELU(),
            ]
            if lstm:
                layers.append(ChunkedBiLSTM(hidden, layers=2, max_steps=200))
            if attn:
                layers.append(LocalAttention(hidden, heads=4, ndecay=4))
            layers += [
                nn.Conv1d(hidden, 2 * channels, 1),
                nn.GroupNorm(1, 2 * channels),
                nn.GLU(dim=1),
                LayerScale(channels, init),
            ]
            self.blocks.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


def _norm(use: bool, groups: int, channels: int) -> nn.Module:
    return nn.GroupNorm(groups, channels) if use else nn.Identity()


def _dconv_over_freq(dconv: DConv, y: torch.Tensor) -> torch.Tensor:
    """Apply a time DConv to every frequency row of ``(B, C, F, T)`` independently."""
    b, c, fr, t = y.shape
    y = y.permute(0, 2, 1, 3).reshape(b * fr, c, t)
    y = dconv(y)
    return y.view(b, fr, c, t).permute(0, 2, 1, 3)


class EncoderLayer(nn.Module):
    """One encoder layer: strided conv, norm, GELU, DConv, 1x1 (or context) conv + GLU.

    ``freq=True`` convolves along frequency on ``(B, C, F, T)``; otherwise along time on
    ``(B, C, T)``. ``empty=True`` keeps only the strided conv (used by the time branch at
    the layer where it is injected into the spectral branch).
    """

    def __init__(self, chin: int, chout: int, *, kernel_size: int, stride: int, freq: bool,
                 pad: bool, norm: bool, norm_groups: int, dconv: bool, dconv_kw: dict,
                 context: int = 0, empty: bool = False) -> None:
        super().__init__()
        self.freq = freq
        self.stride = stride
        self.empty = empty
        padding = kernel_size // 4 if pad else 0
        if freq:
            self.conv: nn.Module = nn.Conv2d(chin, chout, (kernel_size, 1), (stride, 1),
                                             (padding, 0))
        else:
            self.conv = nn.Conv1d(chin, chout, kernel_size, stride, padding)
        if empty:
            return
        conv_cls = nn.Conv2d if freq else nn.Conv1d
        self.norm1 = _norm(norm, norm_groups, chout)
        self.dconv = DConv(chout, **dconv_kw) if dconv else None
        self.rewrite = conv_cls(chout, 2 * chout, 1 + 2 * context, 1, context)
        self.norm2 = _norm(norm, norm_groups, 2 * chout)

    def forward(self, x: torch.Tensor, inject: torch.Tensor | None = None) -> torch.Tensor:
        if not self.freq:
            if x.dim() == 4:  # coming from a collapsed spectral layer (B, C, 1, T)
                x = x.flatten(1, 2)
            rest = x.shape[-1] % self.stride
            if rest:
                x = F.pad(x, (0, self.stride - rest))
        y = self.conv(x)
        if self.empty:
            return y
        if inject is not None:
            if inject.dim() == 3 and y.dim() == 4:
                inject = inject[:, :, None]
            y = y + inject
        y = F.gelu(self.norm1(y))
        if self.dconv is not None:
            y = _dconv_over_freq(self.dconv, y) if self.freq else self.dconv(y)
        return F.glu(self.norm2(self.rewrite(y)), dim=1)


class DecoderLayer(nn.Module):
    """Mirror of :class:`EncoderLayer`: skip add, context conv + GLU, DConv, transposed conv.

    ``forward`` returns ``(output, pre)`` where ``pre`` is the tensor just before the
    transposed convolution (the shared layer hands it to the time branch).
    """

    def __init__(self, chin: int, chout: int, *, kernel_size: int, stride: int, freq: bool,
                 pad: bool, norm: bool, norm_groups: int, dconv: bool, dconv_kw: dict,
                 context: int = 1, last: bool = False, empty: bool = False) -> None:
        super().__init__()
        self.freq = freq
        self.chin = chin
        self.last = last
        self.empty = empty
        self.pad = kernel_size // 4 if pad else 0
        if freq:
            self.conv_tr: nn.Module = nn.ConvTranspose2d(chin, chout, (kernel_size, 1),
                                                         (stride, 1))
        else:
            self.conv_tr = nn.ConvTranspose1d(chin, chout, kernel_size, stride)
        self.norm2 = _norm(norm, norm_groups, chout)
        if empty:
            return
        conv_cls = nn.Conv2d if freq else nn.Conv1d
        self.rewrite = conv_cls(chin, 2 * chin, 1 + 2 * context, 1, context)
        self.norm1 = _norm(norm, norm_groups, 2 * chin)
        self.dconv = DConv(chin, **dconv_kw) if dconv else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None,
                length: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.freq and x.dim() == 3:  # coming from a time-only layer
            x = x.view(x.shape[0], self.chin, -1, x.shape[-1])
        if self.empty:
            y = x
        else:
            y = F.glu(self.norm1(self.rewrite(x + skip)), dim=1)
            if self.dconv is not None:
                y = _dconv_over_freq(self.dconv, y) if self.freq else self.dconv(y)
        z = self.norm2(self.conv_tr(y))
        if self.freq:
            if self.pad:
                z = z[:, :, self.pad:-self.pad]
        else:
            z = z[..., self.pad:self.pad + length]
        if not self.last:
            z = F.gelu(z)
        return z, y


class ScaledEmbedding(nn.Module):
    """Embedding whose effective learning rate is multiplied by ``scale``.

    Stored weights are divided by ``scale`` and multiplied back in ``forward``. With
    ``smooth`` the initial table is a normalised cumulative sum of Gaussians, so that
    neighbouring frequencies start with similar embeddings.
    """

    def __init__(self, num: int, dim: int, scale: float = 10.0, smooth: bool = True) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num, dim)
        weight = self.embedding.weight.data
        if smooth:
            weight = torch.cumsum(weight, dim=0)
            weight = weight / torch.arange(1, num + 1, dtype=weight.dtype).sqrt()[:, None]
        self.embedding.weight.data.copy_(weight / scale)
        self.scale = scale

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.embedding(index) * self.scale


PRESETS: dict[str, dict] = {
    # Published Hybrid Demucs (MDX 2021) configuration.
    "default": {},
    # Same structure at half the width (about a quarter of the parameters).
    "light": {"channels": 24},
    # CPU-trainable: 1024-point STFT, 5 layers (4 spectral + 1 shared time layer).
    "tiny": {"channels": 8, "nfft": 1024, "depth": 5, "norm_starts": 3, "dconv_lstm": 4,
             "dconv_attn": 4, "segment": 2.0},
}


@register_model("hdemucs", presets=PRESETS,
                description="Hybrid Demucs (time + complex spectrogram U-Nets, shared core)")
class HDemucs(nn.Module):
    """Hybrid Demucs source separator.

    Parameters
    ----------
    sources : sequence of str
        Names of the estimated sources, in output order.
    audio_channels : int
        Channels of the mixture and of every estimate (2 = stereo).
    channels : int
        Hidden channels of the first layer; layer ``i`` has ``channels * growth**i``.
    growth : float
        Channel growth factor per layer.
    nfft : int
        STFT size in samples (hop ``nfft // 4``, Hann window). With ``stride=4`` and
        ``kernel_size=8`` it must be a power of 4 (256, 1024, 4096) so that the spectral
        branch collapses to one frequency row exactly when its frame rate equals the
        time branch's.
    depth : int
        Number of encoder (and decoder) layers; must exceed the number of spectral layers.
    kernel_size : int
        Kernel of the strided (transposed) convolutions.
    stride : int
        Stride of every spectral and time layer before the branches merge.
    time_stride : int
        Stride of the shared time-only layers after the merge (kernel ``2 * time_stride``).
    freq_emb : float
        Weight of the frequency embedding added after the first spectral layer (0 = none).
    emb_scale : float
        Learning-rate multiplier of the frequency embedding.
    norm_starts : int
        First layer index that uses GroupNorm (``norm_groups`` groups).
    norm_groups : int
        Groups of the GroupNorm layers.
    dconv_mode : int
        Bit mask: 1 = DConv branches in the encoder, 2 = in the decoder, 3 = both.
    dconv_depth : int
        Residual blocks per DConv branch.
    dconv_comp : float
        Channel compression inside DConv branches.
    dconv_lstm : int
        First layer index whose DConv branch contains a BiLSTM (``>= depth`` = none).
    dconv_attn : int
        First layer index whose DConv branch contains local attention (``>= depth`` = none).
    dconv_init : float
        Initial LayerScale of the DConv branches.
    context : int
        Context (frames) of the decoder's rewrite convolution (kernel ``1 + 2 * context``).
    context_enc : int
        Same for the encoder.
    rescale : float
        Reference std of the weight-rescaling initialisation (0 = off).
    sample_rate : int
        Sample rate in Hz the model is trained at (metadata; inputs must match it).
    segment : float
        Training segment length in seconds (metadata; the default chunk size of inference).

    Notes
    -----
    ``forward(mix)``: ``mix`` is ``(batch, audio_channels, time)`` in any length; the
    output is ``(batch, len(sources), audio_channels, time)``.
    """

    def __init__(self, sources: Sequence[str] = tuple(DEFAULT_SOURCES), audio_channels: int = 2,
                 channels: int = 48, growth: float = 2.0, nfft: int = 4096, depth: int = 6,
                 kernel_size: int = 8, stride: int = 4, time_stride: int = 2,
                 freq_emb: float = 0.2, emb_scale: float = 10.0, norm_starts: int = 4,
                 norm_groups: int = 4, dconv_mode: int = 1, dconv_depth: int = 2,
                 dconv_comp: float = 4, dconv_lstm: int = 4, dconv_attn: int = 4,
                 dconv_init: float = 1e-3, context: int = 1, context_enc: int = 0,
                 rescale: float = 0.1, sample_rate: int = 44100, segment: float = 10.0) -> None:
        super().__init__()
        self.sources = list(sources)
        self.audio_channels = audio_channels
        self.nfft = nfft
        self.hop = nfft // 4
        self.sample_rate = sample_rate
        self.segment = segment
        self.depth = depth

        # how many layers act on frequency, and check that the branches line up
        freqs, n_freq_layers = nfft // 2, 0
        while freqs > 1:
            freqs = 1 if freqs <= kernel_size else freqs // stride
            n_freq_layers += 1
        if stride ** n_freq_layers != self.hop:
            raise ValueError(f"nfft={nfft} with stride={stride}, kernel_size={kernel_size} "
                             "does not align the spectral and time branches")
        if depth <= n_freq_layers - 1:
            raise ValueError(f"depth must be at least {n_freq_layers} for nfft={nfft}")

        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.tencoder = nn.ModuleList()
        self.tdecoder = nn.ModuleList()
        self.freq_emb: ScaledEmbedding | None = None
        self.freq_emb_weight = freq_emb

        chin, chin_z = audio_channels, 2 * audio_channels
        chout = chout_z = channels
        freqs = nfft // 2
        for index in range(depth):
            freq = freqs > 1
            ker, stri, pad, last_freq = kernel_size, stride, True, False
            if not freq:
                ker, stri = 2 * time_stride, time_stride
            elif freqs <= kernel_size:
                ker, pad, last_freq = freqs, False, True
                chout = chout_z = max(chout, chout_z)
            dconv_kw = {"depth": dconv_depth, "compress": dconv_comp, "init": dconv_init,
                        "lstm": index >= dconv_lstm, "attn": index >= dconv_attn}
            common = {"norm": index >= norm_starts, "norm_groups": norm_groups,
                      "dconv_kw": dconv_kw}
            self.encoder.append(EncoderLayer(
                chin_z, chout_z, kernel_size=ker, stride=stri, freq=freq, pad=pad,
                dconv=bool(dconv_mode & 1), context=context_enc, **common))
            if freq:
                self.tencoder.append(EncoderLayer(
                    chin, chout, kernel_size=kernel_size, stride=stride, freq=False, pad=True,
                    dconv=bool(dconv_mode & 1), context=context_enc, empty=last_freq,
                    **common))
            if index == 0:  # decoders of the outer layer produce every source
                chin = audio_channels * len(self.sources)
                chin_z = 2 * chin
            self.decoder.insert(0, DecoderLayer(
                chout_z, chin_z, kernel_size=ker, stride=stri, freq=freq, pad=pad,
                dconv=bool(dconv_mode & 2), context=context, last=index == 0, **common))
            if freq:
                self.tdecoder.insert(0, DecoderLayer(
                    chout, chin, kernel_size=kernel_size, stride=stride, freq=False, pad=True,
                    dconv=bool(dconv_mode & 2), context=context, last=index == 0,
                    empty=last_freq, **common))
            chin, chin_z = chout, chout_z
            chout, chout_z = int(growth * chout), int(growth * chout_z)
            if freq:
                freqs = 1 if freqs <= kernel_size else freqs // stride
            if index == 0 and freq_emb:
                self.freq_emb = ScaledEmbedding(freqs, chin_z, scale=emb_scale)
        if rescale:
            rescale_weights(self, rescale)

    # ---------------------------------------------------------------- spectrogram
    def _spec(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` -> complex ``(B, C, nfft // 2, ceil(T / hop))``.

        The signal is padded so that frame ``k`` is centred on sample ``k * hop + hop / 2``
        (the same grid as a stride-``hop`` convolution with kernel ``4 * hop`` and padding
        ``hop``), which aligns the spectral frames with the time branch.
        """
        hop, length = self.hop, x.shape[-1]
        frames = math.ceil(length / hop)
        pad = 3 * hop // 2
        x = pad_reflect(x, pad, pad + frames * hop - length)
        shape = x.shape
        window = torch.hann_window(self.nfft, device=x.device, dtype=x.dtype)
        z = torch.stft(x.reshape(-1, shape[-1]), self.nfft, hop, window=window,
                       normalized=True, center=True, return_complex=True)
        z = z.view(*shape[:-1], *z.shape[-2:])
        return z[..., :-1, 2:2 + frames]  # drop Nyquist bin and the padding frames

    def _ispec(self, z: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse of :meth:`_spec`: complex ``(..., nfft // 2, frames)`` -> ``(..., length)``."""
        hop = self.hop
        z = F.pad(z, (2, 2, 0, 1))  # padding frames and Nyquist bin back
        pad = 3 * hop // 2
        total = hop * math.ceil(length / hop) + 2 * pad
        shape = z.shape
        window = torch.hann_window(self.nfft, device=z.device, dtype=z.real.dtype)
        x = torch.istft(z.reshape(-1, *shape[-2:]), self.nfft, hop, window=window,
                        normalized=True, center=True, length=total)
        return x.view(*shape[:-2], total)[..., pad:pad + length]

    # ---------------------------------------------------------------- forward
    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Separate ``mix`` ``(B, C, T)`` into ``(B, S, C, T)``."""
        batch, _, length = mix.shape
        n_src = len(self.sources)
        z = self._spec(mix)
        x = torch.view_as_real(z).permute(0, 1, 4, 2, 3).flatten(1, 2)  # (B, 2C, F, frames)
        n_freq, n_frames = x.shape[-2:]

        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) / (1e-5 + std)
        mean_t = mix.mean(dim=(1, 2), keepdim=True)
        std_t = mix.std(dim=(1, 2), keepdim=True)
        xt = (mix - mean_t) / (1e-5 + std_t)

        skips, skips_t, lengths, lengths_t = [], [], [], []
        for index, enc in enumerate(self.encoder):
            lengths.append(x.shape[-1])
            inject = None
            if index < len(self.tencoder):
                lengths_t.append(xt.shape[-1])
                tenc = self.tencoder[index]
                xt = tenc(xt)
                if tenc.empty:
                    inject = xt  # the branches merge here
                else:
                    skips_t.append(xt)
            x = enc(x, inject)
            if index == 0 and self.freq_emb is not None:
                rows = torch.arange(x.shape[-2], device=x.device)
                emb = self.freq_emb(rows).t()[None, :, :, None]
                x = x + self.freq_emb_weight * emb
            skips.append(x)

        # the decoder starts from zeros; the signal flows through the skip connections
        x = torch.zeros_like(x)
        xt = torch.zeros_like(x)
        offset = self.depth - len(self.tdecoder)
        for index, dec in enumerate(self.decoder):
            x, pre = dec(x, skips.pop(), lengths.pop())
            if index >= offset:
                tdec = self.tdecoder[index - offset]
                length_t = lengths_t.pop()
                if tdec.empty:
                    xt, _ = tdec(pre[:, :, 0], None, length_t)
                else:
                    xt, _ = tdec(xt, skips_t.pop(), length_t)

        x = x.view(batch, n_src, -1, n_freq, n_frames)
        x = x * std[:, None] + mean[:, None]
        spec_out = x.view(batch, n_src, self.audio_channels, 2, n_freq, n_frames)
        spec_out = torch.view_as_complex(spec_out.permute(0, 1, 2, 4, 5, 3).contiguous())
        out = self._ispec(spec_out, length)
        xt = xt.view(batch, n_src, self.audio_channels, length)
        return out + xt * std_t[:, None] + mean_t[:, None]
