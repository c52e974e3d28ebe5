"""Repeated-measures, rank-based tests for ACR/DCR/CCR (and MUSHRA) ratings; CCR sign handling.

Listeners rate every condition (within-subject design), so conditions are compared
on per-listener summaries with paired, rank-based tests: Friedman across all
conditions, then Wilcoxon signed-rank for each pair with Holm's correction. Votes
on a category scale are ordinal, which is why rank tests are used rather than a
one-way ANOVA or unpaired t-tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from mosplatform.analysis.ci import mean_ci
from mosplatform.analysis.validate import as_list, check_confidence, validate_ratings

AGGREGATES = ("mean", "median")


def holm_adjust(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, family-wise error rate).

    Parameters
    ----------
    p_values : sequence of float
        Unadjusted p-values (NaN entries are kept as NaN and not counted).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order.

    Notes
    -----
    Sort the ``m`` p-values ascending, ``p_(1) ≤ … ≤ p_(m)``; then
    ``p̃_(i) = min(1, max_{j ≤ i} (m - j + 1) · p_(j))`` (Holm 1979, *Scand. J. Statist.* 6).

    Examples
    --------
    >>> holm_adjust([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def signed_rank_test(d: Sequence[float] | np.ndarray, correction: bool = False) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired differences (or values against 0).

    Parameters
    ----------
    d : array-like
        Differences ``x − y`` (or one sample tested against 0). Zeros are dropped
        (Wilcoxon's method).
    correction : bool
        Continuity correction of the normal approximation.

    Returns
    -------
    tuple of float
        ``(W, p)`` with ``W = min(R⁺, R⁻)``; NaN when every difference is zero.

    Notes
    -----
    Chooses the method as :func:`scipy.stats.wilcoxon` does with ``method="auto"``:
    normal approximation (with tie correction of the variance) above 50 pairs; the
    exact null distribution without ties or zeros; with ties or zeros and at most 13
    pairs the exact *conditional* distribution over all ``2ⁿ`` sign assignments of
    the observed ranks, ``p = min(1, 2·min(P(R⁺ ≤ r⁺), P(R⁺ ≥ r⁺)))``; otherwise the
    normal approximation. The enumeration is one vectorised matrix product here,
    where scipy's generic permutation test loops in Python (seconds per call).

    Examples
    --------
    >>> w, p = signed_rank_test([1, 2, 2, 3, -1, 4])
    >>> float(w), round(p, 4)
    (1.5, 0.0938)
    """
    d = np.asarray(d, dtype=float)
    d = d[np.isfinite(d)]
    nz = d[d != 0]
    if len(nz) == 0:
        return np.nan, np.nan
    ranks = stats.rankdata(np.abs(nz))
    has_ties = len(np.unique(np.abs(nz))) < len(nz)
    has_zeros = len(nz) < len(d)
    if len(d) > 50 or ((has_ties or has_zeros) and len(d) > 13):
        res = stats.wilcoxon(nz, method="asymptotic", correction=correction)
        return float(res.statistic), float(res.pvalue)
    if not (has_ties or has_zeros):
        res = stats.wilcoxon(nz, method="exact")
        return float(res.statistic), float(res.pvalue)
    n = len(nz)
    r_plus = float(ranks[nz > 0].sum())
    signs = (np.arange(2**n)[:, None] >> np.arange(n)) & 1  # every sign assignment
    null = signs @ ranks
    tol = 1e-9 * max(abs(r_plus), 1.0)
    p_less = np.mean(null <= r_plus + tol)
    p_greater = np.mean(null >= r_plus - tol)
    return min(r_plus, float(ranks.sum()) - r_plus), float(min(1.0, 2 * min(p_less, p_greater)))


def per_subject(
    df: pd.DataFrame,
    dv: str = "score",
    within: str = "condition",
    subject: str = "participant",
    by: str | Sequence[str] | None = ("question",),
    agg: str = "mean",
) -> pd.DataFrame:
    """One summary value per listener and condition (the unit of repeated-measures tests).

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format ratings.
    dv : str
        Ratings column.
    within : str
        The within-subject factor (condition).
    subject : str
        Listener column.
    by : str or sequence of str, optional
        Further grouping columns, kept as columns.
    agg : {"mean", "median"}
        How a listener's votes on one condition (over items) are summarised.

    Returns
    -------
    pandas.DataFrame
        Columns ``by``, ``subject``, ``within`` and ``dv``.

    Notes
    -----
    Averaging a listener's votes over items turns the design into one observation
    per (listener, condition), as the Friedman and Wilcoxon tests need.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"participant": ["p"] * 3, "condition": ["a", "a", "b"],
    ...                   "score": [1, 3, 5]})
    >>> per_subject(d, by=None)["score"].tolist()
    [2.0, 5.0]
    """
    by = as_list(by)
    if agg not in AGGREGATES:
        raise ValueError(f"agg must be one of {AGGREGATES}, got {agg!r}")
    validate_ratings(df, required=[*by, subject, within, dv], numeric=[dv])
    return (
        df.loc[df[dv].notna()]
        .groupby([*by, subject, within], observed=True)[dv]
        .agg(agg).astype(float).reset_index()
    )


def friedman_test(
    df: pd.DataFrame,
    dv: str = "score",
    within: str = "condition",
    subject: str = "participant",
    by: str | Sequence[str] | None = ("question",),
    agg: str = "mean",
) -> pd.DataFrame:
    """Friedman test of equal conditions, per group, on per-listener summaries.

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format ratings.
    dv, within, subject, by, agg
        As in :func:`per_subject`.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``by`` columns, ``n_subjects`` (complete listeners used),
        ``n_dropped`` (listeners without every condition), ``k`` (conditions),
        ``chi2``, ``dof`` (``k - 1``), ``p_value`` and ``kendall_w``.

    Notes
    -----
    Friedman's statistic with the tie correction, ``χ²_F = (12/(n k (k+1)) Σ_j R_j² -
    3 n (k+1)) / (1 - Σ(t³-t)/(n k (k²-1)))`` on within-listener ranks, referred to
    χ²(k-1) (as :func:`scipy.stats.friedmanchisquare`); Kendall's
    ``W = χ²_F / (n (k-1))``. Only listeners who rated every condition enter (complete
    blocks). BS.1534-3 §9 asks for a repeated-measures analysis; for ordinal ACR/DCR/
    CCR votes a rank test is appropriate.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"participant": [1, 1, 1, 2, 2, 2, 3, 3, 3],
    ...                   "condition": ["a", "b", "c"] * 3, "score": [1, 2, 3, 1, 3, 2, 2, 3, 4]})
    >>> round(float(friedman_test(d, by=None)["chi2"].iloc[0]), 4)
    4.6667
    """
    by = as_list(by)
    summary = per_subject(df, dv=dv, within=within, subject=subject, by=by, agg=agg)
    groups = summary.groupby(by, observed=True) if by else [((), summary)]
    rows = []
    for key, part in groups:
        wide = part.pivot(index=subject, columns=within, values=dv)
        complete = wide.dropna()
        n, k = complete.shape
        chi2 = p = w = np.nan
        if n >= 2 and k >= 3:
            res = stats.friedmanchisquare(*[complete[c].to_numpy() for c in complete.columns])
            chi2, p = float(res.statistic), float(res.pvalue)
            w = chi2 / (n * (k - 1))
        key = key if isinstance(key, tuple) else (key,)
        rows.append({
            **dict(zip(by, key, strict=True)), "n_subjects": n,
            "n_dropped": len(wide) - n, "k": k, "chi2": chi2, "dof": k - 1,
            "p_value": p, "kendall_w": w,
        })
    return pd.DataFrame(rows)


def pairwise_wilcoxon(
    df: pd.DataFrame,
    dv: str = "score",
    within: str = "condition",
    subject: str = "participant",
    by: str | Sequence[str] | None = ("question",),
    agg: str = "mean",
    p_adjust: str = "holm",
    correction: bool = False,
) -> pd.DataFrame:
    """Paired Wilcoxon signed-rank tests for every pair of conditions, Holm-corrected.

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format ratings.
    dv, within, subject, by, agg
        As in :func:`per_subject`.
    p_adjust : {"holm", "none"}
        Multiple-comparison correction, applied within each group over its pairs.
    correction : bool
        Continuity correction of the normal approximation (scipy's default is off;
        pingouin turns it on).

    Returns
    -------
    pandas.DataFrame
        One row per group and pair: ``by`` columns, ``A``, ``B``, ``n`` (listeners who
        rated both), ``mean_diff`` and ``median_diff`` (A − B of the per-listener
        values), ``W`` (the smaller signed-rank sum, as scipy reports it),
        ``p_unc``, ``p_adj``, ``p_adjust`` and ``rank_biserial``.

    Notes
    -----
    Two-sided Wilcoxon signed-rank test on the paired differences ``d_i = A_i − B_i``
    (zero differences dropped), with the method choice of :func:`scipy.stats.wilcoxon`
    (see :func:`signed_rank_test`).
    Matched-pairs rank-biserial correlation ``r = (R⁺ − R⁻)/(R⁺ + R⁻)``. Pairs use
    every listener who rated both conditions. Holm (1979) controls the family-wise
    error rate over the pairs.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"participant": list(range(6)) * 2, "condition": ["a"] * 6 + ["b"] * 6,
    ...                   "score": [3, 4, 5, 4, 5, 3, 1, 2, 2, 3, 1, 2]})
    >>> round(float(pairwise_wilcoxon(d, by=None)["p_unc"].iloc[0]), 4)
    0.0312
    """
    by = as_list(by)
    if p_adjust not in ("holm", "none"):
        raise ValueError(f"p_adjust must be 'holm' or 'none', got {p_adjust!r}")
    summary = per_subject(df, dv=dv, within=within, subject=subject, by=by, agg=agg)
    groups = summary.groupby(by, observed=True) if by else [((), summary)]
    frames = []
    for key, part in groups:
        wide = part.pivot(index=subject, columns=within, values=dv)
        rows = []
        for a, b in combinations(wide.columns, 2):
            pair = wide[[a, b]].dropna()
            d = (pair[a] - pair[b]).to_numpy()
            row = {"A": a, "B": b, "n": len(d),
                   "mean_diff": float(d.mean()) if len(d) else np.nan,
                   "median_diff": float(np.median(d)) if len(d) else np.nan,
                   "W": np.nan, "p_unc": np.nan, "rank_biserial": np.nan}
            nz = d[d != 0]
            if len(nz) >= 1:
                ranks = stats.rankdata(np.abs(nz))
                r_plus, r_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
                row["rank_biserial"] = float((r_plus - r_minus) / (r_plus + r_minus))
                row["W"], row["p_unc"] = signed_rank_test(d, correction=correction)
            rows.append(row)
        table = pd.DataFrame(rows, columns=["A", "B", "n", "mean_diff", "median_diff", "W",
                                            "p_unc", "rank_biserial"])
        table["p_adj"] = holm_adjust(table["p_unc"]) if p_adjust == "holm" else table["p_unc"]
        table["p_adjust"] = p_adjust
        key = key if isinstance(key, tuple) else (key,)
        for col, value in zip(by, key, strict=True):
            table[col] = value
        frames.append(table)
    cols = [*by, "A", "B", "n", "mean_diff", "median_diff", "W", "p_unc", "p_adj", "p_adjust",
            "rank_biserial"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def ccr_sign(
    df: pd.DataFrame,
    raw: str = "raw_score",
    flipped: str = "flipped",
    out: str = "score",
) -> pd.DataFrame:
    """Express CCR votes relative to the reference: negate votes of flipped pairs.

    Parameters
    ----------
    df : pandas.DataFrame
        CCR ratings with the vote as given on the page (``raw``) and a boolean
        ``flipped`` that is true where the processed sample was played *first*.
    raw : str
        Column of the vote as answered (second sample compared with the first).
    flipped : str
        Boolean column: the order was reversed for this trial.
    out : str
        Column written with the sign-handled score (processed relative to reference).

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with ``out`` = ``-raw`` where ``flipped`` else ``raw``.

    Notes
    -----
    ITU-T P.800 Annex E (CCR): the order reference/processed is randomised half and
    half; the vote always rates the second sample against the first, so votes of
    trials with the processed sample first are sign-flipped before the CMOS. The
    platform's export already does this (``score``); use this function for data
    collected elsewhere.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"raw_score": [2, 2], "flipped": [False, True]})
    >>> ccr_sign(d)["score"].tolist()
    [2.0, -2.0]
    """
    validate_ratings(df, required=[raw, flipped], numeric=[raw])
    flags = df[flipped]
    if not pd.api.types.is_bool_dtype(flags):
        flags = flags.astype(str).str.strip().str.lower().isin(["true", "1", "yes", "1.0"])
    values = df[raw].astype(float)
    return df.assign(**{out: np.where(flags.to_numpy(dtype=bool), -values, values)})


def cmos(
    df: pd.DataFrame,
    dv: str = "score",
    by: str | Sequence[str] = ("question", "condition"),
    subject: str = "participant",
    item: str | None = "item",
    confidence: float = 0.95,
    method: str = "t",
    agg: str = "mean",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Comparison MOS (CMOS) with CI and a signed-rank test against "about the same" (0).

    Parameters
    ----------
    df : pandas.DataFrame
        Sign-handled CCR votes (−3..+3, processed relative to reference).
    dv, by, subject, item, confidence, method, n_boot, seed
        As in :func:`mosplatform.analysis.mos.mos_table`.
    agg : {"mean", "median"}
        Per-listener summary tested against 0.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, ``n``, ``cmos``, ``ci_low``, ``ci_high``,
        ``ci_half_width``, ``ci_method``, ``n_listeners``, ``W`` and ``p_value`` of
        the one-sample Wilcoxon signed-rank test of the per-listener values against 0.

    Notes
    -----
    ``CMOS = (1/n) Σ v_j`` over sign-handled votes (ITU-T P.800 Annex E); the test
    uses one value per listener (votes of one listener are not independent).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"participant": list("abcdef"), "item": "i", "question": "q",
    ...                   "condition": "x", "score": [1, 2, 1, 0, 2, 3]})
    >>> float(cmos(d)["cmos"].iloc[0])
    1.5
    """
    by = as_list(by)
    check_confidence(confidence)
    validate_ratings(df, required=[*by, subject, dv], numeric=[dv])
    item = item if item is not None and item in df.columns else None
    ci = mean_ci(df.loc[df[dv].notna()], dv=dv, by=by, subject=subject, item=item,
                 confidence=confidence, method=method, n_boot=n_boot, seed=seed)
    listener = (df.loc[df[dv].notna()].groupby([*by, subject], observed=True)[dv]
                .agg(agg).reset_index())
    rows = []
    for key, part in listener.groupby(by, observed=True):
        values = part[dv].to_numpy(dtype=float)
        w = p = np.nan
        if np.any(values != 0):
            w, p = signed_rank_test(values)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), "n_listeners": len(values),
                     "W": w, "p_value": p})
    out = ci.rename(columns={"mean": "cmos"}).merge(pd.DataFrame(rows), on=by, how="left")
    return out[[*by, "n", "cmos", "sd", "ci_low", "ci_high", "ci_half_width", "ci_method",
                "n_listeners", "W", "p_value"]]
