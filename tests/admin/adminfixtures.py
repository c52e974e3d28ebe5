"""Helpers of the dashboard tests: a seeded test with every role, logins, tiny WAVs.

Used with ``tests/conftest.py`` (``app`` on SQLite and PostgreSQL, ``client``,
``make_app``). Admin accounts here use a cheap PBKDF2 hash so that logging in six
roles per test stays fast; the real scrypt path is tested in ``test_auth.py``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import soundfile as sf
from werkzeug.security import generate_password_hash

PASSWORD = "test-password-1"
_CHEAP_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=timezone.utc)
ACR_SCALE = {"type": "categorical",
             "categories": [{"score": s, "label": {"en": str(s)}} for s in (5, 4, 3, 2, 1)]}


@dataclass
class World:
    """Ids of the seeded rows (objects expire between requests; ids do not)."""

    test: int
    public_id: str
    owner: int
    collaborator: int
    stranger: int
    superuser: int
    extra: int
    finished: int  # participant who finished
    in_progress: int
    excluded: int
    preview: int
    items: dict[str, int]
    conditions: dict[str, int]


def add_admin(username: str, superuser: bool = False):  # type: ignore[no-untyped-def]
    from mosplatform.extensions import db
    from mosplatform.models import AdminUser

    user = AdminUser(username=username, password_hash=_CHEAP_HASH, is_superuser=superuser)
    db.session.add(user)
    db.session.flush()
    return user


def login(client, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """Log ``client`` in; returns the response of the login POST."""
    resp = client.post("/admin/login", data={"username": username, "password": password})
    assert resp.status_code == 302, (username, resp.status_code)
    return resp


def csrf_from(html: bytes | str) -> str:
    """The CSRF token of the first form in a page."""
    text = html.decode() if isinstance(html, bytes) else html
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', text)
    assert match, "no csrf_token in the page"
    return match.group(1)


def _participant(test, *, status: str, excluded: bool = False, preview: bool = False,
                 screening: dict | None = None, finished: bool = False):  # type: ignore[no-untyped-def]
    from mosplatform.extensions import db
    from mosplatform.models import Participant

    p = Participant(test=test, token=secrets.token_urlsafe(24), status=status, excluded=excluded,
                    exclusion_reason="failed screening" if excluded else None,
                    is_preview=preview, seed=1, stage="done" if finished else "trials",
                    screening=screening or {}, started_at=T0,
                    finished_at=T0 + timedelta(hours=1) if finished else None,
                    external_id=None)
    db.session.add(p)
    db.session.flush()
    return p


def _trial(participant, position: int, item, stimulus, question, *, seconds: float | None,
           score: float | None):  # type: ignore[no-untyped-def]
    """A trial showing one stimulus; completed after ``seconds`` with ``score`` if given."""
    from mosplatform.extensions import db
    from mosplatform.models import Rating, Trial, TrialStimulus

    start = T0 + timedelta(minutes=position)
    trial = Trial(participant_id=participant.id, item_id=item.id, position=position,
                  kind="regular", seed=position, started_at=start,
                  completed_at=start + timedelta(seconds=seconds) if seconds is not None else None)
    db.session.add(trial)
    db.session.flush()
    db.session.add(TrialStimulus(trial_id=trial.id, stimulus_id=stimulus.id, position=0,
                                 token=secrets.token_urlsafe(24)))
    if score is not None:
        db.session.add(Rating(participant_id=participant.id, trial_id=trial.id,
                              stimulus_id=stimulus.id, question_id=question.id, score=score,
                              raw_score=score, created_at=start + timedelta(seconds=seconds or 0),
                              listening_time_s=2.0, play_count=1))
    return trial


def seed_world() -> World:
    """An open ACR test (2 items x 3 conditions) with four participants and every role.

    Hand-computed facts the tests check: participants started 3 (previews never
    count), finished 1, in progress 1, excluded 1; votes item1/sysA 1, item1/sysB 1,
    item2/ref 1, others 0, and item2/sysA 1 pending; completed regular trial times of
    counted participants 10, 20 and 40 s; headphone_check taken 3 passed 1, gold
    taken 1 passed 1.
    """
    from mosplatform.extensions import db
    from mosplatform.models import (
        Condition,
        Event,
        Item,
        Question,
        Stimulus,
        Test,
        TestCollaborator,
    )

    owner = add_admin("owner")
    collaborator = add_admin("collab")
    stranger = add_admin("stranger")
    superuser = add_admin("root", superuser=True)
    extra = add_admin("extra")
    definition = {
        "name": "Seeded ACR", "kind": "acr", "languages": ["en"],
        "questions": [{"key": "quality", "label": "Quality", "scale": "acr"}],
        "conditions": [{"key": "ref", "role": "hidden_reference"}, {"key": "sysA"},
                       {"key": "sysB"}],
        "design": {"target_votes": 4, "training": False, "calibration": False},
        "crowd": {"platform": "prolific", "completion_code": "C0DE42"},
    }
    test = Test(public_id="pub" + secrets.token_hex(4), name="Seeded ACR", kind="acr",
                status="open", owner=owner, definition=definition, settings={}, seed=0)
    db.session.add(test)
    db.session.add(TestCollaborator(test=test, user=collaborator))
    question = Question(test=test, key="quality", position=0, label={"en": "Quality"},
                        scale=ACR_SCALE)
    db.session.add(question)
    conditions = {}
    for pos, (key, role) in enumerate([("ref", "hidden_reference"), ("sysA", "system"),
                                       ("sysB", "system")]):
        conditions[key] = Condition(test=test, key=key, role=role, position=pos)
        db.session.add(conditions[key])
    items, stimuli = {}, {}
    for pos, key in enumerate(["item1", "item2"]):
        items[key] = Item(test=test, key=key, position=pos, track=f"track{pos}",
                          source="vocals", kind="regular", start_s=0.0, duration_s=2.0)
        db.session.add(items[key])
        for ckey, cond in conditions.items():
            digest = secrets.token_hex(32)
            stimuli[(key, ckey)] = Stimulus(item=items[key], condition=cond,
                                            content_hash=digest, path=f"{digest[:2]}/{digest}.wav",
                                            sample_rate=16000, channels=1, num_frames=32000,
                                            duration_s=2.0)
            db.session.add(stimuli[(key, ckey)])
    db.session.flush()

    def trial(p, pos, item, cond, seconds, score):  # type: ignore[no-untyped-def]
        return _trial(p, pos, items[item], stimuli[(item, cond)], question, seconds=seconds,
                      score=score)

    done = _participant(test, status="finished", finished=True,
                        screening={"headphone_check": {"passed": True, "correct": 6}})
    trial(done, 0, "item1", "sysA", 10, 4)
    trial(done, 1, "item2", "ref", 20, 5)
    going = _participant(test, status="started",
                         screening={"headphone_check": {"passed": False, "correct": 2}})
    trial(going, 0, "item1", "sysB", 40, 2)
    trial(going, 1, "item2", "sysA", None, None)
    out = _participant(test, status="excluded", excluded=True,
                       screening={"headphone_check": {"passed": False}, "gold": True})
    trial(out, 0, "item1", "sysA", 5, 1)
    # Rows a preview could never write through the API, inserted to prove they never count.
    preview = _participant(test, status="finished", preview=True, finished=True,
                           screening={"headphone_check": False})
    trial(preview, 0, "item1", "sysA", 1, 3)
    db.session.add(Event(participant_id=going.id, kind="play", stimulus_position=0,
                         payload={"note": "real"}))
    db.session.add(Event(participant_id=preview.id, kind="play", stimulus_position=0,
                         payload={"note": "preview"}))
    db.session.commit()
    return World(test=test.id, public_id=test.public_id, owner=owner.id,
                 collaborator=collaborator.id, stranger=stranger.id, superuser=superuser.id,
                 extra=extra.id, finished=done.id, in_progress=going.id, excluded=out.id,
                 preview=preview.id, items={k: v.id for k, v in items.items()},
                 conditions={k: v.id for k, v in conditions.items()})


def write_wavs(folder: Path, n_items: int = 1, seconds: float = 0.8, sr: int = 16000
               ) -> dict[str, dict[str, Path]]:
    """Short WAVs per item: ``ref`` (a tone) and ``sysA`` (the tone plus noise)."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * sr)) / sr
    out: dict[str, dict[str, Path]] = {}
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_items):
        ref = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sys_a = ref + 0.05 * rng.standard_normal(t.size)
        files = {}
        for key, x in (("ref", ref), ("sysA", sys_a)):
            path = folder / f"item{i}_{key}.wav"
            sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
            files[key] = path
        out[f"item{i}"] = files
    return out


def files_yaml(wavs: dict[str, dict[str, Path]], name: str = "Tiny files ACR",
               relative_to: Path | None = None) -> str:
    """A definition of type ``files`` (ACR, hidden reference + one system)."""
    lines = [f"name: {name}", "kind: acr", "questions:",
             "  - {key: quality, label: Quality, scale: acr}", "conditions:",
             "  - {key: ref, role: hidden_reference}", "  - {key: sysA}", "stimuli:",
             "  type: files", "  items:"]
    for key, files in wavs.items():
        paths = {c: (p.relative_to(relative_to) if relative_to else p) for c, p in files.items()}
        lines.append(f"    - key: {key}")
        lines.append("      files: {" + ", ".join(f"{c}: '{p}'" for c, p in paths.items()) + "}")
    lines += ["preparation: {sample_rate: 16000, fade_ms: 10}",
              "design: {training: false, calibration: false, target_votes: 2}"]
    return "\n".join(lines) + "\n"
