"""Confidence intervals of a mean opinion score: Student t and a two-way cluster bootstrap."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse, stats

from mosplatform.analysis.validate import as_list, check_confidence, validate_ratings

CI_METHODS = ("t", "bootstrap")


def t_half_width(
    sd: np.ndarray | float, n: np.ndarray | float, confidence: float = 0.95
) -> np.ndarray | float:
    """Half-width of the Student-t confidence interval of a mean.

    Parameters
    ----------
    sd : float or array
        Sample standard deviation ``s`` (ddof = 1).
    n : float or array
        Number of observations.
    confidence : float
        Coverage, 0.95 by default.

    Returns
    -------
    float or numpy.ndarray
        ``t(1 - α/2, n - 1) · s / √n``; NaN where ``n < 2``.

    Notes
    -----
    ITU-T P.800 / P.1401 practice: ``MOS ± t(1-α/2, n-1) · s / √n`` with α = 1 - confidence.

    Examples
    --------
    >>> round(float(t_half_width(1.0, 4)), 4)   # t(0.975, 3) = 3.1824
    1.5912
    """
    check_confidence(confidence)
    sd = np.asarray(sd, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(n >= 2, n - 1, np.nan)
        half = stats.t.ppf(0.5 + confidence / 2, dof) * sd / np.sqrt(n)
    return half if half.ndim else float(half)


def t_ci(
    df: pd.DataFrame,
    dv: str = "score",
    by: str | Sequence[str] = ("condition",),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean with a Student-t confidence interval for every group.

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format table, one row per rating.
    dv : str
        Column with the ratings.
    by : str or sequence of str
        Grouping columns.
    confidence : float
        Coverage of the interval.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns, ``n``, ``mean``, ``sd``, ``se``,
        ``ci_low``, ``ci_high``, ``ci_half_width`` and ``ci_method`` (``"t"``).

    Notes
    -----
    ``mean ± t(1-α/2, n-1) · s/√n`` (ITU-T P.800 §B.4 / P.1401 §7.4). Votes are treated
    as independent; :func:`bootstrap_ci` accounts for listener and item clustering.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"condition": ["a"] * 4, "score": [2, 3, 4, 5]})
    >>> t_ci(d)[["mean", "ci_half_width"]].round(4).values.tolist()
    [[3.5, 2.0543]]
    """
    by = as_list(by)
    validate_ratings(df, required=[*by, dv], numeric=[dv])
    check_confidence(confidence)
    g = df.groupby(by, sort=True, observed=True)[dv]
    out = g.agg(n="count", mean="mean", sd="std").reset_index()
    out["se"] = out["sd"] / np.sqrt(out["n"])
    half = t_half_width(out["sd"].to_numpy(), out["n"].to_numpy(), confidence)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    out["ci_half_width"] = half
    out["ci_method"] = "t"
    return out


def _resample_counts(
    rng: np.random.Generator, n_units: int, n_boot: int
) -> np.ndarray:
    """``n_boot × n_units`` multinomial counts: how often each unit is drawn (with replacement)."""
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    offsets = (np.arange(n_boot) * n_units)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_boot * n_units).reshape(
        n_boot, n_units
    ).astype(np.float64)


def bootstrap_ci(
    df: pd.DataFrame,
    dv: str = "score",
    by: str | Sequence[str] = ("condition",),
    subject: str | None = "participant",
    item: str | None = "item",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean with a percentile bootstrap interval that resamples listeners and items.

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format table, one row per rating.
    dv : str
        Column with the ratings.
    by : str or sequence of str
        Grouping columns; one interval per group.
    subject : str or None
        Listener column, resampled as a cluster. ``None`` does not resample listeners.
    item : str or None
        Item column, resampled as a second, crossed cluster. ``None`` does not
        resample items. With both ``None`` single votes are resampled.
    confidence : float
        Coverage of the interval.
    n_boot : int
        Number of bootstrap replicates.
    seed : int
        Seed of the random generator (results are reproducible).

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns, ``n``, ``mean``, ``sd``, ``se`` (the
        bootstrap standard deviation), ``ci_low``, ``ci_high``, ``ci_half_width`` (half
        the interval width) and ``ci_method`` (``"bootstrap"``).

    Notes
    -----
    Votes of one listener (and of one item) are correlated, so resampling single
    votes understates the uncertainty. Each replicate draws listeners and items with
    replacement, independently (the two-way "pigeonhole" bootstrap, Owen 2007,
    *Ann. Appl. Stat.* 1(2)); a vote by listener *l* on item *i* then counts
    ``w_l · w_i`` times, where ``w`` are the multinomial draw counts, and the replicate
    mean is ``Σ w_l w_i y / Σ w_l w_i``. One draw is shared by all groups of a
    replicate, as in the design where one listener rates several conditions. The
    interval is the percentile interval ``[q(α/2), q(1-α/2)]`` of the replicate means
    (conservative: with crossed listener and item effects the two-way bootstrap
    counts the residual variance more than once, Owen 2007 §3)
    (ITU-T P.1401 §7.4 suggests accounting for the structure of the votes). The
    computation is vectorised over replicates: per group it is one sparse product
    ``W_item · Sᵀ`` with the listener × item table of vote sums ``S``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"participant": np.repeat(np.arange(20), 5),
    ...                   "item": np.tile(np.arange(5), 20), "condition": "a",
    ...                   "score": rng.integers(1, 6, 100)})
    >>> r = bootstrap_ci(d, n_boot=500)
    >>> bool(r["ci_low"].iloc[0] < r["mean"].iloc[0] < r["ci_high"].iloc[0])
    True
    """
    by = as_list(by)
    clusters = [c for c in (subject, item) if c is not None]
    validate_ratings(df, required=[*by, dv, *clusters], numeric=[dv])
    check_confidence(confidence)
    if n_boot < 10:
        raise ValueError(f"n_boot must be at least 10, got {n_boot}")
    data = df.loc[df[dv].notna(), [*by, dv, *clusters]]
    rng = np.random.default_rng(seed)
    # Unit codes over the whole table, so one draw serves every group of a replicate.
    if subject is not None:
        subj_codes = pd.factorize(data[subject], sort=True)[0]
    else:
        subj_codes = np.arange(len(data))
    item_codes = (
        pd.factorize(data[item], sort=True)[0] if item is not None
        else np.zeros(len(data), dtype=np.int64)
    )
    n_subj = int(subj_codes.max()) + 1 if len(data) else 0
    n_item = int(item_codes.max()) + 1 if len(data) else 0
    y = data[dv].to_numpy(dtype=float)
    grouped = (
        data.groupby(by, sort=True, observed=True).indices if by
        else {(): np.arange(len(data))}
    )
    groups = []
    for key, idx in grouped.items():
        s_codes, s_local = np.unique(subj_codes[idx], return_inverse=True)
        i_codes, i_local = np.unique(item_codes[idx], return_inverse=True)
        shape = (len(s_codes), len(i_codes))
        # Listener × item tables of vote sums and vote counts (sparse).
        sums = sparse.csr_matrix((y[idx], (s_local, i_local)), shape=shape)
        counts = sparse.csr_matrix((np.ones(len(idx)), (s_local, i_local)), shape=shape)
        groups.append((key, idx, s_codes, i_codes, sums, counts, []))
    # Replicates in chunks bound the memory (chunk × listeners weights at a time).
    chunk = max(1, min(n_boot, 2_000_000 // max(n_subj + n_item, 1)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        w_subj = _resample_counts(rng, n_subj, b)
        w_item = _resample_counts(rng, n_item, b) if item is not None else np.ones((b, 1))
        for _key, _idx, s_codes, i_codes, sums, counts, reps in groups:
            wi = w_item[:, i_codes].T  # items × b
            ws = w_subj[:, s_codes].T  # listeners × b
            num = np.einsum("sb,sb->b", sums @ wi, ws)
            den = np.einsum("sb,sb->b", counts @ wi, ws)
            with np.errstate(invalid="ignore", divide="ignore"):
                reps.append(num / den)
        done += b
    alpha = 1 - confidence
    rows = []
    for key, idx, _s, _i, _sums, _counts, rep_chunks in groups:
        reps = np.concatenate(rep_chunks)
        reps = reps[np.isfinite(reps)]
        values = y[idx]
        if len(reps) >= 2:
            lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
            se = float(reps.std(ddof=1))
        else:
            lo = hi = se = np.nan
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": len(values),
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                "se": se,
                "ci_low": float(lo),
                "ci_high": float(hi),
                "ci_half_width": float(hi - lo) / 2,
                "ci_method": "bootstrap",
            }
        )
    return pd.DataFrame(rows)


def mean_ci(
    df: pd.DataFrame,
    dv: str = "score",
    by: str | Sequence[str] = ("condition",),
    subject: str | None = "participant",
    item: str | None = "item",
    confidence: float = 0.95,
    method: str = "t",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean with a confidence interval by the chosen method (``"t"`` or ``"bootstrap"``).

    Parameters
    ----------
    df, dv, by, confidence
        As in :func:`t_ci`.
    subject, item, n_boot, seed
        As in :func:`bootstrap_ci` (ignored for ``method="t"``).
    method : {"t", "bootstrap"}
        Which interval.

    Returns
    -------
    pandas.DataFrame
        The output of :func:`t_ci` or :func:`bootstrap_ci`; column ``ci_method`` says which.

    Notes
    -----
    See :func:`t_ci` (P.800/P.1401 Student t) and :func:`bootstrap_ci` (two-way
    cluster bootstrap).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"condition": ["a"] * 4, "score": [2, 3, 4, 5]})
    >>> mean_ci(d, method="t")["ci_method"].iloc[0]
    't'
    """
    if method == "t":
        return t_ci(df, dv=dv, by=by, confidence=confidence)
    if method == "bootstrap":
        return bootstrap_ci(
            df, dv=dv, by=by, subject=subject, item=item, confidence=confidence,
            n_boot=n_boot, seed=seed,
        )
    raise ValueError(f"ci method must be one of {CI_METHODS}, got {method!r}")
