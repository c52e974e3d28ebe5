"""Named aggregations of framewise BSS Eval scores, on one tidy table.

Schema of the framewise table (one row per track, source, metric and frame)::

    track   str     track name (a MUSDB folder name, a stimulus id, ...)
    source  str     target source ("vocals", "drums", ...)
    metric  str     "SDR", "ISR", "SIR" or "SAR"
    frame   int     frame index, 0-based
    time    float   frame start in seconds (NaN when no sample rate was given)
    value   float   dB; NaN in frames museval marks silent, +/-inf allowed

Every aggregate below says which statistic it takes over which axis, because the
literature mixes them: SiSEC 2018 takes the median over frames per track and then
the median over tracks per source; the Demucs papers report "all" as the mean of the
four per-source medians; the study in the project README reports the median over
tracks of the per-track mean over sources. NaN frames are skipped by every median
(as museval's own aggregation with pandas does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .bsseval import METRICS, BSSEvalResult

__all__ = [
    "FRAME_COLUMNS",
    "framewise_table",
    "mean_of_source_medians",
    "median_of_track_means",
    "median_over_frames",
    "median_over_tracks",
    "summarize",
]

FRAME_COLUMNS = ["track", "source", "metric", "frame", "time", "value"]


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {missing}; it has {list(df.columns)}")


def framewise_table(
    result: BSSEvalResult | Mapping[str, np.ndarray],
    *,
    track: str,
    sources: Sequence[str],
    sample_rate: float | None = None,
    hop: float | None = None,
) -> pd.DataFrame:
    """Turn one track's framewise metrics into the tidy table (schema above).

    Parameters
    ----------
    result : BSSEvalResult or mapping
        A :class:`~mosplatform.metrics.bsseval.BSSEvalResult`, or a mapping from
        metric names (``"SDR"`` ...) to ``(sources, frames)`` arrays (e.g. the four
        arrays of ``museval.evaluate``).
    track : str
        Track name put in every row.
    sources : sequence of str
        Source names, in the order of the result's rows.
    sample_rate : float, optional
        Gives the ``time`` column (frame start in seconds) with ``hop``.
    hop : float, optional
        Hop in samples; taken from ``result`` when it is a ``BSSEvalResult``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FRAME_COLUMNS`.

    Examples
    --------
    >>> import numpy as np
    >>> df = framewise_table({"SDR": np.array([[1.0, 3.0]])}, track="t", sources=["vocals"])
    >>> df[["source", "metric", "frame", "value"]].values.tolist()
    [['vocals', 'SDR', 0, 1.0], ['vocals', 'SDR', 1, 3.0]]
    """
    if isinstance(result, BSSEvalResult):
        arrays = result.as_dict()
        hop = result.hop if hop is None else hop
    else:
        arrays = {str(k).upper(): np.asarray(v, dtype=float) for k, v in result.items()}
    sources = [str(s) for s in sources]
    parts = []
    for metric in [m for m in METRICS if m in arrays] + sorted(set(arrays) - set(METRICS)):
        values = np.atleast_2d(arrays[metric])
        if values.shape[0] != len(sources):
            raise ValueError(
                f"{metric} has {values.shape[0]} rows but {len(sources)} source names"
            )
        n_frames = values.shape[1]
        frames = np.tile(np.arange(n_frames), len(sources))
        if sample_rate is not None and hop is not None:
            times = frames * float(hop) / float(sample_rate)
        else:
            times = np.full(frames.shape, np.nan)
        parts.append(
            pd.DataFrame(
                {
                    "track": str(track),
                    "source": np.repeat(sources, n_frames),
                    "metric": metric,
                    "frame": frames,
                    "time": times,
                    "value": values.reshape(-1),
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in FRAME_COLUMNS})
    return pd.concat(parts, ignore_index=True)[FRAME_COLUMNS]


def median_over_frames(frames: pd.DataFrame) -> pd.DataFrame:
    """Per-track score: median over frames, NaN frames skipped (SiSEC 2018).

    Parameters
    ----------
    frames : pandas.DataFrame
        Framewise table with columns ``track``, ``source``, ``metric``, ``value``.

    Returns
    -------
    pandas.DataFrame
        Columns ``track, source, metric, value``; one row per track, source and
        metric (NaN when every frame is NaN).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"track": "a", "source": "bass", "metric": "SDR",
    ...                    "value": [1.0, float("nan"), 5.0, 4.0]})
    >>> median_over_frames(df)["value"].tolist()
    [4.0]
    """
    _require(frames, ["track", "source", "metric", "value"], "frames")
    out = frames.groupby(["track", "source", "metric"], sort=True, observed=True)["value"]
    return out.median().reset_index()


def median_over_tracks(track_scores: pd.DataFrame) -> pd.DataFrame:
    """Per-source score: median over tracks of the per-track medians (SiSEC 2018).

    Parameters
    ----------
    track_scores : pandas.DataFrame
        Output of :func:`median_over_frames` (columns ``track, source, metric,
        value``). A framewise table is accepted too and reduced first.

    Returns
    -------
    pandas.DataFrame
        Columns ``source, metric, value``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"track": ["a", "b", "c"], "source": "bass", "metric": "SDR",
    ...                    "value": [1.0, 2.0, 9.0]})
    >>> median_over_tracks(df)["value"].tolist()
    [2.0]
    """
    track_scores = _per_track(track_scores)
    out = track_scores.groupby(["source", "metric"], sort=True, observed=True)["value"]
    return out.median().reset_index()


def mean_of_source_medians(track_scores: pd.DataFrame) -> pd.DataFrame:
    """"All" as in the Demucs papers: the mean over sources of the per-source medians.

    Parameters
    ----------
    track_scores : pandas.DataFrame
        Per-track scores (or a framewise table, reduced first).

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, value``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"track": ["a", "b", "a", "b"], "metric": "SDR",
    ...                    "source": ["bass", "bass", "drums", "drums"],
    ...                    "value": [1.0, 3.0, 6.0, 8.0]})
    >>> mean_of_source_medians(df)["value"].tolist()
    [4.5]
    """
    per_source = median_over_tracks(track_scores)
    return per_source.groupby("metric", sort=True)["value"].mean().reset_index()


def median_of_track_means(track_scores: pd.DataFrame) -> pd.DataFrame:
    """"All" as in the study: the median over tracks of the per-track mean over sources.

    Parameters
    ----------
    track_scores : pandas.DataFrame
        Per-track scores (or a framewise table, reduced first by the median over
        frames).

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, value``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"track": ["a", "a", "b", "b", "c", "c"], "metric": "SDR",
    ...                    "source": ["bass", "drums"] * 3,
    ...                    "value": [1.0, 3.0, 10.0, 20.0, 4.0, 4.0]})
    >>> median_of_track_means(df)["value"].tolist()
    [4.0]
    """
    track_scores = _per_track(track_scores)
    means = track_scores.groupby(["track", "metric"], sort=True)["value"].mean()
    return means.groupby("metric", sort=True).median().reset_index()


def summarize(frames: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every named aggregate of a framewise table.

    Parameters
    ----------
    frames : pandas.DataFrame
        Framewise table (schema in the module docstring).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``"tracks"``: :func:`median_over_frames`; ``"sources"``:
        :func:`median_over_tracks`; ``"all_mean_of_source_medians"`` and
        ``"all_median_of_track_means"``.
    """
    tracks = median_over_frames(frames)
    return {
        "tracks": tracks,
        "sources": median_over_tracks(tracks),
        "all_mean_of_source_medians": mean_of_source_medians(tracks),
        "all_median_of_track_means": median_of_track_means(tracks),
    }


def _per_track(df: pd.DataFrame) -> pd.DataFrame:
    """Reduce a framewise table to per-track medians; pass per-track tables through."""
    _require(df, ["track", "source", "metric", "value"], "scores")
    if "frame" in df.columns:
        return median_over_frames(df)
    if df.duplicated(["track", "source", "metric"]).any():
        raise ValueError(
            "scores hold several rows per track, source and metric but no 'frame' "
            "column; pass the framewise table or median_over_frames(...)"
        )
    return df
