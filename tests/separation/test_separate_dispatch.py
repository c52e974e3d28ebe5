"""`Separator` (and so `mosplatform separate`) renders every registered system."""

from __future__ import annotations

import numpy as np
import torch

from separation.api import Separator
from separation.checkpoint import save_checkpoint
from separation.registry import build_model, preset_kwargs


def test_separator_dispatches_unet_checkpoints(tmp_path):
    torch.manual_seed(0)
    kwargs = preset_kwargs("unet", "small")
    model = build_model("unet", "small").eval()
    ckpt = save_checkpoint(tmp_path / "unet.pt", "unet", kwargs, model.state_dict(), {})
    sep = Separator(ckpt, progress=False)
    assert sep.sources == list(model.sources)
    # Below 8 kHz, so that the system's 16 kHz processing keeps all of it.
    t = np.arange(44100) / 44100
    tone = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 330.0, 1250.0, 3100.0)) * 0.05
    audio = np.stack([tone, 0.8 * tone], axis=1).astype(np.float32)
    stems = sep.separate_array(audio, 44100)
    assert set(stems) == set(model.sources)
    for wave in stems.values():
        assert wave.shape == audio.shape and np.isfinite(wave).all()
    # Mask-based: the two estimates add up to (about) the mono mixture.
    total = sum(stems.values())[:, 0]
    mono = audio.mean(axis=1)
    assert np.corrcoef(total[2048:-2048], mono[2048:-2048])[0, 1] > 0.9
