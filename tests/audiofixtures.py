"""Small deterministic audio folders for tests (MUSDB-style layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SOURCES = ("drums", "bass", "other", "vocals")


def _stem(rng: np.random.Generator, n: int, sr: int, k: int) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = [110.0, 55.0, 220.0, 440.0][k % 4] * (1 + 0.05 * rng.random())
    tone = sum(np.sin(2 * np.pi * f0 * h * t + rng.random()) / h for h in range(1, 6))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + k) * t) ** 2
    noise = rng.standard_normal(n) * 0.02  # broadband floor: keeps anchors and SDR defined
    x = 0.12 * tone * env + noise
    return np.stack([x, 0.9 * x + 0.01 * rng.standard_normal(n)], axis=1).astype(np.float32)


def make_musdb(root: Path, tracks: int = 2, seconds: float = 3.0, sr: int = 32000,
               systems: tuple[str, ...] = ("sysA", "sysB"), seed: int = 0) -> dict[str, Path]:
    """Write references and system estimates; returns {"reference": dir, system: dir}."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = {"reference": root / "reference"}
    for t in range(tracks):
        track = f"track{t:02d}"
        stems = {s: _stem(rng, n, sr, k) for k, s in enumerate(SOURCES)}
        tdir = out["reference"] / track
        tdir.mkdir(parents=True, exist_ok=True)
        for s, x in stems.items():
            sf.write(tdir / f"{s}.wav", x, sr, subtype="FLOAT")
        mix = sum(stems.values())
        sf.write(tdir / "mixture.wav", mix, sr, subtype="FLOAT")
        for j, system in enumerate(systems):
            sdir = root / system / track
            sdir.mkdir(parents=True, exist_ok=True)
            leak = 0.1 * (j + 1)
            for s, x in stems.items():
                est = (1 - leak) * x + leak * mix / 4 + 0.01 * (j + 1) * rng.standard_normal(
                    x.shape).astype(np.float32)
                sf.write(sdir / f"{s}.wav", est.astype(np.float32), sr, subtype="FLOAT")
        out.update({system: root / system for system in systems})
    return out


MUSHRA_YAML = """
name: Tiny MUSHRA
kind: mushra
languages: [en, ja]
questions:
  - key: quality
    label: {{en: Basic audio quality, ja: 音質}}
    scale: mushra
conditions:
  - {{key: openref, role: reference}}
  - {{key: hiddenref, role: hidden_reference}}
  - {{key: lowpass35, role: low_anchor}}
  - {{key: lowpass70, role: mid_anchor}}
  - {{key: sysA, folder: {sysA}}}
  - {{key: sysB, folder: {sysB}}}
stimuli:
  type: folders
  reference: {reference}
  sources: [vocals, bass]
  excerpt: {{start: 0.5, duration: 2.0}}
preparation: {{sample_rate: 32000, fade_ms: 10}}
design: {{trials_per_participant: 2, calibration: false}}
"""

ACR_YAML = """
name: Tiny separation MOS
kind: acr
questions:
  - key: accuracy
    label: Separation accuracy
    scale: acr
  - key: contamination
    label: Contamination
    scale: acr
conditions:
  - {{key: truth, role: hidden_reference}}
  - {{key: sysA, folder: {sysA}}}
  - {{key: sysB, folder: {sysB}}}
stimuli:
  type: folders
  reference: {reference}
  items: track_random_source
  excerpt: {{start: 0.5, duration: 2.0}}
preparation: {{sample_rate: 32000, fade_ms: 10}}
design: {{trials_per_participant: 2, training: false, calibration: false}}
"""


def write_definition(root: Path, template: str, dirs: dict[str, Path], name: str) -> Path:
    path = root / name
    path.write_text(template.format(**{k: str(v) for k, v in dirs.items()}), encoding="utf-8")
    return path
