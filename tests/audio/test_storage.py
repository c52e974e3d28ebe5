"""Content-addressed media store: stable hashes, atomic writes, no silent overwrite."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mosplatform.audio.storage import (
    StorageIntegrityError,
    store_audio,
    stored_path,
    verify_stored,
)

SR = 44100
_SIGNAL_CODE = (
    "import numpy as np\n"
    "x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 44100)[:, None]"
    " * np.array([[1.0, 0.5]])).astype(np.float32)\n"
)


def _signal() -> np.ndarray:
    ns: dict = {}
    exec(_SIGNAL_CODE, ns)  # the same construction as the subprocess below
    return ns["x"]


def test_same_audio_same_hash_and_file(tmp_path: Path) -> None:
    x = _signal()
    a = store_audio(x, SR, tmp_path)
    b = store_audio(x.copy(), SR, tmp_path)
    assert a == b
    path = tmp_path / a.relpath
    assert path.is_file()
    assert a.relpath == f"{a.content_hash[:2]}/{a.content_hash}.wav"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == a.content_hash
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    assert (a.sample_rate, a.channels, a.num_frames) == (SR, 2, 22050)
    assert a.duration_s == pytest.approx(0.5)
    assert a.peak_dbfs == pytest.approx(20 * np.log10(0.5), abs=0.01)


def test_hash_stable_across_processes(tmp_path: Path) -> None:
    here = store_audio(_signal(), SR, tmp_path / "one")
    code = _SIGNAL_CODE + (
        "import sys\n"
        "from mosplatform.audio.storage import store_audio\n"
        "print(store_audio(x, 44100, sys.argv[1]).content_hash)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "two")],
                         capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == here.content_hash
    assert (tmp_path / "two" / here.relpath).read_bytes() == (
        tmp_path / "one" / here.relpath).read_bytes()


def test_different_audio_different_hash(tmp_path: Path) -> None:
    x = _signal()
    y = x.copy()
    y[100, 0] += 1 / 32768 * 2
    assert store_audio(x, SR, tmp_path).content_hash != store_audio(y, SR, tmp_path).content_hash
    assert store_audio(x, SR, tmp_path).content_hash != store_audio(x, 48000,
                                                                    tmp_path).content_hash


def test_written_wav_is_plain_pcm_and_reads_back(tmp_path: Path) -> None:
    x = _signal()
    s = store_audio(x, SR, tmp_path)
    path = tmp_path / s.relpath
    with wave.open(str(path)) as w:  # the standard library parses it
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            2, 2, SR, 22050)
    assert path.stat().st_size == 44 + 22050 * 2 * 2  # header without extra chunks
    y, sr = sf.read(path, dtype="float32")
    assert sr == SR and np.max(np.abs(y - x)) <= 0.5 / 32768 + 1e-9


@pytest.mark.parametrize("fmt,subtype,lsb", [("wav", "PCM_24", 2**-23), ("flac", "PCM_16", 2**-15),
                                             ("flac", "PCM_24", 2**-23)])
def test_other_formats(tmp_path: Path, fmt: str, subtype: str, lsb: float) -> None:
    x = _signal()
    a = store_audio(x, SR, tmp_path, fmt=fmt, subtype=subtype)
    assert a == store_audio(x, SR, tmp_path, fmt=fmt, subtype=subtype)
    assert a.relpath.endswith(f".{fmt}")
    y, sr = sf.read(tmp_path / a.relpath, dtype="float64")
    assert sr == SR and np.max(np.abs(y - x)) <= lsb / 2 + 1e-12


def test_existing_file_with_other_content_is_never_overwritten(tmp_path: Path) -> None:
    s = store_audio(_signal(), SR, tmp_path)
    path = tmp_path / s.relpath
    path.write_bytes(b"tampered")
    assert not verify_stored(tmp_path, s.relpath)
    with pytest.raises(StorageIntegrityError, match="corrupted"):
        store_audio(_signal(), SR, tmp_path)
    assert path.read_bytes() == b"tampered"


def test_verify_and_path_safety(tmp_path: Path) -> None:
    s = store_audio(_signal(), SR, tmp_path)
    assert verify_stored(tmp_path, s.relpath)
    for bad in ["../etc/passwd", "ab/cd.wav", f"zz/{s.content_hash}.wav",
                f"{s.content_hash[:2]}/{s.content_hash}.mp3"]:
        with pytest.raises(ValueError):
            stored_path(tmp_path, bad)


def test_refuses_clipping_and_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clips"):
        store_audio(np.full((100, 1), 1.5, dtype=np.float32), SR, tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        store_audio(np.full((100, 1), np.nan, dtype=np.float32), SR, tmp_path)
    with pytest.raises(ValueError, match="empty"):
        store_audio(np.zeros((0, 2), dtype=np.float32), SR, tmp_path)
    full = store_audio(np.array([1.0, -1.0], dtype=np.float32), SR, tmp_path)
    assert full.peak_dbfs == pytest.approx(0.0)
