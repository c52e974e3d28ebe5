"""Headphone screening signals.

Two three-interval forced-choice tests, both built on interaural phase, which
loudspeakers scramble and headphones keep:

Antiphase loudness test (Woods et al., 2017, Attention, Perception, & Psychophysics)
    Three 200 Hz tones; the listener picks the softest. One tone is 6 dB quieter (the
    correct answer); one is at full level but in antiphase between the channels. Over
    headphones the antiphase tone sounds as loud as the standard; over loudspeakers its
    channels partly cancel in the air, so it sounds softest and draws the wrong answer.

Huggins pitch test (Milne et al., 2021, Behavior Research Methods)
    Three 1000 ms white-noise intervals; the listener picks the one containing a faint
    tone. Two intervals are diotic noise; in the third the right channel carries the
    same noise with the phase of a narrow band (600 Hz +/- 6 %) inverted, which is heard
    as a pitch at 600 Hz only when each ear gets its own channel.

Every generator is deterministic given its ``seed``. Signals are ``float32`` arrays of
shape (frames, 2) (left, right). Answer indices are 0-based.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "HeadphoneTrial",
    "antiphase_tone",
    "antiphase_option",
    "antiphase_trial",
    "huggins_noise",
    "huggins_option",
    "huggins_trial",
]

_N_OPTIONS = 3
_SEED_MASK = (1 << 128) - 1


def _seed(seed: int) -> int:
    """Any integer seed (negative or wider than 64 bits) as a SeedSequence entropy value."""
    return int(seed) & _SEED_MASK


@dataclass(frozen=True)
class HeadphoneTrial:
    """One three-interval trial.

    Attributes
    ----------
    options : tuple of numpy.ndarray
        The three intervals, each (frames, 2).
    audio : numpy.ndarray
        The intervals joined with silent gaps, (frames, 2).
    sample_rate : int
        Hz.
    answer : int
        Index (0-based) of the correct interval.
    onsets_s : tuple of float
        Start of each interval in ``audio``, seconds.
    kind : str
        ``"antiphase"`` or ``"huggins"``.
    """

    options: tuple[np.ndarray, ...]
    audio: np.ndarray
    sample_rate: int
    answer: int
    onsets_s: tuple[float, ...]
    kind: str


def _ramp(n: int, sample_rate: int, ramp_s: float) -> np.ndarray:
    r = min(int(round(ramp_s * sample_rate)), n // 2)
    env = np.ones(n)
    if r > 0:
        up = 0.5 * (1 - np.cos(np.pi * np.arange(r) / r))
        env[:r] = up
        env[n - r:] = up[::-1]
    return env


def _check_option(option: int, correct: int) -> None:
    for name, v in (("option", option), ("correct", correct)):
        if not 0 <= int(v) < _N_OPTIONS:
            raise ValueError(f"{name} must be 0, 1 or 2, got {v}")


def antiphase_tone(sample_rate: int = 44100, *, level_db: float = 0.0, antiphase: bool = False,
                   frequency_hz: float = 200.0, duration_s: float = 1.0, ramp_s: float = 0.1,
                   base_dbfs: float = -12.0) -> np.ndarray:
    """One tone of the antiphase test.

    Parameters
    ----------
    sample_rate : int
        Hz.
    level_db : float
        Level relative to the standard (``-6`` for the target).
    antiphase : bool
        Invert the right channel.
    frequency_hz, duration_s, ramp_s : float
        Tone frequency, length and raised-cosine on/off ramps.
    base_dbfs : float
        Peak level of the standard tone.

    Returns
    -------
    numpy.ndarray
        ``float32`` (frames, 2).
    """
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    amp = 10 ** ((base_dbfs + level_db) / 20)
    mono = amp * np.sin(2 * np.pi * frequency_hz * t) * _ramp(n, sample_rate, ramp_s)
    right = -mono if antiphase else mono
    return np.stack([mono, right], axis=1).astype(np.float32)


def _antiphase_roles(correct: int, seed: int) -> list[str]:
    """Role of each option: 'quiet' (the answer), 'antiphase' or 'standard'."""
    others = [i for i in range(_N_OPTIONS) if i != correct]
    rng = np.random.default_rng([_seed(seed), 0xA7])
    anti = others[int(rng.integers(2))]
    return ["quiet" if i == correct else "antiphase" if i == anti else "standard"
            for i in range(_N_OPTIONS)]


def antiphase_option(option: int, correct: int, sr: int = 44100, seed: int = 0,
                     **tone_kwargs: float) -> np.ndarray:
    """Interval ``option`` of an antiphase trial whose softest tone is ``correct``.

    Parameters
    ----------
    option : int
        0, 1 or 2.
    correct : int
        Index of the -6 dB tone (the right answer).
    sr : int
        Hz.
    seed : int
        Chooses which of the two other intervals is in antiphase; the same seed gives
        the same trial for every option.
    **tone_kwargs
        Passed to :func:`antiphase_tone` (``frequency_hz``, ``duration_s``, ...).

    Returns
    -------
    numpy.ndarray
        ``float32`` (frames, 2).
    """
    _check_option(option, correct)
    role = _antiphase_roles(int(correct), seed)[int(option)]
    return antiphase_tone(sr, level_db=-6.0 if role == "quiet" else 0.0,
                          antiphase=role == "antiphase", **tone_kwargs)


def _join(options: list[np.ndarray], sample_rate: int, gap_s: float
          ) -> tuple[np.ndarray, tuple[float, ...]]:
    gap = np.zeros((int(round(gap_s * sample_rate)), 2), dtype=np.float32)
    parts, onsets, pos = [], [], 0
    for i, o in enumerate(options):
        if i:
            parts.append(gap)
            pos += len(gap)
        onsets.append(pos / sample_rate)
        parts.append(o)
        pos += len(o)
    return np.concatenate(parts), tuple(onsets)


def antiphase_trial(sample_rate: int = 44100, seed: int = 0, gap_s: float = 0.5,
                    **tone_kwargs: float) -> HeadphoneTrial:
    """A whole antiphase trial with a random (seeded) answer position.

    Parameters
    ----------
    sample_rate : int
        Hz.
    seed : int
        Determines the answer and the antiphase interval.
    gap_s : float
        Silence between intervals.
    **tone_kwargs
        Passed to :func:`antiphase_tone`.

    Returns
    -------
    HeadphoneTrial
    """
    correct = int(np.random.default_rng([_seed(seed), 0xA5]).integers(_N_OPTIONS))
    options = [antiphase_option(i, correct, sample_rate, seed, **tone_kwargs)
               for i in range(_N_OPTIONS)]
    audio, onsets = _join(options, sample_rate, gap_s)
    return HeadphoneTrial(tuple(options), audio, int(sample_rate), correct, onsets, "antiphase")


def huggins_noise(sample_rate: int = 44100, *, with_pitch: bool, seed: int = 0,
                  center_hz: float = 600.0, bandwidth: float = 0.06, duration_s: float = 1.0,
                  ramp_s: float = 0.01, rms_dbfs: float = -20.0) -> np.ndarray:
    """One interval of the Huggins-pitch test.

    Parameters
    ----------
    sample_rate : int
        Hz.
    with_pitch : bool
        Invert the phase of the band ``center_hz * (1 +/- bandwidth)`` in the right
        channel (the Huggins-pitch interval); otherwise both channels are identical.
    seed : int
        Noise seed.
    center_hz, bandwidth : float
        Band centre and relative half-width (600 Hz, 6 %).
    duration_s, ramp_s : float
        Interval length and raised-cosine on/off ramps.
    rms_dbfs : float
        RMS level of each channel.

    Returns
    -------
    numpy.ndarray
        ``float32`` (frames, 2).
    """
    n = int(round(duration_s * sample_rate))
    rng = np.random.default_rng([_seed(seed), 0x48])
    left = rng.standard_normal(n)
    if with_pitch:
        spec = np.fft.rfft(left)
        f = np.fft.rfftfreq(n, 1 / sample_rate)
        band = (f >= center_hz * (1 - bandwidth)) & (f <= center_hz * (1 + bandwidth))
        spec[band] *= -1
        right = np.fft.irfft(spec, n)
    else:
        right = left.copy()
    gain = 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(left**2))
    env = _ramp(n, sample_rate, ramp_s) * gain
    return np.stack([left * env, right * env], axis=1).astype(np.float32)


def huggins_option(option: int, correct: int, sr: int = 44100, seed: int = 0,
                   **noise_kwargs: float) -> np.ndarray:
    """Interval ``option`` of a Huggins-pitch trial whose pitch interval is ``correct``.

    Each interval uses its own noise (seeded by ``seed`` and ``option``), so the
    intervals cannot be told apart by their waveforms.

    Parameters
    ----------
    option, correct : int
        0, 1 or 2.
    sr : int
        Hz.
    seed : int
        Noise seed of the trial.
    **noise_kwargs
        Passed to :func:`huggins_noise`.

    Returns
    -------
    numpy.ndarray
        ``float32`` (frames, 2).
    """
    _check_option(option, correct)
    return huggins_noise(sr, with_pitch=int(option) == int(correct),
                         seed=_seed(seed) * _N_OPTIONS + int(option), **noise_kwargs)


def huggins_trial(sample_rate: int = 44100, seed: int = 0, gap_s: float = 0.5,
                  **noise_kwargs: float) -> HeadphoneTrial:
    """A whole Huggins-pitch trial with a random (seeded) answer position.

    Parameters
    ----------
    sample_rate : int
        Hz.
    seed : int
        Determines the answer and the noises.
    gap_s : float
        Silence between intervals.
    **noise_kwargs
        Passed to :func:`huggins_noise`.

    Returns
    -------
    HeadphoneTrial
    """
    correct = int(np.random.default_rng([_seed(seed), 0x4A]).integers(_N_OPTIONS))
    options = [huggins_option(i, correct, sample_rate, seed, **noise_kwargs)
               for i in range(_N_OPTIONS)]
    audio, onsets = _join(options, sample_rate, gap_s)
    return HeadphoneTrial(tuple(options), audio, int(sample_rate), correct, onsets, "huggins")
