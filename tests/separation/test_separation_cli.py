"""CLI: torch-free import, train and separate commands end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import soundfile as sf
from click.testing import CliRunner
from separation_fixtures import SR

from separation.cli import cli, separate_command, train_command

REPO = Path(__file__).resolve().parents[2]


def test_import_does_not_load_torch() -> None:
    code = ("import sys, separation, separation.cli; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_train_then_separate(multitrack_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(train_command, [
        "--variant", "l1", "--data", str(multitrack_root), "--out", str(run),
        "--preset", "tiny", "--set", f"sample_rate={SR}", "--set", "segment=0.5",
        "--epochs", "1", "--batch-size", "2", "--samples-per-epoch", "2", "--device", "cpu",
        "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "best validation SDR" in result.output
    assert (run / "best.pt").exists() and (run / "metrics.csv").exists()

    stems = tmp_path / "stems"
    result = runner.invoke(separate_command, [
        "--checkpoint", str(run / "best.pt"), "--input", str(multitrack_root / "test"),
        "--out", str(stems), "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "real-time factor" in result.output
    track = stems / "test track 00"
    assert sorted(p.name for p in track.iterdir()) == [
        "bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    assert sf.info(str(track / "vocals.wav")).samplerate == SR


def test_group_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "train" in result.output and "separate" in result.output
