"""Report figures as inline SVG strings.

Figures are built with matplotlib's object-oriented API (``Figure`` objects, no
``pyplot``), so importing this module changes no global backend (a notebook keeps
its inline plots) and needs no display; a lock serialises the rcParams context,
so web threads can render reports concurrently.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mosplatform.analysis.validate import validate_ratings

_LOCK = threading.RLock()  # rcParams are process-global

_ID_REF = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
_RC = {
    "svg.fonttype": "none",  # text stays text: small, searchable SVG
    "svg.hashsalt": "mosplatform",  # deterministic element ids
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def figure_to_svg(fig: Figure) -> str:
    """Render a matplotlib figure as an inline ``<svg>`` element.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.

    Returns
    -------
    str
        The SVG markup without the XML declaration and DOCTYPE, ready to be embedded
        in HTML.

    Notes
    -----
    Saved without a date in the metadata, so the same figure gives the same bytes.
    Several SVGs inlined in one HTML page share one id namespace, so every ``id`` and
    every reference to it (``url(#…)``, ``href="#…"``) gets a prefix derived from the
    figure's content.

    Examples
    --------
    >>> fig = Figure()
    >>> _ = fig.subplots()
    >>> figure_to_svg(fig).startswith("<svg")
    True
    """
    buf = io.StringIO()
    with _LOCK, matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    prefix = "f" + hashlib.sha1(text.encode()).hexdigest()[:8] + "-"
    return _ID_REF.sub(lambda m: m.group(1) + prefix + m.group(2), text)


def _order(values: Sequence, first: Sequence = (), last: Sequence = ()) -> list:
    seen = list(dict.fromkeys(values))
    head = [v for v in first if v in seen]
    tail = [v for v in last if v in seen and v not in head]
    return head + [v for v in seen if v not in head and v not in tail] + tail


def _panels(n: int, width: float = 5.2, height: float = 3.4):
    fig = Figure(figsize=(width * n, height))
    axes = fig.subplots(1, n, squeeze=False)
    # Fixed spacing instead of tight_layout (which redraws the figure); savefig's
    # bbox_inches="tight" trims the margins.
    fig.subplots_adjust(wspace=0.3)
    return fig, list(axes[0])


def grouped_bar_figure(
    table: pd.DataFrame,
    value: str,
    x: str = "source",
    hue: str = "condition",
    panel: str | None = "question",
    low: str | None = "ci_low",
    high: str | None = "ci_high",
    ylabel: str = "MOS",
    x_order: Sequence | None = None,
    hue_order: Sequence | None = None,
    ylim: tuple[float, float] | None = None,
    palette: dict | None = None,
) -> str:
    """Grouped bars (one group per ``x``, one bar per ``hue``) with error bars, per panel.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per bar.
    value : str
        Bar height column.
    x, hue : str
        Group and bar columns.
    panel : str or None
        One panel per value of this column (the study: one per question).
    low, high : str or None
        Interval columns drawn as error bars (omitted when ``None`` or absent).
    ylabel : str
        Y axis label.
    x_order, hue_order : sequence, optional
        Orders of the groups and bars.
    ylim : tuple, optional
        Y axis range.
    palette : dict, optional
        Colour per ``hue`` value, so that a condition has the same colour in every
        figure (default: the tab10 cycle in ``hue_order``).

    Returns
    -------
    str
        Inline SVG.

    Notes
    -----
    The study's main figure: MOS per source per condition with 95 % CI bars, one
    panel per question.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"question": "q", "source": ["bass", "drums"], "condition": "a",
    ...                   "mos": [3.0, 4.0], "ci_low": [2.5, 3.5], "ci_high": [3.5, 4.5]})
    >>> "<svg" in grouped_bar_figure(t, "mos")
    True
    """
    validate_ratings(table, required=[value, x, hue, *([panel] if panel else [])],
                     numeric=[value], name="figure table")
    panels = _order(table[panel]) if panel else [None]
    xs = list(x_order) if x_order is not None else _order(table[x], last=["all"])
    hues = list(hue_order) if hue_order is not None else _order(table[hue])
    with _LOCK, matplotlib.rc_context(_RC):
        fig, axes = _panels(len(panels))
        cmap = colormaps["tab10"]
        width = 0.8 / max(len(hues), 1)
        for ax, p in zip(axes, panels, strict=True):
            part = table if p is None else table.loc[table[panel] == p]
            for h_i, h in enumerate(hues):
                rows = part.loc[part[hue] == h].set_index(x).reindex(xs)
                pos = np.arange(len(xs)) + (h_i - (len(hues) - 1) / 2) * width
                heights = rows[value].to_numpy(dtype=float)
                err = None
                if low and high and low in rows and high in rows:
                    lo = heights - rows[low].to_numpy(dtype=float)
                    hi = rows[high].to_numpy(dtype=float) - heights
                    err = np.vstack([lo, hi])
                color = (palette or {}).get(h, cmap(h_i % 10))
                ax.bar(pos, heights, width=width * 0.95, color=color, label=str(h),
                       yerr=err, capsize=2, error_kw={"elinewidth": 0.8})
            ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs])
            ax.set_ylabel(ylabel)
            if ylim:
                ax.set_ylim(*ylim)
            if p is not None:
                ax.set_title(str(p))
        axes[-1].legend(title=hue, fontsize=7, frameon=False, loc="upper left",
                        bbox_to_anchor=(1.0, 1.0))
    return figure_to_svg(fig)


def vote_share_figure(
    distribution: pd.DataFrame,
    y: str = "condition",
    panel: str | None = "question",
    category_labels: dict[float, str] | None = None,
) -> str:
    """Stacked horizontal bars of the vote shares per category, one bar per condition.

    Parameters
    ----------
    distribution : pandas.DataFrame
        Output of :func:`~mosplatform.analysis.mos.vote_distribution` with ``y``
        (and ``panel``) among its ``by`` columns.
    y : str
        One bar per value of this column.
    panel : str or None
        One panel per value of this column.
    category_labels : dict, optional
        Legend text per category score.

    Returns
    -------
    str
        Inline SVG.

    Notes
    -----
    Shares ``p_k = n_k / n`` sum to 1 per bar; categories run from the lowest score
    (left, red) to the highest (right, green).

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"question": "q", "condition": "a", "category": [1.0, 2.0],
    ...                   "share": [0.25, 0.75]})
    >>> "<svg" in vote_share_figure(d)
    True
    """
    validate_ratings(distribution, required=[y, "category", "share",
                                             *([panel] if panel else [])],
                     numeric=["category", "share"], name="vote distribution")
    panels = _order(distribution[panel]) if panel else [None]
    cats = sorted(distribution["category"].unique())
    with _LOCK, matplotlib.rc_context(_RC):
        fig, axes = _panels(len(panels), height=0.45 * distribution[y].nunique() + 1.4)
        colors = colormaps["RdYlGn"](np.linspace(0.05, 0.95, len(cats)))
        for ax, p in zip(axes, panels, strict=True):
            part = distribution if p is None else distribution.loc[distribution[panel] == p]
            wide = part.pivot_table(index=y, columns="category", values="share",
                                    aggfunc="sum").reindex(columns=cats, fill_value=0)
            wide = wide.div(wide.sum(axis=1), axis=0).fillna(0)
            left = np.zeros(len(wide))
            for c_i, c in enumerate(cats):
                label = (category_labels or {}).get(c, f"{c:g}")
                ax.barh(np.arange(len(wide)), wide[c], left=left, color=colors[c_i],
                        label=label, edgecolor="white", linewidth=0.5)
                left += wide[c].to_numpy()
            ax.set_yticks(np.arange(len(wide)), [str(v) for v in wide.index])
            ax.set_xlim(0, 1)
            ax.set_xlabel("share of votes")
            if p is not None:
                ax.set_title(str(p))
        axes[-1].legend(title="vote", fontsize=7, frameon=False, loc="upper left",
                        bbox_to_anchor=(1.0, 1.0))
    return figure_to_svg(fig)


def scatter_figure(
    points: pd.DataFrame,
    x: str = "objective",
    y: str = "mos",
    hue: str = "source",
    label: str | None = "condition",
    panel: str | None = "question",
    yerr: str | None = "ci_half_width",
    xlabel: str = "SDR (dB)",
    ylabel: str = "MOS",
) -> str:
    """Scatter of per-condition MOS against an objective score, with a least-squares line.

    Parameters
    ----------
    points : pandas.DataFrame
        One row per condition point (see
        :func:`~mosplatform.analysis.correlation.condition_points`).
    x, y : str
        Axis columns.
    hue : str
        Colour per value (source).
    label : str or None
        One marker shape per value (condition); the colour is the ``hue``.
    panel : str or None
        One panel per value.
    yerr : str or None
        Half-width of the vertical error bars.
    xlabel, ylabel : str
        Axis labels.

    Returns
    -------
    str
        Inline SVG.

    Notes
    -----
    The line is the first-order P.1401 mapping fitted to all points of a panel.

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.DataFrame({"question": "q", "source": "bass", "condition": list("abc"),
    ...                   "objective": [1.0, 2.0, 3.0], "mos": [2.0, 3.0, 3.5]})
    >>> "<svg" in scatter_figure(p, yerr=None)
    True
    """
    validate_ratings(points, required=[x, y, hue, *([panel] if panel else [])],
                     numeric=[x, y], name="points")
    panels = _order(points[panel]) if panel else [None]
    hues = _order(points[hue])
    labels = _order(points[label]) if label and label in points else [None]
    with _LOCK, matplotlib.rc_context(_RC):
        fig, axes = _panels(len(panels), width=4.6, height=3.6)
        cmap = colormaps["tab10"]
        for ax, p in zip(axes, panels, strict=True):
            part = points if p is None else points.loc[points[panel] == p]
            part = part.loc[part[x].notna() & part[y].notna()]
            colors = [cmap(hues.index(h) % 10) for h in part[hue]]
            if yerr and yerr in part:
                ax.vlines(part[x], part[y] - part[yerr], part[y] + part[yerr], colors=colors,
                          linewidth=0.7)
            for l_i, lab in enumerate(labels):
                sel = (part[label] == lab).to_numpy() if label else np.ones(len(part), bool)
                if sel.any():
                    ax.scatter(part.loc[sel, x], part.loc[sel, y], s=18,
                               marker=_MARKERS[l_i % len(_MARKERS)],
                               c=[c for c, k in zip(colors, sel, strict=True) if k], zorder=3)
            if len(part) >= 2 and np.ptp(part[x].to_numpy(dtype=float)) > 0:
                slope, intercept = np.polyfit(part[x].astype(float), part[y].astype(float), 1)
                xs = np.linspace(part[x].min(), part[x].max(), 2)
                ax.plot(xs, intercept + slope * xs, color="0.4", lw=0.8, ls="--")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            if p is not None:
                ax.set_title(str(p))
        # Legend: colour = hue (source), marker = label (condition).
        handles = [Line2D([], [], ls="", marker="o", color=cmap(i % 10), label=str(h))
                   for i, h in enumerate(hues)]
        if label and labels != [None]:
            handles += [Line2D([], [], ls="", marker=_MARKERS[i % len(_MARKERS)],
                                   color="0.3", label=str(v)) for i, v in enumerate(labels)]
        axes[-1].legend(handles=handles, fontsize=7, frameon=False, loc="upper left",
                        bbox_to_anchor=(1.0, 1.0))
    return figure_to_svg(fig)


def box_figure(
    df: pd.DataFrame,
    dv: str = "score",
    x: str = "condition",
    panel: str | None = "question",
    order: Sequence | None = None,
    ylabel: str = "score",
    ylim: tuple[float, float] | None = (0, 100),
) -> str:
    """Box plots of the ratings per condition (MUSHRA), one panel per question.

    Parameters
    ----------
    df : pandas.DataFrame
        Ratings.
    dv : str
        Ratings column.
    x : str
        One box per value.
    panel : str or None
        One panel per value.
    order : sequence, optional
        Box order.
    ylabel : str
        Y axis label.
    ylim : tuple, optional
        Y range (MUSHRA: 0–100).

    Returns
    -------
    str
        Inline SVG.

    Notes
    -----
    ITU-R BS.1534-3 §9.3: boxes span the quartiles (IQR), the line is the median,
    whiskers reach the most extreme rating within 1.5 IQR; the diamond is the mean.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"question": "q", "condition": ["a", "a", "b"], "score": [10, 20, 90]})
    >>> "<svg" in box_figure(d)
    True
    """
    validate_ratings(df, required=[dv, x, *([panel] if panel else [])], numeric=[dv])
    panels = _order(df[panel]) if panel else [None]
    xs = list(order) if order is not None else _order(df[x])
    with _LOCK, matplotlib.rc_context(_RC):
        fig, axes = _panels(len(panels), width=max(4.0, 0.6 * len(xs) + 1.5))
        for ax, p in zip(axes, panels, strict=True):
            part = df if p is None else df.loc[df[panel] == p]
            data = [part.loc[part[x] == v, dv].dropna().to_numpy(dtype=float) for v in xs]
            ax.boxplot(data, showmeans=True, widths=0.6,
                       meanprops={"marker": "D", "markersize": 3},
                       flierprops={"markersize": 2})
            ax.set_xticks(np.arange(1, len(xs) + 1), [str(v) for v in xs], rotation=30,
                          ha="right")
            ax.set_ylabel(ylabel)
            if ylim:
                ax.set_ylim(*ylim)
            if p is not None:
                ax.set_title(str(p))
    return figure_to_svg(fig)
