"""``mosplatform sdr --reference DIR --estimate DIR [--out FILE]``.

The command object :data:`sdr_command` is registered on the application's click
group by ``mosplatform/cli.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import pandas as pd

from .aggregate import summarize
from .bsseval import METRICS


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _records(df: pd.DataFrame) -> list[dict]:
    rows = df.to_dict(orient="records")
    return [{k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in r.items()}
            for r in rows]


def write_scores(frames: pd.DataFrame, path: Path) -> None:
    """Write the framewise table to ``.csv``, or every aggregate too to ``.json``.

    Parameters
    ----------
    frames : pandas.DataFrame
        Framewise table (:data:`~mosplatform.metrics.aggregate.FRAME_COLUMNS`).
    path : pathlib.Path
        ``*.csv``: the framewise table. ``*.json``: an object with ``frames``,
        ``tracks`` (median over frames), ``sources`` (median over tracks),
        ``all_mean_of_source_medians`` and ``all_median_of_track_means``, each a list
        of records; non-finite values become ``null``.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frames.to_csv(path, index=False)
    elif suffix == ".json":
        payload = {"frames": _records(frames)}
        payload.update({k: _records(v) for k, v in summarize(frames).items()})
        path.write_text(json.dumps(payload, indent=1, allow_nan=False))
    else:
        raise click.BadParameter(f"{path}: use a .csv or .json file", param_hint="--out")


@click.command("sdr")
@click.option("--reference", "reference_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Reference folder: <track>/<source>.wav (e.g. MUSDB18-HQ test).")
@click.option("--estimate", "estimate_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Estimate folder with the same layout.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the scores: .csv (framewise table) or .json.")
@click.option("--source", "sources", multiple=True,
              help="Score only this source (repeatable); default: all with an estimate.")
@click.option("--window", type=click.FloatRange(0, min_open=True), default=1.0,
              show_default=True, help="Frame length in seconds.")
@click.option("--hop", type=click.FloatRange(0, min_open=True), default=1.0,
              show_default=True, help="Hop in seconds.")
@click.option("--mode", type=click.Choice(["v4", "v3"]), default="v4", show_default=True,
              help="BSS Eval version (v4: filters fitted once per track).")
@click.option("--metric", "table_metric", type=click.Choice(list(METRICS)), default="SDR",
              show_default=True, help="Metric of the printed per-track table.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def sdr_command(reference_dir: Path, estimate_dir: Path, out_path: Path | None,
                sources: tuple[str, ...], window: float, hop: float, mode: str,
                table_metric: str, progress: bool) -> None:
    """BSS Eval (museval-exact) of MUSDB-style folders, with SiSEC and Demucs aggregates."""
    from .folders import evaluate_folders

    if out_path is not None and out_path.suffix.lower() not in (".csv", ".json"):
        raise click.BadParameter(f"{out_path}: use a .csv or .json file", param_hint="--out")
    try:
        frames = evaluate_folders(reference_dir, estimate_dir, sources or None, progress,
                                  window=window, hop=hop, mode=mode)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    agg = summarize(frames)
    tracks = agg["tracks"]
    table = tracks[tracks["metric"] == table_metric].pivot(
        index="track", columns="source", values="value")
    pd.set_option("display.width", 160)
    click.echo(f"{table_metric} (dB), median over frames per track:")
    click.echo(table.round(2).to_string())
    click.echo("\nmedian over tracks per source (SiSEC):")
    click.echo(agg["sources"].pivot(index="source", columns="metric", values="value")
               .reindex(columns=list(METRICS)).round(2).to_string())
    all_scores = pd.DataFrame({
        "mean of source medians (Demucs)":
            agg["all_mean_of_source_medians"].set_index("metric")["value"],
        "median of track means (study)":
            agg["all_median_of_track_means"].set_index("metric")["value"],
    }).reindex(list(METRICS))
    click.echo("\nall sources:")
    click.echo(all_scores.round(2).to_string())
    if out_path is not None:
        write_scores(frames, out_path)
        click.echo(f"\nwrote {out_path}")
