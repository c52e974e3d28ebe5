"""Ratings are validated, stored exactly once, and retries are safe."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mosplatform.extensions import db
from mosplatform.models import Rating
from mosplatform.services.assignment import Arrival, admit_participant
from mosplatform.services.ratings import RatingError, record_events, submit_trial


def _answers(trial, questions, score=50.0):  # type: ignore[no-untyped-def]
    return {"ratings": [{"stimulus": ts.position, "question": q.key, "score": score}
                        for ts in trial.stimuli if ts.position >= 0 for q in questions]}


def _count() -> int:
    return db.session.scalar(select(func.count()).select_from(Rating))


def test_training_ratings_are_discarded_regular_are_stored(mushra_test):
    p = admit_participant(mushra_test, Arrival())
    qs = mushra_test.questions
    out = submit_trial(p, 0, _answers(p.trials[0], qs))
    assert out.status == 200 and out.body["stored"] == 0 and _count() == 0
    out = submit_trial(p, 1, _answers(p.trials[1], qs, 70))
    assert out.body["stored"] == 5 and _count() == 5


def test_idempotency_key_replays_without_duplicating(mushra_test):
    p = admit_participant(mushra_test, Arrival())
    qs = mushra_test.questions
    submit_trial(p, 0, _answers(p.trials[0], qs))
    first = submit_trial(p, 1, _answers(p.trials[1], qs), idempotency_key="k-1")
    again = submit_trial(p, 1, _answers(p.trials[1], qs), idempotency_key="k-1")
    assert first.body == again.body and _count() == 5


def test_same_answers_resubmitted_is_ok_different_is_409(mushra_test):
    p = admit_participant(mushra_test, Arrival())
    qs = mushra_test.questions
    submit_trial(p, 0, _answers(p.trials[0], qs))
    submit_trial(p, 1, _answers(p.trials[1], qs, 40))
    assert submit_trial(p, 1, _answers(p.trials[1], qs, 40)).body["replayed"]
    with pytest.raises(RatingError) as info:
        submit_trial(p, 1, _answers(p.trials[1], qs, 41))
    assert info.value.status == 409 and _count() == 5


def test_trials_must_be_answered_in_order(mushra_test):
    p = admit_participant(mushra_test, Arrival())
    with pytest.raises(RatingError, match="answered first") as info:
        submit_trial(p, 2, _answers(p.trials[2], mushra_test.questions))
    assert info.value.status == 409 and _count() == 0


@pytest.mark.parametrize("mutate,status,message", [
    (lambda a: a.update(ratings="x"), 400, "ratings"),
    (lambda a: a["ratings"].pop(), 422, "missing"),
    (lambda a: a["ratings"].append(dict(a["ratings"][0])), 422, "duplicate"),
    (lambda a: a["ratings"][0].update(score=101), 422, "outside"),
    (lambda a: a["ratings"][0].update(score=-0.5), 422, "outside"),
    (lambda a: a["ratings"][0].update(score="80"), 422, "number"),
    (lambda a: a["ratings"][0].update(score=True), 422, "number"),
    (lambda a: a["ratings"][0].update(score=float("nan")), 422, "finite"),
    (lambda a: a["ratings"][0].update(question="other"), 422, "unknown question"),
    (lambda a: a["ratings"][0].update(stimulus=99), 422, "unknown stimulus"),
    (lambda a: a["ratings"][0].update(stimulus=-1), 422, "unknown stimulus"),
    (lambda a: a["ratings"][0].update(stimulus="0"), 422, "unknown stimulus"),
])
def test_invalid_submissions_are_refused_and_store_nothing(mushra_test, mutate, status,
                                                           message):
    p = admit_participant(mushra_test, Arrival())
    submit_trial(p, 0, _answers(p.trials[0], mushra_test.questions))
    answers = _answers(p.trials[1], mushra_test.questions)
    mutate(answers)
    with pytest.raises(RatingError, match=message) as info:
        submit_trial(p, 1, answers)
    assert info.value.status == status
    db.session.rollback()
    assert _count() == 0 and p.trials[1].completed_at is None


def test_categorical_scores_must_be_categories(acr_test):
    p = admit_participant(acr_test, Arrival())
    answers = _answers(p.trials[0], acr_test.questions, 3.5)
    with pytest.raises(RatingError, match="not one of"):
        submit_trial(p, 0, answers)


def test_closed_test_refuses_answers(acr_test):
    p = admit_participant(acr_test, Arrival())
    acr_test.status = "closed"
    db.session.commit()
    with pytest.raises(RatingError, match="closed") as info:
        submit_trial(p, 0, _answers(p.trials[0], acr_test.questions, 3))
    assert info.value.status == 409


def test_preview_ratings_are_never_stored(acr_test):
    p = admit_participant(acr_test, Arrival(is_preview=True))
    out = submit_trial(p, 0, _answers(p.trials[0], acr_test.questions, 3))
    assert out.status == 200 and _count() == 0


def test_ccr_scores_are_stored_processed_relative_to_reference(app, audio_dirs, tmp_path):
    from mosplatform.config import load_definition
    from mosplatform.services.importer import create_test
    from tests.audiofixtures import ACR_YAML, write_definition

    text = (ACR_YAML.replace("kind: acr", "kind: ccr").replace("scale: acr", "scale: ccr")
            .replace("role: hidden_reference", "role: reference"))
    test = create_test(load_definition(write_definition(tmp_path, text, audio_dirs, "c.yaml")),
                       open_now=True, compute_sdr=False)
    checked = set()
    for _ in range(10):
        p = admit_participant(test, Arrival())
        trial = p.trials[0]
        body = {"ratings": [{"stimulus": None, "question": q.key, "score": 2}
                            for q in test.questions]}
        submit_trial(p, 0, body)
        rows = db.session.execute(select(Rating).where(Rating.trial_id == trial.id)).scalars()
        for r in rows:
            assert r.raw_score == 2
            # "second is better by 2": processed second -> +2, processed first -> -2.
            assert r.score == (-2 if trial.flipped else 2)
            assert r.stimulus.condition.role != "reference"
            checked.add(trial.flipped)
    assert checked == {True, False}


def test_events_are_stored_and_validated(mushra_test):
    p = admit_participant(mushra_test, Arrival())
    n = record_events(p, {"events": [
        {"kind": "play", "trial": 0, "stimulus": 1, "t_ms": 12.5, "position_s": 0.25},
        {"kind": "switch", "trial": 0, "stimulus": 2, "t_ms": 40.0}]})
    assert n == 2
    with pytest.raises(RatingError, match="unknown event kind"):
        record_events(p, {"events": [{"kind": "drop table"}]})


def _event_count() -> int:
    from mosplatform.models import Event

    return db.session.scalar(select(func.count()).select_from(Event))


def test_events_sent_with_the_answer_are_stored_with_it(mushra_test):
    from mosplatform.models import Event

    p = admit_participant(mushra_test, Arrival())
    qs = mushra_test.questions
    body = _answers(p.trials[0], qs)
    body["events"] = [{"kind": "play", "trial": 0, "stimulus": 1, "t_ms": 5.0,
                       "data": {"rate": 48000, "label": "ü"}, "position_s": 0.25},
                      {"kind": "heard", "trial": 0, "stimulus": None, "t_ms": 9.0}]
    out = submit_trial(p, 0, body, idempotency_key="e-1")
    assert out.status == 200
    events = db.session.execute(select(Event).order_by(Event.id)).scalars().all()
    assert [e.kind for e in events] == ["play", "heard"]
    assert {e.trial_id for e in events} == {p.trials[0].id}
    assert [(e.stimulus_position, e.client_time_ms, e.payload) for e in events] == [
        (1, 5.0, {"rate": 48000, "label": "ü", "position_s": 0.25}), (None, 9.0, {})]
    # A retry replays the answer and stores the events only once.
    assert submit_trial(p, 0, body, idempotency_key="e-1").body == out.body
    assert _event_count() == 2


def test_stored_rows_carry_every_value(mushra_test):
    """What the one-statement write (PostgreSQL) and the plain inserts (SQLite) store:
    listening data (unknown where the page sent none), times, the idempotency record."""
    from mosplatform.models import IdempotencyRecord

    p = admit_participant(mushra_test, Arrival())
    qs = mushra_test.questions
    submit_trial(p, 0, _answers(p.trials[0], qs))
    body = _answers(p.trials[1], qs, 30)
    body["listening"] = [{"stimulus": 0, "heard_s": 2.5, "plays": 3}]
    out = submit_trial(p, 1, body, idempotency_key="v-1")
    db.session.expire_all()
    rows = db.session.execute(select(Rating)).scalars().all()
    by_pos = {ts.stimulus_id: ts.position for ts in p.trials[1].stimuli}
    assert len(rows) == 5 and {r.trial_id for r in rows} == {p.trials[1].id}
    for r in rows:
        heard = (2.5, 3) if by_pos[r.stimulus_id] == 0 else (None, None)
        assert (r.score, r.raw_score, r.listening_time_s, r.play_count) == (30.0, 30.0, *heard)
        assert r.created_at is not None
    record = db.session.execute(select(IdempotencyRecord)).scalar_one()
    assert (record.key, record.status_code, record.response) == ("v-1", 200, out.body)
    assert db.session.get(type(p.trials[1]), p.trials[1].id).completed_at is not None


def test_a_bad_event_refuses_the_whole_answer(mushra_test):
    p = admit_participant(mushra_test, Arrival())
    submit_trial(p, 0, _answers(p.trials[0], mushra_test.questions))
    body = _answers(p.trials[1], mushra_test.questions)
    body["events"] = [{"kind": "play", "stimulus": 0}, {"kind": "drop table"}]
    with pytest.raises(RatingError, match="unknown event kind"):
        submit_trial(p, 1, body)
    db.session.rollback()
    assert _count() == 0 and _event_count() == 0 and p.trials[1].completed_at is None
    body["events"] = "not a list"
    with pytest.raises(RatingError, match="must be a list") as info:
        submit_trial(p, 1, body)
    assert info.value.status == 400


def test_answer_names_the_next_open_trial(acr_test):
    p = admit_participant(acr_test, Arrival())
    qs = acr_test.questions
    n = len(p.trials)
    for pos in range(n):
        out = submit_trial(p, pos, _answers(p.trials[pos], qs, 3))
        assert out.body["next_trial"] == (pos + 2 if pos + 1 < n else None)
        # A resubmission names the participant's next open trial too.
        again = submit_trial(p, pos, _answers(p.trials[pos], qs, 3))
        assert again.body["replayed"] and again.body["next_trial"] == out.body["next_trial"]


def test_shown_stamp_round_trip_and_forgeries():
    from datetime import timedelta

    from mosplatform.models import utcnow
    from mosplatform.services.journey import shown_stamp, shown_time

    at = utcnow() - timedelta(seconds=30)
    stamp = shown_stamp(7, "secret", at)
    got = shown_time(stamp, 7, "secret")
    assert got is not None and abs((got - at).total_seconds()) < 0.002
    assert shown_time(stamp, 8, "secret") is None  # another trial's page
    assert shown_time(stamp, 7, "other secret") is None  # forged
    assert shown_time(stamp.replace("7:", "9:", 1), 7, "secret") is None
    assert shown_time(shown_stamp(7, "secret", utcnow() + timedelta(hours=1)), 7,
                      "secret") is None  # in the future
    assert shown_time(shown_stamp(7, "secret", utcnow() - timedelta(days=8)), 7,
                      "secret") is None  # stale
    for junk in (None, 5, "", "x" * 300, ["a"]):
        assert shown_time(junk, 7, "secret") is None


def test_answer_sets_the_trial_start_from_its_page(acr_test):
    from datetime import timedelta

    from mosplatform.models import Trial, utcnow
    from mosplatform.services.journey import shown_stamp, shown_time

    p = admit_participant(acr_test, Arrival())
    trial_id = p.trials[0].id
    at = utcnow() - timedelta(seconds=12)
    stamp = shown_stamp(trial_id, "s", at)
    submit_trial(p, 0, _answers(p.trials[0], acr_test.questions, 3),
                 shown=lambda tid: shown_time(stamp, tid, "s"))
    db.session.expire_all()
    trial = db.session.get(Trial, trial_id)
    started = trial.started_at.replace(tzinfo=None)
    assert abs((started - at.replace(tzinfo=None)).total_seconds()) < 0.002
    assert trial.completed_at.replace(tzinfo=None) > started


def test_concurrent_answers_and_twins_are_stored_exactly_once(app, acr_test):
    """Threads answer for several participants at once, each answer sent twice at the
    same moment (a double click, or a retry racing the first): every answer is stored
    once, and the twin is answered as the first was or as a resubmission."""
    import threading

    from mosplatform.services import lookup

    people = [admit_participant(acr_test, Arrival()) for _ in range(6)]
    work = [(p.token, t.position, _answers(t, acr_test.questions, 3))
            for p in people for t in p.trials]
    outcomes: list[tuple[str, int, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def answer(token, position, body, key):  # type: ignore[no-untyped-def]
        start.wait()
        with app.app_context():
            try:
                participant = lookup.participant_ref(token)
                out = submit_trial(participant, position, body, idempotency_key=key)
                outcomes.append((token, position, out.status))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    for token, position, body in work:
        twins = [threading.Thread(target=answer, args=(
            token, position, body, f"{token[:8]}-{position}-{k}")) for k in range(2)]
        for t in twins:
            t.start()
        for t in twins:
            t.join()
    assert not errors, errors
    assert len(outcomes) == 2 * len(work) and {s for _, _, s in outcomes} == {200}
    db.session.expire_all()
    regular = sum(1 for p in people for t in p.trials if t.kind == "regular")
    assert _count() == regular * len(acr_test.questions)


@pytest.mark.parametrize("deferred", [False, True])
def test_a_failed_insert_undoes_the_whole_answer(mushra_test, deferred):
    """The answer's writes are atomic (one statement on PostgreSQL, and with reads
    outside a transaction before them): when the ratings insert fails, the trial is
    not completed and neither its events nor its idempotency record are stored."""
    from mosplatform.database import defer_begin
    from mosplatform.models import IdempotencyRecord, Trial
    from mosplatform.services.lookup import participant_ref

    p = admit_participant(mushra_test, Arrival())
    qs = mushra_test.questions
    submit_trial(p, 0, _answers(p.trials[0], qs))
    trial = p.trials[1]
    rated = next(ts for ts in trial.stimuli if ts.position >= 0)
    db.session.add(Rating(participant_id=p.id, trial_id=trial.id, stimulus_id=rated.stimulus_id,
                          question_id=qs[0].id, score=10.0, raw_score=10.0))
    db.session.commit()
    events_before = _event_count()
    body = _answers(trial, qs)
    body["events"] = [{"kind": "play", "trial": 1, "stimulus": 0, "t_ms": 1.0}]
    trial_id, who = trial.id, p
    if deferred:
        token = p.token
        db.session.remove()
        defer_begin(db.session())
        who = participant_ref(token)
    with pytest.raises(RatingError) as info:
        submit_trial(who, 1, body, idempotency_key="atomic-1")
    assert info.value.status == 409
    db.session.rollback()
    assert db.session.get(Trial, trial_id).completed_at is None
    assert _count() == 1 and _event_count() == events_before
    assert db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
