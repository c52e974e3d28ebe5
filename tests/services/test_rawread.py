"""RawSelect gives the rows a Core execute gives, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select

from mosplatform.extensions import db
from mosplatform.models import Participant, Test, Trial
from mosplatform.services import lookup
from mosplatform.services.assignment import Arrival, admit_participant
from mosplatform.services.ratings import submit_trial
from mosplatform.services.rawread import RawSelect


def test_rows_equal_core_rows_with_dates_booleans_and_enums(acr_test):
    p = admit_participant(acr_test, Arrival(external_id="raw"))
    answers = [{"stimulus": 0, "question": q.key, "score": 3} for q in acr_test.questions]
    assert submit_trial(p, 0, {"ratings": answers}).status == 200  # a completed_at
    statements = [
        (lookup._PARTICIPANT, {"token": p.token}),
        (lookup._TRIALS, {"participant_id": p.id}),
        (lookup._TRIAL_COUNTS, {"participant_id": p.id}),
        (lookup._STIMULI_OF_TWO_TRIALS, {"t1": p.trials[0].id, "t2": p.trials[1].id}),
        (select(Participant.started_at, Participant.is_preview, Participant.status,
                Test.kind, Trial.completed_at)
         .join(Test, Test.id == Participant.test_id)
         .join(Trial, Trial.participant_id == Participant.id)
         .where(Participant.id == bindparam("pid"), Trial.position < bindparam("n"))
         .order_by(Trial.position), {"pid": p.id, "n": 3}),
    ]
    conn = lookup.connection()
    for statement, params in statements:
        core = [tuple(r) for r in conn.execute(statement, params)]
        raw = RawSelect(statement).rows(conn, params)
        assert [tuple(r) for r in raw] == core, statement
        assert [type(v) for r in raw for v in r] == [type(v) for r in core for v in r]
        assert raw and raw[0]._fields == tuple(statement.selected_columns.keys())
    assert any(r.completed_at is not None for r in RawSelect(lookup._TRIALS).rows(
        conn, {"participant_id": p.id}))
    assert RawSelect(lookup._PARTICIPANT).first(conn, {"token": "nobody"}) is None


def test_reads_in_the_sessions_transaction(acr_test):
    p = admit_participant(acr_test, Arrival())
    db.session.execute(Participant.__table__.update().where(Participant.id == p.id)
                       .values(stage="questionnaire"))  # not committed
    assert lookup.participant_ref(p.token).stage == "questionnaire"
    db.session.rollback()
    assert lookup.participant_ref(p.token).stage == "welcome"


def test_expanding_parameters_are_refused(app):
    statement = select(Trial.id).where(Trial.id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(ValueError, match="expanding"):
        RawSelect(statement).rows(lookup.connection(), {"ids": [1]})


def test_raw_write_stores_what_a_core_statement_does(acr_test):
    """RawWrite's SQL and parameters, run on the DB-API cursor, store the row a Core
    statement stores (JSON and timestamps through SQLAlchemy's bind processors)."""
    from mosplatform.models import Event, utcnow
    from mosplatform.services.rawread import RawWrite

    p = admit_participant(acr_test, Arrival(external_id="raw-write"))
    now = utcnow()
    rows = [{"participant_id": p.id, "trial_id": p.trials[0].id, "kind": "play",
             "stimulus_position": i, "payload": {"i": i, "nested": [1, "x"]},
             "client_time_ms": 1.5 * i, "created_at": now} for i in range(3)]
    insert = Event.__table__.insert().values(
        {name: bindparam(name, type_=Event.__table__.c[name].type) for name in rows[0]})
    conn = lookup.connection()
    raw = RawWrite(insert)
    sql, args = raw.prepare(conn.dialect, rows)
    assert len(args) == 3
    cursor = conn.connection.dbapi_connection.cursor()
    cursor.executemany(sql, args)
    cursor.close()
    conn.execute(insert, [{**r, "stimulus_position": 10 + i} for i, r in enumerate(rows)])
    stored = db.session.execute(select(Event.stimulus_position, Event.payload,
                                       Event.client_time_ms, Event.kind, Event.created_at)
                                .order_by(Event.stimulus_position)).all()
    assert [tuple(r[1:]) for r in stored[:3]] == [tuple(r[1:]) for r in stored[3:]]
    assert stored[1].payload == {"i": 1, "nested": [1, "x"]}
    # Compiled once per dialect.
    assert raw.prepare(conn.dialect, rows[:1])[0] == sql and len(raw._by_dialect) == 1
