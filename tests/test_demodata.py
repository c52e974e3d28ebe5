"""Demo multitrack data: MUSDB18-HQ layout, deterministic, mixture = sum, music-like."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from mosplatform.demodata import (
    MANIFEST_NAME,
    STEMS,
    TRACK_FILES,
    demo_data_command,
    generate_demo_dataset,
)

SR = 44100


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "data"
    return generate_demo_dataset(root, n_train=1, n_test=1, duration=6.0, seed=3,
                                 progress=False)


def _tracks(root: Path) -> list[Path]:
    return sorted(p for split in ("train", "test") for p in (root / split).iterdir())


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.wav"))}


def test_layout(small_set: Path) -> None:
    assert sorted(p.name for p in small_set.iterdir()) == [MANIFEST_NAME, "test", "train"]
    tracks = _tracks(small_set)
    assert [t.parent.name for t in tracks] == ["test", "train"]
    for track in tracks:
        assert " - " in track.name  # "Artist - Title", as MUSDB names its folders
        assert sorted(p.name for p in track.iterdir()) == sorted(f"{s}.wav" for s in TRACK_FILES)
        for stem in TRACK_FILES:
            info = sf.info(track / f"{stem}.wav")
            assert (info.samplerate, info.channels, info.frames) == (SR, 2, 6 * SR)
            assert info.subtype == "PCM_16"


def test_mixture_is_sum_and_nothing_clips(small_set: Path) -> None:
    for track in _tracks(small_set):
        audio = {s: sf.read(track / f"{s}.wav", dtype="int16")[0].astype(np.int64)
                 for s in TRACK_FILES}
        np.testing.assert_array_equal(audio["mixture"], sum(audio[s] for s in STEMS))
        for s, x in audio.items():
            assert np.max(np.abs(x)) < 32767 * 0.95, s  # peaks kept at about -1 dBFS


def test_sources_are_non_silent_distinct_and_partly_silent(small_set: Path) -> None:
    for track in _tracks(small_set):
        audio = {s: sf.read(track / f"{s}.wav")[0] for s in STEMS}
        rms_db = {s: 20 * np.log10(np.sqrt(np.mean(x**2))) for s, x in audio.items()}
        assert all(-40 < v < -8 for v in rms_db.values()), rms_db
        mono = {s: x.mean(axis=1) for s, x in audio.items()}
        for i, a in enumerate(STEMS):
            for b in STEMS[i + 1:]:
                assert abs(np.corrcoef(mono[a], mono[b])[0, 1]) < 0.5, (a, b)
        # The intro has no bass and no vocals: sources are silent at times.
        intro = slice(0, int(0.5 * SR))
        assert np.max(np.abs(audio["vocals"][intro])) == 0
        assert np.max(np.abs(audio["bass"][intro])) == 0
        assert np.max(np.abs(audio["other"][intro])) > 0


def test_excerpt_search_finds_all_sources_after_the_intro(small_set: Path) -> None:
    from mosplatform.audio.excerpt import find_active_span

    manifest = json.loads((small_set / MANIFEST_NAME).read_text())
    for track in _tracks(small_set):
        desc = manifest["descriptions"][f"{track.parent.name}/{track.name}"]
        intro_s = desc["intro_bars"] * 4 * 60 / desc["tempo_bpm"]
        stems = {s: sf.read(track / f"{s}.wav")[0] for s in STEMS}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            span = find_active_span(stems, SR, 3.0)
        assert span.start_s >= intro_s - 0.1


def _flux(x: np.ndarray, hop: int = 1024) -> float:
    """Median absolute frame-to-frame level change (dB) over non-silent frames."""
    e = np.sqrt(np.mean(x[: len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    e = e[e > 1e-3 * e.max()]
    return float(np.median(np.abs(np.diff(20 * np.log10(e)))))


def test_music_like_spectra(small_set: Path) -> None:
    # Bass energy sits low, drums are broadband and percussive, the voice is tonal.
    for track in _tracks(small_set):
        audio = {s: sf.read(track / f"{s}.wav")[0].mean(axis=1) for s in STEMS}
        f = np.fft.rfftfreq(len(audio["bass"]), 1 / SR)
        centroid, high = {}, {}
        for s, x in audio.items():
            p = np.abs(np.fft.rfft(x)) ** 2
            centroid[s] = float(np.sum(f * p) / np.sum(p))
            high[s] = float(np.sum(p[f > 4000]) / np.sum(p))
        assert centroid["bass"] < min(centroid["drums"], centroid["other"], centroid["vocals"])
        assert centroid["bass"] < 400
        assert high["drums"] > max(0.01, 2 * high["bass"])  # cymbals and snare
        # Drums: strong frame-to-frame energy changes (onsets); bass sustains more.
        assert _flux(audio["drums"]) > _flux(audio["other"])


def test_deterministic_and_idempotent(small_set: Path, tmp_path: Path) -> None:
    again = generate_demo_dataset(tmp_path / "again", n_train=1, n_test=1, duration=6.0,
                                  seed=3, progress=False)
    assert _digest(again) == _digest(small_set)
    # A complete folder with a matching manifest is left alone.
    stamps = {p: p.stat().st_mtime_ns for p in again.rglob("*.wav")}
    generate_demo_dataset(again, n_train=1, n_test=1, duration=6.0, seed=3, progress=False)
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*.wav")} == stamps
    # A missing file is noticed and regenerated identically.
    victim = next(again.rglob("vocals.wav"))
    victim.unlink()
    generate_demo_dataset(again, n_train=1, n_test=1, duration=6.0, seed=3, progress=False)
    assert _digest(again) == _digest(small_set)


def test_other_seed_other_music_and_stale_tracks_removed(small_set: Path, tmp_path: Path
                                                         ) -> None:
    root = generate_demo_dataset(tmp_path / "d", n_train=2, n_test=0, duration=3.0, seed=3,
                                 progress=False)
    assert len(list((root / "train").iterdir())) == 2
    generate_demo_dataset(root, n_train=1, n_test=0, duration=3.0, seed=4, progress=False)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["params"]["seed"] == 4
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*.wav")}
    assert on_disk == set(manifest["files"]) and len(on_disk) == 5
    # Only the new set's track folder remains (the old ones were ours to remove).
    assert sorted(p.name for p in (root / "train").iterdir()) == manifest["tracks"]["train"]
    # Same track index, other seed: other music.
    mix_a = sf.read(next(small_set.glob("train/*/mixture.wav")))[0][: 3 * SR]
    mix_b = sf.read(next(root.glob("train/*/mixture.wav")))[0]
    assert not np.allclose(mix_a, mix_b)


def test_cli_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(demo_data_command, ["--out", str(tmp_path / "cli"), "--train",
                                                    "1", "--test", "0", "--duration", "2",
                                                    "--quiet"])
    assert result.exit_code == 0, result.output
    assert "demo data ready" in result.output
    assert len(list((tmp_path / "cli" / "train").glob("*/mixture.wav"))) == 1
