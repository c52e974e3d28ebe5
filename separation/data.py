"""MUSDB18-HQ-layout data: audio I/O, track listing, augmented training segments, SDR.

Folder layout (MUSDB18-HQ, and the demo data set)::

    ROOT/train/<track>/{mixture,drums,bass,other,vocals}.wav
    ROOT/test/<track>/...

Validation tracks are taken out of ``train`` by name (:data:`MUSDB_VALID_TRACKS` for the
real data set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

SOURCES = ["drums", "bass", "other", "vocals"]

#: The official 14-track validation subset of MUSDB18 ``train`` (sigsep/musdb ``mus.yaml``).
MUSDB_VALID_TRACKS = [
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")


# --------------------------------------------------------------------------- audio I/O
def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling along axis 0 (``(time, channels)`` or ``(time,)``)."""
    if sr_in == sr_out:
        return audio
    ratio = Fraction(sr_out, sr_in).limit_denominator(1000)
    return resample_poly(audio, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def fit_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """``(time, c)`` -> ``(time, channels)``: duplicate mono, average down to mono."""
    have = audio.shape[1]
    if have == channels:
        return audio
    if have == 1:
        return np.repeat(audio, channels, axis=1)
    if channels == 1:
        return audio.mean(axis=1, keepdims=True)
    raise ValueError(f"cannot map {have} audio channels to {channels}")


def read_audio(path: str | Path, sample_rate: int | None = None, channels: int | None = None,
               start: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Read ``(time, channels)`` float32 audio, optionally resampled and channel-mapped.

    Parameters
    ----------
    path : path
        Any file soundfile reads.
    sample_rate : int, optional
        Resample to this rate (Hz); ``None`` keeps the file's rate.
    channels : int, optional
        Map to this many channels (see :func:`fit_channels`).
    start, duration : float
        Excerpt in seconds (``duration=None`` reads to the end).

    Returns
    -------
    audio : ndarray, shape (time, channels)
    sample_rate : int
    """
    info = sf.info(str(path))
    first = int(round(start * info.samplerate))
    frames = -1 if duration is None else int(math.ceil(duration * info.samplerate))
    audio, sr = sf.read(str(path), start=first, frames=frames, dtype="float32", always_2d=True)
    if sample_rate is not None and sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
        if duration is not None:
            audio = _fix_length(audio, int(round(duration * sample_rate)))
        sr = sample_rate
    if channels is not None:
        audio = fit_channels(audio, channels)
    return audio, sr


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int,
                subtype: str = "PCM_16") -> None:
    """Write ``(time, channels)`` audio; integer subtypes are clipped to [-1, 1]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if subtype.startswith("PCM"):
        audio = np.clip(audio, -1.0, 1.0)
    sf.write(str(path), audio, sample_rate, subtype=subtype)


def _fix_length(audio: np.ndarray, length: int) -> np.ndarray:
    if audio.shape[0] >= length:
        return audio[:length]
    return np.pad(audio, ((0, length - audio.shape[0]), (0, 0)))


# --------------------------------------------------------------------------- tracks
@dataclass(frozen=True)
class Track:
    """One multitrack folder: ``name``, ``folder``, length in frames at ``sample_rate``."""

    name: str
    folder: Path
    frames: int
    sample_rate: int

    def path(self, stem: str) -> Path:
        return self.folder / f"{stem}.wav"


def list_tracks(root: str | Path, split: str = "train",
                sources: list[str] | None = None) -> list[Track]:
    """Tracks of ``root/split`` that have every source file, sorted by name."""
    sources = sources or SOURCES
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"no {split!r} folder under {root}")
    tracks = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not all((sub / f"{s}.wav").exists() for s in sources):
            continue
        info = sf.info(str(sub / f"{sources[0]}.wav"))
        tracks.append(Track(sub.name, sub, info.frames, info.samplerate))
    if not tracks:
        raise FileNotFoundError(f"no complete multitrack folders in {folder}")
    return tracks


def split_train_valid(tracks: list[Track], valid_tracks: list[str] | None = None,
                      valid_fraction: float = 0.1) -> tuple[list[Track], list[Track]]:
    """Split ``train`` tracks into training and validation tracks by name.

    ``valid_tracks=None`` uses :data:`MUSDB_VALID_TRACKS` when they are present (the
    real data set), otherwise the last ``max(1, round(valid_fraction * n))`` tracks in
    name order (for the demo data). An empty list means no validation tracks.
    """
    names = [t.name for t in tracks]
    if valid_tracks is None:
        chosen = [n for n in MUSDB_VALID_TRACKS if n in names]
        if not chosen and len(tracks) > 1:
            n_valid = max(1, round(valid_fraction * len(tracks)))
            chosen = names[-n_valid:]
    else:
        missing = sorted(set(valid_tracks) - set(names))
        if missing:
            raise ValueError(f"validation tracks not found: {missing}")
        chosen = list(valid_tracks)
    valid = [t for t in tracks if t.name in chosen]
    train = [t for t in tracks if t.name not in chosen]
    if not train:
        raise ValueError("no training tracks left after the validation split")
    return train, valid


def load_track(track: Track, sources: list[str], sample_rate: int, channels: int,
               use_mixture_file: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole track as tensors ``mixture (C, T)`` and ``sources (S, C, T)``.

    The mixture is ``mixture.wav`` when present (and ``use_mixture_file``), otherwise
    the sum of the sources.
    """
    stems = [read_audio(track.path(s), sample_rate, channels)[0] for s in sources]
    length = min(a.shape[0] for a in stems)
    src = torch.from_numpy(np.stack([a[:length].T for a in stems]))
    mix_path = track.path("mixture")
    if use_mixture_file and mix_path.exists():
        mix = read_audio(mix_path, sample_rate, channels)[0]
        mix = torch.from_numpy(_fix_length(mix, length).T.copy())
    else:
        mix = src.sum(0)
    return mix, src


# --------------------------------------------------------------------------- training set
@dataclass
class Augment:
    """Per-source augmentations of the training set (after Demucs).

    Attributes
    ----------
    remix_prob : float
        Probability that a source is drawn from another random track (remixing).
    gain_range : (float, float)
        Uniform random gain per source (linear).
    channel_swap_prob, sign_flip_prob : float
        Probability of swapping left/right, of inverting the polarity, per source.
    """

    remix_prob: float = 0.5
    gain_range: tuple[float, float] = (0.25, 1.25)
    channel_swap_prob: float = 0.5
    sign_flip_prob: float = 0.5

    @classmethod
    def off(cls) -> Augment:
        return cls(0.0, (1.0, 1.0), 0.0, 0.0)


class SegmentDataset(torch.utils.data.Dataset):
    """Random, augmented training segments drawn from multitrack folders.

    Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: training is
    reproducible and a resumed run draws the same segments. Call :meth:`set_epoch`
    before each epoch. Returns ``(mixture (C, T), sources (S, C, T))`` float32 tensors
    with ``mixture = sum(sources)``.

    Parameters
    ----------
    tracks : list of Track
    sources : list of str
    segment : float
        Segment length in seconds.
    sample_rate : int
        Output rate in Hz (tracks at other rates are resampled on the fly).
    channels : int
        Output audio channels.
    samples_per_epoch : int
        Number of items per epoch.
    augment : Augment, optional
    seed : int
    """

    def __init__(self, tracks: list[Track], sources: list[str], segment: float,
                 sample_rate: int, channels: int = 2, samples_per_epoch: int = 1000,
                 augment: Augment | None = None, seed: int = 0) -> None:
        self.tracks = tracks
        self.sources = list(sources)
        self.segment = segment
        self.sample_rate = sample_rate
        self.channels = channels
        self.samples_per_epoch = samples_per_epoch
        self.augment = augment or Augment()
        self.seed = seed
        self.epoch = 0
        self.length = int(round(segment * sample_rate))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def _read(self, track: Track, stem: str, rng: np.random.Generator) -> np.ndarray:
        duration = track.frames / track.sample_rate
        start = float(rng.uniform(0, max(0.0, duration - self.segment)))
        audio, _ = read_audio(track.path(stem), self.sample_rate, self.channels, start=start,
                              duration=self.segment)
        return _fix_length(audio, self.length)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        aug = self.augment
        base = int(rng.integers(len(self.tracks)))
        stems = []
        for stem in self.sources:
            track_index = base
            if rng.random() < aug.remix_prob:
                track_index = int(rng.integers(len(self.tracks)))
            audio = self._read(self.tracks[track_index], stem, rng).T  # (C, T)
            audio = audio * rng.uniform(*aug.gain_range)
            if self.channels == 2 and rng.random() < aug.channel_swap_prob:
                audio = audio[::-1]
            if rng.random() < aug.sign_flip_prob:
                audio = -audio
            stems.append(np.ascontiguousarray(audio, dtype=np.float32))
        src = torch.from_numpy(np.stack(stems))
        return src.sum(0), src


# --------------------------------------------------------------------------- metric
def sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Whole-signal SDR in dB, ``10 log10(||s||^2 / ||s - s_hat||^2)``.

    Reduces over the last two axes (channels, time); e.g. ``(S, C, T)`` -> ``(S,)``.
    This is the quick validation metric of training, not BSS Eval (no framewise
    median, no distortion filter).
    """
    num = (reference ** 2).sum(dim=(-2, -1))
    den = ((reference - estimate) ** 2).sum(dim=(-2, -1))
    return 10 * torch.log10((num + eps) / (den + eps))
