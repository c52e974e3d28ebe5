"""Balanced, reproducible assignment of trials to participants."""

from __future__ import annotations

from collections import Counter

import pytest

from mosplatform.extensions import db
from mosplatform.models import ItemKind
from mosplatform.services.assignment import Arrival, AssignmentError, admit_participant


def _cells(participant):  # type: ignore[no-untyped-def]
    return [(t.item_id, ts.stimulus_id) for t in participant.trials
            if t.kind == ItemKind.regular.value for ts in t.stimuli if ts.position >= 0]


def test_mushra_trials_have_training_first_and_all_rated_conditions(mushra_test):
    p = admit_participant(mushra_test, Arrival())
    assert p.trials[0].kind == "training"
    regular = [t for t in p.trials if t.kind == "regular"]
    assert len(regular) == 2  # trials_per_participant
    for t in p.trials:
        rated = [ts for ts in t.stimuli if ts.position >= 0]
        refs = [ts for ts in t.stimuli if ts.position == -1]
        assert len(rated) == 5 and len(refs) == 1  # hidden ref, 2 anchors, 2 systems
        assert len({ts.token for ts in t.stimuli}) == len(t.stimuli)
    assert len({t.item_id for t in regular}) == 2


def test_condition_order_is_random_and_reproducible(mushra_test):
    orders = set()
    for _ in range(6):
        p = admit_participant(mushra_test, Arrival())
        orders.add(tuple(ts.stimulus.condition_id for ts in p.trials[1].stimuli
                         if ts.position >= 0))
    assert len(orders) > 1


def test_items_are_balanced_least_filled_first(mushra_test):
    # 6 items (3 tracks x 2 sources), 2 per participant: 3 participants cover each once.
    seen = Counter()
    for _ in range(3):
        p = admit_participant(mushra_test, Arrival())
        seen.update(t.item_id for t in p.trials if t.kind == "regular")
    assert sorted(seen.values()) == [1] * 6


def test_acr_conditions_balanced_per_item(acr_test):
    counts = Counter()
    for _ in range(9):
        p = admit_participant(acr_test, Arrival())
        counts.update(_cells(p))
    # 3 items x 3 conditions, 2 trials each: 18 votes over 9 cells -> exactly 2 each.
    assert len(counts) == 9 and set(counts.values()) == {2}


def _admin():  # type: ignore[no-untyped-def]
    from mosplatform.models import AdminUser

    admin = AdminUser(username="curator", password_hash="-")
    db.session.add(admin)
    db.session.commit()
    return admin


def test_excluded_participants_do_not_count(acr_test):
    from mosplatform.admin.operations import set_exclusion

    first = admit_participant(acr_test, Arrival())
    set_exclusion(first, True, "failed the headphone check", _admin())
    counts = Counter()
    for _ in range(9):
        counts.update(_cells(admit_participant(acr_test, Arrival())))
    assert set(counts.values()) == {2}


def test_kept_votes_match_a_count_of_the_trials(acr_test):
    """Arrivals, previews, exclusions and re-inclusions keep the per-cell counts exact."""
    import random

    from mosplatform.admin.operations import set_exclusion
    from mosplatform.services.assignment import _kept_votes, count_assigned_votes

    admin = _admin()
    rng = random.Random(3)
    people = []
    for k in range(30):
        people.append(admit_participant(acr_test, Arrival(is_preview=k % 7 == 0)))
        if k % 4 == 3:
            who = rng.choice(people)
            set_exclusion(who, not who.excluded, "curation", admin)
        expected = count_assigned_votes(acr_test)
        kept = _kept_votes(acr_test.id)
        assert +kept == expected, k  # (+ drops cells whose count went back to 0)
    # Excluding twice changes nothing the second time.
    who = next(p for p in people if not p.is_preview and not p.excluded)
    set_exclusion(who, True, "once", admin)
    set_exclusion(who, True, "twice", admin)
    assert +_kept_votes(acr_test.id) == count_assigned_votes(acr_test)


def test_closed_test_refuses_participants(acr_test):
    acr_test.status = "closed"
    db.session.commit()
    with pytest.raises(AssignmentError, match="closed"):
        admit_participant(acr_test, Arrival())
    # Previews are allowed on any status.
    assert admit_participant(acr_test, Arrival(is_preview=True)).is_preview


def test_ccr_half_of_pairs_flipped(app, audio_dirs, tmp_path):
    from mosplatform.config import load_definition
    from mosplatform.services.importer import create_test
    from tests.audiofixtures import ACR_YAML, write_definition

    text = (ACR_YAML.replace("kind: acr", "kind: ccr").replace("scale: acr", "scale: ccr")
            .replace("role: hidden_reference", "role: reference"))
    d = load_definition(write_definition(tmp_path, text, audio_dirs, "c.yaml"))
    test = create_test(d, open_now=True, compute_sdr=False)
    flips = [t.flipped for _ in range(40) for t in admit_participant(test, Arrival()).trials]
    # 80 fair coin flips: outside [0.2, 0.8] with probability below 1e-7.
    assert 0.2 < sum(flips) / len(flips) < 0.8


def test_same_external_id_twice_gives_one_participant(acr_test):
    from sqlalchemy import func, select

    from mosplatform.models import Participant

    first = admit_participant(acr_test, Arrival(external_id="worker-1"))
    again = admit_participant(acr_test, Arrival(external_id="worker-1"))
    assert again.id == first.id
    n = db.session.scalar(select(func.count()).select_from(Participant))
    assert n == 1


def test_stored_mushra_trials_are_the_plan_of_the_seed(mushra_test):
    _check_stored_plan(mushra_test)


def test_stored_acr_trials_are_the_plan_of_the_seed(acr_test):
    _check_stored_plan(acr_test)


def _check_stored_plan(test):  # type: ignore[no-untyped-def]
    """What an arrival stores (one statement on PostgreSQL, ORM and Core inserts
    elsewhere) is exactly the plan its seed gives: trials, stimuli and their order."""
    from mosplatform.services.assignment import plan_trials

    p = admit_participant(test, Arrival(external_id="planned"))
    plan = plan_trials(test, p.seed, False, Counter())  # the first arrival: no votes yet
    stored = [{"item_id": t.item_id, "position": t.position, "kind": t.kind, "seed": t.seed,
               "flipped": t.flipped} for t in p.trials]
    assert stored == plan.trials
    stored_stimuli = sorted((t.position, ts.position, ts.stimulus_id)
                            for t in p.trials for ts in t.stimuli)
    assert stored_stimuli == sorted((s["trial"], s["position"], s["stimulus_id"])
                                    for s in plan.stimuli)
    assert all(ts.token for t in p.trials for ts in t.stimuli)


def test_admitted_participant_holds_what_was_stored(acr_test):
    """The participant an arrival returns (on PostgreSQL built from the values it
    wrote, not read back) has every column as a fresh read gives it."""
    from mosplatform.models import Participant

    p = admit_participant(acr_test, Arrival(external_id="w-9", study_id="s", session_id="x",
                                            language="ja", user_agent="UA"))
    columns = [c.key for c in Participant.__table__.columns]
    returned = {k: getattr(p, k) for k in columns}
    db.session.expire_all()
    fresh = db.session.get(Participant, p.id)
    assert returned == {k: getattr(fresh, k) for k in columns}
    assert returned["stage"] == "welcome" and returned["status"] == "started"
    assert returned["started_at"] is not None and returned["screening"] == {}
    assert p.test.public_id == acr_test.public_id
