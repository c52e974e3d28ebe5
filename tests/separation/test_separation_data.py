"""Data: track listing, validation split, deterministic augmented segments, SDR, audio I/O."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from separation_fixtures import SR

from separation.data import (
    Augment,
    SegmentDataset,
    list_tracks,
    load_track,
    read_audio,
    sdr,
    split_train_valid,
)

SOURCES = ["drums", "bass", "other", "vocals"]


def test_list_and_split(multitrack_root: Path) -> None:
    tracks = list_tracks(multitrack_root, "train")
    assert [t.name for t in tracks] == [f"train track {i:02d}" for i in range(4)]
    assert tracks[0].frames == 2 * SR and tracks[0].sample_rate == SR
    train, valid = split_train_valid(tracks)  # no MUSDB names: last 10 % (at least one)
    assert [t.name for t in valid] == ["train track 03"]
    train, valid = split_train_valid(tracks, ["train track 01"])
    assert [t.name for t in valid] == ["train track 01"] and len(train) == 3
    with pytest.raises(ValueError):
        split_train_valid(tracks, ["missing"])


def test_load_track_uses_mixture_file(multitrack_root: Path) -> None:
    track = list_tracks(multitrack_root, "test")[0]
    mix, src = load_track(track, SOURCES, SR, 2)
    assert mix.shape == (2, 2 * SR) and src.shape == (4, 2, 2 * SR)
    file_mix, _ = sf.read(track.path("mixture"), dtype="float32")
    np.testing.assert_allclose(mix.numpy(), file_mix.T, atol=1e-6)
    np.testing.assert_allclose(src.sum(0).numpy(), file_mix.T, atol=1e-5)


def test_segments_without_augmentation_are_excerpts(multitrack_root: Path) -> None:
    tracks = list_tracks(multitrack_root, "train")[:1]
    ds = SegmentDataset(tracks, SOURCES, 0.5, SR, 2, 3, Augment.off(), seed=1)
    mix, src = ds[0]
    assert mix.shape == (2, SR // 2) and src.shape == (4, 2, SR // 2)
    torch.testing.assert_close(mix, src.sum(0))
    full = sf.read(tracks[0].path("bass"), dtype="float32")[0].T
    # find the excerpt in the file: the segment must be a contiguous slice of it
    starts = [i for i in range(full.shape[1] - SR // 2 + 1)
              if np.allclose(full[:, i:i + SR // 2], src[1].numpy(), atol=1e-7)]
    assert len(starts) >= 1


def test_segments_are_deterministic_per_epoch(multitrack_root: Path) -> None:
    tracks = list_tracks(multitrack_root, "train")
    ds = SegmentDataset(tracks, SOURCES, 0.4, SR, 2, 4, Augment(), seed=3)
    a = ds[2]
    b = SegmentDataset(tracks, SOURCES, 0.4, SR, 2, 4, Augment(), seed=3)[2]
    torch.testing.assert_close(a[1], b[1])
    ds.set_epoch(1)
    assert not torch.allclose(ds[2][1], a[1])


def test_augmentation_changes_gain_and_polarity(multitrack_root: Path) -> None:
    tracks = list_tracks(multitrack_root, "train")[:1]
    aug = Augment(remix_prob=0.0, gain_range=(2.0, 2.0), channel_swap_prob=1.0,
                  sign_flip_prob=1.0)
    plain = SegmentDataset(tracks, SOURCES, 0.5, SR, 2, 1, Augment.off(), seed=5)[0][1]
    augmented = SegmentDataset(tracks, SOURCES, 0.5, SR, 2, 1, aug, seed=5)[0][1]
    # same draws of track and offset: augmented = -2 * channel-swapped plain
    torch.testing.assert_close(augmented, -2 * plain.flip(1))


def test_sdr_by_hand() -> None:
    ref = torch.tensor([[[1.0, 2.0, -2.0, 0.0]]])
    est = torch.tensor([[[1.0, 1.0, -2.0, 1.0]]])
    # ||s||^2 = 9, ||s - s_hat||^2 = 2 -> 10 log10(4.5)
    assert sdr(est, ref).item() == pytest.approx(10 * np.log10(4.5), rel=1e-6)


def test_read_audio_resamples_and_maps_channels(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "a.wav", np.sin(2 * np.pi * 440 * t), 16000, subtype="FLOAT")
    audio, sr = read_audio(tmp_path / "a.wav", sample_rate=8000, channels=2)
    assert sr == 8000 and audio.shape == (8000, 2)
    expected = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    np.testing.assert_allclose(audio[100:-100, 1], expected[100:-100], atol=1e-2)
    part, _ = read_audio(tmp_path / "a.wav", start=0.5, duration=0.25)
    assert part.shape == (4000, 1)
