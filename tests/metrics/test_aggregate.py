"""Named aggregations against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mosplatform.metrics import (
    FRAME_COLUMNS,
    framewise_table,
    mean_of_source_medians,
    median_of_track_means,
    median_over_frames,
    median_over_tracks,
    summarize,
)

NAN = float("nan")


@pytest.fixture
def frames() -> pd.DataFrame:
    # two tracks, two sources, SDR only; hand-computed medians in the tests
    parts = [
        framewise_table({"SDR": [[1.0, 2.0, 9.0], [4.0, NAN, 6.0]]}, track="t1",
                        sources=["bass", "vocals"]),
        framewise_table({"SDR": [[3.0, 5.0, 5.0, 0.0], [NAN, NAN, 8.0, 0.0]]}, track="t2",
                        sources=["bass", "vocals"]),
    ]
    return pd.concat(parts, ignore_index=True)


def test_framewise_table_schema():
    df = framewise_table({"SDR": np.array([[1.0, 2.0]]), "sir": np.array([[3.0, 4.0]])},
                         track="x", sources=["drums"], sample_rate=44100, hop=44100)
    assert list(df.columns) == FRAME_COLUMNS
    assert df["metric"].tolist() == ["SDR", "SDR", "SIR", "SIR"]
    assert df["time"].tolist() == [0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="source names"):
        framewise_table({"SDR": [[1.0]]}, track="x", sources=["a", "b"])


def test_median_over_frames_skips_nan(frames):
    tracks = median_over_frames(frames).set_index(["track", "source"])["value"]
    assert tracks[("t1", "bass")] == 2.0
    assert tracks[("t1", "vocals")] == 5.0  # median of 4, 6
    assert tracks[("t2", "bass")] == 4.0  # median of 0, 3, 5, 5
    assert tracks[("t2", "vocals")] == 4.0  # median of 8, 0


def test_median_over_tracks(frames):
    sources = median_over_tracks(frames).set_index("source")["value"]
    assert sources["bass"] == 3.0  # median of 2, 4
    assert sources["vocals"] == 4.5  # median of 5, 4


def test_all_two_ways(frames):
    # Demucs: mean of the source medians = (3 + 4.5) / 2
    assert mean_of_source_medians(frames)["value"].tolist() == [3.75]
    # study: per-track mean over sources (t1: 3.5, t2: 4.0), then median over tracks
    assert median_of_track_means(frames)["value"].tolist() == [3.75]
    # a third track separates the two definitions
    extra = framewise_table({"SDR": [[10.0], [0.0]]}, track="t3", sources=["bass", "vocals"])
    more = pd.concat([frames, extra], ignore_index=True)
    # sources: bass median(2, 4, 10) = 4, vocals median(5, 4, 0) = 4 -> 4.0
    assert mean_of_source_medians(more)["value"].tolist() == [4.0]
    # track means: 3.5, 4.0, 5.0 -> 4.0; change t3 to make them differ
    extra2 = framewise_table({"SDR": [[10.0], [9.0]]}, track="t3", sources=["bass", "vocals"])
    more2 = pd.concat([frames, extra2], ignore_index=True)
    assert mean_of_source_medians(more2)["value"].tolist() == [(4.0 + 5.0) / 2]
    assert median_of_track_means(more2)["value"].tolist() == [4.0]


def test_summarize_and_validation(frames):
    out = summarize(frames)
    assert set(out) == {"tracks", "sources", "all_mean_of_source_medians",
                        "all_median_of_track_means"}
    assert len(out["tracks"]) == 4
    with pytest.raises(ValueError, match="column"):
        median_over_frames(frames.drop(columns="value"))
    with pytest.raises(ValueError, match="several rows"):
        median_over_tracks(frames.drop(columns="frame"))
