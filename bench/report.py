"""Benchmark: the full analysis report on a 10,000-participant study.

Synthetic ACR test, 10,000 participants × 20 ratings (10 clips × 2 questions; 4
sources, 5 conditions): times ``build_report`` with the Student-t and the bootstrap
interval, and its components, against an anchor measured in the same run: a naive
pandas ``groupby().apply()`` computing MOS and t interval per (question, condition,
source). Run::

    .venv/bin/python bench/report.py [--participants 10000] [--n-boot 1000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mosplatform.analysis import (
    build_report,
    friedman_test,
    mos_table,
    mos_vs_objective,
    p808_screening,
    pairwise_wilcoxon,
    vote_distribution,
)
from mosplatform.analysis.synthetic import simulate_study

BY = ["question", "condition", "source"]


def naive_mos(df: pd.DataFrame) -> pd.DataFrame:
    """The anchor: per-group Python function through groupby-apply (as notebooks do)."""

    def one(g: pd.DataFrame) -> pd.Series:
        n = len(g)
        m = g["score"].mean()
        half = stats.t.ppf(0.975, n - 1) * g["score"].std() / np.sqrt(n)
        return pd.Series({"n": n, "mos": m, "ci_low": m - half, "ci_high": m + half})

    per_source = df.groupby(BY).apply(one, include_groups=False)
    pooled = df.groupby(["question", "condition"]).apply(one, include_groups=False)
    return pd.concat([per_source.reset_index(), pooled.reset_index()])


def timed(fn, *args, repeat: int = 1, **kwargs) -> tuple[tuple[float, float], object]:
    """Best of ``repeat`` runs: (wall seconds, CPU seconds of this process), result."""
    best, out = (float("inf"), float("inf")), None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--clips", type=int, default=10, help="clips per participant")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    df = simulate_study(n_participants=args.participants, clips_per_participant=args.clips,
                        seed=1)
    print(f"ratings: {len(df):,} ({args.participants:,} participants × "
          f"{len(df) // args.participants} ratings; {df['question'].nunique()} questions, "
          f"{df['source'].nunique()} sources, {df['condition'].nunique()} conditions)")

    t_anchor, naive = timed(naive_mos, df, repeat=args.repeat)
    t_mos, ours = timed(mos_table, df, repeat=args.repeat)
    # Same numbers as the anchor (a check, not a benchmark).
    merged = naive.merge(ours.replace({"source": {"all": np.nan}}), on=BY, how="inner")
    assert np.allclose(merged["mos_x"], merged["mos_y"]), "MOS disagrees with the anchor"

    rows = [("anchor: naive groupby-apply MOS + t CI", t_anchor)]
    rows.append(("mos_table (t)", t_mos))
    rows.append(("mos_table (bootstrap, listeners × items)",
                 timed(mos_table, df, method="bootstrap", n_boot=args.n_boot)[0]))
    rows.append(("p808_screening", timed(p808_screening, df, repeat=args.repeat)[0]))
    rows.append(("vote_distribution", timed(vote_distribution, df, repeat=args.repeat)[0]))
    rows.append(("friedman_test", timed(friedman_test, df, repeat=args.repeat)[0]))
    rows.append(("pairwise_wilcoxon (Holm)", timed(pairwise_wilcoxon, df, repeat=args.repeat)[0]))
    rows.append(("mos_vs_objective (SDR)", timed(mos_vs_objective, df, repeat=args.repeat)[0]))
    with tempfile.TemporaryDirectory() as tmp:
        t_t, _ = timed(build_report, df, Path(tmp) / "t", repeat=1)
        t_b, path = timed(build_report, df, Path(tmp) / "boot", ci_method="bootstrap",
                          n_boot=args.n_boot, repeat=1)
        size = path.stat().st_size
    rows.append(("build_report (t): everything, HTML+CSV+JSON+LaTeX", t_t))
    rows.append((f"build_report (bootstrap, {args.n_boot} replicates)", t_b))

    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'wall s':>7}  {'CPU s':>7}  {'× anchor (wall)':>15}")
    for name, (wall, cpu) in rows:
        print(f"{name:<{width}}  {wall:7.3f}  {cpu:7.3f}  {wall / t_anchor[0]:15.2f}")
    print(f"report.html: {size / 1e3:.0f} kB; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
