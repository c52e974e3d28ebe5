"""The study report: every table, figure and test of a listening test in one folder.

:func:`analyse` computes the tables, :func:`build_report` writes them as a
self-contained HTML page (figures as inline SVG), CSV and JSON files and a LaTeX
table; :func:`summarize_text` is the short text the command line prints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mosplatform.analysis import plots
from mosplatform.analysis.ci import CI_METHODS
from mosplatform.analysis.correlation import condition_points, mos_vs_objective
from mosplatform.analysis.mos import POOLED, mos_table, pool_over, vote_distribution
from mosplatform.analysis.mushra import mixed_model, mushra_post_screening, mushra_summary
from mosplatform.analysis.ordinal import ccr_sign, cmos, friedman_test, pairwise_wilcoxon
from mosplatform.analysis.power import listeners_needed
from mosplatform.analysis.screening import p808_screening, screening_summary
from mosplatform.analysis.validate import check_confidence, coerce_ratings

KINDS = ("mushra", "acr", "dcr", "ccr", "ab")
CATEGORICAL_KINDS = ("acr", "dcr", "ccr", "ab")
HTML_MAX_ROWS = 200


@dataclass
class Analysis:
    """Everything :func:`analyse` found: the tables plus what they were computed with."""

    kind: str
    confidence: float
    ci_method: str
    questions: list[str]
    conditions: list[str]
    sources: list[str]
    tables: dict[str, pd.DataFrame]
    cleaned: pd.DataFrame
    categories: dict[str, list[float]] = field(default_factory=dict)
    category_labels: dict[str, dict[float, str]] = field(default_factory=dict)
    question_labels: dict[str, str] = field(default_factory=dict)
    scale: dict[str, tuple[float, float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------
# Definition helpers (a plain dict as exported, or a pydantic model).
# ----------------------------------------------------------------------------------------


def _definition_dict(definition: Any) -> dict[str, Any]:
    if definition is None:
        return {}
    if hasattr(definition, "model_dump"):
        return definition.model_dump(mode="json", exclude_none=True)
    if isinstance(definition, Mapping):
        return dict(definition)
    raise ValueError(f"definition must be a dict or a TestDefinition, got {type(definition)}")


def _label(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("en") or next(iter(value.values()), ""))
    return "" if value is None else str(value)


def _question_scales(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Question key -> resolved scale dict (presets expanded), from a definition."""
    from mosplatform.config import PRESET_SCALES  # plain pydantic/yaml module, no Flask

    out = {}
    for q in definition.get("questions", []) or []:
        scale = q.get("scale")
        if isinstance(scale, str):
            scale = PRESET_SCALES.get(scale, {})
        out[str(q.get("key"))] = {"label": _label(q.get("label")), **(scale or {})}
    return out


def infer_kind(df: pd.DataFrame, definition: Mapping[str, Any] | None = None) -> str:
    """The test kind: from the definition, else the ``kind`` column, else the score range.

    Parameters
    ----------
    df : pandas.DataFrame
        Ratings.
    definition : dict, optional
        The test definition.

    Returns
    -------
    str
        One of ``mushra``, ``acr``, ``dcr``, ``ccr``, ``ab``.

    Notes
    -----
    Without a definition or a ``kind`` column, votes above 10 mean a continuous
    (MUSHRA) scale, negative votes a CCR scale, and anything else ACR.

    Examples
    --------
    >>> import pandas as pd
    >>> infer_kind(pd.DataFrame({"score": [12.0, 95.0]}))
    'mushra'
    """
    definition = _definition_dict(definition)
    kind = str(definition.get("kind", "")).lower()
    if kind in KINDS:
        return kind
    if "kind" in df.columns and df["kind"].notna().any():
        kind = str(df["kind"].dropna().mode().iloc[0]).lower()
        if kind in KINDS:
            return kind
    scores = pd.to_numeric(df["score"], errors="coerce")
    hi = df["scale_max"].max() if "scale_max" in df.columns else scores.max()
    if pd.notna(hi) and float(hi) > 10:
        return "mushra"
    if (scores < 0).any():
        return "ccr"
    return "acr"


def _ordered(values: Sequence, preferred: Sequence = ()) -> list[str]:
    present = [str(v) for v in pd.unique(pd.Series(values).dropna().astype(str))]
    head = [str(v) for v in preferred if str(v) in present]
    return head + sorted(v for v in present if v not in head)


# ----------------------------------------------------------------------------------------
# Tables.
# ----------------------------------------------------------------------------------------


def objective_table(
    df: pd.DataFrame,
    objective: str = "sdr",
    source: str = "source",
    condition: str = "condition",
    stimulus: Sequence[str] = ("item",),
) -> pd.DataFrame:
    """Objective score per source per condition: median over stimuli, and over sources.

    Parameters
    ----------
    df : pandas.DataFrame
        Ratings with the objective column (one value per stimulus, repeated on
        every rating of it).
    objective : str
        Objective column (``sdr``; dB).
    source, condition : str
        Columns.
    stimulus : sequence of str
        Columns that with ``source`` and ``condition`` identify one stimulus (each
        stimulus counts once, however often it was rated).

    Returns
    -------
    pandas.DataFrame
        ``condition``, ``source`` (plus ``"all"``), ``n_stimuli``, ``median``,
        ``mean`` and ``aggregation`` (how the row was formed).

    Notes
    -----
    BSS Eval / museval practice (SiSEC 2018): the median over tracks per source;
    the ``"all"`` row is the *mean of the per-source medians*, as Demucs-family
    papers report it.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"item": ["t1", "t2", "t1", "t2"], "source": ["bass"] * 2 + ["drums"] * 2,
    ...                   "condition": "a", "sdr": [4.0, 6.0, 8.0, 9.0]})
    >>> objective_table(d)["median"].tolist()
    [5.0, 8.5, 6.75]
    """
    stimulus = [c for c in stimulus if c in df.columns]
    has_source = source in df.columns
    keys = [condition, *([source] if has_source else []), *stimulus]
    stim = df.loc[df[objective].notna(), [*keys, objective]].drop_duplicates(keys)
    if stim.empty:
        return pd.DataFrame(columns=[condition, source, "n_stimuli", "median", "mean",
                                     "aggregation"])
    if not has_source:
        stim = stim.assign(**{source: POOLED})
    per = (stim.groupby([condition, source], observed=True)[objective]
           .agg(n_stimuli="count", median="median", mean="mean").reset_index())
    per["aggregation"] = "median over stimuli"
    frames = [per]
    if has_source:
        pooled = (per.groupby(condition, observed=True)
                  .agg(n_stimuli=("n_stimuli", "sum"), median=("median", "mean"),
                       mean=("mean", "mean")).reset_index())
        pooled[source] = POOLED
        pooled["aggregation"] = "mean of source medians"
        frames.append(pooled)
    return pd.concat(frames, ignore_index=True)[
        [condition, source, "n_stimuli", "median", "mean", "aggregation"]]


def _exclusions_from_post_screening(post: pd.DataFrame) -> pd.DataFrame:
    bad = post.loc[post["excluded"]]
    return pd.DataFrame({
        "participant": bad["participant"].to_numpy(),
        "rule": "mushra_post_screening", "detail": bad["reason"].to_numpy(),
        "scope": "participant", "item": None, "question": None,
    })


def analyse(
    df: pd.DataFrame,
    definition: Mapping[str, Any] | Any | None = None,
    confidence: float = 0.95,
    ci_method: str = "t",
    n_boot: int = 1000,
    seed: int = 0,
    target_half_width: float | None = None,
    mixed: bool = False,
    ccr_from_raw: bool = False,
) -> Analysis:
    """Clean the ratings and compute every table of the report.

    Parameters
    ----------
    df : pandas.DataFrame
        The long-format ratings table (platform export or any CSV with at least
        ``participant``, ``item``, ``condition``, ``question``, ``score``).
    definition : dict or TestDefinition, optional
        The test definition (kind, question scales and labels, condition order).
    confidence : float
        Coverage of every interval.
    ci_method : {"t", "bootstrap"}
        Interval of the MOS tables.
    n_boot, seed : int
        Bootstrap replicates and seed.
    target_half_width : float, optional
        Target for the listeners-needed table; default 5 % of the scale range.
    mixed : bool
        Also fit the linear mixed model (statsmodels; slow on large tables).
    ccr_from_raw : bool
        CCR only: recompute ``score`` from ``raw_score`` and ``flipped`` with
        :func:`~.ordinal.ccr_sign` (for tables whose ``score`` is the vote as
        answered; the platform's export is already sign-handled).

    Returns
    -------
    Analysis
        Tables keyed by name (``mos``, ``votes``, ``mushra_summary``, ``friedman``,
        ``pairwise``, ``cmos``, ``mixed_model``, ``sdr``, ``mos_vs_sdr_points``,
        ``mos_vs_sdr``, ``listeners_needed``, ``exclusions``, ``screening_summary``,
        ``mushra_post_screening``, ``participants``), as far as the data allow.

    Notes
    -----
    Order of work: P.808 cleaning (:func:`~.screening.p808_screening`), then for
    MUSHRA the BS.1534-3 post-screening, then the statistics on regular items of the
    remaining listeners. Repeated-measures tests use per-listener means over items.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"participant": list("aabb"), "item": ["i1", "i2"] * 2,
    ...                   "condition": "x", "question": "q", "score": [4, 5, 3, 4]})
    >>> float(analyse(d).tables["mos"]["mos"].iloc[0])
    4.0
    """
    check_confidence(confidence)
    if ci_method not in CI_METHODS:
        raise ValueError(f"ci_method must be one of {CI_METHODS}, got {ci_method!r}")
    data = coerce_ratings(df)
    spec = _definition_dict(definition)
    kind = infer_kind(data, spec)
    if ccr_from_raw:
        if kind != "ccr":
            raise ValueError(f"ccr_from_raw applies to CCR tests, this is {kind.upper()}")
        data = ccr_sign(data, raw="raw_score", flipped="flipped", out="score")
    scales = _question_scales(spec)
    design = spec.get("design", {}) or {}
    tables: dict[str, pd.DataFrame] = {}

    cleaned, exclusions = p808_screening(
        data, min_heard_fraction=float(design.get("must_listen_fraction", 0.8)))
    if kind == "mushra" and "role" in cleaned.columns and len(cleaned):
        post = mushra_post_screening(cleaned)
        tables["mushra_post_screening"] = post
        if post["excluded"].any():
            exclusions = pd.concat([exclusions, _exclusions_from_post_screening(post)],
                                   ignore_index=True)
            cleaned = cleaned.loc[~cleaned["participant"].isin(
                post.loc[post["excluded"], "participant"])].reset_index(drop=True)
    tables["exclusions"] = exclusions
    tables["screening_summary"] = screening_summary(exclusions)
    tables["participants"] = pd.DataFrame([{
        "participants_total": data["participant"].nunique(),
        "participants_kept": cleaned["participant"].nunique(),
        "ratings_total": len(data),
        "ratings_kept": len(cleaned),
    }])
    if cleaned.empty:
        raise ValueError("no ratings left after screening; see the exclusions: "
                         + "; ".join(screening_summary(exclusions)["rule"].astype(str)))

    questions = _ordered(cleaned["question"], list(scales))
    cond_pref = [str(c.get("key")) for c in spec.get("conditions", []) or []]
    conditions = _ordered(cleaned["condition"], cond_pref)
    has_source = "source" in cleaned.columns and cleaned["source"].notna().any()
    if has_source:
        cleaned["source"] = cleaned["source"].fillna("none").astype(str)
    sources = _ordered(cleaned["source"], ("drums", "bass", "other", "vocals")) \
        if has_source else []
    by = ["question", "condition", *(["source"] if has_source else [])]

    # Scale range per question: definition, else export columns, else data.
    scale: dict[str, tuple[float, float]] = {}
    categories: dict[str, list[float]] = {}
    labels: dict[str, dict[float, str]] = {}
    for q in questions:
        sq = scales.get(q, {})
        part = cleaned.loc[cleaned["question"] == q]
        if sq.get("type") == "categorical":
            cats = sorted(float(c["score"]) for c in sq["categories"])
            labels[q] = {float(c["score"]): _label(c["label"]) for c in sq["categories"]}
            lo, hi = cats[0], cats[-1]
        elif sq.get("type") == "continuous":
            lo, hi = float(sq.get("min", 0)), float(sq.get("max", 100))
            cats = []
        else:
            lo = (float(part["scale_min"].min()) if "scale_min" in part and
                  part["scale_min"].notna().any() else float(part["score"].min()))
            hi = (float(part["scale_max"].max()) if "scale_max" in part and
                  part["scale_max"].notna().any() else float(part["score"].max()))
            cats = []
            if kind in CATEGORICAL_KINDS:
                cats = [float(v) for v in np.arange(math.floor(lo), math.ceil(hi) + 1)]
        if cats:
            seen = set(part["score"].dropna().astype(float))
            cats = sorted(set(cats) | seen)
        scale[q] = (lo, hi)
        categories[q] = cats

    tables["mos"] = mos_table(cleaned, by=by, confidence=confidence, method=ci_method,
                              pooled="source" if has_source else None, n_boot=n_boot,
                              seed=seed)
    if kind in CATEGORICAL_KINDS:
        votes = []
        pooled_data = pool_over(cleaned, "source") if has_source else cleaned
        for q in questions:
            for part in ([cleaned, pooled_data] if has_source else [cleaned]):
                sub = part.loc[part["question"] == q]
                votes.append(vote_distribution(sub, by=by, categories=categories[q] or None))
        tables["votes"] = pd.concat(votes, ignore_index=True)
    if kind == "mushra":
        tables["mushra_summary"] = mushra_summary(cleaned, by=["question", "condition"],
                                                  confidence=confidence)
    within = cleaned
    if kind in ("dcr", "ccr") and "role" in cleaned.columns:
        # The unprocessed reference is not a rated condition of DCR/CCR.
        within = cleaned.loc[cleaned["role"] != "reference"]
    tables["friedman"] = friedman_test(within, by="question", agg="mean")
    tables["pairwise"] = pairwise_wilcoxon(within, by="question", agg="mean")
    if kind == "ccr":
        tables["cmos"] = cmos(within, by=["question", "condition"], confidence=confidence,
                              method=ci_method, n_boot=n_boot, seed=seed)
    if mixed:
        tables["mixed_model"] = mixed_model(within, by="question", confidence=confidence)

    if "sdr" in cleaned.columns and cleaned["sdr"].notna().any():
        tables["sdr"] = objective_table(cleaned, "sdr")
        point_by = ["question", *(["source"] if has_source else []), "condition"]
        tables["mos_vs_sdr_points"] = condition_points(cleaned, "sdr", by=point_by,
                                                       confidence=confidence)
        tables["mos_vs_sdr"] = mos_vs_objective(
            cleaned, "sdr", source="source" if has_source else None, by="question",
            confidence=confidence)

    need = []
    for q in questions:
        lo, hi = scale[q]
        target = target_half_width if target_half_width is not None else 0.05 * (hi - lo)
        if target > 0:
            need.append(listeners_needed(cleaned.loc[cleaned["question"] == q], target,
                                         by=["question", "condition"], confidence=confidence))
    if need:
        tables["listeners_needed"] = pd.concat(need, ignore_index=True)

    return Analysis(
        kind=kind, confidence=confidence, ci_method=ci_method, questions=questions,
        conditions=conditions, sources=sources, tables=tables, cleaned=cleaned,
        categories=categories, category_labels=labels,
        question_labels={q: scales.get(q, {}).get("label") or q for q in questions},
        scale=scale,
        settings={"n_boot": n_boot, "seed": seed, "mixed": mixed,
                  "target_half_width": target_half_width},
    )


# ----------------------------------------------------------------------------------------
# LaTeX, text and HTML output.
# ----------------------------------------------------------------------------------------

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in ``text``.

    Parameters
    ----------
    text : str
        Plain text (condition and source names).

    Returns
    -------
    str
        Text safe inside a LaTeX table cell.

    Notes
    -----
    Condition keys such as ``l1_stft_adv`` contain underscores, which LaTeX reads as
    subscripts outside math mode.

    Examples
    --------
    >>> latex_escape("l1_stft & 5%")
    'l1\\\\_stft \\\\& 5\\\\%'
    """
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def latex_table(
    mos: pd.DataFrame,
    sdr: pd.DataFrame | None = None,
    conditions: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    questions: Sequence[str] | None = None,
    confidence: float = 0.95,
    digits: int = 2,
) -> str:
    """A booktabs LaTeX table: MOS ± CI half-width and SDR per system and source.

    Parameters
    ----------
    mos : pandas.DataFrame
        The ``mos`` table (``question``, ``condition``, ``source``, ``mos``,
        ``ci_half_width``, ``ci_method``).
    sdr : pandas.DataFrame, optional
        The ``sdr`` table of :func:`objective_table`.
    conditions, sources, questions : sequence of str, optional
        Row, column and block orders.
    confidence : float
        Stated in the caption.
    digits : int
        Decimals.

    Returns
    -------
    str
        A ``table`` environment using ``booktabs`` (``\\toprule``, ``\\midrule``,
        ``\\bottomrule``); one block of rows per question, one column pair
        (MOS, SDR) per source; ``all`` = pooled votes for MOS and the mean of the
        source medians for SDR.

    Notes
    -----
    Needs ``\\usepackage{booktabs}`` in the paper's preamble.

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"question": "q", "condition": "a", "source": "bass", "mos": 3.5,
    ...                   "ci_half_width": 0.2, "ci_method": "t"}, index=[0])
    >>> "3.50 $\\\\pm$ 0.20" in latex_table(m)
    True
    """
    has_source = "source" in mos.columns
    questions = list(questions) if questions is not None else _ordered(mos["question"])
    conditions = list(conditions) if conditions is not None else _ordered(mos["condition"])
    if has_source:
        sources = list(sources) if sources is not None else [
            s for s in _ordered(mos["source"]) if s != POOLED]
        cols = [*sources, POOLED] if (mos["source"] == POOLED).any() else list(sources)
    else:
        cols = [POOLED]
    with_sdr = sdr is not None and not sdr.empty
    per_col = 2 if with_sdr else 1
    method = str(mos["ci_method"].iloc[0]) if "ci_method" in mos and len(mos) else "t"
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{MOS $\pm$ " + f"{confidence:.0%}".replace("%", r"\%")
        + f" confidence-interval half-width ({latex_escape(method)})"
        + (r" and SDR (dB; median over tracks, \emph{all} = mean of source medians)"
           if with_sdr else "") + r" per system and source.}",
        r"\begin{tabular}{l" + "c" * (per_col * len(cols)) + "}",
        r"\toprule",
    ]
    head = " & ".join(
        (rf"\multicolumn{{{per_col}}}{{c}}{{{latex_escape(c)}}}" if per_col > 1
         else latex_escape(c)) for c in cols)
    lines.append(f"System & {head} \\\\")
    if with_sdr:
        rules = " ".join(
            rf"\cmidrule(lr){{{2 + i * per_col}-{1 + (i + 1) * per_col}}}"
            for i in range(len(cols)))
        lines.append(rules)
        lines.append(" & " + " & ".join(["MOS & SDR"] * len(cols)) + r" \\")
    fmt = f"{{:.{digits}f}}"
    mos_idx = mos.set_index(["question", "condition", "source"] if has_source
                            else ["question", "condition"])
    sdr_idx = sdr.set_index(["condition", "source"]) if with_sdr else None
    for q in questions:
        lines.append(r"\midrule")
        lines.append(rf"\multicolumn{{{1 + per_col * len(cols)}}}{{l}}{{\emph{{{latex_escape(q)}}}}} \\")
        for c in conditions:
            cells = []
            for s in cols:
                key = (q, c, s) if has_source else (q, c)
                if key in mos_idx.index:
                    r = mos_idx.loc[key]
                    cells.append(f"{fmt.format(r['mos'])} $\\pm$ {fmt.format(r['ci_half_width'])}"
                                 if pd.notna(r["ci_half_width"]) else fmt.format(r["mos"]))
                else:
                    cells.append("--")
                if with_sdr:
                    skey = (c, s if has_source else POOLED)
                    cells.append(fmt.format(sdr_idx.loc[skey, "median"])
                                 if skey in sdr_idx.index else "--")
            lines.append(f"{latex_escape(c)} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _summary_lines(analysis: Analysis) -> list[str]:
    mos = analysis.tables["mos"]
    if "source" in mos.columns:
        mos = mos.loc[mos["source"] == POOLED]
    pct = f"{analysis.confidence:.0%}"
    counts = analysis.tables["participants"].iloc[0]
    lines = [f"{analysis.kind.upper()} test: {counts['participants_kept']} of "
             f"{counts['participants_total']} participants kept, {counts['ratings_kept']} of "
             f"{counts['ratings_total']} ratings"]
    for q in analysis.questions:
        part = mos.loc[mos["question"] == q].set_index("condition")
        what = "mean score" if analysis.kind == "mushra" else (
            "CMOS" if analysis.kind == "ccr" else "MOS")
        lines.append(f"question {q}: {what} with {pct} CI ({analysis.ci_method}), all sources")
        width = max([len(c) for c in analysis.conditions] + [9])
        col = "mean" if analysis.kind == "mushra" else what
        lines.append(f"  {'condition':<{width}} {'votes':>7} {col:>7}  {pct} CI")
        for c in analysis.conditions:
            if c not in part.index:
                continue
            r = part.loc[c]
            lines.append(f"  {c:<{width}} {int(r['n']):>7d} {r['mos']:>7.3f}  "
                         f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
    return lines


def summarize_text(
    df: pd.DataFrame,
    confidence: float = 0.95,
    ci_method: str = "t",
    definition: Mapping[str, Any] | None = None,
) -> str:
    """MOS with its confidence interval per question and condition, as plain text.

    Parameters
    ----------
    df : pandas.DataFrame
        The ratings table (cleaned the same way as in the report).
    confidence : float
        Coverage of the intervals.
    ci_method : {"t", "bootstrap"}
        Interval method.
    definition : dict, optional
        Test definition (kind and orders).

    Returns
    -------
    str
        One block per question: condition, number of votes, MOS and interval,
        pooled over sources.

    Notes
    -----
    Same numbers as the ``mos`` table of :func:`build_report` (rows ``source == "all"``).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"participant": list("abcd"), "item": "i", "condition": "x",
    ...                   "question": "q", "score": [2, 3, 4, 5]})
    >>> print(summarize_text(d).splitlines()[-1])
      x               4   3.500  [1.446, 5.554]
    """
    analysis = analyse(df, definition=definition, confidence=confidence, ci_method=ci_method)
    return "\n".join(_summary_lines(analysis))


def _template_dir() -> Path:
    # Source checkout: <repo>/templates; installed wheel: mosplatform/_resources/templates.
    here = Path(__file__).resolve()
    for base in (here.parents[2], here.parents[1] / "_resources"):
        candidate = base / "templates" / "report"
        if (candidate / "report.html").is_file():
            return candidate
    raise FileNotFoundError("templates/report/report.html not found next to the package")


def _html_table(df: pd.DataFrame, max_rows: int = HTML_MAX_ROWS) -> str:
    shown = df.head(max_rows)
    html = '<div class="scroll">' + shown.to_html(
        index=False, border=0, classes="data", na_rep="",
        float_format=lambda v: f"{v:.4g}") + "</div>"
    if len(df) > max_rows:
        html += f'<p class="note">First {max_rows} of {len(df)} rows; all in the CSV.</p>'
    return html


def _json_ready(df: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records", double_precision=10))


def _figures(analysis: Analysis) -> dict[str, str]:
    t = analysis.tables
    figs: dict[str, str] = {}
    lo = min(v[0] for v in analysis.scale.values())
    hi = max(v[1] for v in analysis.scale.values())
    ylim = (min(0.0, lo), hi) if analysis.kind != "ccr" else (lo, hi)
    mos = t["mos"]
    cmap = plots.colormaps["tab10"]
    palette = {c: cmap(i % 10) for i, c in enumerate(analysis.conditions)}
    label = "MUSHRA score" if analysis.kind == "mushra" else (
        "CMOS" if analysis.kind == "ccr" else "MOS")
    if "source" in mos.columns:
        figs["mos"] = plots.grouped_bar_figure(
            mos, "mos", x="source", hue="condition", panel="question", ylabel=label,
            x_order=[*analysis.sources, POOLED], hue_order=analysis.conditions, ylim=ylim,
            palette=palette)
    else:
        figs["mos"] = plots.grouped_bar_figure(
            mos.assign(source=POOLED), "mos", x="source", hue="condition", panel="question",
            ylabel=label, hue_order=analysis.conditions, ylim=ylim, palette=palette)
    if "votes" in t:
        votes = t["votes"]
        if "source" in votes.columns:
            votes = votes.loc[votes["source"] == POOLED]
        labels = next(iter(analysis.category_labels.values()), None)
        figs["votes"] = plots.vote_share_figure(votes, y="condition", panel="question",
                                                category_labels=labels)
    if "sdr" in t and not t["sdr"].empty:
        figs["sdr"] = plots.grouped_bar_figure(
            t["sdr"].assign(panel="SDR (dB)"), "median", x="source", hue="condition",
            panel="panel", low=None, high=None, ylabel="SDR (dB)",
            x_order=[s for s in [*analysis.sources, POOLED] if s in set(t["sdr"]["source"])],
            hue_order=[c for c in analysis.conditions if c in set(t["sdr"]["condition"])],
            palette=palette)
    if "mos_vs_sdr_points" in t:
        points = t["mos_vs_sdr_points"]
        points = points.loc[points["objective"].notna()]
        if len(points):
            if "source" not in points.columns:
                points = points.assign(source=POOLED)
            figs["mos_vs_sdr"] = plots.scatter_figure(points, ylabel=label)
    if analysis.kind == "mushra":
        figs["boxes"] = plots.box_figure(analysis.cleaned, order=analysis.conditions,
                                         ylim=(min(0.0, lo), max(100.0, hi)))
    return figs


def build_report(
    df: pd.DataFrame,
    out_dir: str | Path,
    definition: Mapping[str, Any] | Any | None = None,
    confidence: float = 0.95,
    ci_method: str = "t",
    *,
    n_boot: int = 1000,
    seed: int = 0,
    target_half_width: float | None = None,
    mixed: bool = False,
    ccr_from_raw: bool = False,
    title: str | None = None,
) -> Path:
    """Write the complete report of a listening test to ``out_dir``.

    Parameters
    ----------
    df : pandas.DataFrame
        The long-format ratings table.
    out_dir : str or Path
        Folder (created if needed).
    definition : dict or TestDefinition, optional
        The exact test definition, shown in the report and used for the kind,
        scales and orders.
    confidence : float
        Coverage of every interval (0.95).
    ci_method : {"t", "bootstrap"}
        MOS interval: Student t, or the listener × item bootstrap.
    n_boot, seed : int
        Bootstrap replicates and seed.
    target_half_width : float, optional
        Target half-width of the listeners-needed table (default 5 % of the scale).
    mixed : bool
        Also fit the linear mixed model.
    ccr_from_raw : bool
        CCR: sign-handle ``raw_score`` by ``flipped`` (see :func:`analyse`).
    title : str, optional
        Page title (default: the definition's name).

    Returns
    -------
    Path
        ``out_dir / "report.html"``. Beside it: ``tables/<name>.csv`` for every
        table, ``tables.json`` (every table, plus the settings), ``table.tex`` (booktabs
        MOS ± CI and SDR per system and source), ``summary.txt`` and
        ``definition.yaml`` (when a definition is given).

    Notes
    -----
    The HTML is self-contained (inline CSS, figures as inline SVG rendered with
    matplotlib's SVG backend), so it can be mailed or archived as one file. See
    :func:`analyse` for the statistics and the standards they follow.

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> d = pd.DataFrame({"participant": list("aabb"), "item": ["i1", "i2"] * 2,
    ...                   "condition": "x", "question": "q", "score": [4, 5, 3, 4]})
    >>> build_report(d, tempfile.mkdtemp()).name
    'report.html'
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    analysis = analyse(df, definition=definition, confidence=confidence, ci_method=ci_method,
                       n_boot=n_boot, seed=seed, target_half_width=target_half_width,
                       mixed=mixed, ccr_from_raw=ccr_from_raw)
    spec = _definition_dict(definition)
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    tables = analysis.tables
    csv_paths = {}
    for name, table in tables.items():
        path = out / "tables" / f"{name}.csv"
        table.to_csv(path, index=False)
        csv_paths[name] = f"tables/{name}.csv"
    settings = {"kind": analysis.kind, "confidence": confidence, "ci_method": ci_method,
                **analysis.settings}
    (out / "tables.json").write_text(json.dumps(
        {"settings": settings, "tables": {k: _json_ready(v) for k, v in tables.items()}},
        indent=1, allow_nan=False, default=str), encoding="utf-8")
    latex = latex_table(tables["mos"], tables.get("sdr"), analysis.conditions,
                        analysis.sources or None, analysis.questions, confidence)
    (out / "table.tex").write_text(latex, encoding="utf-8")
    summary = "\n".join(_summary_lines(analysis))
    (out / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    definition_yaml = ""
    if spec:
        definition_yaml = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
        (out / "definition.yaml").write_text(definition_yaml, encoding="utf-8")

    figs = _figures(analysis)
    env = Environment(loader=FileSystemLoader(str(_template_dir())),
                      autoescape=select_autoescape(["html"]))
    sections = [(name, Markup(_html_table(t)), csv_paths[name]) for name, t in tables.items()]
    html = env.get_template("report.html").render(
        title=title or spec.get("name") or "Listening test report",
        kind=analysis.kind, confidence=confidence, ci_method=ci_method,
        n_boot=n_boot, questions=analysis.questions,
        question_labels=analysis.question_labels,
        figures={k: Markup(v) for k, v in figs.items()},
        tables={name: html for name, html, _ in sections},
        csv_paths=csv_paths, summary=summary, latex=latex,
        definition_yaml=definition_yaml,
        participants=tables["participants"].iloc[0].to_dict(),
    )
    report = out / "report.html"
    report.write_text(html, encoding="utf-8")
    return report
