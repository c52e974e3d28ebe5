"""Overlap-add inference equals one-shot inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from separation.apply import apply_model, chunk_starts
from separation.registry import build_model


class PointwiseGains(nn.Module):
    """Acts on every sample independently: source s = gain_s * tanh(mix)."""

    sample_rate = 1000

    def __init__(self) -> None:
        super().__init__()
        self.gains = nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.gains[None, :, None, None] * torch.tanh(mix)[:, None]


def test_chunk_starts_cover_the_track() -> None:
    assert chunk_starts(50, 100, 0.25) == [0]
    starts = chunk_starts(1000, 100, 0.25)
    assert starts[0] == 0 and starts[-1] == 900
    assert all(b - a <= 75 for a, b in zip(starts[:-1], starts[1:], strict=True))


@pytest.mark.parametrize("overlap,shifts,batch_size", [(0.25, 0, 1), (0.5, 0, 3), (0.1, 2, 2)])
def test_overlap_add_of_pointwise_model_is_exact(overlap: float, shifts: int,
                                                 batch_size: int) -> None:
    model = PointwiseGains()
    mix = torch.randn(2, 2, 1234)
    with torch.no_grad():
        one_shot = model(mix)
    chunked = apply_model(model, mix, segment=100, overlap=overlap, shifts=shifts,
                          batch_size=batch_size)
    torch.testing.assert_close(chunked, one_shot, rtol=1e-5, atol=1e-6)


def test_short_input_equals_one_shot_hdemucs() -> None:
    torch.manual_seed(0)
    model = build_model("hdemucs", preset="tiny").eval()
    mix = torch.randn(2, 5000)
    with torch.no_grad():
        one_shot = model(mix[None])[0]
    chunked = apply_model(model, mix, segment=8000, overlap=0.25)
    assert chunked.shape == (4, 2, 5000)
    torch.testing.assert_close(chunked, one_shot)


def test_long_input_hdemucs_close_to_one_shot() -> None:
    # A convolutional model with finite context: with generous overlap the blended
    # chunks stay close to the one-shot output (not identical: each chunk is normalised).
    torch.manual_seed(0)
    model = build_model("hdemucs", preset="tiny").eval()
    mix = torch.randn(2, 12000) * 0.1
    with torch.no_grad():
        one_shot = model(mix[None])[0]
    chunked = apply_model(model, mix, segment=8192, overlap=0.5)
    assert chunked.shape == one_shot.shape
    rel = (chunked - one_shot).norm() / one_shot.norm()
    assert rel < 0.5
