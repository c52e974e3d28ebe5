"""ITU-T P.808-style data cleaning: gold and trapping items, unplayed clips, flat raters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mosplatform.analysis.validate import validate_ratings

EXCLUSION_COLUMNS = ("participant", "rule", "detail", "scope", "item", "question")


def p808_screening(
    df: pd.DataFrame,
    dv: str = "score",
    subject: str = "participant",
    item: str = "item",
    question: str = "question",
    item_kind: str = "item_kind",
    expected: str = "expected_score",
    play_count: str = "play_count",
    heard_fraction: str = "heard_fraction",
    excluded: str = "excluded",
    gold_tolerance: float = 1.0,
    min_heard_fraction: float = 0.8,
    min_ratings_for_variance: int = 5,
    min_variance: float = 1e-9,
    keep_quality_items: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean a ratings table and list every exclusion with its rule and reason.

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format ratings. Optional columns switch on their rule: ``item_kind`` and
        ``expected_score`` (gold/trap), ``play_count``/``heard_fraction`` (unplayed),
        ``excluded`` (and ``exclusion_reason``, set by an administrator).
    dv, subject, item, question : str
        Column names.
    item_kind, expected, play_count, heard_fraction, excluded : str
        Optional column names; a rule whose column is absent is skipped.
    gold_tolerance : float
        A gold answer fails if ``|answer − expected| > gold_tolerance`` (1).
    min_heard_fraction : float
        A clip counts as unplayed if ``play_count == 0`` or ``heard_fraction`` is
        below this value (the test definition's ``must_listen_fraction``, 0.8).
    min_ratings_for_variance : int
        The zero-variance rule needs at least this many regular ratings per question.
    min_variance : float
        A participant whose regular ratings on one question have variance ``<=`` this
        value is excluded (every clip got the same answer).
    keep_quality_items : bool
        Keep gold and trap rows in the cleaned table (they never count in a MOS).

    Returns
    -------
    cleaned : pandas.DataFrame
        Ratings of non-excluded participants, regular items only (unless
        ``keep_quality_items``), unplayed ratings removed.
    exclusions : pandas.DataFrame
        One row per exclusion: ``participant``, ``rule`` (``admin``, ``gold``,
        ``trap``, ``zero_variance``, ``unplayed``), ``detail``, ``scope``
        (``participant``: all their ratings dropped; ``rating``: only that rating),
        ``item`` and ``question``.

    Notes
    -----
    ITU-T P.808 (06/2021) §6.3 and Annex: trapping questions ask for a given answer
    (a wrong answer rejects the session); gold-standard clips have a known answer and
    pass within ±1 category; every clip must be played to the end; sessions whose
    ratings do not vary are unreliable. Participant-level rules: admin, gold, trap,
    zero variance (per question, on regular items). Rating-level rule: unplayed.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"participant": ["a", "a", "b", "b"], "item": ["g", "x", "g", "x"],
    ...                   "question": "q", "condition": "c", "score": [5, 3, 2, 4],
    ...                   "item_kind": ["gold", "regular"] * 2, "expected_score": [5, None] * 2})
    >>> cleaned, excl = p808_screening(d)
    >>> cleaned["participant"].tolist(), excl["rule"].tolist()
    (['a'], ['gold'])
    """
    validate_ratings(df, required=[subject, item, question, dv], numeric=[dv])
    data = df.copy()
    kinds = (data[item_kind].astype(str).str.lower() if item_kind in data.columns
             else pd.Series("regular", index=data.index))
    frames: list[pd.DataFrame] = []

    def add(mask: pd.Series, rule: str, scope: str, detail) -> None:
        """Record the rows of ``mask``; ``detail(rows)`` words the reason (only for them)."""
        mask = mask.to_numpy(dtype=bool)
        if not mask.any():
            return
        rows = data.loc[mask]
        frames.append(pd.DataFrame({
            "participant": rows[subject].to_numpy(), "rule": rule,
            "detail": np.asarray(detail(rows), dtype=object), "scope": scope,
            "item": rows[item].to_numpy(), "question": rows[question].to_numpy(),
        }))

    if excluded in data.columns:
        flags = data[excluded]
        if not pd.api.types.is_bool_dtype(flags):
            flags = flags.astype(str).str.strip().str.lower().isin(["true", "1", "yes", "1.0"])
        flags = flags.fillna(False).astype(bool)
        # One row per participant, at their first flagged rating.
        first = flags & ~data[subject].where(flags).duplicated()

        def admin_detail(rows: pd.DataFrame) -> pd.Series:
            reason = (rows["exclusion_reason"].astype(object).fillna("").astype(str)
                      if "exclusion_reason" in rows.columns
                      else pd.Series("", index=rows.index))
            return "excluded by an administrator" + reason.where(reason == "", ": " + reason)

        add(first, "admin", "participant", admin_detail)
        if first.any():
            frames[-1]["item"] = None
            frames[-1]["question"] = None

    if expected in data.columns:
        exp = pd.to_numeric(data[expected], errors="coerce")
        answer = data[dv].astype(float)
        gold = (kinds == "gold") & exp.notna() & ((answer - exp).abs() > gold_tolerance + 1e-12)
        add(gold, "gold", "participant", lambda r: (
            "gold item " + r[item].astype(str) + " (" + r[question].astype(str)
            + "): answered " + answer[r.index].map("{:g}".format) + ", expected "
            + exp[r.index].map("{:g}".format) + f" ± {gold_tolerance:g}"))
        trap = (kinds == "trap") & exp.notna() & ~np.isclose(answer, exp)
        add(trap, "trap", "participant", lambda r: (
            "trapping item " + r[item].astype(str) + " (" + r[question].astype(str)
            + "): answered " + answer[r.index].map("{:g}".format) + ", asked for "
            + exp[r.index].map("{:g}".format)))

    regular = kinds == "regular"
    if min_variance is not None:
        reg = data.loc[regular & data[dv].notna()]
        g = reg.groupby([subject, question], observed=True)[dv]
        stat = g.agg(n="count", var="var", value="first").reset_index()
        flat = stat.loc[(stat["n"] >= min_ratings_for_variance) & (stat["var"] <= min_variance)]
        if len(flat):
            frames.append(pd.DataFrame({
                "participant": flat[subject].to_numpy(), "rule": "zero_variance",
                "detail": [f"all {n} ratings on question {q} were {v:g}" for n, q, v in
                           zip(flat["n"], flat[question], flat["value"], strict=True)],
                "scope": "participant", "item": None, "question": flat[question].to_numpy(),
            }))

    unplayed = pd.Series(False, index=data.index)
    never = pd.Series(False, index=data.index)
    heard = pd.Series(np.nan, index=data.index)
    if play_count in data.columns:
        pc = pd.to_numeric(data[play_count], errors="coerce")
        never = pc.notna() & (pc <= 0)
        unplayed |= never
    if heard_fraction in data.columns:
        heard = pd.to_numeric(data[heard_fraction], errors="coerce")
        unplayed |= heard.notna() & (heard < min_heard_fraction)

    def unplayed_detail(rows: pd.DataFrame) -> pd.Series:
        cond = rows["condition"].astype(str) if "condition" in rows.columns else "?"
        why = ("heard " + (heard[rows.index] * 100).round(0).map("{:.0f}".format)
               + f" % (< {min_heard_fraction:.0%})").where(~never[rows.index], "never played")
        return "item " + rows[item].astype(str) + ", condition " + cond + ": " + why

    add(unplayed & regular, "unplayed", "rating", unplayed_detail)

    exclusions = (pd.concat(frames, ignore_index=True) if frames
                  else pd.DataFrame(columns=list(EXCLUSION_COLUMNS)))
    exclusions = exclusions.rename(columns={"participant": subject})
    dropped = set(exclusions.loc[exclusions["scope"] == "participant", subject])
    keep = ~data[subject].isin(dropped) & ~unplayed
    if not keep_quality_items:
        keep &= regular
    return data.loc[keep].reset_index(drop=True), exclusions.reset_index(drop=True)


def screening_summary(exclusions: pd.DataFrame, subject: str = "participant") -> pd.DataFrame:
    """Count excluded participants and dropped ratings per rule.

    Parameters
    ----------
    exclusions : pandas.DataFrame
        The exclusions table of :func:`p808_screening` (or any table with ``subject``,
        ``rule`` and ``scope``).
    subject : str
        Participant column.

    Returns
    -------
    pandas.DataFrame
        ``rule``, ``scope``, ``participants`` (distinct) and ``rows``.

    Notes
    -----
    A participant failing several rules is counted under each.

    Examples
    --------
    >>> import pandas as pd
    >>> e = pd.DataFrame({"participant": ["a", "a", "b"], "rule": ["gold", "gold", "trap"],
    ...                   "scope": "participant"})
    >>> screening_summary(e)["participants"].tolist()
    [1, 1]
    """
    validate_ratings(exclusions, required=[subject, "rule", "scope"], numeric=[],
                     min_rows=0, name="exclusions")
    if exclusions.empty:
        return pd.DataFrame(columns=["rule", "scope", "participants", "rows"])
    return (exclusions.groupby(["rule", "scope"], observed=True)
            .agg(participants=(subject, "nunique"), rows=(subject, "size")).reset_index())
