"""The one input validator of the analysis package.

Every public analysis function calls :func:`validate_ratings` on its input so that
a wrong column name or a non-numeric score fails early with a message that names
the problem and the columns that *are* there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

REQUIRED_COLUMNS: tuple[str, ...] = ("participant", "item", "condition", "question", "score")
"""Columns every long-format ratings table must have."""

ID_COLUMNS: tuple[str, ...] = ("participant", "item", "condition", "question", "source")


def as_list(columns: str | Sequence[str] | None) -> list[str]:
    """Normalise ``None``, one column name or a sequence of names to a list.

    Parameters
    ----------
    columns : str, sequence of str or None
        What a caller passed as ``by=`` (or a similar argument).

    Returns
    -------
    list of str
        ``[]`` for ``None``, ``[columns]`` for one name, else ``list(columns)``.

    Notes
    -----
    Lets every function accept ``by="condition"`` as well as ``by=["question", "condition"]``.

    Examples
    --------
    >>> as_list("condition"), as_list(None), as_list(("a", "b"))
    (['condition'], [], ['a', 'b'])
    """
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
    return list(columns)


def validate_ratings(
    df: pd.DataFrame,
    required: Iterable[str] = REQUIRED_COLUMNS,
    numeric: Iterable[str] = ("score",),
    *,
    min_rows: int = 1,
    name: str = "ratings",
) -> pd.DataFrame:
    """Check a long-format ratings table and raise one clear ``ValueError`` if it is unusable.

    Parameters
    ----------
    df : pandas.DataFrame
        The table, one row per rating.
    required : iterable of str
        Columns that must be present.
    numeric : iterable of str
        Columns (among those present) that must hold numbers; NaN is allowed.
    min_rows : int
        Fewest rows accepted.
    name : str
        What the table is called in the error message.

    Returns
    -------
    pandas.DataFrame
        The same object, unchanged, so that calls can be chained.

    Raises
    ------
    ValueError
        If ``df`` is not a DataFrame, lacks a required column (the message lists the
        missing and the available columns), has a non-numeric value in a numeric
        column (the message shows an offending value) or has too few rows.

    Notes
    -----
    The required columns of the platform's export are ``participant``, ``item``,
    ``condition``, ``question`` and ``score``; all others are optional.

    Examples
    --------
    >>> import pandas as pd
    >>> validate_ratings(pd.DataFrame({"participant": ["p1"], "score": [3]}))
    Traceback (most recent call last):
    ...
    ValueError: ratings: missing required column(s) 'item', 'condition', 'question'; ...
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    required = list(dict.fromkeys(required))
    missing = [c for c in required if c not in df.columns]
    if missing:
        listed = ", ".join(repr(c) for c in missing)
        have = ", ".join(repr(str(c)) for c in df.columns) or "none"
        raise ValueError(
            f"{name}: missing required column(s) {listed}; the table has columns: {have}"
        )
    for col in numeric:
        if col not in df.columns:
            continue
        values = df[col]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            converted = pd.to_numeric(values, errors="coerce")
            bad = values[converted.isna() & values.notna()]
            if len(bad) or pd.api.types.is_bool_dtype(values):
                example = bad.iloc[0] if len(bad) else values.iloc[0]
                raise ValueError(
                    f"{name}: column {col!r} must be numeric; found {example!r} "
                    f"(dtype {values.dtype}) in {len(bad) or len(values)} row(s)"
                )
    if len(df) < min_rows:
        raise ValueError(f"{name}: needs at least {min_rows} row(s), got {len(df)}")
    return df


def check_confidence(confidence: float) -> float:
    """Return ``confidence`` if it lies strictly between 0 and 1, else raise ``ValueError``.

    Parameters
    ----------
    confidence : float
        Coverage of an interval, e.g. 0.95.

    Returns
    -------
    float
        The same value as a ``float``.

    Notes
    -----
    The one convention of the package: ``confidence=0.95`` means the two-sided
    interval at α = 0.05, i.e. quantiles ``α/2`` and ``1 − α/2``.

    Examples
    --------
    >>> check_confidence(0.95)
    0.95
    """
    if not (isinstance(confidence, (float, int, np.floating)) and 0 < float(confidence) < 1):
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def coerce_ratings(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with identifier columns as strings and numeric columns as floats.

    CSV round trips turn condition keys such as ``"1"`` into integers and booleans
    into strings; the analysis compares identifiers as strings and scores as floats.

    Parameters
    ----------
    df : pandas.DataFrame
        A validated ratings table.

    Returns
    -------
    pandas.DataFrame
        A copy with ``participant``, ``item``, ``condition``, ``question`` and ``source``
        (when present) as ``str`` (a missing ``source`` stays missing, a missing
        required identifier is an error); ``score`` and the optional numeric columns as
        ``float``; ``excluded`` as ``bool``.

    Notes
    -----
    Unparseable numbers become NaN (the validator has already rejected non-numeric
    scores); ``excluded`` accepts ``true/false``, ``1/0`` and ``yes/no``.

    Examples
    --------
    >>> import pandas as pd
    >>> out = coerce_ratings(pd.DataFrame({"participant": [1], "item": [2], "condition": [3],
    ...                                    "question": ["q"], "score": ["4"]}))
    >>> out["condition"].iloc[0], float(out["score"].iloc[0])
    ('3', 4.0)
    """
    validate_ratings(df)
    out = df.copy()
    for col in ID_COLUMNS:
        if col not in out.columns:
            continue
        empty = out[col].isna()
        if empty.any() and col in REQUIRED_COLUMNS:
            raise ValueError(
                f"ratings: column {col!r} is empty in {int(empty.sum())} row(s) "
                f"(first at row {int(np.flatnonzero(empty.to_numpy())[0])})"
            )
        # Missing optional identifiers (a rating without a source) stay missing.
        out[col] = out[col].astype(str).where(~empty, np.nan)
    numeric = [
        "score", "raw_score", "expected_score", "scale_min", "scale_max", "play_count",
        "listening_time_s", "heard_fraction", "sdr", "si_sdr", "isr", "sir", "sar",
    ]
    for col in numeric:
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    if "excluded" in out.columns:
        out["excluded"] = _as_bool(out["excluded"])
    return out


def _as_bool(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.fillna(False).astype(bool)
    text = values.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "yes", "y", "t", "1.0"])
