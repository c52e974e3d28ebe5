"""services/dashboard.py and services/permissions.py, checked against hand-computed facts.

The seeded world (``adminfixtures.seed_world``) documents its expected figures;
quartiles are checked against numpy's percentile, an independent implementation.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import numpy as np
import pytest
from adminfixtures import T0
from flask_login import AnonymousUserMixin

from mosplatform.extensions import db
from mosplatform.models import AdminUser, Participant, Question, Rating, Trial
from mosplatform.models import Test as TestRow
from mosplatform.services import dashboard
from mosplatform.services.permissions import can_edit, can_view, visible_tests_query


def _test(world) -> TestRow:  # type: ignore[no-untyped-def]
    return db.session.get(TestRow, world.test)


def test_participant_counts(app, world):
    counts = dashboard.participant_counts(_test(world))
    assert counts == dashboard.ParticipantCounts(started=3, finished=1, excluded=1,
                                                 returned=0, in_progress=1)
    p = db.session.get(Participant, world.in_progress)
    p.status = "returned"
    db.session.commit()
    counts = dashboard.participant_counts(_test(world))
    assert (counts.returned, counts.in_progress) == (1, 0)


def test_vote_table(app, world):
    table = dashboard.vote_table(_test(world))
    i1, i2 = world.items["item1"], world.items["item2"]
    ref, a, b = (world.conditions[k] for k in ("ref", "sysA", "sysB"))
    assert table.target == 4
    assert table.votes == {(i1, ref): 0, (i1, a): 1, (i1, b): 1,
                           (i2, ref): 1, (i2, a): 0, (i2, b): 0}
    assert table.pending == {(i2, a): 1}
    assert table.total_votes == 3 and table.cells == 6 and table.cells_complete == 0
    assert table.fill_fraction() == pytest.approx(3 / 24)
    assert table.condition_totals() == {ref: 1, a: 1, b: 1}
    assert table.to_json()["cells"][0][1] == {"votes": 1, "pending": 0}


def test_several_questions_about_one_stimulus_are_one_vote(app, world):
    test = _test(world)
    q2 = Question(test=test, key="contamination", position=1, label={"en": "C"},
                  scale=test.questions[0].scale)
    db.session.add(q2)
    db.session.flush()
    trial = db.session.execute(db.select(Trial).where(
        Trial.participant_id == world.finished, Trial.position == 0)).scalar_one()
    db.session.add(Rating(participant_id=world.finished, trial_id=trial.id,
                          stimulus_id=trial.stimuli[0].stimulus_id, question_id=q2.id,
                          score=3, raw_score=3))
    db.session.commit()
    table = dashboard.vote_table(test)
    assert table.votes[(world.items["item1"], world.conditions["sysA"])] == 1
    assert table.total_votes == 3


def test_cells_without_a_stimulus_are_absent(app, world):
    test = _test(world)
    item = next(i for i in test.items if i.key == "item2")
    sys_b = next(s for s in item.stimuli if s.condition.key == "sysB")
    db.session.delete(sys_b)
    db.session.commit()
    table = dashboard.vote_table(test)
    assert (item.id, world.conditions["sysB"]) not in table.votes
    assert table.to_json()["cells"][1][2] is None


def test_trial_timing(app, world):
    durations = sorted(dashboard.trial_durations(_test(world)))
    assert durations == [10.0, 20.0, 40.0]
    timing = dashboard.trial_timing(_test(world))
    q1, med, q3 = np.percentile([10.0, 20.0, 40.0], [25, 50, 75])
    assert (timing.n, timing.median_s, timing.q1_s, timing.q3_s) == (3, med, q1, q3)


def test_trial_timing_ignores_open_and_training_trials(app, world):
    trial = db.session.execute(db.select(Trial).where(
        Trial.participant_id == world.finished, Trial.position == 1)).scalar_one()
    trial.kind = "training"
    open_trial = db.session.execute(db.select(Trial).where(
        Trial.participant_id == world.in_progress, Trial.position == 1)).scalar_one()
    assert open_trial.completed_at is None
    db.session.commit()
    assert sorted(dashboard.trial_durations(_test(world))) == [10.0, 40.0]
    assert dashboard.trial_timing(_test(world)).median_s == 25.0


def test_trial_timing_empty(app, world):
    test = _test(world)
    for t in db.session.execute(db.select(Trial)).scalars():
        t.completed_at = None
    db.session.commit()
    assert dashboard.trial_timing(test) == dashboard.TrialTiming(n=0, median_s=None)


def test_screening_rates(app, world):
    rates = {r.check: r for r in dashboard.screening_rates(_test(world))}
    assert set(rates) == {"gold", "headphone_check"}
    assert (rates["headphone_check"].taken, rates["headphone_check"].passed) == (3, 1)
    assert rates["headphone_check"].rate == pytest.approx(1 / 3)
    assert (rates["gold"].taken, rates["gold"].passed, rates["gold"].rate) == (1, 1, 1.0)


@pytest.mark.parametrize("value,expected", [
    ({"passed": True, "score": 5}, True), ({"passed": False}, False), (True, True),
    (False, False), ({"score": 3}, None), ("yes", None), (None, None), (1, None)])
def test_screening_passed(value, expected):
    assert dashboard.screening_passed(value) is expected


def test_participant_answers_and_rows(app, world):
    p = db.session.get(Participant, world.finished)
    answers = dashboard.participant_answers(p)
    assert [(a["trial"], a["item"], a["condition"], a["score"]) for a in answers] == [
        (1, "item1", "sysA", 4.0), (2, "item2", "ref", 5.0)]
    listed, total = dashboard.participant_rows(_test(world))
    rows = {r["participant"].id: r for r in listed}
    assert set(rows) == {world.finished, world.in_progress, world.excluded} and total == 3
    assert (rows[world.in_progress]["trials_done"], rows[world.in_progress]["trials_total"]) \
        == (1, 2)
    assert rows[world.in_progress]["screening_failed"] == ["headphone_check"]
    with_preview, total = dashboard.participant_rows(_test(world), include_preview=True)
    assert world.preview in {r["participant"].id for r in with_preview} and total == 4
    # Pages partition the list (newest first: the highest id among equal start times).
    first, _ = dashboard.participant_rows(_test(world), include_preview=True, limit=3)
    rest, _ = dashboard.participant_rows(_test(world), include_preview=True, limit=3, offset=3)
    assert [r["participant"].id for r in first + rest] == [
        world.preview, world.excluded, world.in_progress, world.finished]


def test_target_votes_default(app, world):
    test = _test(world)
    test.definition = {k: v for k, v in test.definition.items() if k != "design"}
    assert dashboard.target_votes(test) == dashboard.DEFAULT_TARGET_VOTES == 20


def test_naive_and_aware_times_mix(app, world):
    """SQLite returns naive datetimes; durations are the same either way."""
    trial = db.session.execute(db.select(Trial).where(
        Trial.participant_id == world.finished, Trial.position == 0)).scalar_one()
    trial.started_at = T0.replace(tzinfo=None)
    trial.completed_at = T0 + timedelta(seconds=10)
    db.session.commit()
    assert 10.0 in dashboard.trial_durations(_test(world))


def test_permissions(app, world):
    test = _test(world)
    users = {u.username: u for u in db.session.execute(db.select(AdminUser)).scalars()}
    view = {name: can_view(u, test) for name, u in users.items()}
    edit = {name: can_edit(u, test) for name, u in users.items()}
    assert view == {"owner": True, "collab": True, "stranger": False, "root": True,
                    "extra": False}
    assert edit == {"owner": True, "collab": False, "stranger": False, "root": True,
                    "extra": False}
    for nobody in (None, AnonymousUserMixin(), AdminUser(username="unsaved")):
        assert not can_view(nobody, test) and not can_edit(nobody, test)
    other = TestRow(public_id=secrets.token_hex(4), name="other", kind="acr", status="draft",
                    owner_id=users["stranger"].id, definition={}, settings={}, seed=0)
    db.session.add(other)
    db.session.commit()

    def visible(name: str) -> set[str]:
        return {t.name for t in db.session.execute(
            visible_tests_query(users[name])).scalars()}

    assert visible("owner") == visible("collab") == {"Seeded ACR"}
    assert visible("stranger") == {"other"}
    assert visible("root") == {"Seeded ACR", "other"}
    assert visible("extra") == set()
