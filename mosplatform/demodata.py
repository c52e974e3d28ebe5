"""Deterministic, music-like multitrack demo material in the MUSDB18-HQ layout.

MUSDB18 cannot be downloaded everywhere, so the demo, the tests and the tiny
separation runs use material the project makes itself: short songs composed
procedurally from a seed (tempo, key, chord progression, groove, instruments and
song form vary per track), written as MIDI-like note lists and rendered
in-process with ``tinysoundfont`` through the General MIDI soundfont that the
``pretty_midi`` wheel ships (``TimGM6mb.sf2``).

Layout written (as MUSDB18-HQ)::

    out_dir/
      demodata.json                       manifest (generator version, parameters, files)
      train/<track>/{mixture,drums,bass,other,vocals}.wav
      test/<track>/{mixture,drums,bass,other,vocals}.wav

Stems are 16-bit stereo WAV; the mixture is the exact sample-wise sum of the four
stems (the sum is computed on the 16-bit integers, so ``mixture == drums + bass +
other + vocals`` holds exactly after reading), and the whole track is scaled down
if the mixture or a stem would peak above -1 dBFS.

Each song has an intro (no vocals, no bass), a main part where all four sources
play, and, when long enough, a break (drums and bass drop out) and an outro, so
"the span where all sources are active" is meaningful for excerpt selection.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import soundfile as sf

__all__ = [
    "STEMS",
    "TRACK_FILES",
    "MANIFEST_NAME",
    "GENERATOR_VERSION",
    "generate_demo_dataset",
    "render_demo_track",
    "soundfont_bytes",
    "save_spectrogram_png",
    "demo_data_command",
]

#: Source names, in MUSDB18 order.
STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")
#: Files of one track folder.
TRACK_FILES: tuple[str, ...] = ("mixture", *STEMS)
#: Name of the manifest written at the root of the data set.
MANIFEST_NAME = "demodata.json"
#: Bump when the composition or rendering changes, so old folders are rebuilt.
GENERATOR_VERSION = 3

_PEAK_LIMIT = 10 ** (-1.0 / 20)  # -1 dBFS
_SPLIT_IDS = {"train": 1, "test": 2}

# --------------------------------------------------------------------------- music theory

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)

# Chord progressions as 0-based scale degrees, one chord per bar.
_PROGRESSIONS = {
    "major": [
        (0, 4, 5, 3),  # I-V-vi-IV
        (0, 5, 3, 4),  # I-vi-IV-V
        (5, 3, 0, 4),  # vi-IV-I-V
        (0, 3, 4, 3),  # I-IV-V-IV
        (1, 4, 0, 0),  # ii-V-I-I
        (0, 2, 3, 4),  # I-iii-IV-V
        (3, 4, 2, 5),  # IV-V-iii-vi
        (0, 3, 0, 4),  # I-IV-I-V
    ],
    "minor": [
        (0, 5, 2, 6),  # i-VI-III-VII
        (0, 3, 4, 0),  # i-iv-v-i
        (0, 6, 5, 6),  # i-VII-VI-VII
        (0, 5, 3, 4),  # i-VI-iv-v
        (0, 3, 6, 2),  # i-iv-VII-III
    ],
}

# Two-bar vocal rhythms: (onset in beats, duration in beats); gaps are breaths.
_VOCAL_RHYTHMS = [
    [(0, 1), (1, 1), (2, 1.5), (3.5, 0.5), (4, 1), (5, 1), (6, 1.5)],
    [(0.5, 0.5), (1, 1), (2, 0.5), (2.5, 1.5), (4.5, 0.5), (5, 1), (6, 1.5)],
    [(0, 2), (2, 1), (3, 1), (4, 3)],
    [(0, 0.5), (0.5, 0.5), (1, 1), (2, 2), (4, 0.5), (4.5, 0.5), (5, 1), (6, 1.5)],
    [(1, 1), (2, 1), (3, 0.5), (3.5, 1.5), (5, 1), (6, 1.5)],
    [(0, 1.5), (1.5, 0.5), (2, 1), (3, 1), (4, 1.5), (5.5, 0.5), (6, 1.5)],
]

# General MIDI programs (0-based) available in TimGM6mb.
_BASS_PROGRAMS = (32, 33, 34, 35, 36, 38, 39)
_PAD_PROGRAMS = (48, 49, 50, 88, 89, 90, 16, 19)
_COMP_PROGRAMS = (0, 1, 4, 5, 24, 25, 26, 27, 28, 29)
_VOICE_PROGRAMS = (52, 53, 54)

# GM percussion keys.
_KICK, _SNARE, _STICK, _CLAP = 36, 38, 37, 39
_HAT, _PEDAL_HAT, _OPEN_HAT, _RIDE, _CRASH = 42, 44, 46, 51, 49
_TOMS = (50, 48, 45, 43)

# Drum grooves on a 16-step grid per 4/4 bar: key -> steps (velocity is added later).
_GROOVES: dict[str, dict[str, Any]] = {
    "rock": {"kick": (0, 8, 10), "snare": (4, 12), "hat": tuple(range(0, 16, 2)),
             "kits": (0, 8, 16), "swing": 0.0, "bass": "eighths", "tempo": (96, 140)},
    "pop": {"kick": (0, 6, 8), "snare": (4, 12), "hat": tuple(range(0, 16, 2)),
            "open": (14,), "kits": (0, 8, 24), "swing": 0.0, "bass": "pop", "tempo": (88, 128)},
    "disco": {"kick": (0, 4, 8, 12), "clap": (4, 12), "hat": (0, 4, 8, 12),
              "open": (2, 6, 10, 14), "kits": (24, 25, 0), "swing": 0.0, "bass": "octaves",
              "tempo": (112, 128)},
    "halftime": {"kick": (0, 7, 10), "snare": (8,), "hat": tuple(range(0, 16, 2)),
                 "kits": (0, 16, 25), "swing": 0.0, "bass": "halftime", "tempo": (70, 95)},
    "funk": {"kick": (0, 3, 6, 10), "snare": (4, 12), "ghost": (7, 15),
             "hat": tuple(range(16)), "kits": (0, 8), "swing": 0.04, "bass": "funk",
             "tempo": (92, 112)},
    "shuffle": {"kick": (0, 8), "snare": (4, 12), "ride": tuple(range(0, 16, 2)),
                "pedal": (4, 12), "kits": (32, 40, 8), "swing": 1 / 6, "bass": "walking",
                "tempo": (100, 140)},
    "ballad": {"kick": (0, 10), "stick": (4, 12), "hat": tuple(range(0, 16, 2)),
               "kits": (0, 8, 40), "swing": 0.0, "bass": "ballad", "tempo": (66, 84)},
}

_ADJECTIVES = (
    "Amber", "Silver", "Velvet", "Northern", "Hollow", "Golden", "Paper", "Electric",
    "Quiet", "Crimson", "Wild", "Distant", "Copper", "Neon", "Winter", "Salt",
)
_NOUNS = (
    "Harbor", "Lanterns", "Foxes", "Rivers", "Signals", "Orchard", "Echoes", "Comets",
    "Meadow", "Static", "Pines", "Tides", "Engines", "Sparrows", "Mirrors", "Canyon",
)
_TITLES = (
    "Night Drive", "Open Window", "Slow Motion", "Second Chance", "Blue Hour",
    "Empty Rooms", "Paper Planes", "Long Way Home", "Morning Light", "Falling Stars",
    "Undertow", "Neon Rain", "Glass Houses", "Wildfire", "Satellite", "Low Tide",
)


@dataclass
class _Part:
    """One MIDI channel: a GM program and a list of notes (times in beats)."""

    channel: int
    program: int
    bank: int = 0
    drums: bool = False
    pan: int = 64  # MIDI CC10, 0 = left, 127 = right
    volume: int = 100  # MIDI CC7
    notes: list[tuple[float, float, int, int]] = field(default_factory=list)

    def add(self, start: float, dur: float, key: int, vel: int) -> None:
        self.notes.append((float(start), float(dur), int(key), int(np.clip(vel, 1, 127))))


@dataclass
class _Song:
    name: str
    tempo: float
    swing: float
    n_bars: int
    stems: dict[str, list[_Part]]
    levels_db: dict[str, float]
    reverb_send: dict[str, float]
    reverb_rt60: float
    description: dict[str, Any]


# --------------------------------------------------------------------------- composition


def _track_name(rng: np.random.Generator) -> str:
    artist = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
    return f"{artist} - {rng.choice(_TITLES)}"


def _chord_pitches(root_pc: int, scale: tuple[int, ...], degree: int, seventh: bool,
                   raise_third: bool) -> list[int]:
    """Pitch classes (as offsets, may exceed 12) of the diatonic chord on ``degree``."""
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    out = []
    for k in steps:
        idx = degree + k
        pitch = root_pc + scale[idx % 7] + 12 * (idx // 7)
        if k == 2 and raise_third:
            pitch += 1
        out.append(pitch)
    return out


def _voice_chord(pcs: list[int], previous: list[int] | None, lo: int = 52,
                 hi: int = 74) -> list[int]:
    """Pick the inversion/octave of a chord closest to the previous voicing."""
    pcs = sorted({p % 12 for p in pcs})
    candidates = []
    for base in range(lo - 12, hi):
        if base % 12 not in pcs:
            continue
        voicing = [base]
        for pc in pcs[pcs.index(base % 12) + 1:] + pcs[:pcs.index(base % 12)]:
            nxt = voicing[-1] + ((pc - voicing[-1]) % 12 or 12)
            voicing.append(nxt)
        if voicing[0] >= lo and voicing[-1] <= hi:
            candidates.append(voicing)
    target = previous if previous is not None else [62] * len(pcs)
    center = float(np.mean(target))

    def cost(v: list[int]) -> float:
        return abs(float(np.mean(v)) - center) + 0.1 * abs(len(v) - len(target))

    return min(candidates, key=cost)


def _compose(rng: np.random.Generator, duration: float) -> _Song:
    name = _track_name(rng)
    groove_name = str(rng.choice(sorted(_GROOVES)))
    groove = _GROOVES[groove_name]
    tempo = float(rng.integers(groove["tempo"][0], groove["tempo"][1] + 1))
    swing = float(groove["swing"])
    mode = "major" if rng.random() < 0.6 else "minor"
    scale = _MAJOR if mode == "major" else _MINOR
    root_pc = int(rng.integers(0, 12))
    progs = _PROGRESSIONS[mode]
    progression = progs[int(rng.integers(len(progs)))]
    sevenths = bool(rng.random() < (0.7 if groove_name in ("shuffle", "ballad", "funk") else 0.2))
    harmonic_minor = mode == "minor" and rng.random() < 0.5

    bar_beats = 4.0
    bar_s = bar_beats * 60.0 / tempo
    n_bars = max(2, math.ceil(duration / bar_s))

    # Song form, by bar.
    n_intro = 1 if n_bars < 8 else int(rng.integers(1, 3))
    has_outro = n_bars >= 8
    body_end = n_bars - 1 if has_outro else n_bars
    # A break (drums and bass tacet) only after a long first main section, so that every
    # track has one long span where all four sources play.
    break_bar = None
    body = body_end - n_intro
    if n_bars >= 10:
        candidate = n_intro + max(4, math.ceil(0.6 * body)) + int(rng.integers(0, 2))
        if candidate < body_end - 1:
            break_bar = candidate
    intro_drums = str(rng.choice(["none", "hats", "full"], p=[0.4, 0.4, 0.2]))

    chords = []
    for bar in range(n_bars):
        degree = progression[bar % len(progression)]
        chords.append(
            _chord_pitches(root_pc, scale, degree, sevenths, harmonic_minor and degree == 4)
        )

    # ---- drums
    kit = int(rng.choice(groove["kits"]))
    drums = _Part(channel=9, program=kit, bank=128, drums=True, pan=64, volume=100)
    # Hats and ride on their own drum channel: louder (the GM kit's hats are quiet next to
    # kick and snare) and panned off centre, as a drummer's kit is miked.
    hat_pan = int(rng.integers(40, 51)) if rng.random() < 0.5 else int(rng.integers(78, 89))
    cymbals = _Part(channel=10, program=kit, bank=128, drums=True, pan=hat_pan, volume=127)
    for bar in range(n_bars):
        b0 = bar * bar_beats
        in_intro = bar < n_intro
        if bar == break_bar:  # break: drums tacet
            continue
        if bar >= body_end:  # outro: one crash and kick, then ring out
            drums.add(b0, 2, _CRASH, 100)
            drums.add(b0, 1, _KICK, 105)
            continue
        if in_intro and intro_drums == "none":
            continue
        fill = (bar - n_intro) % 4 == 3 and not in_intro and bar + 1 < body_end
        hats_only = in_intro and intro_drums == "hats"
        for key_name, key in (("hat", _HAT), ("ride", _RIDE), ("pedal", _PEDAL_HAT),
                              ("open", _OPEN_HAT)):
            for step in groove.get(key_name, ()):
                if fill and step >= 12:
                    continue
                accent = 105 if step % 4 == 0 else 88
                cymbals.add(b0 + step / 4, 0.25, key, accent + rng.integers(-8, 9))
        if hats_only:
            continue
        for key_name, key, vel in (("kick", _KICK, 110), ("snare", _SNARE, 108),
                                   ("clap", _CLAP, 100), ("stick", _STICK, 95),
                                   ("ghost", _SNARE, 45)):
            for step in groove.get(key_name, ()):
                if fill and step >= 12 and key_name != "kick":
                    continue
                drums.add(b0 + step / 4, 0.25, key, vel + rng.integers(-6, 7))
        if groove_name in ("rock", "pop") and rng.random() < 0.3:
            drums.add(b0 + 3.5, 0.25, _KICK, 95)
        if fill:
            for i, step in enumerate(range(12, 16)):
                drums.add(b0 + step / 4, 0.25, _TOMS[i % 4] if i else _SNARE,
                          95 + 3 * i + rng.integers(-5, 6))
        if (bar - n_intro) % 4 == 0 and bar >= n_intro:
            drums.add(b0, 2, _CRASH, 100 + rng.integers(-6, 7))

    # ---- bass
    bass = _Part(channel=0, program=int(rng.choice(_BASS_PROGRAMS)),
                 pan=int(rng.integers(58, 71)))
    style = groove["bass"]
    for bar in range(n_intro, n_bars):
        if bar == break_bar:
            continue
        b0 = bar * bar_beats
        root = 28 + ((chords[bar][0] - 4) % 12)  # E1..D#2
        fifth = root + 7
        third = root + (chords[bar][1] - chords[bar][0])
        nxt = 28 + ((chords[(bar + 1) % n_bars][0] - 4) % 12)
        if bar >= body_end:
            bass.add(b0, 3.5, root, 100)
            continue
        if style == "eighths":
            pattern = [(i * 0.5, 0.45, root, 100 if i % 2 == 0 else 85) for i in range(8)]
        elif style == "pop":
            pattern = [(0, 1.4, root, 105), (1.5, 0.9, root, 90), (2.5, 0.45, fifth, 90),
                       (3, 0.9, root + 12, 95)]
        elif style == "octaves":
            pattern = [(i * 0.5, 0.4, root + 12 * (i % 2), 100 if i % 2 else 90)
                       for i in range(8)]
        elif style == "halftime":
            pattern = [(0, 1.8, root, 105), (2.5, 0.45, root, 90), (3, 0.9, fifth, 95)]
        elif style == "funk":
            pattern = [(0, 0.45, root, 110), (0.75, 0.2, root + 12, 85), (1.5, 0.4, root, 95),
                       (2, 0.2, fifth, 80), (2.75, 0.45, root, 100), (3.5, 0.2, root + 10, 90)]
        elif style == "walking":
            approach = nxt - 1 if rng.random() < 0.5 else nxt + 1
            pattern = [(0, 0.9, root, 105), (1, 0.9, third, 90), (2, 0.9, fifth, 95),
                       (3, 0.9, approach, 90)]
        else:  # ballad
            pattern = [(0, 1.9, root, 100), (2, 1.9, fifth if rng.random() < 0.5 else root, 90)]
        for start, dur, key, vel in pattern:
            bass.add(b0 + start, dur, key, vel + rng.integers(-6, 7))

    # ---- other: a sustained bed and/or a rhythmic part
    other_parts: list[_Part] = []
    layers = rng.choice(["pad+comp", "comp", "pad+arp", "arp+comp"], p=[0.4, 0.2, 0.25, 0.15])
    layer_names = str(layers).split("+")
    pans = [int(rng.integers(30, 50)), int(rng.integers(78, 98))]
    rng.shuffle(pans)
    for li, layer in enumerate(layer_names):
        if layer == "pad":
            part = _Part(channel=1 + li, program=int(rng.choice(_PAD_PROGRAMS)), pan=pans[li],
                         volume=85)
        else:
            part = _Part(channel=1 + li, program=int(rng.choice(_COMP_PROGRAMS)), pan=pans[li])
        comp_style = str(rng.choice(["quarters", "offbeat", "strum", "syncopated"]))
        previous: list[int] | None = None
        for bar in range(n_bars):
            b0 = bar * bar_beats
            voicing = _voice_chord(chords[bar], previous)
            previous = voicing
            if bar >= body_end or layer == "pad":
                for k in voicing:
                    part.add(b0, 3.9 if bar < n_bars - 1 else 4.0, k, 75 + rng.integers(-5, 6))
                continue
            if layer == "arp":
                order = voicing + [voicing[1] + 12] + voicing[::-1][1:]
                for i in range(8):
                    part.add(b0 + i * 0.5, 0.45, order[i % len(order)], 80 + rng.integers(-8, 9))
                continue
            if comp_style == "quarters":
                hits = [(0, 0.9), (1, 0.9), (2, 0.9), (3, 0.9)]
            elif comp_style == "offbeat":
                hits = [(0.5, 0.4), (1.5, 0.4), (2.5, 0.4), (3.5, 0.4)]
            elif comp_style == "strum":
                hits = [(0, 0.9), (1, 0.45), (1.5, 0.9), (2.5, 0.45), (3, 0.45), (3.5, 0.45)]
            else:
                hits = [(0, 1.4), (1.5, 0.9), (2.5, 0.4), (3, 0.9)]
            for start, dur in hits:
                vel = 88 if start % 1 == 0 else 72
                for j, k in enumerate(voicing):  # small strum spread
                    part.add(b0 + start + 0.012 * j, dur, k, vel + rng.integers(-6, 7))
        other_parts.append(part)

    # ---- vocals: two-bar phrases, repeated where the chords repeat
    vox = _Part(channel=3, program=int(rng.choice(_VOICE_PROGRAMS)), pan=int(rng.integers(60, 69)))
    center = 60 + ((root_pc - 60) % 12)
    if center < 63:
        center += 5
    lo, hi = center - 7, center + 9
    scale_pcs = {(root_pc + s) % 12 for s in scale}
    scale_keys = [k for k in range(lo, hi + 1) if k % 12 in scale_pcs]
    rhythms = [_VOCAL_RHYTHMS[int(i)] for i in rng.choice(len(_VOCAL_RHYTHMS), 3, replace=False)]
    phrase_seed = int(rng.integers(2**31))
    vocal_end = body_end
    n_phrases = max(0, math.ceil((vocal_end - n_intro) / 2))
    for ph in range(n_phrases):
        bar = n_intro + 2 * ph
        kind = (0, 1, 0, 2)[ph % 4]
        prng = np.random.default_rng([phrase_seed, kind, (bar - n_intro) % len(progression)])
        prev = int(min(scale_keys, key=lambda k: abs(k - center)))
        rhythm = rhythms[kind]
        for i, (onset, dur) in enumerate(rhythm):
            cbar = bar + int(onset // 4)
            if cbar >= vocal_end:
                break
            chord_pcs = {p % 12 for p in chords[cbar]}
            last = i == len(rhythm) - 1
            if onset % 2 == 0 or last:
                cands = [k for k in scale_keys if k % 12 in chord_pcs]
                weights = np.array([1.0 / (1 + abs(k - prev)) for k in cands])
                key = int(prng.choice(cands, p=weights / weights.sum()))
            else:
                idx = scale_keys.index(min(scale_keys, key=lambda k: abs(k - prev)))
                step = int(prng.choice([-2, -1, 1, 2], p=[0.15, 0.35, 0.35, 0.15]))
                if scale_keys[idx] > center + 4:
                    step = -abs(step)
                elif scale_keys[idx] < center - 4:
                    step = abs(step)
                key = scale_keys[int(np.clip(idx + step, 0, len(scale_keys) - 1))]
            vox.add(bar * bar_beats + onset, dur * 0.95, key, 96 + prng.integers(-8, 9))
            prev = key

    stems = {"drums": [drums, cymbals], "bass": [bass], "other": other_parts, "vocals": [vox]}
    levels = {
        "drums": -17.0 + rng.uniform(-1.5, 1.5),
        "bass": -19.0 + rng.uniform(-1.5, 1.5),
        "other": -21.0 + rng.uniform(-1.5, 1.5),
        "vocals": -18.5 + rng.uniform(-1.5, 1.5),
    }
    send = {"drums": 0.06, "bass": 0.0, "other": 0.18, "vocals": 0.25}
    description = {
        "groove": groove_name, "tempo_bpm": tempo, "key": f"{root_pc}:{mode}",
        "progression": list(progression), "bars": n_bars, "intro_bars": n_intro,
        "break_bar": break_bar, "outro": has_outro, "drum_kit": kit,
        "programs": {s: [p.program for p in parts] for s, parts in stems.items()},
    }
    return _Song(name=name, tempo=tempo, swing=swing, n_bars=n_bars, stems=stems,
                 levels_db=levels, reverb_send=send, reverb_rt60=float(rng.uniform(0.6, 1.5)),
                 description=description)


# --------------------------------------------------------------------------- rendering


def soundfont_bytes() -> bytes:
    """Return the General MIDI soundfont shipped in the ``pretty_midi`` wheel (TimGM6mb.sf2).

    Returns
    -------
    bytes
        The SF2 file content.

    Raises
    ------
    FileNotFoundError
        If ``pretty_midi`` is not installed or its wheel lacks the soundfont.
    """
    try:
        resource = importlib.resources.files("pretty_midi") / "TimGM6mb.sf2"
        return resource.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise FileNotFoundError(
            "the demo data needs the General MIDI soundfont shipped in the pretty_midi wheel "
            "(pip install pretty_midi)"
        ) from exc


def _beats_to_seconds(beats: np.ndarray, tempo: float, swing: float) -> np.ndarray:
    """Map beat positions to seconds, delaying off-beat eighths by ``swing`` beats."""
    whole = np.floor(beats)
    frac = beats - whole
    if swing:
        mid = 0.5 + swing
        frac = np.where(frac < 0.5, frac * mid / 0.5, mid + (frac - 0.5) * (1 - mid) / 0.5)
    return (whole + frac) * 60.0 / tempo


def _render_parts(parts: list[_Part], song: _Song, sf2: bytes, sr: int, n_frames: int,
                  rng: np.random.Generator) -> np.ndarray:
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sr)
    sfid = synth.sfload(sf2, max_voices=128)
    events: list[tuple[int, int, int, int, int]] = []  # (frame, order, chan, key, vel)
    for part in parts:
        synth.program_select(part.channel, sfid, part.bank, part.program, part.drums)
        synth.control_change(part.channel, 7, part.volume)
        synth.control_change(part.channel, 10, part.pan)
        if not part.notes:
            continue
        arr = np.array(part.notes, dtype=float)
        jitter_s = 0.003 if part.drums else 0.006
        jitter = rng.normal(0.0, jitter_s, size=len(arr))
        on = _beats_to_seconds(arr[:, 0], song.tempo, song.swing) + jitter
        off = _beats_to_seconds(arr[:, 0] + arr[:, 1], song.tempo, song.swing) + jitter
        on_f = np.maximum(0, np.round(on * sr)).astype(np.int64)
        off_f = np.maximum(on_f + 1, np.round(off * sr).astype(np.int64))
        for a, b, key, vel in zip(on_f, off_f, arr[:, 2].astype(int), arr[:, 3].astype(int),
                                  strict=True):
            if a >= n_frames:
                continue
            events.append((int(a), 1, part.channel, int(key), int(vel)))
            if b < n_frames:
                events.append((int(b), 0, part.channel, int(key), 0))
    events.sort()
    buf = bytearray(n_frames * 2 * 4)
    view = memoryview(buf)
    pos = 0
    for frame, order, chan, key, vel in events:
        if frame > pos:
            synth.generate_simple(frame - pos, buffer=view[pos * 8: frame * 8])
            pos = frame
        if order == 1:
            synth.noteon(chan, key, vel)
        else:
            synth.noteoff(chan, key)
    if pos < n_frames:
        synth.generate_simple(n_frames - pos, buffer=view[pos * 8:])
    return np.frombuffer(buf, dtype=np.float32).reshape(-1, 2).astype(np.float64)


def _reverb_ir(rng: np.random.Generator, sr: int, rt60: float) -> np.ndarray:
    """A stereo room impulse response: decorrelated, low-passed, exponentially decaying noise."""
    from scipy.signal import lfilter

    n = int(rt60 * sr)
    t = np.arange(n) / sr
    env = 10 ** (-3 * t / rt60)  # -60 dB at rt60
    noise = rng.standard_normal((n, 2)) * env[:, None]
    noise = lfilter([0.35], [1, -0.65], noise, axis=0)  # darker tail
    predelay = int(0.015 * sr)
    ir = np.concatenate([np.zeros((predelay, 2)), noise])
    return ir / np.sqrt(np.sum(ir**2, axis=0, keepdims=True))


def _active_rms(x: np.ndarray, sr: int) -> float:
    """RMS over the 50 ms frames where the signal is not silent."""
    hop = max(1, int(0.05 * sr))
    n = (len(x) // hop) * hop
    if n == 0:
        return 0.0
    frames = np.sqrt(np.mean(x[:n].reshape(-1, hop, x.shape[1]) ** 2, axis=(1, 2)))
    active = frames[frames > 1e-4]
    return float(np.sqrt(np.mean(active**2))) if active.size else 0.0


def render_demo_track(seed: int | Iterable[int], duration: float = 20.0,
                      sample_rate: int = 44100) -> tuple[str, dict[str, np.ndarray], dict]:
    """Compose and render one demo song.

    Parameters
    ----------
    seed : int or sequence of int
        Seed of the song (``numpy.random.SeedSequence`` entropy).
    duration : float
        Length in seconds.
    sample_rate : int
        Output sample rate in Hz.

    Returns
    -------
    name : str
        Track name ("Artist - Title").
    stems : dict of str to numpy.ndarray
        ``int16`` arrays of shape (frames, 2) for ``mixture`` and each of :data:`STEMS`;
        ``mixture`` is the exact integer sum of the stems.
    description : dict
        Musical parameters (groove, tempo, key, progression, form, programs).
    """
    rng = np.random.default_rng(seed)
    song = _compose(rng, duration)
    sf2 = soundfont_bytes()
    n_frames = int(round(duration * sample_rate))
    from scipy.signal import fftconvolve

    ir = _reverb_ir(rng, sample_rate, song.reverb_rt60)
    rendered: dict[str, np.ndarray] = {}
    for stem in STEMS:
        dry = _render_parts(song.stems[stem], song, sf2, sample_rate, n_frames, rng)
        send = song.reverb_send[stem]
        if send > 0 and np.any(dry):
            wet = np.stack([fftconvolve(dry[:, c], ir[:, c])[:n_frames] for c in range(2)],
                           axis=1)
            dry = dry + send * wet
        rms = _active_rms(dry, sample_rate)
        if rms > 0:
            dry *= 10 ** (song.levels_db[stem] / 20) / rms
        rendered[stem] = dry
    # Same fade-out on every stem keeps the mixture equal to the sum.
    fade = min(n_frames, int(0.25 * sample_rate))
    if fade:
        ramp = 0.5 * (1 + np.cos(np.pi * np.arange(1, fade + 1) / fade))
        for stem in STEMS:
            rendered[stem][-fade:] *= ramp[:, None]
    peak = max(
        max(float(np.max(np.abs(v))) for v in rendered.values()),
        float(np.max(np.abs(sum(rendered.values())))),
    )
    scale = 32768.0 * (min(1.0, _PEAK_LIMIT / peak) if peak > 0 else 1.0)
    out = {s: np.round(rendered[s] * scale).astype(np.int32) for s in STEMS}
    mixture = sum(out[s] for s in STEMS)
    if np.max(np.abs(mixture)) > 32767:  # cannot happen after the peak scaling above
        raise RuntimeError("demo mixture overflowed 16 bits")
    out_i16 = {s: v.astype(np.int16) for s, v in out.items()}
    out_i16["mixture"] = mixture.astype(np.int16)
    return song.name, out_i16, song.description


# --------------------------------------------------------------------------- data set


def _params(n_train: int, n_test: int, duration: float, sample_rate: int, seed: int) -> dict:
    return {"n_train": int(n_train), "n_test": int(n_test), "duration": float(duration),
            "sample_rate": int(sample_rate), "seed": int(seed)}


def _manifest_complete(out_dir: Path, params: dict) -> bool:
    path = out_dir / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("generator_version") != GENERATOR_VERSION or manifest.get("params") != params:
        return False
    files = manifest.get("files", {})
    if len(files) != 5 * (params["n_train"] + params["n_test"]):
        return False
    for rel, size in files.items():
        try:
            if (out_dir / rel).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name} {count + 1}")
    return out


def generate_demo_dataset(out_dir: str | os.PathLike, n_train: int = 8, n_test: int = 4,
                          duration: float = 20.0, sample_rate: int = 44100, seed: int = 0,
                          progress: bool = True) -> Path:
    """Write a deterministic, music-like multitrack data set in the MUSDB18-HQ layout.

    Parameters
    ----------
    out_dir : path-like
        Root folder; ``train/`` and ``test/`` are created inside.
    n_train, n_test : int
        Number of tracks per split.
    duration : float
        Length of every track in seconds.
    sample_rate : int
        Sample rate in Hz.
    seed : int
        Master seed. Track ``i`` of a split depends only on ``(seed, split, i)``, so
        asking for more tracks keeps the existing ones identical.
    progress : bool
        Show a progress bar (tqdm) on stderr.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Notes
    -----
    Idempotent: when ``out_dir/demodata.json`` records the same generator version and
    parameters and every listed file exists with its recorded size, nothing is rendered.
    Otherwise the tracks are rendered again; track folders listed in an older manifest
    that the new parameters do not produce are removed, other content is left alone.
    The manifest is written last, so an interrupted run is redone next time.

    Examples
    --------
    >>> root = generate_demo_dataset("demo_data", n_train=1, n_test=1,
    ...                              duration=6.0)  # doctest: +SKIP
    >>> track = next((root / "test").iterdir())  # doctest: +SKIP
    >>> sorted(p.name for p in track.iterdir())  # doctest: +SKIP
    ['bass.wav', 'drums.wav', 'mixture.wav', 'other.wav', 'vocals.wav']
    """
    if n_train < 0 or n_test < 0:
        raise ValueError("n_train and n_test must be >= 0")
    if duration <= 0:
        raise ValueError("duration must be positive")
    if sample_rate < 8000:
        raise ValueError("sample_rate must be at least 8000 Hz")
    out = Path(out_dir)
    params = _params(n_train, n_test, duration, sample_rate, seed)
    if _manifest_complete(out, params):
        return out

    from tqdm import tqdm

    old_tracks: set[str] = set()
    try:
        old = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
        old_tracks = {str(Path(rel).parent) for rel in old.get("files", {})}
        (out / MANIFEST_NAME).unlink()
    except (OSError, ValueError):
        pass

    jobs = [(split, i) for split, n in (("train", n_train), ("test", n_test)) for i in range(n)]
    rendered_tracks: dict[str, list[str]] = {"train": [], "test": []}
    files: dict[str, int] = {}
    descriptions: dict[str, dict] = {}
    start = time.perf_counter()
    for split, i in tqdm(jobs, desc="demo data", unit="track", disable=not progress):
        track_seed = [int(seed), _SPLIT_IDS[split], i]
        name, audio, desc = render_demo_track(track_seed, duration, sample_rate)
        name = _unique_names(rendered_tracks[split] + [name])[-1]
        rendered_tracks[split].append(name)
        track_dir = out / split / name
        track_dir.mkdir(parents=True, exist_ok=True)
        for stem in TRACK_FILES:
            path = track_dir / f"{stem}.wav"
            tmp = track_dir / f".{stem}.wav.tmp"
            sf.write(tmp, audio[stem], sample_rate, subtype="PCM_16", format="WAV")
            os.replace(tmp, path)
            files[f"{split}/{name}/{stem}.wav"] = path.stat().st_size
        descriptions[f"{split}/{name}"] = {"seed": track_seed, **desc}

    new_tracks = {str(Path(rel).parent) for rel in files}
    for rel in sorted(old_tracks - new_tracks):
        stale = out / rel
        if stale.is_dir() and stale.resolve().is_relative_to(out.resolve()):
            shutil.rmtree(stale)

    manifest = {
        "generator": "mosplatform.demodata",
        "generator_version": GENERATOR_VERSION,
        "params": params,
        "soundfont": "TimGM6mb.sf2 (pretty_midi)",
        "soundfont_sha256": hashlib.sha256(soundfont_bytes()).hexdigest(),
        "render_seconds": round(time.perf_counter() - start, 3),
        "tracks": rendered_tracks,
        "descriptions": descriptions,
        "files": files,
    }
    tmp = out / f".{MANIFEST_NAME}.tmp"
    out.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, out / MANIFEST_NAME)
    return out


def save_spectrogram_png(track_dir: str | os.PathLike, png_path: str | os.PathLike,
                         seconds: float = 10.0) -> Path:
    """Plot log-magnitude spectrograms of the mixture and the four stems of one track.

    A listening aid: the picture shows drum transients, bass lines, chords and the
    melody, and the intro/break/outro where sources are silent.

    Parameters
    ----------
    track_dir : path-like
        A track folder (``<split>/<track>``).
    png_path : path-like
        Where to write the PNG.
    seconds : float
        How much of the beginning to plot.

    Returns
    -------
    pathlib.Path
        ``png_path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    track = Path(track_dir)
    fig, axes = plt.subplots(len(TRACK_FILES), 1, figsize=(12, 12), sharex=True)
    for ax, stem in zip(axes, TRACK_FILES, strict=True):
        x, sr = sf.read(track / f"{stem}.wav", frames=int(seconds * 44100 * 4), dtype="float32")
        x = x[: int(seconds * sr)].mean(axis=1)
        ax.specgram(x + 1e-9, NFFT=2048, Fs=sr, noverlap=1536, cmap="magma", vmin=-140)
        ax.set_ylim(0, 8000)
        ax.set_ylabel(f"{stem}\nHz")
    axes[-1].set_xlabel("s")
    fig.suptitle(track.name)
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)
    return Path(png_path)


@click.command("demo-data")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="demo_data",
              show_default=True, help="Root folder of the data set.")
@click.option("--train", "n_train", type=click.IntRange(min=0), default=8, show_default=True,
              help="Number of training tracks.")
@click.option("--test", "n_test", type=click.IntRange(min=0), default=4, show_default=True,
              help="Number of test tracks.")
@click.option("--duration", type=click.FloatRange(min=1.0), default=20.0, show_default=True,
              help="Track length in seconds.")
@click.option("--sample-rate", type=click.IntRange(min=8000), default=44100,
              show_default=True, help="Sample rate in Hz.")
@click.option("--seed", type=int, default=0, show_default=True, help="Master seed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo_data_command(out_dir: str, n_train: int, n_test: int, duration: float,
                      sample_rate: int, seed: int, quiet: bool) -> None:
    """Generate deterministic music-like multitrack demo data (MUSDB18-HQ layout)."""
    start = time.perf_counter()
    root = generate_demo_dataset(out_dir, n_train=n_train, n_test=n_test, duration=duration,
                                 sample_rate=sample_rate, seed=seed, progress=not quiet)
    click.echo(f"demo data ready in {root} ({time.perf_counter() - start:.1f} s)")
