"""MUSHRA (ITU-R BS.1534-3) analysis: post-screening, descriptive statistics, models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mosplatform.analysis.ci import t_half_width
from mosplatform.analysis.validate import as_list, check_confidence, validate_ratings

_EPS = 1e-9


def mushra_post_screening(
    df: pd.DataFrame,
    dv: str = "score",
    subject: str = "participant",
    item: str = "item",
    role: str = "role",
    question: str | None = "question",
    hidden_reference_threshold: float = 90.0,
    mid_anchor_threshold: float = 90.0,
    max_item_fraction: float = 0.15,
    assessor_fraction: float = 0.25,
) -> pd.DataFrame:
    """BS.1534-3 post-screening of assessors: hidden reference and mid anchor rules.

    Parameters
    ----------
    df : pandas.DataFrame
        MUSHRA ratings with a ``role`` column (``hidden_reference``, ``mid_anchor``, ...).
    dv : str
        Ratings column (0..100).
    subject : str
        Assessor column.
    item : str
        Item (trial) column.
    role : str
        Condition-role column.
    question : str or None
        Question column; a trial is an (item, question) pair when given.
    hidden_reference_threshold : float
        A hidden-reference rating *below* this value is a miss (90).
    mid_anchor_threshold : float
        A mid-anchor rating *above* this value is a miss (90).
    max_item_fraction : float
        Exclude an assessor whose misses exceed this fraction of their trials (0.15).
    assessor_fraction : float
        A trial where *more than* this fraction of assessors rate the mid anchor
        above the threshold does not count against anyone (0.25).

    Returns
    -------
    pandas.DataFrame
        One row per assessor: ``subject``, ``n_hidden_reference`` (trials with a
        hidden reference), ``n_hidden_reference_low``, ``hidden_reference_fraction``,
        ``n_mid_anchor``, ``n_mid_anchor_high`` (misses on counted trials),
        ``mid_anchor_fraction``, ``excluded`` and ``reason``.

    Notes
    -----
    ITU-R BS.1534-3 §4.1.2: an assessor is excluded if they rate the hidden reference
    below 90 for more than 15 % of the test items, or the mid-range anchor above 90
    for more than 15 % of the test items — a mid-anchor rating above 90 on an item
    does not count if more than 25 % of the assessors do so for that item (the anchor
    is then too good on that item). "More than" is strict: 3 misses out of 20
    (exactly 15 %) keep the assessor. Fractions use each assessor's own number of
    trials with that condition. Assessors are never dropped for a single bad rating
    (unlike some tools).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = [("p1", f"i{k}", "hidden_reference", 100 if k else 50) for k in range(5)]
    >>> d = pd.DataFrame(rows, columns=["participant", "item", "role", "score"])
    >>> mushra_post_screening(d, question=None)["excluded"].tolist()   # 1/5 = 20 % > 15 %
    [True]
    """
    question = question if question is not None and question in df.columns else None
    trial = [item] if question is None else [item, question]
    validate_ratings(df, required=[dv, subject, role, *trial], numeric=[dv])
    data = df.loc[df[dv].notna(), [subject, role, dv, *trial]]
    subjects = pd.Index(sorted(data[subject].unique()), name=subject)

    hr = data.loc[data[role] == "hidden_reference"]
    # One decision per trial: several hidden-reference rows in a trial are averaged.
    hr = hr.groupby([subject, *trial], observed=True)[dv].mean().reset_index()
    hr_low = hr[dv] < hidden_reference_threshold
    n_hr = hr.groupby(subject).size().reindex(subjects, fill_value=0)
    n_hr_low = hr_low.groupby(hr[subject]).sum().reindex(subjects, fill_value=0)

    mid = data.loc[data[role] == "mid_anchor"]
    mid = mid.groupby([subject, *trial], observed=True)[dv].mean().reset_index()
    mid_high = mid[dv] > mid_anchor_threshold
    share_high = mid_high.groupby([mid[c] for c in trial]).transform("mean")
    counted = mid_high & ~(share_high > assessor_fraction + _EPS)
    n_mid = mid.groupby(subject).size().reindex(subjects, fill_value=0)
    n_mid_high = counted.groupby(mid[subject]).sum().reindex(subjects, fill_value=0)

    out = pd.DataFrame({
        "n_hidden_reference": n_hr.astype(int),
        "n_hidden_reference_low": n_hr_low.astype(int),
        "n_mid_anchor": n_mid.astype(int),
        "n_mid_anchor_high": n_mid_high.astype(int),
    }, index=subjects)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["hidden_reference_fraction"] = out["n_hidden_reference_low"] / out["n_hidden_reference"]
        out["mid_anchor_fraction"] = out["n_mid_anchor_high"] / out["n_mid_anchor"]
    # Integer comparison avoids 3/20 > 0.15 surprises in floating point.
    hr_fail = out["n_hidden_reference_low"] > max_item_fraction * out["n_hidden_reference"] + _EPS
    mid_fail = out["n_mid_anchor_high"] > max_item_fraction * out["n_mid_anchor"] + _EPS
    reasons = []
    for s in subjects:
        why = []
        if hr_fail[s]:
            why.append(
                f"hidden reference < {hidden_reference_threshold:g} on "
                f"{out.at[s, 'n_hidden_reference_low']}/{out.at[s, 'n_hidden_reference']} "
                f"items (> {max_item_fraction:.0%})"
            )
        if mid_fail[s]:
            why.append(
                f"mid anchor > {mid_anchor_threshold:g} on {out.at[s, 'n_mid_anchor_high']}/"
                f"{out.at[s, 'n_mid_anchor']} items (> {max_item_fraction:.0%})"
            )
        reasons.append("; ".join(why))
    out["excluded"] = (hr_fail | mid_fail).to_numpy()
    out["reason"] = reasons
    out = out.reset_index()
    return out[[subject, "n_hidden_reference", "n_hidden_reference_low",
                "hidden_reference_fraction", "n_mid_anchor", "n_mid_anchor_high",
                "mid_anchor_fraction", "excluded", "reason"]]


def mushra_summary(
    df: pd.DataFrame,
    dv: str = "score",
    by: str | Sequence[str] = ("question", "condition"),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Median, quartiles, IQR, and mean with a Student-t interval per condition.

    Parameters
    ----------
    df : pandas.DataFrame
        MUSHRA ratings (after post-screening).
    dv : str
        Ratings column.
    by : str or sequence of str
        Grouping columns.
    confidence : float
        Coverage of the interval of the mean.

    Returns
    -------
    pandas.DataFrame
        ``by`` columns, ``n``, ``median``, ``q1``, ``q3``, ``iqr``, ``mean``, ``sd``,
        ``ci_low``, ``ci_high``, ``ci_half_width``.

    Notes
    -----
    ITU-R BS.1534-3 §9.2–9.3: report the median with the interquartile range
    ``IQR = Q3 − Q1`` (quartiles by linear interpolation, numpy's default) and box
    plots, and the mean with its 95 % confidence interval
    ``mean ± t(1-α/2, n-1) · s/√n``.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"condition": "a", "score": [10, 20, 30, 40, 50]})
    >>> mushra_summary(d, by="condition")[["median", "iqr"]].values.tolist()
    [[30.0, 20.0]]
    """
    by = as_list(by)
    check_confidence(confidence)
    validate_ratings(df, required=[*by, dv], numeric=[dv])
    g = df.loc[df[dv].notna()].groupby(by, observed=True)[dv]
    out = g.agg(n="count", median="median", mean="mean", sd="std")
    out["q1"] = g.quantile(0.25)
    out["q3"] = g.quantile(0.75)
    out = out.reset_index()
    out["iqr"] = out["q3"] - out["q1"]
    half = t_half_width(out["sd"].to_numpy(), out["n"].to_numpy(), confidence)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    out["ci_half_width"] = half
    return out[[*by, "n", "median", "q1", "q3", "iqr", "mean", "sd", "ci_low", "ci_high",
                "ci_half_width"]]


def mixed_model(
    df: pd.DataFrame,
    dv: str = "score",
    fixed: str = "condition",
    subject: str = "participant",
    item: str | None = "item",
    by: str | Sequence[str] | None = ("question",),
    confidence: float = 0.95,
    crossed: bool = False,
) -> pd.DataFrame:
    """Linear mixed model ``dv ~ condition`` with a listener random intercept (and item).

    Parameters
    ----------
    df : pandas.DataFrame
        Ratings.
    dv : str
        Ratings column.
    fixed : str
        Fixed-effect factor (treatment coded against its first level, sorted).
    subject : str
        Listener column: random intercept (the grouping of :func:`statsmodels.formula.api.mixedlm`).
    item : str or None
        Item column: a variance component (random intercept per item, nested in
        listener as statsmodels' variance components are); ``None`` leaves it out.
    by : str or sequence of str, optional
        One model per group (e.g. per question).
    confidence : float
        Coverage of the coefficient intervals.
    crossed : bool
        If true, listener and item are crossed random intercepts (one group holding
        all data, both as variance components): right for designs where every
        listener hears the same items, but slower on large tables.

    Returns
    -------
    pandas.DataFrame
        One row per group and term: ``by`` columns, ``term``, ``estimate``, ``se``,
        ``z``, ``p_value``, ``ci_low``, ``ci_high``, ``converged``.

    Notes
    -----
    ``y_lij = β_0 + β_c(j) + u_l + v_li + ε_lij`` with ``u_l ~ N(0, σ_u²)``,
    ``v_li ~ N(0, σ_v²)`` fitted by REML (statsmodels ``MixedLM``). Wald intervals
    ``β ± z(1-α/2)·se``. BS.1534-3 asks for an analysis that respects the
    within-subject design; the mixed model does, with unbalanced data too.
    statsmodels is imported here only, as it is an optional dependency.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame({"participant": np.repeat(np.arange(20), 6),
    ...                   "item": np.tile([0, 0, 0, 1, 1, 1], 20),
    ...                   "condition": np.tile(["a", "b", "c"], 40)})
    >>> d["score"] = d["condition"].map({"a": 50, "b": 60, "c": 70}) + rng.normal(0, 5, 120)
    >>> m = mixed_model(d, by=None)
    >>> m["term"].tolist()
    ['Intercept', 'condition[T.b]', 'condition[T.c]']
    """
    try:
        import statsmodels.formula.api as smf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "mixed_model needs statsmodels: pip install statsmodels"
        ) from exc
    import warnings

    from scipy import stats

    by = as_list(by)
    check_confidence(confidence)
    item = item if item is not None and item in df.columns else None
    validate_ratings(df, required=[*by, dv, fixed, subject, *([item] if item else [])],
                     numeric=[dv])
    z = stats.norm.ppf(0.5 + confidence / 2)
    data = df.loc[df[dv].notna()].copy()
    data["_y"] = data[dv].astype(float)
    data["_cond"] = data[fixed].astype(str)
    groups = data.groupby(by, observed=True) if by else [((), data)]
    frames = []
    for key, part in groups:
        if crossed:
            vc = {"listener": f"0 + C({subject})"}
            if item:
                vc["item"] = f"0 + C({item})"
            model = smf.mixedlm("_y ~ _cond", part, groups=np.zeros(len(part)),
                                vc_formula=vc, re_formula="0")
        else:
            vc = {"item": f"0 + C({item})"} if item else None
            model = smf.mixedlm("_y ~ _cond", part, groups=part[subject], vc_formula=vc)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = model.fit(reml=True)
        names = [n for n in fit.fe_params.index]
        est = fit.fe_params
        se = fit.bse_fe
        table = pd.DataFrame({
            "term": [n.replace("_cond", fixed) for n in names],
            "estimate": est.to_numpy(),
            "se": se.to_numpy(),
        })
        table["z"] = table["estimate"] / table["se"]
        table["p_value"] = 2 * stats.norm.sf(np.abs(table["z"]))
        table["ci_low"] = table["estimate"] - z * table["se"]
        table["ci_high"] = table["estimate"] + z * table["se"]
        table["converged"] = bool(fit.converged)
        key = key if isinstance(key, tuple) else (key,)
        for col, value in zip(by, key, strict=True):
            table[col] = value
        frames.append(table)
    cols = [*by, "term", "estimate", "se", "z", "p_value", "ci_low", "ci_high", "converged"]
    return pd.concat(frames, ignore_index=True)[cols]
