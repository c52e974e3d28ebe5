"""Typed SQLAlchemy 2 models for the whole product.

The schema follows the life of a listening test: a :class:`Test` has
:class:`Question` s, :class:`Item` s (excerpts of a track with a target source) and
:class:`Condition` s (systems, hidden reference, anchors); a :class:`Stimulus` is
the prepared audio of one condition for one item. A :class:`Participant` gets
:class:`Trial` s whose stimuli are exposed only through opaque
:class:`TrialStimulus` tokens; a :class:`Rating` stores one answer and is unique per
(participant, stimulus, question) so a double submission is impossible at the
database level.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    """Timezone-aware current time in UTC."""
    return datetime.now(timezone.utc)


class TestKind(str, enum.Enum):
    mushra = "mushra"
    acr = "acr"
    dcr = "dcr"
    ccr = "ccr"
    ab = "ab"


class TestStatus(str, enum.Enum):
    draft = "draft"
    open = "open"
    paused = "paused"
    closed = "closed"


class ConditionRole(str, enum.Enum):
    """What a condition is, which decides how screening and analysis treat it."""

    reference = "reference"  # the open (labelled) reference, never rated
    hidden_reference = "hidden_reference"
    low_anchor = "low_anchor"  # BS.1534-3 3.5 kHz low-pass
    mid_anchor = "mid_anchor"  # BS.1534-3 7 kHz low-pass
    mixture = "mixture"  # the unprocessed mixture as a trivial baseline
    system = "system"  # a separation system or variant


class ItemKind(str, enum.Enum):
    regular = "regular"
    training = "training"
    gold = "gold"  # known answer (P.808)
    trap = "trap"  # spoken instruction to pick an answer (P.808)


class ParticipantStatus(str, enum.Enum):
    started = "started"
    finished = "finished"
    excluded = "excluded"
    returned = "returned"


def _enum(e: type[enum.Enum], length: int = 24) -> String:
    # Stored as plain strings: portable across SQLite and PostgreSQL and easy to
    # extend without ALTER TYPE.
    return String(length)


class AdminUser(UserMixin, db.Model):
    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tests: Mapped[list[Test]] = relationship(back_populates="owner")


class Test(db.Model):
    __tablename__ = "test"
    __test__ = False  # not a pytest test class

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public, opaque identifier used in participant links.
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(_enum(TestKind))
    status: Mapped[str] = mapped_column(_enum(TestStatus), default=TestStatus.draft.value)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("admin_user.id"))
    # The validated test definition exactly as loaded (YAML -> dict).
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    owner: Mapped[AdminUser | None] = relationship(back_populates="tests")
    collaborators: Mapped[list[TestCollaborator]] = relationship(
        back_populates="test", cascade="all, delete-orphan"
    )
    questions: Mapped[list[Question]] = relationship(
        back_populates="test", cascade="all, delete-orphan", order_by="Question.position"
    )
    items: Mapped[list[Item]] = relationship(
        back_populates="test", cascade="all, delete-orphan", order_by="Item.position"
    )
    conditions: Mapped[list[Condition]] = relationship(
        back_populates="test", cascade="all, delete-orphan", order_by="Condition.position"
    )
    participants: Mapped[list[Participant]] = relationship(
        back_populates="test", cascade="all, delete-orphan"
    )


class TestCollaborator(db.Model):
    __tablename__ = "test_collaborator"
    __table_args__ = (UniqueConstraint("test_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("test.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_user.id", ondelete="CASCADE"))

    test: Mapped[Test] = relationship(back_populates="collaborators")
    user: Mapped[AdminUser] = relationship()


class Question(db.Model):
    __tablename__ = "question"
    __table_args__ = (UniqueConstraint("test_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("test.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    # {"en": "...", "ja": "..."}
    label: Mapped[dict[str, str]] = mapped_column(JSON)
    # {"type": "categorical", "categories": [{"score": 5, "label": {...}}, ...]}
    # or {"type": "continuous", "min": 0, "max": 100, "bands": [...]}
    scale: Mapped[dict[str, Any]] = mapped_column(JSON)

    test: Mapped[Test] = relationship(back_populates="questions")


class Item(db.Model):
    """An excerpt of a track, with the target source the listener judges."""

    __tablename__ = "item"
    __table_args__ = (UniqueConstraint("test_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("test.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer, default=0)
    track: Mapped[str] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(_enum(ItemKind), default=ItemKind.regular.value)
    start_s: Mapped[float] = mapped_column(Float, default=0.0)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    # For gold and trap items: the answer a attentive listener gives, per question key.
    expected: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    test: Mapped[Test] = relationship(back_populates="items")
    stimuli: Mapped[list[Stimulus]] = relationship(
        back_populates="item", cascade="all, delete-orphan"
    )


class Condition(db.Model):
    __tablename__ = "condition"
    __table_args__ = (UniqueConstraint("test_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("test.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(_enum(ConditionRole), default=ConditionRole.system.value)
    position: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str | None] = mapped_column(Text)

    test: Mapped[Test] = relationship(back_populates="conditions")
    stimuli: Mapped[list[Stimulus]] = relationship(back_populates="condition")


class Stimulus(db.Model):
    """Prepared audio of one condition for one item, stored under its content hash."""

    __tablename__ = "stimulus"
    __table_args__ = (UniqueConstraint("item_id", "condition_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    # None for quality-control clips (gold and trapping items), which belong to no condition.
    condition_id: Mapped[int | None] = mapped_column(
        ForeignKey("condition.id", ondelete="CASCADE")
    )
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    # Path relative to the media root, e.g. "ab/abcdef....wav".
    path: Mapped[str] = mapped_column(String(255))
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    num_frames: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    loudness_lufs: Mapped[float | None] = mapped_column(Float)
    peak_dbfs: Mapped[float | None] = mapped_column(Float)
    source_path: Mapped[str | None] = mapped_column(Text)

    item: Mapped[Item] = relationship(back_populates="stimuli")
    condition: Mapped[Condition | None] = relationship(back_populates="stimuli")
    objective_scores: Mapped[list[ObjectiveScore]] = relationship(
        back_populates="stimulus", cascade="all, delete-orphan"
    )


class Participant(db.Model):
    __tablename__ = "participant"
    # One participation per crowd worker and test: a double click on the study link
    # cannot create two (NULL external ids are not compared).
    __table_args__ = (UniqueConstraint("test_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("test.id", ondelete="CASCADE"), index=True)
    # Opaque secret that identifies the participant in URLs and cookies.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(128), index=True)
    study_id: Mapped[str | None] = mapped_column(String(128))
    session_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(
        _enum(ParticipantStatus), default=ParticipantStatus.started.value
    )
    is_preview: Mapped[bool] = mapped_column(Boolean, default=False)
    seed: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(8), default="en")
    # Step of the journey reached: consent, instructions, calibration, training,
    # trials, questionnaire, done.
    stage: Mapped[str] = mapped_column(String(32), default="welcome")
    consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    exclusion_reason: Mapped[str | None] = mapped_column(Text)
    screening: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    questionnaire: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    completion_code: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))

    test: Mapped[Test] = relationship(back_populates="participants")
    trials: Mapped[list[Trial]] = relationship(
        back_populates="participant", cascade="all, delete-orphan", order_by="Trial.position"
    )


class Trial(db.Model):
    """One page a participant rates: an item and the order of its stimuli."""

    __tablename__ = "trial"
    __table_args__ = (UniqueConstraint("participant_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participant.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(_enum(ItemKind), default=ItemKind.regular.value)
    # Seed that produced this trial's condition order (reproducibility).
    seed: Mapped[int] = mapped_column(Integer)
    # CCR: True when the processed stimulus is presented first (scores sign-flipped).
    flipped: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    participant: Mapped[Participant] = relationship(back_populates="trials")
    item: Mapped[Item] = relationship()
    stimuli: Mapped[list[TrialStimulus]] = relationship(
        back_populates="trial", cascade="all, delete-orphan", order_by="TrialStimulus.position"
    )


class TrialStimulus(db.Model):
    """A stimulus as one participant sees it in one trial, behind an opaque token."""

    __tablename__ = "trial_stimulus"
    __table_args__ = (UniqueConstraint("trial_id", "stimulus_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"), index=True)
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    # 0-based position on the page; -1 for the open reference.
    position: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(64), unique=True)

    trial: Mapped[Trial] = relationship(back_populates="stimuli")
    stimulus: Mapped[Stimulus] = relationship()


class Rating(db.Model):
    __tablename__ = "rating"
    __table_args__ = (UniqueConstraint("participant_id", "stimulus_id", "question_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participant.id", ondelete="CASCADE"), index=True
    )
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"), index=True)
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("question.id", ondelete="CASCADE"))
    # Stored in the analysis convention (CCR: processed relative to reference).
    score: Mapped[float] = mapped_column(Float)
    # What the participant clicked, before any sign handling.
    raw_score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Seconds of this stimulus heard and number of plays, as the page reported them.
    listening_time_s: Mapped[float | None] = mapped_column(Float)
    play_count: Mapped[int | None] = mapped_column(Integer)

    participant: Mapped[Participant] = relationship()
    trial: Mapped[Trial] = relationship()
    stimulus: Mapped[Stimulus] = relationship()
    question: Mapped[Question] = relationship()


class Event(db.Model):
    __tablename__ = "event"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participant.id", ondelete="CASCADE"), index=True
    )
    trial_id: Mapped[int | None] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    # Position of the stimulus on the page (never its condition).
    stimulus_position: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client_time_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AssignedVotes(db.Model):
    """Votes assigned to one (item, stimulus) cell of a test, kept up to date.

    Assignment balances cells by these counts: it reads one row per cell instead of
    counting every trial of every participant (which grows with the test and runs
    while arrivals are serialised). Counted as the trials were: regular trials, rated
    positions, participants who are neither previews nor excluded.
    """

    __tablename__ = "assigned_votes"

    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"),
                                         primary_key=True)
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"),
                                             primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("test.id", ondelete="CASCADE"), index=True)
    votes: Mapped[int] = mapped_column(Integer, default=0)


class ObjectiveScore(db.Model):
    __tablename__ = "objective_score"
    __table_args__ = (UniqueConstraint("stimulus_id", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(32))  # sdr, isr, sir, sar, si_sdr, nsdr
    value: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    stimulus: Mapped[Stimulus] = relationship(back_populates="objective_scores")


class IdempotencyRecord(db.Model):
    """Response of a state-changing API call, replayed when a client retries it."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("participant_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participant.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(80))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
