"""Objective separation metrics: BSS Eval v4/v3 (museval-exact), SI-SDR, nSDR.

Pure numpy/scipy/pandas (no torch, no Flask). Entry points:

* :func:`bss_eval_v4`, :func:`bss_eval_v3`, :func:`framewise_sdr` - framewise
  metrics of ``(sources, samples, channels)`` arrays;
* :func:`si_sdr`, :func:`nsdr` - closed-form whole-signal ratios;
* :func:`stimulus_scores` - every score of one listening-test stimulus;
* :func:`evaluate_folders` - MUSDB-style folders to a tidy framewise table;
* :mod:`.aggregate` - the named aggregations (SiSEC medians, Demucs "all", ...).
"""

from .aggregate import (
    FRAME_COLUMNS,
    framewise_table,
    mean_of_source_medians,
    median_of_track_means,
    median_over_frames,
    median_over_tracks,
    summarize,
)
from .bsseval import (
    METRICS,
    BSSEvalResult,
    bss_eval,
    bss_eval_v3,
    bss_eval_v4,
    frame_bounds,
    framewise_sdr,
    silent_frames,
)
from .folders import evaluate_folders, evaluate_track
from .sisdr import MDX_DELTA, nsdr, si_sdr
from .stimulus import stimulus_scores

__all__ = [
    "FRAME_COLUMNS",
    "MDX_DELTA",
    "METRICS",
    "BSSEvalResult",
    "bss_eval",
    "bss_eval_v3",
    "bss_eval_v4",
    "evaluate_folders",
    "evaluate_track",
    "frame_bounds",
    "framewise_sdr",
    "framewise_table",
    "mean_of_source_medians",
    "median_of_track_means",
    "median_over_frames",
    "median_over_tracks",
    "nsdr",
    "si_sdr",
    "silent_frames",
    "stimulus_scores",
    "summarize",
]
