"""Helpers of the separation tests: a small synthetic multitrack set and tiny configs.

The synthetic tracks are simple but source-like (noise-burst drums, sine bass notes,
chords, a vibrato "voice"), stereo, in the MUSDB18-HQ layout, at 8 kHz to keep the
tiny model fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 8000
SOURCES = ["drums", "bass", "other", "vocals"]
#: hdemucs "tiny" preset adapted to the 8 kHz test data
TINY = {"sample_rate": SR, "segment": 0.6}


def _note_env(n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / 0.01) * np.exp(-3 * t)


def render_track(rng: np.random.Generator, seconds: float, sr: int = SR) -> dict[str, np.ndarray]:
    """Four stereo stems ``(time, 2)`` of a synthetic two-bar-loop track."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    beat = 60 / rng.uniform(90, 140)
    drums = np.zeros(n)
    for k in range(int(seconds / beat * 2)):
        start = int(k * beat / 2 * sr)
        length = min(int(0.12 * sr), n - start)
        if length <= 0:
            break
        burst = rng.normal(size=length) * np.exp(-np.arange(length) / (0.02 * sr))
        drums[start:start + length] += burst * (1.0 if k % 2 == 0 else 0.5)
    bass = np.zeros(n)
    other = np.zeros(n)
    root = rng.integers(36, 48)
    for k in range(int(seconds / (2 * beat)) + 1):
        start = int(k * 2 * beat * sr)
        length = min(int(2 * beat * sr), n - start)
        if length <= 0:
            break
        pitch = root + rng.choice([0, 5, 7, 3])
        f0 = 440 * 2 ** ((pitch - 69) / 12)
        tt = np.arange(length) / sr
        env = _note_env(length, sr)
        bass[start:start + length] += np.sin(2 * np.pi * f0 * tt) * env
        for interval in (12, 16, 19):
            f = 440 * 2 ** ((pitch + interval - 69) / 12)
            other[start:start + length] += 0.3 * np.sin(2 * np.pi * f * tt) * env
    f0 = 440 * 2 ** ((root + 24 - 69) / 12)
    vib = f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(vib) / sr
    vocals = sum(np.sin(h * phase) / h for h in range(1, 5)) * (0.6 + 0.4 * np.sin(
        2 * np.pi * 0.5 * t))
    stems = {}
    for name, x in zip(SOURCES, (drums, bass, other, vocals), strict=True):
        pan = rng.uniform(0.3, 0.7)
        x = 0.2 * x / (np.abs(x).max() + 1e-9)
        stems[name] = np.stack([x * (1 - pan), x * pan], axis=1).astype(np.float32)
    return stems


def make_multitrack(root: Path, n_train: int = 4, n_test: int = 1, seconds: float = 2.0,
                    sr: int = SR, seed: int = 0) -> Path:
    """Write ``root/{train,test}/<track>/{mixture,drums,bass,other,vocals}.wav``."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("test", n_test)):
        for i in range(count):
            folder = root / split / f"{split} track {i:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            stems = render_track(rng, seconds, sr)
            for name, x in stems.items():
                sf.write(folder / f"{name}.wav", x, sr, subtype="FLOAT")
            sf.write(folder / "mixture.wav", sum(stems.values()), sr, subtype="FLOAT")
    return root
