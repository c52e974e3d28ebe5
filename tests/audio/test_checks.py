"""check_audio finds every kind of problem, all at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mosplatform.audio.checks import (
    PROBLEM_KINDS,
    check_audio,
    check_signal,
    format_problems,
    probe_audio,
)

SR = 16000


def _tone(n: int = SR, channels: int = 2, amp: float = 0.3) -> np.ndarray:
    t = np.arange(n) / SR
    x = amp * np.sin(2 * np.pi * 440 * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def _write(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    sf.write(path, x, sr, subtype=subtype)
    return path


def test_clean_item_has_no_problems(tmp_path: Path) -> None:
    files = [_write(tmp_path / f"{i}.wav", _tone()) for i in range(3)]
    assert check_audio(files) == []
    assert format_problems([]) == "no problems"


def test_every_problem_kind_is_reported_in_one_pass(tmp_path: Path) -> None:
    ok = [_write(tmp_path / f"ok{i}.wav", _tone()) for i in range(3)]
    unreadable = tmp_path / "garbage.wav"
    unreadable.write_bytes(b"RIFF....not really a wave file")
    other_rate = _write(tmp_path / "rate.wav", _tone(n=22050), sr=22050)  # same 1 s
    mono = _write(tmp_path / "mono.wav", _tone(channels=1))
    short = _write(tmp_path / "short.wav", _tone(n=SR - 10))
    clipped = _tone()
    clipped[100:110] = 1.0
    clipped = _write(tmp_path / "clipped.wav", clipped, subtype="FLOAT")
    silent = _write(tmp_path / "silent.wav", _tone(amp=1e-4))  # -83 dBFS RMS
    nan = _tone()
    nan[50, 1] = np.nan
    nan[60, 0] = np.inf
    nan = _write(tmp_path / "nan.wav", nan, subtype="FLOAT")
    files = {"ok0": ok[0], "ok1": ok[1], "ok2": ok[2], "garbage": unreadable,
             "rate": other_rate, "mono": mono, "short": short, "clipped": clipped,
             "silent": silent, "nan": nan}
    problems = check_audio(files)
    found = {(p.label, p.kind) for p in problems}
    assert found == {
        ("garbage", "unreadable"),
        ("rate", "sample_rate_mismatch"),
        ("mono", "channel_mismatch"),
        ("short", "length_mismatch"),
        ("clipped", "clipping"),
        ("silent", "silence"),
        ("nan", "non_finite"),
    }
    assert {p.kind for p in problems} == set(PROBLEM_KINDS)
    by_kind = {p.kind: p for p in problems}
    assert "20 sample(s)" in by_kind["clipping"].message  # 10 frames x 2 channels
    assert "2 NaN or infinite" in by_kind["non_finite"].message
    assert "22050 Hz" in by_kind["sample_rate_mismatch"].message
    assert by_kind["silence"].path == str(silent)
    report = format_problems(problems)
    assert report.count("\n") == len(problems) - 1 and "silent (" in report


def test_required_sample_rate_and_tolerances(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.wav", _tone())
    b = _write(tmp_path / "b.wav", _tone(n=SR - 1))
    problems = check_audio([a, b], sample_rate=44100)
    kinds = sorted(p.kind for p in problems)
    assert kinds == ["length_mismatch", "sample_rate_mismatch", "sample_rate_mismatch"]
    assert check_audio([a, b], length_tolerance_s=0.001) == []
    # Different rates, same duration: only the rate is a problem.
    # On a tie the first file sets the reference rate.
    c = _write(tmp_path / "c.wav", _tone(n=2 * SR), sr=2 * SR)
    assert [(p.path, p.kind) for p in check_audio([a, c])] == [
        (str(c), "sample_rate_mismatch")]


def test_thresholds_are_configurable(tmp_path: Path) -> None:
    x = _tone(amp=0.95)
    f = _write(tmp_path / "loud.wav", x, subtype="FLOAT")
    assert check_audio([f]) == []
    assert [p.kind for p in check_audio([f], clip_threshold=0.9)] == ["clipping"]
    assert [p.kind for p in check_audio([f], silence_dbfs=0.0)] == ["silence"]


def test_probe_matches_numpy(tmp_path: Path) -> None:
    x = _tone(amp=0.5)
    f = _write(tmp_path / "x.wav", x, subtype="FLOAT")
    st = probe_audio(f, blocksize=1000)  # several blocks
    assert st.num_frames == len(x) and st.channels == 2 and st.sample_rate == SR
    assert st.peak == pytest.approx(float(np.max(np.abs(x))))
    assert st.rms_dbfs == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)


def test_check_signal() -> None:
    x = _tone()
    assert check_signal(x, SR) == []
    x[0, 0] = 1.2
    assert [p.kind for p in check_signal(x, SR, "after gain")] == ["clipping"]
    assert check_signal(np.zeros(SR), SR)[0].kind == "silence"
