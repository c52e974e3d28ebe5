"""Volume calibration and headphone screening for the calibration page.

The screening signals are generated from the participant's seed, served from
``/media/check/...`` and scored on the server, so the page never holds the answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import url_for
from werkzeug.datastructures import MultiDict

from ..extensions import db
from ..models import Participant
from .testinfo import test_info

N_CHECK_TRIALS = 3
PASS_THRESHOLD = 2  # correct answers out of N_CHECK_TRIALS (Woods et al. use 5 of 6)


def check_kind(participant: Participant) -> str:
    return test_info(participant.test).definition.get("design", {}).get("headphone_check", "none")


def calibration_url(participant: Participant) -> str | None:
    """Opaque URL of a clip from the participant's first trial, to set the volume by."""
    if not test_info(participant.test).definition.get("design", {}).get("calibration", True):
        return None
    for trial in participant.trials:
        for ts in trial.stimuli:
            return url_for("media.stimulus", token=ts.token)
    return None


def _answers(participant: Participant) -> list[int]:
    rng = np.random.default_rng(participant.seed + 7919)
    return [int(rng.integers(3)) for _ in range(N_CHECK_TRIALS)]


def check_signal(participant: Participant, trial: int, option: int, sr: int = 44100
                 ) -> np.ndarray:
    """Stereo signal of one option of one screening trial, shape (samples, 2)."""
    from ..audio import headphone

    kind = check_kind(participant)
    correct = _answers(participant)[trial]
    seed = participant.seed * 31 + trial
    if kind == "antiphase":
        return headphone.antiphase_option(option, correct, sr=sr, seed=seed)
    return headphone.huggins_option(option, correct, sr=sr, seed=seed)


def check_context(participant: Participant) -> dict[str, Any] | None:
    kind = check_kind(participant)
    if kind == "none":
        return None
    return {"kind": kind, "trials": [
        {"urls": [url_for("media.check", token=participant.token, trial=t, option=o)
                  for o in range(3)]}
        for t in range(N_CHECK_TRIALS)]}


def record_answers(participant: Participant, form: MultiDict[str, str]) -> None:
    """Score the screening answers and store them in the participant's screening results."""
    kind = check_kind(participant)
    if kind == "none":
        return
    truth = _answers(participant)
    given = []
    for t in range(N_CHECK_TRIALS):
        try:
            given.append(int(form.get(f"check_{t}", "-1")))
        except ValueError:
            given.append(-1)
    correct = sum(int(a == b) for a, b in zip(given, truth, strict=True))
    screening = dict(participant.screening or {})
    screening["headphone_check"] = {"kind": kind, "correct": correct, "of": N_CHECK_TRIALS,
                                    "passed": correct >= PASS_THRESHOLD}
    participant.screening = screening
    db.session.commit()
