import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mosplatform.analysis import build_report, latex_table, objective_table, summarize_text
from mosplatform.analysis.cli import report_command
from mosplatform.analysis.synthetic import simulate_mushra

PACKAGE = Path(__file__).resolve().parents[2] / "mosplatform" / "analysis"


def test_no_flask_anywhere_in_the_analysis_package():
    for path in PACKAGE.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+flask\b", text, re.M), path.name


def test_report_from_a_generated_csv(tmp_path, study):
    csv = tmp_path / "ratings.csv"
    study.to_csv(csv, index=False)
    out = tmp_path / "report"
    result = CliRunner().invoke(report_command, [str(csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "question accuracy: MOS with 95% CI (t)" in result.output
    assert f"report: {out / 'report.html'}" in result.output

    html = (out / "report.html").read_text(encoding="utf-8")
    # Main figure, vote shares, SDR bars, MOS vs SDR scatter: four inline SVGs.
    assert html.count("<svg") == 4
    assert "<script src" not in html and "<link" not in html  # self-contained
    assert "Student t" in html
    for name in ("mos", "votes", "friedman", "pairwise", "sdr", "mos_vs_sdr",
                 "listeners_needed", "exclusions"):
        assert (out / "tables" / f"{name}.csv").is_file(), name
        assert f"tables/{name}.csv" in html

    # Every number is in the JSON; MOS agrees with an independent groupby on the CSV.
    tables = json.loads((out / "tables.json").read_text())["tables"]
    mos = pd.DataFrame(tables["mos"])
    ref = pd.read_csv(csv).groupby(["question", "condition", "source"])["score"].mean()
    ours = mos.loc[mos["source"] != "all"].set_index(["question", "condition", "source"])["mos"]
    assert np.allclose(ours.reindex(ref.index), ref)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "tables" / "mos.csv")[["mos"]], mos[["mos"]], check_dtype=False)

    tex = (out / "table.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"l1\_stft\_adv" in tex and r"$\pm$" in tex and "MOS & SDR" in tex


def test_sdr_aggregation_is_median_per_source_and_mean_over_sources(study):
    sdr = objective_table(study).set_index(["condition", "source"])
    stim = study.dropna(subset=["sdr"]).drop_duplicates(["condition", "source", "item"])
    med = stim.groupby(["condition", "source"])["sdr"].median()
    assert np.allclose(sdr["median"].drop("all", level="source").reindex(med.index), med)
    assert sdr.loc[("l1", "all"), "median"] == pytest.approx(med.loc["l1"].mean())


def test_mushra_report_with_post_screening_and_definition(tmp_path):
    d = simulate_mushra(n_participants=10, n_items=8, seed=1)
    bad = (d["participant"] == "p0") & (d["role"] == "hidden_reference") & \
        d["item"].isin(["item0", "item1"])  # 2/8 = 25 % > 15 %
    d.loc[bad, "score"] = 40
    definition = {"name": "Demo MUSHRA", "kind": "mushra",
                  "questions": [{"key": "quality", "label": {"en": "Quality"},
                                 "scale": "mushra"}],
                  "conditions": [{"key": c} for c in ("hidden_reference", "l1_stft_adv",
                                                      "l1_stft", "l1", "anchor_7k",
                                                      "anchor_3k5")]}
    path = build_report(d, tmp_path, definition=definition)
    html = path.read_text(encoding="utf-8")
    assert html.count("<svg") == 2  # main figure + box plots
    assert "Demo MUSHRA" in html and "MUSHRA post-screening" in html
    assert "kind: mushra" in html and (tmp_path / "definition.yaml").is_file()
    excl = pd.read_csv(tmp_path / "tables" / "exclusions.csv")
    assert excl[["participant", "rule"]].values.tolist() == [["p0", "mushra_post_screening"]]
    post = pd.read_csv(tmp_path / "tables" / "mushra_post_screening.csv")
    assert post.loc[post["excluded"], "participant"].tolist() == ["p0"]
    summary = pd.read_csv(tmp_path / "tables" / "mushra_summary.csv")
    assert summary["n"].sum() == len(d) - (d["participant"] == "p0").sum()
    # The definition's condition order is the LaTeX table's row order.
    tex = (tmp_path / "table.tex").read_text()
    assert tex.index("hidden\\_reference") < tex.index("anchor\\_3k5")


def test_bootstrap_report_says_which_interval(tmp_path, study):
    path = build_report(study, tmp_path, ci_method="bootstrap", n_boot=200)
    html = path.read_text(encoding="utf-8")
    assert "bootstrap resampling listeners and items (200 replicates" in html
    settings = json.loads((tmp_path / "tables.json").read_text())["settings"]
    assert settings["ci_method"] == "bootstrap" and settings["n_boot"] == 200


def test_ccr_report_has_cmos_and_sign_handles_raw_votes(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for p in range(12):
        for i in range(4):
            for c, shift in (("l1", -1.0), ("l1_stft", 0.5)):
                score = float(np.clip(np.rint(shift + rng.normal(0, 1)), -3, 3))
                flipped = bool((p + i) % 2)  # processed first: the vote is mirrored
                rows.append((f"p{p}", f"i{i}", "quality", c, "system", "ccr", score,
                             -score if flipped else score, flipped))
    d = pd.DataFrame(rows, columns=["participant", "item", "question", "condition", "role",
                                    "kind", "score", "raw_score", "flipped"])
    build_report(d, tmp_path / "a")
    cm = pd.read_csv(tmp_path / "a" / "tables" / "cmos.csv").set_index("condition")
    assert cm.loc["l1", "cmos"] == pytest.approx(d.loc[d["condition"] == "l1", "score"].mean())
    votes = pd.read_csv(tmp_path / "a" / "tables" / "votes.csv")
    assert votes["category"].min() >= -3
    # The same votes given as answered (raw) plus the order flag give the same CMOS.
    raw = d.assign(score=d["raw_score"])
    result = CliRunner().invoke(report_command, [
        str(_csv(tmp_path, raw)), "--out", str(tmp_path / "b"), "--ccr-from-raw"])
    assert result.exit_code == 0, result.output
    cm_raw = pd.read_csv(tmp_path / "b" / "tables" / "cmos.csv").set_index("condition")
    assert np.allclose(cm_raw["cmos"], cm["cmos"])


def _csv(tmp_path: Path, df: pd.DataFrame) -> Path:
    path = tmp_path / "raw.csv"
    df.to_csv(path, index=False)
    return path


def test_summarize_text_lists_every_condition(study):
    text = summarize_text(study)
    for c in study["condition"].unique():
        assert text.count(f"  {c} ") == 2  # once per question
    row = study.loc[(study["question"] == "accuracy") & (study["condition"] == "l1"), "score"]
    assert f"{row.mean():.3f}" in text


def test_latex_escapes_and_missing_cells():
    mos = pd.DataFrame({"question": ["q"], "condition": ["a_b"], "source": ["bass"],
                        "mos": [3.0], "ci_half_width": [0.25], "ci_method": ["t"]})
    tex = latex_table(mos, sources=["bass", "drums"])
    assert r"a\_b & 3.00 $\pm$ 0.25 & -- \\" in tex


def test_cli_database_source_uses_the_loader(tmp_path, monkeypatch, study):
    fake = types.ModuleType("mosplatform.services.export")
    calls = []

    def load_ratings_from_database(source):
        calls.append(source)
        return study, {"name": "From the database", "kind": "acr"}

    fake.load_ratings_from_database = load_ratings_from_database
    monkeypatch.setitem(sys.modules, "mosplatform.services.export", fake)
    result = CliRunner().invoke(report_command, ["T42", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert calls == ["T42"]
    assert "From the database" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_cli_clear_error_when_the_loader_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mosplatform.services.export", None)
    result = CliRunner().invoke(report_command, ["no-such-file.csv", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "is not a file, and tests in the database cannot be loaded here" in result.output


def test_cli_reports_bad_csv_columns(tmp_path):
    csv = tmp_path / "bad.csv"
    pd.DataFrame({"participant": ["a"], "score": [3]}).to_csv(csv, index=False)
    result = CliRunner().invoke(report_command, [str(csv), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "missing required column(s) 'item', 'condition', 'question'" in result.output


def test_report_on_an_export_shaped_table_with_quality_items(tmp_path, study):
    # The platform's export: quality-control rows have condition "qc:<kind>", role
    # "<kind>" and an expected answer; optional columns may be empty.
    d = study.assign(external_id=None, test="T1", raw_score=study["score"], expected_score=None,
                     condition_position=0, flipped=False, listening_time_s=8.0,
                     rated_at="2026-01-01T00:00:00", exclusion_reason=None, si_sdr=np.nan,
                     isr=np.nan, sir=np.nan, sar=np.nan)
    qc = []
    for p in d["participant"].unique():
        for q in ("accuracy", "contamination"):
            qc.append({"participant": p, "item": "gold1", "item_kind": "gold", "kind": "acr",
                       "condition": "qc:gold", "role": "gold", "question": q,
                       "score": 5.0 if p != "p1" else 2.0, "expected_score": 5.0})
    d = pd.concat([d, pd.DataFrame(qc)], ignore_index=True)
    csv = tmp_path / "ratings.csv"
    d.to_csv(csv, index=False)
    build_report(pd.read_csv(csv), tmp_path / "out")
    excl = pd.read_csv(tmp_path / "out" / "tables" / "exclusions.csv")
    assert set(excl["participant"]) == {"p1"} and set(excl["rule"]) == {"gold"}
    mos = pd.read_csv(tmp_path / "out" / "tables" / "mos.csv")
    assert "qc:gold" not in set(mos["condition"])
    kept = study.loc[study["participant"] != "p1"]
    ref = kept.groupby(["question", "condition"])["score"].mean()
    pooled = mos.loc[mos["source"] == "all"].set_index(["question", "condition"])["mos"]
    assert np.allclose(pooled.reindex(ref.index), ref)
