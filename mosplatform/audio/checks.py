"""Checks on the audio files of one item, reporting every problem found.

The importer calls :func:`check_audio` once per item (the files that will be
played side by side: reference, conditions, sources) and shows the whole list,
so a researcher fixes all problems in one pass instead of one per import attempt.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf

__all__ = [
    "Problem",
    "AudioStats",
    "PROBLEM_KINDS",
    "probe_audio",
    "signal_stats",
    "check_audio",
    "check_signal",
    "format_problems",
]

#: Every kind of problem :func:`check_audio` reports.
PROBLEM_KINDS = (
    "unreadable",
    "sample_rate_mismatch",
    "channel_mismatch",
    "length_mismatch",
    "clipping",
    "silence",
    "non_finite",
)


@dataclass(frozen=True)
class Problem:
    """One problem found in one file.

    Attributes
    ----------
    path : str
        The file (or the label given to an in-memory signal).
    kind : str
        One of :data:`PROBLEM_KINDS`.
    message : str
        A sentence for the researcher, with the measured values.
    label : str
        The caller's name for the file (the key when :func:`check_audio` got a mapping),
        or ``""``.
    """

    path: str
    kind: str
    message: str
    label: str = ""

    def __str__(self) -> str:
        where = f"{self.label} ({self.path})" if self.label else self.path
        return f"{where}: [{self.kind}] {self.message}"


@dataclass(frozen=True)
class AudioStats:
    """Measurements of one signal.

    Attributes
    ----------
    sample_rate : int
        Hz.
    channels : int
        Number of channels.
    num_frames : int
        Length in frames.
    peak : float
        Largest finite absolute sample value (1.0 = full scale).
    rms_dbfs : float
        RMS over all finite samples and channels, ``20 log10(rms)`` (a full-scale square
        wave is 0 dBFS, a full-scale sine -3.01 dBFS); ``-inf`` for digital silence.
    n_clipped : int
        Samples with ``|x| >= clip_threshold``.
    n_non_finite : int
        NaN or infinite samples.
    """

    sample_rate: int
    channels: int
    num_frames: int
    peak: float
    rms_dbfs: float
    n_clipped: int
    n_non_finite: int

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.sample_rate if self.sample_rate else 0.0


class _Accumulator:
    def __init__(self, clip_threshold: float) -> None:
        self.clip_threshold = clip_threshold
        self.peak = 0.0
        self.sumsq = 0.0
        self.count = 0
        self.n_clipped = 0
        self.n_non_finite = 0

    def add(self, block: np.ndarray) -> None:
        b = np.asarray(block, dtype=np.float64)
        finite = np.isfinite(b)
        self.n_non_finite += int(b.size - np.count_nonzero(finite))
        vals = np.abs(b[finite])
        if vals.size:
            self.peak = max(self.peak, float(vals.max()))
            self.sumsq += float(np.dot(vals, vals))
            self.count += int(vals.size)
            self.n_clipped += int(np.count_nonzero(vals >= self.clip_threshold))

    def stats(self, sample_rate: int, channels: int, num_frames: int) -> AudioStats:
        rms = math.sqrt(self.sumsq / self.count) if self.count else 0.0
        return AudioStats(
            sample_rate=int(sample_rate), channels=int(channels), num_frames=int(num_frames),
            peak=self.peak, rms_dbfs=20 * math.log10(rms) if rms > 0 else -math.inf,
            n_clipped=self.n_clipped, n_non_finite=self.n_non_finite,
        )


def probe_audio(path: str | os.PathLike, clip_threshold: float = 0.999,
                blocksize: int = 1 << 18) -> AudioStats:
    """Measure a file block by block (memory stays bounded for long files).

    Parameters
    ----------
    path : path-like
        Audio file.
    clip_threshold : float
        Absolute sample value counted as clipped.
    blocksize : int
        Frames read at a time.

    Returns
    -------
    AudioStats

    Raises
    ------
    soundfile.LibsndfileError, OSError
        If the file cannot be opened or decoded.
    """
    acc = _Accumulator(clip_threshold)
    frames = 0
    with sf.SoundFile(os.fspath(path)) as f:
        sr, channels = f.samplerate, f.channels
        for block in f.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
            acc.add(block)
            frames += len(block)
    return acc.stats(sr, channels, frames)


def signal_stats(x: np.ndarray, sample_rate: int, clip_threshold: float = 0.999) -> AudioStats:
    """:class:`AudioStats` of an in-memory signal of shape (frames,) or (frames, channels)."""
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[:, None]
    acc = _Accumulator(clip_threshold)
    acc.add(arr)
    return acc.stats(sample_rate, arr.shape[1], arr.shape[0])


def _single_problems(path: str, st: AudioStats, clip_threshold: float,
                     silence_dbfs: float, label: str = "") -> list[Problem]:
    out = []
    if st.n_non_finite:
        out.append(Problem(path, "non_finite",
                           f"{st.n_non_finite} NaN or infinite sample(s)", label))
    if st.n_clipped:
        out.append(Problem(path, "clipping",
                           f"{st.n_clipped} sample(s) at or above {clip_threshold:g} "
                           f"(peak {st.peak:.4f} = {_db(st.peak):+.2f} dBFS)", label))
    if st.rms_dbfs < silence_dbfs:
        level = "digital silence" if st.rms_dbfs == -math.inf else f"{st.rms_dbfs:.1f} dBFS"
        out.append(Problem(path, "silence",
                           f"RMS level {level} is below {silence_dbfs:g} dBFS", label))
    return out


def _db(v: float) -> float:
    return 20 * math.log10(v) if v > 0 else -math.inf


def check_signal(x: np.ndarray, sample_rate: int, label: str = "<signal>", *,
                 clip_threshold: float = 0.999, silence_dbfs: float = -60.0) -> list[Problem]:
    """Check one in-memory signal for NaN/inf, clipping and silence.

    Use it after processing (resampling, loudness normalisation, anchors), where the
    input files passed :func:`check_audio` but the result might not.

    Parameters
    ----------
    x : array_like
        Samples, (frames,) or (frames, channels).
    sample_rate : int
        Hz.
    label : str
        Name used as :attr:`Problem.path`.
    clip_threshold, silence_dbfs : float
        As in :func:`check_audio`.

    Returns
    -------
    list of Problem
        Empty when the signal is fine.
    """
    st = signal_stats(x, sample_rate, clip_threshold)
    return _single_problems(label, st, clip_threshold, silence_dbfs)


def _majority(values: list) -> object:
    # Most common value; on a tie, the one seen first.
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)


def check_audio(
    paths: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
    *,
    sample_rate: int | None = None,
    clip_threshold: float = 0.999,
    silence_dbfs: float = -60.0,
    length_tolerance_s: float | None = None,
) -> list[Problem]:
    """Check the files of one item and report every problem found.

    Parameters
    ----------
    paths : sequence of path-like, or mapping of label to path-like
        The files played within one item (reference, conditions, sources). With a
        mapping, :attr:`Problem.path` names the file and :attr:`Problem.label` the key.
    sample_rate : int, optional
        Required sample rate. When omitted, the most common rate among the files is the
        reference, and any other rate is a ``sample_rate_mismatch``.
    clip_threshold : float
        A sample with ``|x| >= clip_threshold`` counts as clipped (default 0.999).
    silence_dbfs : float
        A file whose overall RMS is below this level (dBFS, see :class:`AudioStats`) is
        reported as ``silence`` (default -60).
    length_tolerance_s : float, optional
        Allowed difference in duration. By default lengths must match exactly in frames
        when the sample rates agree, and within one sample period of the lowest rate
        otherwise.

    Returns
    -------
    list of Problem
        Every problem, in file order; per file first ``unreadable`` / ``non_finite`` /
        ``clipping`` / ``silence``, then the cross-file mismatches
        (``sample_rate_mismatch``, ``channel_mismatch``, ``length_mismatch``), each
        reported on the files that differ from the majority. Empty when all is well.

    Notes
    -----
    Every kind is an error for a listening test except, arguably,
    ``sample_rate_mismatch`` when the importer resamples everything to one rate
    (``mosplatform.audio.resample``); the caller decides which kinds are fatal.

    Examples
    --------
    >>> problems = check_audio({"ref": "ref.wav", "sysA": "a.wav"})  # doctest: +SKIP
    >>> print(format_problems(problems))  # doctest: +SKIP
    """
    if isinstance(paths, Mapping):
        entries = [(str(k), os.fspath(v)) for k, v in paths.items()]
    else:
        entries = [("", os.fspath(v)) for v in paths]
    problems: list[Problem] = []
    readable: list[tuple[str, AudioStats]] = []
    per_file: list[list[Problem]] = []
    for i, (name, path) in enumerate(entries):
        try:
            st = probe_audio(path, clip_threshold=clip_threshold)
        except (sf.LibsndfileError, OSError, RuntimeError, ValueError) as exc:
            per_file.append([Problem(path, "unreadable", f"cannot be read: {exc}", name)])
            continue
        readable.append((i, st))
        per_file.append(_single_problems(path, st, clip_threshold, silence_dbfs, name))

    if readable:
        rates = [st.sample_rate for _, st in readable]
        ref_rate = int(sample_rate) if sample_rate is not None else _majority(rates)
        for i, st in readable:
            if st.sample_rate != ref_rate:
                what = "required" if sample_rate is not None else "other files'"
                per_file[i].append(Problem(
                    entries[i][1], "sample_rate_mismatch",
                    f"sample rate {st.sample_rate} Hz differs from the {what} {ref_rate} Hz",
                    entries[i][0]))
        ref_ch = _majority([st.channels for _, st in readable])
        for i, st in readable:
            if st.channels != ref_ch:
                per_file[i].append(Problem(
                    entries[i][1], "channel_mismatch",
                    f"{st.channels} channel(s) where the other files have {ref_ch}",
                    entries[i][0]))
        same_rate = len({st.sample_rate for _, st in readable}) == 1
        if length_tolerance_s is None:
            tol = 0.0 if same_rate else 1.0 / min(rates)
        else:
            tol = float(length_tolerance_s)
        if same_rate and length_tolerance_s is None:
            ref_len = _majority([st.num_frames for _, st in readable])
            for i, st in readable:
                if st.num_frames != ref_len:
                    per_file[i].append(Problem(
                        entries[i][1], "length_mismatch",
                        f"{st.num_frames} frames ({st.duration_s:.3f} s) where the other "
                        f"files have {ref_len} frames ({ref_len / st.sample_rate:.3f} s)",
                        entries[i][0]))
        else:
            ref_dur = _majority([st.duration_s for _, st in readable])
            for i, st in readable:
                if abs(st.duration_s - ref_dur) > tol + 1e-12:
                    per_file[i].append(Problem(
                        entries[i][1], "length_mismatch",
                        f"duration {st.duration_s:.6f} s differs from the other files' "
                        f"{ref_dur:.6f} s by more than {tol:.6f} s", entries[i][0]))
    for found in per_file:
        problems.extend(found)
    return problems


def format_problems(problems: Sequence[Problem]) -> str:
    """One line per problem, for a CLI or an admin page; ``"no problems"`` when empty."""
    if not problems:
        return "no problems"
    return "\n".join(str(p) for p in problems)
