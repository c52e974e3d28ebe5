"""Vote distributions and the vote-weighted mean opinion score, per condition and source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mosplatform.analysis.ci import mean_ci
from mosplatform.analysis.validate import as_list, check_confidence, validate_ratings

POOLED = "all"
"""Label of the rows pooled over sources (or any pooled column)."""


def vote_distribution(
    df: pd.DataFrame,
    dv: str = "score",
    by: str | Sequence[str] = ("question", "condition", "source"),
    categories: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Count and share of votes in every category, per group.

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format ratings, one row per vote.
    dv : str
        Column with the votes (category scores, e.g. 1..5).
    by : str or sequence of str
        Grouping columns (columns missing from ``df`` are an error).
    categories : sequence of float, optional
        Every category of the scale, so that empty categories appear with a zero
        count; default: the values seen in ``df[dv]``.

    Returns
    -------
    pandas.DataFrame
        Long format: the ``by`` columns, ``category``, ``count``, ``n`` (votes in the
        group) and ``share`` = ``count / n``.

    Notes
    -----
    ``p_k = n_k / n`` for category ``k``; the vote-weighted MOS is ``Σ_k k · p_k``
    (ITU-T P.800 Annex B, the mean of the votes).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"condition": ["a"] * 4, "score": [5, 4, 4, 2]})
    >>> vote_distribution(d, by="condition", categories=[1, 2, 3, 4, 5])["share"].tolist()
    [0.0, 0.25, 0.0, 0.5, 0.25]
    """
    by = as_list(by)
    validate_ratings(df, required=[*by, dv], numeric=[dv])
    data = df.loc[df[dv].notna(), [*by, dv]]
    cats = (
        np.sort(np.asarray(categories, dtype=float)) if categories is not None
        else np.sort(data[dv].astype(float).unique())
    )
    off_scale = ~data[dv].astype(float).isin(cats)
    if off_scale.any():
        raise ValueError(
            f"column {dv!r} has votes outside the categories {cats.tolist()}: "
            f"{sorted(data.loc[off_scale, dv].unique().tolist())[:5]}"
        )
    counts = (
        data.assign(category=data[dv].astype(float))
        .groupby([*by, "category"], observed=True).size()
        .unstack("category", fill_value=0)
        .reindex(columns=cats, fill_value=0)
    )
    n = counts.sum(axis=1)
    long = counts.stack().rename("count").reset_index()
    long["n"] = long.set_index(by).index.map(n) if by else n.iloc[0]
    long["share"] = long["count"] / long["n"]
    return long


def vote_weighted_mos(
    distribution: pd.DataFrame, by: str | Sequence[str] = ("question", "condition", "source")
) -> pd.DataFrame:
    """The vote-weighted MOS ``Σ_k k · p_k`` from a vote distribution.

    Parameters
    ----------
    distribution : pandas.DataFrame
        Output of :func:`vote_distribution` (columns ``category``, ``share``, ``n``).
    by : str or sequence of str
        The grouping columns of ``distribution``.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, ``n`` and ``mos``.

    Notes
    -----
    ``MOS = Σ_k k · p_k`` with ``p_k`` the share of votes in category ``k``; equal to
    the arithmetic mean of the votes (ITU-T P.800 Annex B).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"condition": ["a"] * 4, "score": [5, 4, 4, 2]})
    >>> vote_weighted_mos(vote_distribution(d, by="condition"), by="condition")["mos"].tolist()
    [3.75]
    """
    by = as_list(by)
    validate_ratings(
        distribution, required=[*by, "category", "share", "n"],
        numeric=["category", "share"], name="vote distribution",
    )
    weighted = distribution.assign(_w=distribution["category"] * distribution["share"])
    out = weighted.groupby(by, observed=True).agg(n=("n", "first"), mos=("_w", "sum"))
    return out.reset_index()


def pool_over(df: pd.DataFrame, column: str, label: str = POOLED) -> pd.DataFrame:
    """Copy of ``df`` with ``column`` set to ``label`` (to compute pooled statistics).

    Parameters
    ----------
    df : pandas.DataFrame
        Any table with ``column``.
    column : str
        The column to pool over (e.g. ``"source"``).
    label : str
        The value given to the pooled rows.

    Returns
    -------
    pandas.DataFrame
        The copy.

    Notes
    -----
    Statistics of the copy grouped by ``column`` are those pooled over it (the study's
    "all sources" column).

    Examples
    --------
    >>> import pandas as pd
    >>> pool_over(pd.DataFrame({"source": ["bass", "drums"]}), "source")["source"].tolist()
    ['all', 'all']
    """
    validate_ratings(df, required=[column], numeric=[])
    return df.assign(**{column: label})


def mos_table(
    df: pd.DataFrame,
    dv: str = "score",
    by: str | Sequence[str] = ("question", "condition", "source"),
    subject: str = "participant",
    item: str | None = "item",
    confidence: float = 0.95,
    method: str = "t",
    pooled: str | None = "source",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """MOS with confidence interval per group, plus the rows pooled over one column.

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format ratings (regular items only; see :mod:`.screening`).
    dv : str
        Column with the votes.
    by : str or sequence of str
        Grouping columns. A column of ``by`` that ``df`` lacks is an error, except
        ``pooled``, which is then simply left out.
    subject : str
        Listener column (counted, and a bootstrap cluster).
    item : str or None
        Item column (counted, and a bootstrap cluster).
    confidence : float
        Coverage of the interval.
    method : {"t", "bootstrap"}
        Interval method; see :func:`~mosplatform.analysis.ci.mean_ci`.
    pooled : str or None
        A column of ``by`` over which rows pooled over all its values are appended,
        labelled ``"all"`` (the study reports MOS per source and over all sources).
    n_boot, seed : int
        Bootstrap replicates and seed.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, ``n`` (votes), ``n_listeners``, ``mos``, ``sd``, ``se``,
        ``ci_low``, ``ci_high``, ``ci_half_width``, ``ci_method`` and
        ``confidence``.

    Notes
    -----
    ``MOS = Σ_k k · p_k = (1/n) Σ_j v_j`` (ITU-T P.800 Annex B); interval ``MOS ± t(1-α/2,
    n-1) · s/√n`` or the listener × item bootstrap.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"participant": ["p1", "p2", "p3", "p4"], "item": ["i1"] * 4,
    ...                   "question": "q", "condition": "a", "source": ["bass", "bass", "drums",
    ...                   "drums"], "score": [5, 3, 4, 4]})
    >>> mos_table(d)[["source", "mos"]].values.tolist()
    [['bass', 4.0], ['drums', 4.0], ['all', 4.0]]
    """
    by = as_list(by)
    check_confidence(confidence)
    if pooled is not None and pooled in by and pooled not in df.columns:
        by = [c for c in by if c != pooled]
        pooled = None
    validate_ratings(df, required=[*by, dv, subject], numeric=[dv])
    if item is not None and item not in df.columns:
        item = None
    data = df.loc[df[dv].notna()]
    parts = [data]
    if pooled is not None and pooled in by:
        parts.append(pool_over(data, pooled))
    frames = []
    for part in parts:
        ci = mean_ci(
            part, dv=dv, by=by, subject=subject, item=item, confidence=confidence,
            method=method, n_boot=n_boot, seed=seed,
        )
        listeners = part.groupby(by, observed=True)[subject].nunique().rename("n_listeners")
        ci = ci.merge(listeners.reset_index(), on=by, how="left")
        frames.append(ci)
    out = pd.concat(frames, ignore_index=True).rename(columns={"mean": "mos"})
    out["confidence"] = confidence
    cols = [*by, "n", "n_listeners", "mos", "sd", "se", "ci_low", "ci_high", "ci_half_width",
            "ci_method", "confidence"]
    return out[cols]
