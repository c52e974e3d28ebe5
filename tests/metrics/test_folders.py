"""MUSDB-style folder evaluation and the ``mosplatform sdr`` command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from click.testing import CliRunner

from mosplatform.metrics import bss_eval_v4, evaluate_folders
from mosplatform.metrics.cli import sdr_command

SR = 8000
SOURCES = ["bass", "drums", "vocals"]


def _write_tracks(root, rng):
    """Two tracks of three stems; estimates = stems + leakage; returns the arrays."""
    arrays = {}
    for track, seconds in (("track_a", 3.2), ("track_b", 2.0)):
        n = int(seconds * SR)
        refs = 0.1 * rng.standard_normal((3, n, 2))
        ests = refs + 0.3 * np.roll(refs, 1, axis=0) + 0.01 * rng.standard_normal(refs.shape)
        for kind, data in (("ref", refs), ("est", ests)):
            folder = root / kind / track
            folder.mkdir(parents=True)
            for name, x in zip(SOURCES, data, strict=True):
                sf.write(folder / f"{name}.wav", x, SR, subtype="DOUBLE")
        sf.write(root / "ref" / track / "mixture.wav", refs.sum(0), SR, subtype="DOUBLE")
        sf.write(root / "est" / track / "accompaniment.wav", ests[:2].sum(0), SR,
                 subtype="DOUBLE")
        arrays[track] = (refs, ests)
    return arrays


@pytest.fixture
def tracks(tmp_path):
    return tmp_path, _write_tracks(tmp_path, np.random.default_rng(0))


def test_evaluate_folders_matches_direct_evaluation(tracks):
    root, arrays = tracks
    frames = evaluate_folders(root / "ref", root / "est", progress=False, filter_length=64)
    assert set(frames["track"]) == {"track_a", "track_b"}
    assert set(frames["source"]) == set(SOURCES)  # mixture/accompaniment are not sources
    refs, ests = arrays["track_a"]
    direct = bss_eval_v4(refs, ests, window=SR, hop=SR, filter_length=64)
    got = frames[(frames["track"] == "track_a") & (frames["metric"] == "SIR")]
    got = got.pivot(index="source", columns="frame", values="value").loc[SOURCES].to_numpy()
    np.testing.assert_allclose(got, direct.sir, atol=1e-9)
    assert frames[frames["track"] == "track_a"]["frame"].max() == 2  # 3.2 s -> 3 frames


def test_only_some_sources_scored_against_all_references(tracks):
    root, arrays = tracks
    frames = evaluate_folders(root / "ref", root / "est", sources=["vocals"], progress=False,
                              filter_length=64)
    assert set(frames["source"]) == {"vocals"}
    refs, ests = arrays["track_b"]
    direct = bss_eval_v4(refs, ests, window=SR, hop=SR, filter_length=64)
    got = frames[(frames["track"] == "track_b") & (frames["metric"] == "SAR")]["value"]
    np.testing.assert_allclose(got.to_numpy(), direct.sar[2], atol=1e-9)


def test_missing_reference_track_is_an_error(tracks):
    root, _ = tracks
    (root / "est" / "orphan").mkdir()
    sf.write(root / "est" / "orphan" / "bass.wav", np.zeros((100, 2)) + 0.1, SR)
    with pytest.raises(ValueError, match="orphan"):
        evaluate_folders(root / "ref", root / "est", progress=False)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_sdr_command(tracks, suffix):
    root, _ = tracks
    out = root / f"scores{suffix}"
    result = CliRunner().invoke(sdr_command, [
        "--reference", str(root / "ref"), "--estimate", str(root / "est"),
        "--out", str(out), "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    assert "track_a" in result.output and "vocals" in result.output
    assert "mean of source medians" in result.output
    if suffix == ".csv":
        table = pd.read_csv(out)
        assert {"track", "source", "metric", "frame", "value"} <= set(table.columns)
        assert set(table["metric"]) == {"SDR", "ISR", "SIR", "SAR"}
    else:
        payload = json.loads(out.read_text())
        assert {"frames", "tracks", "sources", "all_mean_of_source_medians",
                "all_median_of_track_means"} <= set(payload)
        assert len(payload["tracks"]) == 2 * 3 * 4


def test_sdr_command_rejects_unknown_output_format(tracks):
    root, _ = tracks
    result = CliRunner().invoke(sdr_command, [
        "--reference", str(root / "ref"), "--estimate", str(root / "est"),
        "--out", str(root / "scores.xlsx"), "--no-progress",
    ])
    assert result.exit_code != 0 and ".csv or .json" in result.output
