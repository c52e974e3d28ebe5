"""Speech over background music, for the U-Net's speech task.

Speech is synthesised with espeak-ng (Debian package ``espeak-ng``) from sentences that
a small seeded grammar generates, with varied voices, speeds and pitches; the music is
the mixture of a demo (or MUSDB) track.  Both are mono at 16 kHz and mixed at a random
speech-to-music ratio.  Output layout: ``out/train|test/<track>/{mixture,speech,music}.wav``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..data import list_tracks, read_audio, resample, write_audio
from .common import SAMPLE_RATE

_DETERMINERS = ["the", "a", "every", "one", "that", "our", "my", "this"]
_ADJECTIVES = ["quiet", "bright", "old", "young", "careful", "distant", "golden", "tired",
               "curious", "silver", "gentle", "heavy", "narrow", "patient", "sudden", "warm"]
_NOUNS = ["engineer", "lantern", "river", "teacher", "garden", "window", "painter", "station",
          "harbor", "village", "letter", "mountain", "doctor", "kitchen", "sailor", "forest",
          "bicycle", "market", "library", "violin"]
_VERBS = ["carries", "watches", "finds", "remembers", "follows", "builds", "paints", "opens",
          "answers", "crosses", "visits", "repairs", "describes", "passes", "hears"]
_PLACES = ["across the valley", "before the storm", "near the old bridge", "after dinner",
           "in the early morning", "along the coast", "under the clock tower", "every winter",
           "without a word", "at the end of the street", "during the long summer"]
_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp"]
_VARIANTS = ["m1", "m3", "m5", "f1", "f2", "f4"]


def make_sentences(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` grammatical English sentences drawn from a small seeded grammar."""

    def pick(words: list[str]) -> str:
        return words[int(rng.integers(len(words)))]

    sentences = []
    for _ in range(count):
        subject = f"{pick(_DETERMINERS)} {pick(_ADJECTIVES)} {pick(_NOUNS)}"
        obj = f"{pick(_DETERMINERS)} {pick(_NOUNS)}"
        text = f"{subject} {pick(_VERBS)} {obj} {pick(_PLACES)}"
        if rng.random() < 0.3:
            text += f" and {pick(_VERBS)} {pick(_DETERMINERS)} {pick(_ADJECTIVES)} {pick(_NOUNS)}"
        sentences.append(text[0].upper() + text[1:] + ".")
    return sentences


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` executable is on the PATH."""
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speak ``text`` with espeak-ng; mono float32 at ``sample_rate``.

    Parameters
    ----------
    text : str
        What to say.
    voice : str
        espeak-ng voice, optionally with a variant (``"en-gb+f2"``).
    speed : int
        Words per minute.
    pitch : int
        0-99.
    sample_rate : int
        Output rate in Hz (espeak-ng renders at 22.05 kHz).
    """
    if not espeak_available():
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                        "-w", str(wav), text], check=True, capture_output=True)
        audio, sr = read_audio(wav, channels=1)
    return resample(audio[:, 0], sr, sample_rate).astype(np.float32)


def speech_track(rng: np.random.Generator, length: int,
                 sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, list[str]]:
    """A speech signal of ``length`` samples: sentences by one speaker with pauses.

    Returns
    -------
    audio : numpy.ndarray
        ``(length,)`` float32, peak-normalised sentences.
    sentences : list of str
        The sentences spoken.
    """
    voice = f"{_VOICES[int(rng.integers(len(_VOICES)))]}+{_VARIANTS[int(rng.integers(6))]}"
    speed = int(rng.integers(130, 190))
    pitch = int(rng.integers(25, 75))
    out = np.zeros(length, dtype=np.float32)
    pos = int(rng.uniform(0.1, 1.0) * sample_rate)
    spoken = []
    while pos < length:
        text = make_sentences(rng, 1)[0]
        audio = synthesize(text, voice, speed, pitch, sample_rate)
        audio = audio / (np.abs(audio).max() + 1e-9)
        n = min(len(audio), length - pos)
        out[pos: pos + n] = audio[:n]
        spoken.append(text)
        pos += n + int(rng.uniform(0.3, 1.5) * sample_rate)
    return out, spoken


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def generate_speech_dataset(music_root: str | Path, out_dir: str | Path,
                            splits: tuple[str, ...] = ("train", "test"),
                            snr_db: tuple[float, float] = (-3.0, 6.0), seed: int = 0,
                            sample_rate: int = SAMPLE_RATE,
                            max_tracks: int | None = None) -> Path:
    """Write speech-over-music tracks built on the mixtures of a MUSDB-layout folder.

    Parameters
    ----------
    music_root : path
        Music data set (``split/<track>/mixture.wav`` is the background).
    out_dir : path
        Destination root; ``split/<track>/{mixture,speech,music}.wav`` at 16 kHz mono.
    splits : tuple of str
        Splits to convert.
    snr_db : (float, float)
        Range of the speech-to-music RMS ratio in dB (uniform per track).
    seed : int
        Seed of sentences, voices and ratios (track ``i`` of a split depends only on
        ``(seed, split, i)``).
    sample_rate : int
        Rate in Hz.
    max_tracks : int, optional
        Convert only the first tracks of each split.

    Returns
    -------
    pathlib.Path
        ``out_dir``; ``speech.json`` there lists the sentences and ratios.
    """
    out_dir = Path(out_dir)
    manifest: dict[str, dict] = {}
    for s_index, split in enumerate(splits):
        for i, track in enumerate(list_tracks(music_root, split, ["mixture"])[:max_tracks]):
            rng = np.random.default_rng([seed, s_index, i])
            music = read_audio(track.path("mixture"), sample_rate, 1)[0][:, 0]
            speech, sentences = speech_track(rng, len(music), sample_rate)
            ratio = float(rng.uniform(*snr_db))
            active = speech[np.abs(speech) > 1e-4]
            speech = speech * (_rms(music) / _rms(active) * 10 ** (ratio / 20))
            mixture = speech + music
            peak = max(1.0, float(np.abs(mixture).max()) / 0.98)
            folder = out_dir / split / track.name
            for name, audio in (("mixture", mixture), ("speech", speech), ("music", music)):
                write_audio(folder / f"{name}.wav", (audio / peak)[:, None], sample_rate,
                            subtype="FLOAT")
            manifest[f"{split}/{track.name}"] = {"sentences": sentences, "snr_db": ratio}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "speech.json").write_text(json.dumps(manifest, indent=1))
    return out_dir
