"""Hybrid Demucs: shapes for every preset, parameter counts, the STFT framing."""

from __future__ import annotations

import pytest
import torch
from separation_fixtures import TINY

import separation
from separation.models.hdemucs import HDemucs, pad_reflect
from separation.registry import build_model, preset_kwargs, registered_models


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_with_presets() -> None:
    assert "hdemucs" in registered_models()
    for preset in ("default", "light", "tiny"):
        preset_kwargs("hdemucs", preset)
    assert separation.build_model is build_model


def test_default_matches_published_parameter_count() -> None:
    # Hybrid Demucs (Defossez 2021, MDX model) has 83.6 M parameters at 48 channels.
    model = build_model("hdemucs", preset="default")
    assert model.sources == ["drums", "bass", "other", "vocals"]
    assert abs(n_params(model) - 83.6e6) / 83.6e6 < 0.02


def test_light_and_tiny_sizes() -> None:
    light = n_params(build_model("hdemucs", preset="light"))
    tiny = n_params(build_model("hdemucs", preset="tiny"))
    assert tiny < 1_000_000
    assert 15e6 < light < 30e6  # about a quarter of the default at half the width


@pytest.mark.parametrize("preset,length", [("tiny", 3000), ("tiny", 44100), ("light", 22050)])
def test_forward_shapes(preset: str, length: int) -> None:
    torch.manual_seed(0)
    model = build_model("hdemucs", preset=preset).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, length))
    assert out.shape == (2, 4, 2, length)
    assert torch.isfinite(out).all()


def test_default_forward_shape() -> None:
    torch.manual_seed(0)
    model = build_model("hdemucs", preset="default").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 2, 8192))
    assert out.shape == (1, 4, 2, 8192)


def test_custom_sources_and_mono() -> None:
    model = build_model("hdemucs", preset="tiny", sources=["voice", "accompaniment"],
                        audio_channels=1)
    out = model(torch.randn(3, 1, 5000))
    assert out.shape == (3, 2, 1, 5000)
    out.abs().mean().backward()  # every parameter takes part in the graph
    assert all(p.grad is not None for p in model.parameters())


def test_spectrogram_framing_is_invertible() -> None:
    # Away from the edges (the two outer frames on each side are dropped, like the
    # Nyquist bin), _ispec must invert _spec exactly for a signal without Nyquist energy.
    model = HDemucs(**{**preset_kwargs("hdemucs", "tiny"), **TINY})
    hop, length = model.hop, 4321
    t = torch.arange(length, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    freqs = torch.rand(2, 2, 5, 1, generator=gen, dtype=torch.float64) * 0.4
    x = torch.sin(2 * torch.pi * freqs * t).sum(2)
    z = model._spec(x)
    assert z.shape == (2, 2, 512, -(-length // hop))
    y = model._ispec(z, length)
    assert y.shape == x.shape
    inner = slice(4 * hop, length - 4 * hop)
    torch.testing.assert_close(y[..., inner], x[..., inner], rtol=0, atol=1e-7)


def test_pad_reflect_short_input() -> None:
    x = torch.arange(3.0)[None]
    y = pad_reflect(x, 4, 5)
    assert y.shape[-1] == 12
    assert torch.equal(y[0, 4:7], x[0])


def test_incompatible_nfft_rejected() -> None:
    with pytest.raises(ValueError):
        build_model("hdemucs", preset="tiny", nfft=2048)
