"""What the participant's requests need from a test, read once per process.

A test's definition, questions and items do not change once the test exists (a
changed protocol is a new test: see the admin's duplicate), so the participant
pages and the rating API take them from this cache instead of decoding the
definition JSON and loading the questions on every request. Only the test's
status, which does change, is read from the database each time. Entries are keyed
by the test's random public id and checked against its primary key, so two
databases in one process (the test suite) never share an entry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ..config import localized
from ..extensions import db
from ..models import Condition, Item, Question, Stimulus, Test
from .lookup import TestRef

MAX_ENTRIES = 256


@dataclass(frozen=True)
class QuestionInfo:
    """A question as validation and the trial page need it."""

    id: int
    key: str
    label: Any
    scale: dict[str, Any]


def text_in(value: Any, lang: str) -> str:
    """``value`` (a string or a ``{lang: text}`` map) in ``lang``, else English, else any."""
    texts = localized(value)
    return texts.get(lang) or texts.get("en") or next(iter(texts.values()), "")


def localized_scale(scale: dict[str, Any], lang: str) -> dict[str, Any]:
    """A question's scale with every label in ``lang``."""
    if scale["type"] == "categorical":
        return {"type": "categorical",
                "categories": [{"score": c["score"], "label": text_in(c["label"], lang)}
                               for c in scale["categories"]]}
    return {"type": "continuous", "min": scale.get("min", 0), "max": scale.get("max", 100),
            "step": scale.get("step", 1),
            "bands": [{"min": b["min"], "max": b["max"], "label": text_in(b["label"], lang)}
                      for b in scale.get("bands", [])]}


@dataclass(frozen=True)
class ConditionRef:
    id: int
    key: str
    role: str


@dataclass(frozen=True)
class ItemRef:
    id: int
    key: str
    kind: str


@dataclass(frozen=True)
class StimulusRef:
    id: int
    item_id: int
    condition_id: int | None


@dataclass(frozen=True)
class Structure:
    """A test's conditions and items (in their order) and its stimuli per item.

    ``by_item[item id][condition id]`` is the stimulus; quality-control clips, which
    belong to no condition, are under condition id -1.
    """

    conditions: tuple[ConditionRef, ...]
    items: tuple[ItemRef, ...]
    by_item: dict[int, dict[int, StimulusRef]]


@dataclass
class TestInfo:
    """The unchanging parts of one test.

    Attributes
    ----------
    definition : dict
        The validated definition as stored; shared, so never modify it.
    stages : tuple of str
        The journey's stages for this test (see :func:`journey.stages_for`).
    questions : tuple of QuestionInfo
        In page order.
    """

    id: int
    public_id: str
    kind: str
    definition: dict[str, Any]
    stages: tuple[str, ...]
    questions: tuple[QuestionInfo, ...]
    _item_sources: dict[int, str] | None = None
    _structure: Structure | None = None
    _localized: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def structure(self) -> Structure:
        """Conditions, items and stimuli, read on first use (assignment needs them)."""
        if self._structure is None:
            conditions = tuple(ConditionRef(*row) for row in db.session.execute(
                select(Condition.id, Condition.key, Condition.role)
                .where(Condition.test_id == self.id).order_by(Condition.position)))
            items = tuple(ItemRef(*row) for row in db.session.execute(
                select(Item.id, Item.key, Item.kind)
                .where(Item.test_id == self.id).order_by(Item.position)))
            by_item: dict[int, dict[int, StimulusRef]] = {}
            for row in db.session.execute(
                    select(Stimulus.id, Stimulus.item_id, Stimulus.condition_id)
                    .join(Item, Item.id == Stimulus.item_id).where(Item.test_id == self.id)):
                stim = StimulusRef(*row)
                key = stim.condition_id if stim.condition_id is not None else -1
                by_item.setdefault(stim.item_id, {})[key] = stim
            self._structure = Structure(conditions, items, by_item)
        return self._structure

    def questions_for_page(self, lang: str) -> list[dict[str, Any]]:
        """The questions with labels and scales in ``lang`` (shared: do not modify)."""
        out = self._localized.get(lang)
        if out is None:
            out = [{"key": q.key, "label": text_in(q.label, lang),
                    "scale": localized_scale(q.scale, lang)} for q in self.questions]
            self._localized[lang] = out
        return out

    def item_source(self, item_id: int) -> str | None:
        """The source name (e.g. "vocals") of one of the test's items."""
        if self._item_sources is None:
            self._item_sources = dict(db.session.execute(
                select(Item.id, Item.source).where(Item.test_id == self.id)).all())
        return self._item_sources.get(item_id)


_cache: dict[str, TestInfo] = {}
_lock = threading.Lock()


def _stages(definition: dict[str, Any]) -> tuple[str, ...]:
    design = definition.get("design", {})
    stages = ["welcome", "instructions"]
    if design.get("calibration", True) or design.get("headphone_check", "none") != "none":
        stages.append("calibration")
    stages.append("trials")
    if definition.get("questionnaire"):
        stages.append("questionnaire")
    stages.append("done")
    return tuple(stages)


def test_info(test: Test | TestRef) -> TestInfo:
    """The cached :class:`TestInfo` of ``test`` (built on first use in this process).

    ``test`` is a :class:`Test` (its ``definition`` column may be deferred) or a
    :class:`~mosplatform.services.lookup.TestRef`; the definition is read only when
    the entry is built.
    """
    info = _cache.get(test.public_id)
    if info is not None and info.id == test.id:
        return info
    if isinstance(test, Test):
        definition = test.definition
    else:
        definition = db.session.execute(
            select(Test.definition).where(Test.id == test.id)).scalar_one()
    questions = tuple(QuestionInfo(q.id, q.key, q.label, q.scale) for q in db.session.execute(
        select(Question).where(Question.test_id == test.id).order_by(Question.position)
    ).scalars())
    info = TestInfo(id=test.id, public_id=test.public_id, kind=test.kind,
                    definition=definition, stages=_stages(definition), questions=questions)
    with _lock:
        if len(_cache) >= MAX_ENTRIES:
            _cache.clear()
        _cache[test.public_id] = info
    return info


def forget(public_id: str | None = None) -> None:
    """Drop one entry, or all: for code that changes a test in place (tests, repairs)."""
    with _lock:
        if public_id is None:
            _cache.clear()
        else:
            _cache.pop(public_id, None)
