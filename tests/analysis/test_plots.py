import re
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from mosplatform.analysis import mos_table
from mosplatform.analysis.plots import box_figure, grouped_bar_figure


def test_figures_are_deterministic_and_thread_safe(study):
    mos = mos_table(study)
    first = grouped_bar_figure(mos, "mos")
    with ThreadPoolExecutor(max_workers=3) as pool:
        again = list(pool.map(lambda _: grouped_bar_figure(mos, "mos"), range(3)))
    assert all(svg == first for svg in again)
    # One panel per question, one tick label per source plus "all".
    for label in ("accuracy", "contamination", "drums", "vocals", "all"):
        assert f"{label}</text>" in first or f">{label}<" in first


def test_ids_are_prefixed_per_figure_so_inline_svgs_do_not_clash():
    d = pd.DataFrame({"question": "q", "condition": ["a", "a", "b"], "score": [10, 20, 90]})
    one = box_figure(d)
    two = box_figure(d.assign(score=[30, 40, 50]))
    ids_one = set(re.findall(r'id="([^"]+)"', one))
    ids_two = set(re.findall(r'id="([^"]+)"', two))
    assert ids_one and not ids_one & ids_two
    # Every internal reference points at an id of the same figure.
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', one):
        assert ref in ids_one
