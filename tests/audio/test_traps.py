"""P.808 trapping clips synthesised with espeak-ng."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mosplatform.audio import traps
from mosplatform.audio.traps import EspeakNotFoundError, make_trap_clip, trap_text

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed")
SR = 16000


def test_text_templates() -> None:
    assert trap_text("3") == ("This is an interruption. Please select the answer 3 to "
                              "confirm your attention now.")
    assert "3" in trap_text(3, "ja")
    assert trap_text("Fair", "xx").startswith("This is an interruption")


def test_missing_espeak_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traps.shutil, "which", lambda name: None)
    with pytest.raises(EspeakNotFoundError, match="apt-get install espeak-ng"):
        make_trap_clip("3", SR)


@needs_espeak
def test_speech_only_clip() -> None:
    clip = make_trap_clip("3", SR)
    assert clip.dtype == np.float32 and clip.ndim == 2 and clip.shape[1] == 1
    assert 2.0 < clip.shape[0] / SR < 10.0  # a spoken sentence
    assert np.max(np.abs(clip)) == pytest.approx(10 ** (-3 / 20), rel=1e-3)
    # Speech, not a tone: energy comes and goes between syllables and words.
    frames = clip[: clip.shape[0] // 400 * 400, 0].reshape(-1, 400)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    assert np.mean(rms < 0.1 * rms.max()) > 0.1
    # Deterministic, and the answer matters.
    np.testing.assert_array_equal(clip, make_trap_clip("3", SR))
    other = make_trap_clip("5", SR)
    assert other.shape != clip.shape or not np.array_equal(other, clip)


@needs_espeak
def test_mixed_over_background() -> None:
    rng = np.random.default_rng(0)
    bg = (0.05 * rng.standard_normal((SR * 12, 2))).astype(np.float32)
    clip = make_trap_clip("Excellent", SR, background=bg, offset_s=1.0, duck_db=-20.0)
    assert clip.shape == bg.shape
    # Before the speech: the background untouched.
    np.testing.assert_allclose(clip[: SR // 2], bg[: SR // 2], atol=1e-6)
    # Both channels carry the same speech on top of (ducked) background.
    speech_part = clip[int(1.5 * SR):int(2.5 * SR)]
    diff = speech_part[:, 0] - speech_part[:, 1]
    bg_diff = (bg[int(1.5 * SR):int(2.5 * SR), 0] - bg[int(1.5 * SR):int(2.5 * SR), 1]) * 0.1
    np.testing.assert_allclose(diff, bg_diff, atol=1e-5)  # speech cancels, ducked bg remains


@needs_espeak
def test_short_background_is_extended() -> None:
    bg = np.full((SR // 2, 1), 0.01, dtype=np.float32)
    clip = make_trap_clip("2", SR, background=bg, tail_s=0.25)
    speech = make_trap_clip("2", SR)
    assert clip.shape[0] == int(0.5 * SR) + speech.shape[0] + int(0.25 * SR)


@needs_espeak
def test_japanese_or_fallback() -> None:
    if traps.espeak_has_voice("ja"):
        clip = make_trap_clip("3", SR, lang="ja")
        assert clip.shape[0] / SR < 12  # kana text: no "Chinese letter" spelled out
    else:
        with pytest.warns(UserWarning, match="English"):
            clip = make_trap_clip("3", SR, lang="ja")
    assert np.max(np.abs(clip)) > 0.1
    with pytest.warns(UserWarning, match="English"):
        make_trap_clip("3", SR, lang="xx")
