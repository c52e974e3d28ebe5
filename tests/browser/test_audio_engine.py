"""Browser tests of the AudioWorklet engine (static/js/engine*.js) in Chromium.

The offline tests render the worklet in an OfflineAudioContext with commands
scheduled at exact frames and compare every output sample with an expectation
built here in numpy from the source signals and the BS.1534-3 rule (5 ms
raised-cosine fade-out, then 5 ms fade-in, playback continuing at the same
sample index). The realtime test checks what the worklet reports while a
listener switches stimuli.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.browser

ATOL = 2e-6  # float32 output of a float64 gain times float32 samples


def fade_len(sr: int) -> int:
    """5 ms in samples, rounded half up."""
    return int(math.floor(0.005 * sr + 0.5))


def fade_out(n: int) -> np.ndarray:
    k = np.arange(n)
    return 0.5 * (1.0 + np.cos(np.pi * k / n))


def fade_in(n: int) -> np.ndarray:
    k = np.arange(n)
    return 0.5 * (1.0 - np.cos(np.pi * k / n))


def tone(sr: int, seconds: float, freq: float, amp: float, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def write(path, data: np.ndarray, sr: int) -> None:
    sf.write(str(path), data, sr, subtype="FLOAT")


def make_pair(media, sr: int, channels: int, seconds: float = 1.0):
    """Two distinct float WAVs; returns their channel arrays (channels x samples)."""
    a = [tone(sr, seconds, 440.0, 0.5), tone(sr, seconds, 550.0, 0.3, 0.7)]
    b = [tone(sr, seconds, 660.0, 0.4, 0.3), tone(sr, seconds, 330.0, 0.6, 1.1)]
    a, b = np.array(a[:channels]), np.array(b[:channels])
    write(media / "a.wav", a.T if channels > 1 else a[0], sr)
    write(media / "b.wav", b.T if channels > 1 else b[0], sr)
    if channels == 1:  # mono is played on both output channels
        a, b = np.vstack([a, a]), np.vstack([b, b])
    return a, b


def open_harness(page, server):
    page.goto(f"{server.url}/harness/engine.html")
    page.wait_for_function("window.harness !== undefined")


def render(page, server, sr, frames, schedule, names=("a.wav", "b.wav"), loop_whole=True):
    out = page.evaluate(
        "(o) => window.harness.offline(o)",
        {
            "urls": [f"/media/{n}" for n in names],
            "sampleRate": sr,
            "frames": frames,
            "schedule": schedule,
            "loopWhole": loop_whole,
        },
    )
    assert out["length"] == frames
    return np.array([out["left"], out["right"]], dtype=np.float64)


@pytest.mark.parametrize(("sr", "channels"), [(44100, 1), (48000, 2)])
def test_switch_fades_and_keeps_sample_index(page, static_server, sr, channels):
    a, b = make_pair(static_server.media_dir, sr, channels)
    open_harness(page, static_server)
    n = a.shape[1]
    switch = 20011  # not on a 128-frame render-quantum boundary
    y = render(
        page,
        static_server,
        sr,
        n,
        [{"frame": 0, "type": "play"}, {"frame": switch, "type": "select", "index": 1}],
    )

    F = fade_len(sr)
    expected = a.astype(np.float64).copy()
    expected[:, :F] *= fade_in(F)
    expected[:, switch : switch + F] *= fade_out(F)
    seg = slice(switch + F, switch + 2 * F)
    expected[:, seg] = b[:, seg] * fade_in(F)
    expected[:, switch + 2 * F :] = b[:, switch + 2 * F :]
    stop = n - F  # the wrap-around fade at the end of the signal is tested separately
    np.testing.assert_allclose(y[:, :stop], expected[:, :stop], atol=ATOL, rtol=0)

    # The envelope itself: gain = output / source where the source is not tiny.
    win = slice(switch, switch + F)
    src = a[0, win].astype(np.float64)
    mask = np.abs(src) > 0.05
    gain = y[0, win][mask] / src[mask]
    np.testing.assert_allclose(gain, fade_out(F)[mask], atol=1e-5)
    # The new stimulus continues at the switch's sample index, not from its start.
    after = y[0, switch + 2 * F : switch + 2 * F + 500]
    assert np.allclose(after, b[0, switch + 2 * F : switch + 2 * F + 500], atol=ATOL)
    assert not np.allclose(after, b[0, :500], atol=1e-2)
    # No gap: the only near-silent samples are the few at the fade boundary.
    env = np.abs(y[0, switch - 200 : switch + 2 * F + 200])
    assert env.max() > 0.3


def test_loop_point_fades(page, static_server):
    sr = 48000
    a, b = make_pair(static_server.media_dir, sr, 2, seconds=2.0)
    open_harness(page, static_server)
    start, end = 12000, 12000 + 30000  # 625 ms loop
    frames = 70000
    y = render(
        page,
        static_server,
        sr,
        frames,
        [{"frame": 0, "type": "loop", "start": start, "end": end}, {"frame": 0, "type": "play"}],
    )
    F = fade_len(sr)
    length = end - start
    # Playhead of every output frame, written out for two passes through the loop.
    heads = np.concatenate(
        [
            np.arange(start, end),
            np.arange(start, end),
            np.arange(start, start + frames - 2 * length),
        ]
    )
    gains = np.ones(frames)
    gains[:F] = fade_in(F)
    for p in range(2):
        o = p * length
        gains[o + length - F : o + length] = fade_out(F)
        gains[o + length : o + length + F] = fade_in(F)
    expected = a[:, heads] * gains
    np.testing.assert_allclose(y, expected, atol=ATOL, rtol=0)


def test_pause_and_resume_continue_at_same_sample(page, static_server):
    sr = 44100
    a, _ = make_pair(static_server.media_dir, sr, 2)
    open_harness(page, static_server)
    pause_at, play_at, frames = 10000, 15000, 25000
    y = render(
        page,
        static_server,
        sr,
        frames,
        [
            {"frame": 0, "type": "play"},
            {"frame": pause_at, "type": "pause"},
            {"frame": play_at, "type": "play"},
        ],
    )
    F = fade_len(sr)
    expected = np.zeros_like(y)
    expected[:, :pause_at] = a[:, :pause_at]
    expected[:, :F] *= fade_in(F)
    expected[:, pause_at : pause_at + F] = a[:, pause_at : pause_at + F] * fade_out(F)
    resume_head = pause_at + F  # where the fade-out left the playhead
    m = frames - play_at
    expected[:, play_at:] = a[:, resume_head : resume_head + m]
    expected[:, play_at : play_at + F] *= fade_in(F)
    np.testing.assert_allclose(y, expected, atol=ATOL, rtol=0)


def test_different_lengths_and_rates_use_common_length(page, static_server):
    media = static_server.media_dir
    write(media / "long.wav", tone(44100, 1.0, 440, 0.5), 44100)
    write(media / "short.wav", np.stack([tone(48000, 0.75, 440, 0.5)] * 2, axis=1), 48000)
    open_harness(page, static_server)
    got = page.evaluate(
        "() => window.harness.decodeLengths(['/media/long.wav', '/media/short.wav'], 48000)"
    )
    assert got["lengths"] == [48000, 36000]  # decodeAudioData resamples 44.1 kHz to 48 kHz
    assert got["common"] == 36000


def test_realtime_playhead_survives_switches(page, static_server, screenshot):
    media = static_server.media_dir
    # Mixed formats: mono 44.1 kHz, stereo 48 kHz, mono 48 kHz, different lengths.
    write(media / "s0.wav", tone(44100, 4.0, 440, 0.3), 44100)
    write(media / "s1.wav", np.stack([tone(48000, 3.9, 660, 0.3)] * 2, axis=1), 48000)
    write(media / "s2.wav", tone(48000, 4.2, 880, 0.3), 48000)
    open_harness(page, static_server)
    info = page.evaluate(
        "() => window.harness.startRealtime(['/media/s0.wav', '/media/s1.wav', '/media/s2.wav'],"
        " {mustListenFraction: 0.05})"
    )
    assert info["count"] == 3
    assert abs(info["duration"] - 3.9) < 0.01
    page.click("#start")  # a real user gesture: resumes the AudioContext and plays
    page.wait_for_function("window.harness.engine.ctx.state === 'running'", timeout=10000)
    for i in (1, 2, 0, 1):
        page.wait_for_timeout(400)
        page.evaluate(f"() => window.harness.engine.select({i})")
    page.wait_for_timeout(400)
    state = page.evaluate("() => window.harness.engine.query()")
    screenshot(page, "harness-engine-realtime")
    page.evaluate("() => window.harness.engine.pause()")
    page.wait_for_timeout(300)
    paused = page.evaluate("() => window.harness.engine.query()")
    page.wait_for_timeout(300)
    paused2 = page.evaluate("() => window.harness.engine.query()")
    positions = page.evaluate("() => window.harness.positions.map(p => [p.position, p.index])")
    events = page.evaluate("() => window.harness.events")
    listening = page.evaluate("() => window.harness.engine.listening()")
    peaks = page.evaluate("() => Array.from(window.harness.engine.peaks(0, 50))")

    assert not page.console_errors, page.console_errors
    pos = np.array([p for p, _ in positions])
    played = pos[pos > 0]
    assert len(played) > 20  # ~every 50 ms
    assert np.all(np.diff(played) >= 0), "the playhead went backwards"
    idx = [i for _, i in positions]
    assert {0, 1, 2} <= set(idx)
    # Heard accounting: no loop was reached, so each playhead sample was heard by
    # exactly one stimulus.
    assert state["frame"] > 0.5 * state["length"] / 3.9
    assert sum(state["heardUnique"]) == state["frame"]
    assert all(h > 0 for h in state["heardUnique"])
    assert sum(state["heardTotal"]) == state["frame"]
    # Paused: the playhead stays put.
    assert not paused2["playing"]
    assert paused2["frame"] == paused["frame"]
    fractions = [x["heard_fraction"] for x in listening]
    expected = [h / state["length"] for h in paused2["heardUnique"]]
    np.testing.assert_allclose(fractions, expected, atol=1e-4)
    assert [x["plays"] for x in listening] == [2, 2, 1]
    # The waveform envelope of the 0.3-amplitude tone.
    np.testing.assert_allclose(peaks, 0.3, atol=0.01)
    kinds = [e["kind"] for e in events]
    assert kinds.count("switch") == 4
    assert {e["stimulus"] for e in events if e["kind"] == "heard"} == {0, 1, 2}


def test_seek_and_switch_during_fade(page, static_server):
    sr = 48000
    a, _ = make_pair(static_server.media_dir, sr, 2)
    open_harness(page, static_server)
    F = fade_len(sr)
    frames, seek_at, target = 20000, 5000, 30000
    switch_at = 12000
    back_at = switch_at + 100  # select A again while the fade-out towards B runs
    y = render(
        page,
        static_server,
        sr,
        frames,
        [
            {"frame": 0, "type": "play"},
            {"frame": seek_at, "type": "seek", "to": target},  # "frame" is when, "to" is where
            {"frame": switch_at, "type": "select", "index": 1},
            {"frame": back_at, "type": "select", "index": 0},
        ],
    )
    heads = np.arange(frames)
    heads[seek_at + F :] = target + np.arange(frames - seek_at - F)
    gains = np.ones(frames)
    gains[:F] = fade_in(F)
    gains[seek_at : seek_at + F] = fade_out(F)
    gains[seek_at + F : seek_at + 2 * F] = fade_in(F)
    # Towards B, then back to A before the fade-out ended: A fades in again, B is never heard.
    gains[switch_at : switch_at + F] = fade_out(F)
    gains[switch_at + F : switch_at + 2 * F] = fade_in(F)
    expected = a[:, heads] * gains
    np.testing.assert_allclose(y, expected, atol=ATOL, rtol=0)
