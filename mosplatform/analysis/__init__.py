"""Analysis of listening-test ratings: pure pandas/scipy, no web framework.

Works on the long-format ratings table (one row per rating) that the platform
exports, or any CSV with at least ``participant``, ``item``, ``condition``,
``question`` and ``score``. Every function takes a tidy DataFrame plus column names
and returns a DataFrame; intervals use ``confidence=0.95`` unless told otherwise.

>>> from mosplatform.analysis import mos_table, build_report  # doctest: +SKIP
"""

from __future__ import annotations

from mosplatform.analysis.ci import bootstrap_ci, mean_ci, t_ci, t_half_width
from mosplatform.analysis.correlation import (
    condition_points,
    correlation_ci,
    mos_vs_objective,
    p1401_linear_fit,
)
from mosplatform.analysis.mos import mos_table, pool_over, vote_distribution, vote_weighted_mos
from mosplatform.analysis.mushra import mixed_model, mushra_post_screening, mushra_summary
from mosplatform.analysis.ordinal import (
    ccr_sign,
    cmos,
    friedman_test,
    holm_adjust,
    pairwise_wilcoxon,
    per_subject,
)
from mosplatform.analysis.power import listeners_needed, n_for_half_width
from mosplatform.analysis.report import (
    analyse,
    build_report,
    infer_kind,
    latex_table,
    objective_table,
    summarize_text,
)
from mosplatform.analysis.screening import p808_screening, screening_summary
from mosplatform.analysis.validate import REQUIRED_COLUMNS, coerce_ratings, validate_ratings

__all__ = [
    "REQUIRED_COLUMNS", "analyse", "bootstrap_ci", "build_report", "ccr_sign", "cmos",
    "coerce_ratings", "condition_points", "correlation_ci", "friedman_test", "holm_adjust",
    "infer_kind", "latex_table", "listeners_needed", "mean_ci", "mixed_model", "mos_table",
    "mos_vs_objective", "mushra_post_screening", "mushra_summary", "n_for_half_width",
    "objective_table", "p1401_linear_fit", "p808_screening", "pairwise_wilcoxon",
    "per_subject", "pool_over", "screening_summary", "summarize_text", "t_ci",
    "t_half_width", "validate_ratings", "vote_distribution", "vote_weighted_mos",
]
