"""The answer's one-statement read gives what the separate reads give."""

from __future__ import annotations

import dataclasses

import pytest

from mosplatform.config import load_definition
from mosplatform.services import lookup
from mosplatform.services.assignment import Arrival, admit_participant
from mosplatform.services.importer import create_test
from mosplatform.services.journey import trial_after
from mosplatform.services.ratings import submit_trial
from tests.audiofixtures import MUSHRA_YAML, make_musdb, write_definition


@pytest.fixture
def mushra_test(app, tmp_path):  # type: ignore[no-untyped-def]
    """A MUSHRA test of five items (and a training trial)."""
    audio = make_musdb(tmp_path / "audio", tracks=5, seconds=2.5)
    yaml = MUSHRA_YAML.replace("trials_per_participant: 2", "trials_per_participant: 5")
    return create_test(load_definition(write_definition(tmp_path, yaml, audio, "m.yaml")),
                       open_now=True, compute_sdr=False)


def _answers(trial, questions):  # type: ignore[no-untyped-def]
    return {"ratings": [{"stimulus": ts.position, "question": q.key, "score": 50.0}
                        for ts in trial.stimuli if ts.position >= 0 for q in questions]}


def _separately(token: str, position: int):  # type: ignore[no-untyped-def]
    """What the answer read in three statements before answer_read."""
    participant = lookup.participant_ref(token)
    trials = lookup.trials_of(participant.id)
    answered = next(t for t in trials if t.position == position)
    upcoming = trial_after(trials, position)
    ids = [answered.id] if upcoming is None else [answered.id, upcoming.id]
    return participant, trials, {k: v for k, v in lookup.stimuli_of_trials(ids).items() if v}


def test_answer_read_matches_the_separate_reads(mushra_test):
    qs = mushra_test.questions
    people = [admit_participant(mushra_test, Arrival()) for _ in range(3)]
    a, b = people[0], people[1]
    last = len(a.trials) - 1
    assert last >= 3
    for position in range(2):  # a is at its third trial; b and c at their first
        submit_trial(a, position, _answers(a.trials[position], qs))
    # The open trial, an answered one (a resubmission), the last, and others' trials:
    # the trial that follows is each participant's own first open one.
    cases = [(a, 2), (a, 1), (a, 0), (a, last), (b, 0), (b, last)]
    for who, position in cases:
        read = lookup.answer_read(who.token, position)
        participant, trials, stimuli = _separately(who.token, position)
        # participant_ref also counts the trials, in the same statement.
        assert participant.trial_counts == lookup.trial_counts(participant.id)
        assert read.participant == dataclasses.replace(participant, trial_counts=None)
        assert [tuple(t) for t in read.trials] == [tuple(t) for t in trials]
        assert {k: [tuple(s) for s in v] for k, v in read.stimuli.items()} == \
            {k: [tuple(s) for s in v] for k, v in stimuli.items()}, (who.token, position)
        assert len(read.stimuli) == 2
    assert lookup.answer_read("no-such-token", 0) is None


@pytest.mark.parametrize("position", [0, 5])
def test_answer_read_of_a_participant_with_stimuli_elsewhere(acr_test, position):
    """Every trial is listed even when neither it nor the one after has stimuli read."""
    p = admit_participant(acr_test, Arrival())
    read = lookup.answer_read(p.token, position)
    assert [t.position for t in read.trials] == [t.position for t in p.trials]
    wanted = {t.id for t in p.trials if t.position in (position, 1 if position == 0 else 0)}
    assert set(read.stimuli) == wanted


def test_bound_connection_keeps_its_own_work(acr_test):
    """Inside bound_connection the services run on that connection: commit keeps
    their writes, rollback and leaving the block without a commit drop them, and the
    ORM session is not used."""
    from sqlalchemy import text

    from mosplatform.extensions import db

    p = admit_participant(acr_test, Arrival(external_id="bound"))
    db.session.commit()
    stage = text("UPDATE participant SET stage = :s WHERE id = :i")

    def stored() -> str:
        with db.engine.connect() as other:
            return other.execute(text("SELECT stage FROM participant WHERE id = :i"),
                                 {"i": p.id}).scalar_one()

    with lookup.bound_connection(db.engine) as conn:
        assert lookup.connection() is conn
        assert lookup.participant_ref(p.token).id == p.id  # reads on it
        conn.execute(stage, {"s": "instructions", "i": p.id})
        lookup.rollback()
        assert stored() == "welcome"
        conn.execute(stage, {"s": "instructions", "i": p.id})
        lookup.commit()
        assert stored() == "instructions"
        if conn.dialect.name == "postgresql":
            # A read after the commit opens no transaction (which only a ROLLBACK, and
            # with it the loss of psycopg's prepared statements, would end).
            assert lookup.participant_ref(p.token).stage == "instructions"
            assert int(conn.connection.dbapi_connection.info.transaction_status) == 0
        conn.execute(stage, {"s": "trials", "i": p.id})  # never committed
    assert stored() == "instructions"
    assert lookup.connection() is db.session.connection()
