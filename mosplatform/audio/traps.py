"""Trapping clips (ITU-T P.808): a spoken instruction to choose a given answer.

P.808 crowd tests mix in a few clips whose correct rating is announced in the clip
itself ("This is an interruption. Please select the answer X to confirm your
attention now."); a listener who picks another answer was not listening. The speech
is synthesised with the Debian ``espeak-ng`` program, resampled to the test's rate
and, optionally, laid over the start of an ordinary stimulus so that the trap does
not stand out before it speaks.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .io import as_frames, read_audio
from .resample import resample

__all__ = [
    "TRAP_TEXTS",
    "EspeakNotFoundError",
    "espeak_available",
    "espeak_has_voice",
    "synthesize_speech",
    "trap_text",
    "make_trap_clip",
]

#: Instruction templates by language; ``{answer}`` is replaced by the answer label.
#: The Japanese text is written in kana (espeak-ng 1.51 reads kanji as "Chinese letter")
#: and spells the topic particle as it is pronounced.
TRAP_TEXTS = {
    "en": "This is an interruption. Please select the answer {answer} to confirm your "
          "attention now.",
    "ja": "これわ わりこみです。 ちゅういの かくにんの ため、 いま すぐ、 こたえ {answer} を "
          "えらんで ください。",
}


class EspeakNotFoundError(RuntimeError):
    """The ``espeak-ng`` program is not installed."""


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EspeakNotFoundError(
            "espeak-ng is needed to synthesise trapping clips but was not found on PATH; "
            "install it (Debian/Ubuntu: apt-get install espeak-ng) or supply recorded trap clips"
        )
    return exe


def espeak_available() -> bool:
    """True when ``espeak-ng`` is on the PATH."""
    return shutil.which("espeak-ng") is not None


def espeak_has_voice(lang: str) -> bool:
    """True when ``espeak-ng`` lists a voice for the language code ``lang``."""
    out = subprocess.run([_espeak(), f"--voices={lang}"], capture_output=True, text=True,
                         timeout=30, check=False)
    lines = [ln for ln in out.stdout.splitlines()[1:] if ln.strip()]
    return any(ln.split()[1] == lang or ln.split()[1].startswith(f"{lang}-") for ln in lines
               if len(ln.split()) > 1)


def synthesize_speech(text: str, sample_rate: int, voice: str = "en", words_per_minute: int = 150
                      ) -> np.ndarray:
    """Speak ``text`` with espeak-ng.

    Parameters
    ----------
    text : str
        What to say.
    sample_rate : int
        Output rate in Hz (espeak-ng renders at 22.05 kHz; the result is resampled).
    voice : str
        espeak-ng voice (``-v``), e.g. ``"en"`` or ``"ja"``.
    words_per_minute : int
        Speaking rate (``-s``).

    Returns
    -------
    numpy.ndarray
        ``float32`` mono speech, shape (frames, 1).

    Raises
    ------
    EspeakNotFoundError
        If espeak-ng is not installed.
    RuntimeError
        If espeak-ng fails.
    """
    exe = _espeak()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        proc = subprocess.run(
            [exe, "-w", str(out), "-v", voice, "-s", str(int(words_per_minute)), text],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.strip()}")
        x, sr = read_audio(out)
    return resample(x[:, :1], sr, sample_rate)


def trap_text(answer_label: str, lang: str = "en") -> str:
    """The instruction text for ``answer_label`` in ``lang`` (English if unknown)."""
    return TRAP_TEXTS.get(lang, TRAP_TEXTS["en"]).format(answer=answer_label)


def _ramp_envelope(n: int, start: int, stop: int, floor: float, ramp: int) -> np.ndarray:
    """Gain 1 outside [start, stop), ``floor`` inside, with raised-cosine ramps outside."""
    duck = np.zeros(n)  # 0: full level, 1: fully ducked
    duck[max(0, start):min(n, stop)] = 1.0
    up = 0.5 * (1 - np.cos(np.pi * (np.arange(ramp) + 1) / (ramp + 1)))
    pre = np.arange(start - ramp, start)
    ok = (pre >= 0) & (pre < n)
    duck[pre[ok]] = up[ok]
    post = np.arange(stop, stop + ramp)
    ok = (post >= 0) & (post < n)
    duck[post[ok]] = up[::-1][ok]
    return 1.0 - (1.0 - floor) * duck


def make_trap_clip(
    answer_label: str | int,
    sample_rate: int,
    lang: str = "en",
    background: np.ndarray | str | Path | None = None,
    *,
    offset_s: float = 0.5,
    duck_db: float = -15.0,
    tail_s: float = 0.5,
    words_per_minute: int = 150,
    text: str | None = None,
) -> np.ndarray:
    """Build a P.808 trapping clip asking the listener to choose ``answer_label``.

    Parameters
    ----------
    answer_label : str or int
        The answer to announce, as the listener sees it (e.g. ``3`` or ``"Fair"``).
    sample_rate : int
        Output rate in Hz (and the rate of ``background`` when it is an array).
    lang : str
        ``"en"`` or ``"ja"`` (:data:`TRAP_TEXTS`). When espeak-ng has no voice for the
        language, the English text and voice are used and a warning is issued.
    background : array_like or path-like, optional
        A stimulus to lay the speech over: (frames,) or (frames, channels) at
        ``sample_rate``, or a file (resampled). Without it the clip is speech only.
    offset_s : float
        Where the speech starts in the background (default 0.5 s).
    duck_db : float
        Background gain while the speech plays (default -15 dB), with 50 ms ramps.
    tail_s : float
        Background or silence kept after the speech when the background is shorter.
    words_per_minute : int
        Speaking rate.
    text : str, optional
        Custom text (``{answer}`` is filled in); overrides the language template.

    Returns
    -------
    numpy.ndarray
        ``float32`` (frames, channels): the background's channel count, or mono. The
        speech RMS matches the background's RMS before ducking; speech alone peaks at
        -3 dBFS. The result is scaled down if it would peak above -1 dBFS.

    Raises
    ------
    EspeakNotFoundError
        If espeak-ng is not installed.

    Examples
    --------
    >>> clip = make_trap_clip(3, 48000)  # doctest: +SKIP
    >>> clip.shape[1]  # doctest: +SKIP
    1
    """
    voice = lang
    if text is None:
        if lang not in TRAP_TEXTS or not espeak_has_voice(lang):
            warnings.warn(f"no trap text or espeak-ng voice for {lang!r}; using English",
                          UserWarning, stacklevel=2)
            voice = lang = "en"
        text = TRAP_TEXTS[lang]
    elif not espeak_has_voice(voice):
        warnings.warn(f"no espeak-ng voice for {lang!r}; using English", UserWarning,
                      stacklevel=2)
        voice = "en"
    speech = synthesize_speech(text.format(answer=answer_label), sample_rate, voice,
                               words_per_minute)[:, 0].astype(np.float64)
    if background is None:
        peak = float(np.max(np.abs(speech)))
        return (speech * (10 ** (-3 / 20) / peak if peak > 0 else 1.0))[:, None].astype(
            np.float32)

    if isinstance(background, (str, Path)):
        bg_x, bg_sr = read_audio(background)
        bg = resample(bg_x, bg_sr, sample_rate).astype(np.float64)
    else:
        bg = as_frames(background).astype(np.float64)
    start = int(round(offset_s * sample_rate))
    stop = start + len(speech)
    n = max(len(bg), stop + int(round(tail_s * sample_rate)))
    if len(bg) < n:
        bg = np.concatenate([bg, np.zeros((n - len(bg), bg.shape[1]))])
    bg_rms = float(np.sqrt(np.mean(bg**2)))
    sp_rms = float(np.sqrt(np.mean(speech**2)))
    speech_gain = bg_rms / sp_rms if bg_rms > 0 and sp_rms > 0 else 10 ** (-3 / 20) / max(
        float(np.max(np.abs(speech))), 1e-12)
    ramp = int(0.05 * sample_rate)
    env = _ramp_envelope(n, start, stop, 10 ** (duck_db / 20), ramp)
    out = bg * env[:, None]
    out[start:stop] += speech_gain * speech[:, None]
    peak = float(np.max(np.abs(out)))
    limit = 10 ** (-1 / 20)
    if peak > limit:
        out *= limit / peak
    return out.astype(np.float32)
