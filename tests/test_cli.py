"""The command line: create-test, export, report, status; clear errors, non-zero exits."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from sqlalchemy import func, select

from mosplatform.cli import cli
from mosplatform.extensions import db
from mosplatform.models import Item, Test
from mosplatform.services.assignment import Arrival, admit_participant
from mosplatform.services.ratings import submit_trial
from tests.audiofixtures import ACR_YAML, make_musdb, write_definition
from tests.test_config import BAD


@pytest.fixture
def acr_yaml(tmp_path):
    dirs = make_musdb(tmp_path / "audio", tracks=2, seconds=2.6)
    return write_definition(tmp_path, ACR_YAML, dirs, "acr.yaml")


def _count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("case,data,field,fix", BAD[:8], ids=[b[0] for b in BAD[:8]])
def test_bad_definition_exits_2_and_changes_nothing(runner, tmp_path, case, data, field, fix):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = runner.invoke(cli, ["create-test", str(path)])
    assert result.exit_code == 2
    assert "invalid test definition" in result.output and field in result.output
    assert _count(Test) == 0 and _count(Item) == 0


def test_missing_audio_exits_2(runner, tmp_path):
    data = yaml.safe_load(ACR_YAML.format(reference=tmp_path / "nowhere", sysA="a", sysB="b"))
    path = tmp_path / "missing.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = runner.invoke(cli, ["create-test", str(path)])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert _count(Test) == 0


def test_create_export_report(runner, acr_yaml, tmp_path):
    result = runner.invoke(cli, ["create-test", str(acr_yaml), "--open", "--no-sdr"])
    assert result.exit_code == 0, result.output
    test = db.session.execute(select(Test)).scalar_one()
    assert test.status == "open" and f"/t/{test.public_id}" in result.output
    for i, score in enumerate([2, 4, 5, 3]):
        p = admit_participant(test, Arrival(external_id=f"w{i}"))
        for trial in p.trials:
            submit_trial(p, trial.position, {"ratings": [
                {"stimulus": 0, "question": q.key, "score": score} for q in test.questions]})
    out = tmp_path / "ratings.csv"
    result = runner.invoke(cli, ["export", str(test.id), "--out", str(out)])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert len(df) == 4 * 2 * 2
    result = runner.invoke(cli, ["report", str(out), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "MOS" in result.output and (tmp_path / "report" / "report.html").exists()
    result = runner.invoke(cli, ["set-status", test.public_id, "closed"])
    assert result.exit_code == 0 and db.session.get(Test, test.id).status == "closed"


def test_export_unknown_test(runner, tmp_path):
    result = runner.invoke(cli, ["export", "nope", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code != 0 and "no test with id" in result.output


def test_create_admin_rejects_short_password(runner):
    result = runner.invoke(cli, ["create-admin", "bob", "--password", "short"])
    assert result.exit_code != 0 and "at least 8" in result.output


def test_help_lists_every_area():
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["--help"])
    for name in ("init", "create-test", "serve", "demo", "export", "report", "sdr",
                 "demo-data", "train", "separate", "db"):
        assert name in result.output
