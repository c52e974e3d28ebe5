"""How many listeners (votes) a target confidence-interval half-width needs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mosplatform.analysis.validate import as_list, check_confidence, validate_ratings


def n_for_half_width(sd: float, half_width: float, confidence: float = 0.95) -> int:
    """Smallest ``n ≥ 2`` with ``t(1-α/2, n-1) · s/√n ≤ h``.

    Parameters
    ----------
    sd : float
        Standard deviation of the votes ``s``.
    half_width : float
        Target half-width ``h`` of the interval (same unit as the votes).
    confidence : float
        Coverage of the interval.

    Returns
    -------
    int
        The number of votes needed.

    Notes
    -----
    Start from the normal approximation ``n₀ = ⌈(z s/h)²⌉`` (a lower bound, as
    ``t > z``) and step up until the Student-t condition holds (ITU-T P.1401 §7.4
    interval ``t · s/√n``).

    Examples
    --------
    >>> n_for_half_width(1.0, 0.5)   # t(0.975, 17)/√18 = 0.4973
    18
    """
    check_confidence(confidence)
    if not half_width > 0:
        raise ValueError(f"half_width must be positive, got {half_width!r}")
    if not np.isfinite(sd) or sd < 0:
        raise ValueError(f"sd must be a non-negative number, got {sd!r}")
    if sd == 0:
        return 2
    q = 0.5 + confidence / 2
    n = max(2, math.ceil((stats.norm.ppf(q) * sd / half_width) ** 2))
    while stats.t.ppf(q, n - 1) * sd / math.sqrt(n) > half_width:
        n += 1
    return n


def listeners_needed(
    df: pd.DataFrame,
    target_half_width: float,
    dv: str = "score",
    by: str | Sequence[str] = ("question", "condition"),
    subject: str = "participant",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Votes and listeners needed per group to reach a target CI half-width.

    Parameters
    ----------
    df : pandas.DataFrame
        Ratings collected so far.
    target_half_width : float
        Wanted half-width of the Student-t interval of the MOS.
    dv, by, subject : str
        Column names.
    confidence : float
        Coverage of the interval.

    Returns
    -------
    pandas.DataFrame
        ``by`` columns, ``n_votes``, ``n_listeners``, ``sd``, ``half_width`` (now),
        ``target_half_width``, ``votes_needed``, ``votes_per_listener`` (observed
        average), ``listeners_needed`` (``⌈votes_needed / votes_per_listener⌉``) and
        ``additional_listeners`` (never negative).

    Notes
    -----
    Uses the observed standard deviation as the planning value and
    :func:`n_for_half_width`. Converting votes to listeners assumes listeners keep
    contributing as many votes per group as so far.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"participant": list("abcd"), "condition": "x", "score": [1, 2, 3, 4]})
    >>> int(listeners_needed(d, 0.5, by="condition")["listeners_needed"].iloc[0])
    29
    """
    by = as_list(by)
    check_confidence(confidence)
    validate_ratings(df, required=[*by, dv, subject], numeric=[dv])
    g = df.loc[df[dv].notna()].groupby(by, observed=True)
    out = g.agg(n_votes=(dv, "count"), n_listeners=(subject, "nunique"),
                sd=(dv, "std")).reset_index()
    q = 0.5 + confidence / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out["half_width"] = (stats.t.ppf(q, out["n_votes"] - 1) * out["sd"]
                             / np.sqrt(out["n_votes"]))
    out["target_half_width"] = target_half_width
    out["votes_needed"] = [
        n_for_half_width(s, target_half_width, confidence) if np.isfinite(s) else np.nan
        for s in out["sd"]
    ]
    out["votes_per_listener"] = out["n_votes"] / out["n_listeners"]
    out["listeners_needed"] = np.ceil(out["votes_needed"] / out["votes_per_listener"])
    out["additional_listeners"] = (out["listeners_needed"] - out["n_listeners"]).clip(lower=0)
    return out
