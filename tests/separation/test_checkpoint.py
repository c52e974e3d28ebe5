"""Checkpoint round trip (weights_only) and the Separator on files and folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from separation_fixtures import SR, TINY

from separation import Separator, load_checkpoint, model_from_checkpoint, save_checkpoint
from separation.registry import build_model, preset_kwargs


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    kwargs = preset_kwargs("hdemucs", "tiny", **TINY)
    model = build_model("hdemucs", "tiny", **TINY)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, "hdemucs", kwargs, model.state_dict(),
                    {"epoch": 3, "note": Path("x"), "pair": (1, 2)})
    return path


def test_round_trip_weights_only(tiny_checkpoint: Path) -> None:
    raw = torch.load(tiny_checkpoint, weights_only=True)
    assert set(raw) == {"model", "kwargs", "state", "meta"}
    assert raw["model"] == "hdemucs" and raw["kwargs"]["sample_rate"] == SR
    assert raw["meta"] == {"epoch": 3, "note": "x", "pair": [1, 2]}
    model = model_from_checkpoint(tiny_checkpoint)
    torch.manual_seed(0)
    original = build_model("hdemucs", "tiny", **TINY).eval()
    pairs = zip(original.state_dict().items(), model.state_dict().items(), strict=True)
    for (k, a), (k2, b) in pairs:
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(1, 2, 3000)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x))


def test_rejects_non_checkpoint(tmp_path: Path) -> None:
    torch.save({"state": {}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "bad.pt")


def test_separator_file_and_folder(tiny_checkpoint: Path, multitrack_root: Path,
                                   tmp_path: Path) -> None:
    sep = Separator(tiny_checkpoint, device="cpu", segment=0.5, progress=False)
    assert sep.sources == ["drums", "bass", "other", "vocals"] and sep.sample_rate == SR
    # a loose mono file at another rate, next to a MUSDB-layout track folder
    inputs = tmp_path / "in"
    shutil.copytree(multitrack_root / "test", inputs)
    t = np.arange(int(1.3 * 16000)) / 16000
    sf.write(inputs / "loose.wav", 0.1 * np.sin(2 * np.pi * 220 * t), 16000)
    results = sep.separate_folder(inputs, tmp_path / "out")
    assert sorted(r.name for r in results) == ["loose", "test track 00"]
    for r in results:
        assert r.rtf > 0 and r.audio_seconds > 0
        for source in sep.sources:
            audio, sr = sf.read(tmp_path / "out" / r.name / f"{source}.wav")
            if r.name == "loose":
                assert sr == 16000 and audio.shape == (len(t),)
            else:
                assert sr == SR and audio.shape == (2 * SR, 2)
    # separate_file returns the same stems as the folder run
    single = sep.separate_file(inputs / "test track 00" / "mixture.wav")
    assert single.name == "test track 00"
    written, _ = sf.read(tmp_path / "out" / "test track 00" / "vocals.wav", dtype="float32")
    np.testing.assert_allclose(single.stems["vocals"], written, atol=1 / 2 ** 15)
