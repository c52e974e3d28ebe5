"""MOS versus an objective score (SDR, ...): correlations with CIs and ITU-T P.1401 measures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mosplatform.analysis.ci import t_half_width
from mosplatform.analysis.mos import POOLED
from mosplatform.analysis.validate import as_list, check_confidence, validate_ratings


def correlation_ci(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    method: str = "pearson",
    confidence: float = 0.95,
) -> dict[str, float]:
    """Pearson or Spearman correlation with a Fisher-z confidence interval.

    Parameters
    ----------
    x, y : array-like
        Paired observations (pairs with a NaN are dropped).
    method : {"pearson", "spearman"}
        Which coefficient.
    confidence : float
        Coverage of the interval.

    Returns
    -------
    dict
        ``n``, ``r``, ``ci_low``, ``ci_high``, ``p_value``.

    Notes
    -----
    ``z = atanh(r)``, interval ``tanh(z ± z_{1-α/2} · σ_z)`` with ``σ_z = 1/√(n−3)`` for
    Pearson (Fisher 1921) and ``σ_z = √(1.06/(n−3))`` for Spearman (Fieller, Hartley &
    Pearson 1957). ITU-T P.1401 §7.5.3 uses the Fisher transformation for the
    Pearson coefficient. p-values from :func:`scipy.stats.pearsonr` /
    :func:`scipy.stats.spearmanr`. NaN intervals for ``n ≤ 3``.

    Examples
    --------
    >>> out = correlation_ci([1, 2, 3, 4, 5, 6], [1.1, 1.9, 3.2, 3.8, 5.3, 5.9])
    >>> round(out["r"], 4), round(out["ci_low"], 3)
    (0.9945, 0.948)
    """
    check_confidence(confidence)
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    out = {"n": n, "r": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    res = stats.pearsonr(x, y) if method == "pearson" else stats.spearmanr(x, y)
    r = float(res.statistic)
    out["r"], out["p_value"] = r, float(res.pvalue)
    if n > 3:
        sigma = 1 / np.sqrt(n - 3) if method == "pearson" else np.sqrt(1.06 / (n - 3))
        zc = stats.norm.ppf(0.5 + confidence / 2)
        z = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
        out["ci_low"], out["ci_high"] = float(np.tanh(z - zc * sigma)), float(np.tanh(z + zc * sigma))
    return out


def p1401_linear_fit(
    mos: Sequence[float] | np.ndarray,
    objective: Sequence[float] | np.ndarray,
    mos_se: Sequence[float] | np.ndarray | None = None,
    outlier_factor: float = 2.0,
) -> dict[str, float]:
    """First-order mapping of an objective score to MOS, with P.1401 RMSE and outlier ratio.

    Parameters
    ----------
    mos : array-like
        Per-condition MOS (one value per condition point).
    objective : array-like
        The objective score of the same points (e.g. mean SDR, dB).
    mos_se : array-like, optional
        Standard error ``s/√n`` of each MOS; needed for the outlier ratio.
    outlier_factor : float
        A point is an outlier if ``|MOS − MOS_pred| > outlier_factor · mos_se`` (2).

    Returns
    -------
    dict
        ``n``, ``intercept``, ``slope``, ``rmse``, ``outliers`` and ``outlier_ratio``.

    Notes
    -----
    ITU-T P.1401 §7.3.2 maps the objective score with a monotonic (here first-order,
    ``MOS_pred = a + b·x``, least squares) function before comparing. §7.5.1:
    ``rmse = √( Σ (MOS_i − MOS_pred,i)² / (N − d) )`` with ``d = 2`` mapping parameters.
    §7.5.2.2: a point is an outlier if ``|Perror_i| > 2 · σ(MOS_i)/√N_i`` — twice the
    standard error, about the half-width of the 95 % confidence interval of the MOS;
    outlier ratio = outliers / N.

    Examples
    --------
    >>> out = p1401_linear_fit([1, 2, 3, 5], [0, 1, 2, 3], mos_se=[0.1] * 4)
    >>> round(out["slope"], 3), round(out["rmse"], 4), out["outliers"]
    (1.3, 0.3873, 2)
    """
    y = np.asarray(mos, dtype=float)
    x = np.asarray(objective, dtype=float)
    se = None if mos_se is None else np.asarray(mos_se, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if se is not None:
        se = se[ok]
    x, y = x[ok], y[ok]
    n = len(x)
    out = {"n": n, "intercept": np.nan, "slope": np.nan, "rmse": np.nan,
           "outliers": np.nan, "outlier_ratio": np.nan}
    if n < 3 or np.ptp(x) == 0:
        return out
    slope, intercept = np.polyfit(x, y, 1)
    err = y - (intercept + slope * x)
    out.update(intercept=float(intercept), slope=float(slope),
               rmse=float(np.sqrt(np.sum(err**2) / (n - 2))))
    if se is not None:
        outliers = int(np.sum(np.abs(err) > outlier_factor * se))
        out.update(outliers=outliers, outlier_ratio=outliers / n)
    return out


def condition_points(
    df: pd.DataFrame,
    objective: str = "sdr",
    dv: str = "score",
    by: str | Sequence[str] = ("question", "source", "condition"),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per-condition MOS (with SE and t interval) beside the mean objective score.

    Parameters
    ----------
    df : pandas.DataFrame
        Ratings with an objective-score column (NaN where unknown, e.g. anchors).
    objective : str
        The objective column (``sdr``, ``si_sdr``, ...).
    dv : str
        Ratings column.
    by : str or sequence of str
        What defines one condition point.
    confidence : float
        Coverage of the MOS interval.

    Returns
    -------
    pandas.DataFrame
        ``by`` columns, ``n``, ``mos``, ``sd``, ``se``, ``ci_half_width`` and
        ``objective`` (mean of the objective score over the point's ratings, i.e.
        weighted by how often each stimulus was rated).

    Notes
    -----
    P.1401 compares objective scores with MOS per condition, not per vote.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"question": "q", "source": "bass", "condition": ["a", "a", "b"],
    ...                   "score": [3, 5, 2], "sdr": [6.0, 6.0, 2.0]})
    >>> condition_points(d)[["mos", "objective"]].values.tolist()
    [[4.0, 6.0], [2.0, 2.0]]
    """
    by = as_list(by)
    validate_ratings(df, required=[*by, dv, objective], numeric=[dv, objective])
    g = df.loc[df[dv].notna()].groupby(by, observed=True)
    out = g.agg(n=(dv, "count"), mos=(dv, "mean"), sd=(dv, "std"),
                objective=(objective, "mean")).reset_index()
    out["se"] = out["sd"] / np.sqrt(out["n"])
    out["ci_half_width"] = t_half_width(out["sd"].to_numpy(), out["n"].to_numpy(), confidence)
    return out[[*by, "n", "mos", "sd", "se", "ci_half_width", "objective"]]


def mos_vs_objective(
    df: pd.DataFrame,
    objective: str = "sdr",
    dv: str = "score",
    condition: str = "condition",
    source: str | None = "source",
    by: str | Sequence[str] = ("question",),
    confidence: float = 0.95,
    outlier_factor: float = 2.0,
    outlier_basis: str = "se",
) -> pd.DataFrame:
    """Correlation of per-condition MOS with an objective score, per source and pooled.

    Parameters
    ----------
    df : pandas.DataFrame
        Ratings with the objective column.
    objective : str
        Objective column (``sdr`` by default, dB).
    dv : str
        Ratings column.
    condition : str
        Condition column (one point per condition).
    source : str or None
        Source column: one analysis per source plus one pooled over sources
        (labelled ``"all"``, points = every (source, condition)); ``None`` pools only.
    by : str or sequence of str
        Further grouping (one analysis per question).
    confidence : float
        Coverage of the correlation intervals.
    outlier_factor : float
        See :func:`p1401_linear_fit`.
    outlier_basis : {"se", "ci"}
        What ``outlier_factor`` multiplies: the standard error ``s/√n`` of each MOS
        (P.1401, default) or the half-width of its confidence interval (stricter).

    Returns
    -------
    pandas.DataFrame
        ``by`` columns, ``source``, ``objective``, ``n_points``, ``pearson_r``,
        ``pearson_ci_low``, ``pearson_ci_high``, ``pearson_p``, ``spearman_rho``,
        ``spearman_ci_low``, ``spearman_ci_high``, ``spearman_p``, ``intercept``,
        ``slope``, ``rmse``, ``outliers``, ``outlier_ratio``.

    Notes
    -----
    Points whose objective score is unknown (NaN, e.g. anchors without SDR) are
    left out. See :func:`correlation_ci` (Fisher z intervals) and
    :func:`p1401_linear_fit` (ITU-T P.1401 §7.5 RMSE and outlier ratio after a
    first-order mapping).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"question": "q", "source": "bass", "condition": list("abcde"),
    ...                   "score": [1, 2, 3, 4, 5], "sdr": [0., 2, 4, 6, 9]})
    >>> mos_vs_objective(d)[["source", "n_points"]].values.tolist()
    [['bass', 5], ['all', 5]]
    """
    by = as_list(by)
    check_confidence(confidence)
    if source is not None and source not in df.columns:
        source = None
    point_by = [*by, *([source] if source else []), condition]
    points = condition_points(df, objective=objective, dv=dv, by=point_by,
                              confidence=confidence)
    points = points.loc[points["objective"].notna()]
    sets = []
    if source:
        for key, part in points.groupby([*by, source], observed=True):
            sets.append((key[:-1], key[-1], part))
    for key, part in (points.groupby(by, observed=True) if by else [((), points)]):
        sets.append((key if isinstance(key, tuple) else (key,), POOLED, part))
    if outlier_basis not in ("se", "ci"):
        raise ValueError(f"outlier_basis must be 'se' or 'ci', got {outlier_basis!r}")
    spread = "se" if outlier_basis == "se" else "ci_half_width"
    rows = []
    for key, src, part in sets:
        pear = correlation_ci(part["objective"], part["mos"], "pearson", confidence)
        spear = correlation_ci(part["objective"], part["mos"], "spearman", confidence)
        fit = p1401_linear_fit(part["mos"], part["objective"], part[spread], outlier_factor)
        rows.append({
            **dict(zip(by, key, strict=True)), "source": src, "objective": objective,
            "n_points": len(part),
            "pearson_r": pear["r"], "pearson_ci_low": pear["ci_low"],
            "pearson_ci_high": pear["ci_high"], "pearson_p": pear["p_value"],
            "spearman_rho": spear["r"], "spearman_ci_low": spear["ci_low"],
            "spearman_ci_high": spear["ci_high"], "spearman_p": spear["p_value"],
            "intercept": fit["intercept"], "slope": fit["slope"], "rmse": fit["rmse"],
            "outliers": fit["outliers"], "outlier_ratio": fit["outlier_ratio"],
        })
    return pd.DataFrame(rows)
