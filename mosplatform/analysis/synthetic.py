"""Synthetic ratings tables with known structure, for tests, benchmarks and demos."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SOURCES = ("drums", "bass", "other", "vocals")
CONDITIONS = ("ground_truth", "l1", "l1_stft", "l1_stft_adv", "open_unmix")
QUESTIONS = ("accuracy", "contamination")


def simulate_study(
    n_participants: int = 40,
    clips_per_participant: int = 10,
    questions: Sequence[str] = QUESTIONS,
    sources: Sequence[str] = SOURCES,
    conditions: Sequence[str] = CONDITIONS,
    n_tracks: int = 50,
    listener_sd: float = 0.4,
    noise_sd: float = 0.8,
    seed: int = 0,
) -> pd.DataFrame:
    """A study-like ACR table: each clip is a random track, condition and target source.

    Parameters
    ----------
    n_participants : int
        Listeners.
    clips_per_participant : int
        Clips per listener; each clip is rated on every question, so a listener gives
        ``clips_per_participant × len(questions)`` ratings.
    questions, sources, conditions : sequence of str
        Design factors (the study: 2 questions, 4 sources, models + ground truth).
    n_tracks : int
        Number of tracks (items are ``track/source``).
    listener_sd, noise_sd : float
        Standard deviation of the listener offset and of the vote noise (categories).
    seed : int
        Random seed.

    Returns
    -------
    pandas.DataFrame
        The export's columns: ``participant``, ``kind``, ``item``, ``item_kind``,
        ``track``, ``source``, ``condition``, ``role``, ``question``, ``score``
        (1..5), ``scale_min``, ``scale_max``, ``trial_position``, ``play_count``,
        ``heard_fraction``, ``excluded``, ``sdr``.

    Notes
    -----
    The latent quality of a condition rises with its index; a vote is the latent
    quality plus listener offset plus noise, rounded and clipped to 1..5. SDR rises
    with the condition too (NaN for the ground truth, as for a reference).

    Examples
    --------
    >>> d = simulate_study(n_participants=3, clips_per_participant=2)
    >>> len(d), sorted(d["score"].unique().tolist())[0] >= 1
    (12, True)
    """
    rng = np.random.default_rng(seed)
    n_clips = n_participants * clips_per_participant
    participant = np.repeat(np.arange(n_participants), clips_per_participant)
    cond = rng.integers(0, len(conditions), n_clips)
    src = rng.integers(0, len(sources), n_clips)
    track = rng.integers(0, n_tracks, n_clips)
    position = np.tile(np.arange(clips_per_participant), n_participants)
    offset = rng.normal(0, listener_sd, n_participants)[participant]
    k = len(conditions)
    quality = np.where(cond == 0, 4.6, 2.2 + 1.8 * cond / max(k - 1, 1))
    sdr_value = np.where(cond == 0, np.nan,
                         3.0 + 1.5 * cond + 0.8 * src + rng.normal(0, 0.5, n_clips))
    frames = []
    for q_i, q in enumerate(questions):
        latent = quality + offset - 0.3 * q_i + rng.normal(0, noise_sd, n_clips)
        frames.append(pd.DataFrame({
            "participant": np.char.add("p", participant.astype(str)),
            "kind": "acr",
            "item": np.char.add(np.char.add("t", track.astype(str)),
                                np.char.add("/", np.asarray(sources)[src])),
            "item_kind": "regular",
            "track": np.char.add("t", track.astype(str)),
            "source": np.asarray(sources)[src],
            "condition": np.asarray(conditions)[cond],
            "role": np.where(cond == 0, "hidden_reference", "system"),
            "question": q,
            "score": np.clip(np.rint(latent), 1, 5),
            "scale_min": 1.0,
            "scale_max": 5.0,
            "trial_position": position,
            "play_count": 1,
            "heard_fraction": 1.0,
            "excluded": False,
            "sdr": sdr_value,
        }))
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["participant", "trial_position", "question"], kind="stable",
                           ignore_index=True)


def simulate_mushra(
    n_participants: int = 20,
    n_items: int = 10,
    systems: Sequence[str] = ("l1", "l1_stft", "l1_stft_adv"),
    seed: int = 0,
) -> pd.DataFrame:
    """A complete MUSHRA table: every listener rates every condition of every item.

    Parameters
    ----------
    n_participants, n_items : int
        Design size.
    systems : sequence of str
        System conditions besides the hidden reference and the two anchors.
    seed : int
        Random seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``participant``, ``kind``, ``item``, ``item_kind``, ``source``,
        ``condition``, ``role``, ``question`` (``quality``), ``score`` (0..100),
        ``scale_min``, ``scale_max``.

    Notes
    -----
    Hidden reference near 95, mid anchor near 60, low anchor near 25, systems in
    between; listener offsets and noise, clipped to 0..100.

    Examples
    --------
    >>> d = simulate_mushra(n_participants=2, n_items=3)
    >>> len(d), d["role"].nunique()
    (36, 4)
    """
    rng = np.random.default_rng(seed)
    conds = [("hidden_reference", "hidden_reference", 96.0),
             ("anchor_7k", "mid_anchor", 60.0), ("anchor_3k5", "low_anchor", 25.0)]
    conds += [(s, "system", 45.0 + 35.0 * i / max(len(systems) - 1, 1))
              for i, s in enumerate(systems)]
    rows = []
    offsets = rng.normal(0, 4, n_participants)
    for p in range(n_participants):
        for i in range(n_items):
            for name, role, mean in conds:
                sd = 2.0 if role == "hidden_reference" else 8.0
                score = float(np.clip(mean + offsets[p] + rng.normal(0, sd), 0, 100))
                if role == "hidden_reference":
                    score = min(100.0, max(score, 90.0 + rng.uniform(0, 10)))
                rows.append((f"p{p}", "mushra", f"item{i}", "regular",
                             ("drums", "bass", "other", "vocals")[i % 4], name, role,
                             "quality", round(score), 0.0, 100.0))
    return pd.DataFrame(rows, columns=["participant", "kind", "item", "item_kind", "source",
                                       "condition", "role", "question", "score", "scale_min",
                                       "scale_max"])
