"""The test-definition schema: good definitions load, bad ones name the field and the fix."""

from __future__ import annotations

import copy

import pytest
import yaml

from mosplatform.config import (
    ContinuousScale,
    DefinitionError,
    load_definition,
    parse_definition,
    parse_definition_text,
)

GOOD = {
    "name": "Study",
    "kind": "acr",
    "questions": [{"key": "accuracy", "label": {"en": "Accuracy", "ja": "分離精度"},
                   "scale": "acr"}],
    "conditions": [{"key": "truth", "role": "hidden_reference"},
                   {"key": "l1", "folder": "runs/l1"}],
    "stimuli": {"type": "folders", "reference": "musdb/test"},
}


def with_change(path: str, value: object) -> dict:
    data = copy.deepcopy(GOOD)
    target = data
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if k.isdigit() else target[k]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return data


def test_good_definition_loads_and_resolves_paths(tmp_path):
    path = tmp_path / "def.yaml"
    path.write_text(yaml.safe_dump(GOOD), encoding="utf-8")
    d = load_definition(path)
    assert d.kind == "acr"
    assert d.stimuli.reference == str((tmp_path / "musdb/test").resolve())
    assert d.questions[0].resolved_scale().categories[0].score == 5


def test_mushra_preset_scale_has_five_bands():
    data = copy.deepcopy(GOOD)
    data.update(kind="mushra", questions=[{"key": "q", "label": "Quality", "scale": "mushra"}])
    d = parse_definition(data)
    scale = d.questions[0].resolved_scale()
    assert isinstance(scale, ContinuousScale)
    assert [b.max for b in scale.bands] == [20, 40, 60, 80, 100]


# (description, definition, the field path the error must name, a word of the fix)
BAD = [
    ("missing name", with_change("name", KeyError), "name", "Field required"),
    ("unknown kind", with_change("kind", "mos"), "kind", "mushra"),
    ("no questions", with_change("questions", []), "questions", "at least 1"),
    ("unknown scale preset", with_change("questions.0.scale", "likert"), "questions[0].scale",
     "acr"),
    ("question key with spaces", with_change("questions.0.key", "my key"), "questions[0].key",
     "pattern"),
    ("categorical scale with one category",
     with_change("questions.0.scale", {"type": "categorical",
                                       "categories": [{"score": 1, "label": "x"}]}),
     "questions[0].scale.categories", "at least 2"),
    ("duplicate category scores",
     with_change("questions.0.scale", {"type": "categorical", "categories": [
         {"score": 1, "label": "a"}, {"score": 1, "label": "b"}]}),
     "questions[0].scale", "distinct"),
    ("unknown condition role", with_change("conditions.1.role", "anchor"),
     "conditions[1].role", "hidden_reference"),
    ("system without folder", with_change("conditions.1", {"key": "l1"}), "(top level)",
     "folder"),
    ("duplicate condition keys", with_change("conditions.1", {"key": "truth", "folder": "x"}),
     "(top level)", "unique"),
    ("unknown top-level field", with_change("colour", "red"), "colour", "not permitted"),
    ("stimuli type unknown", with_change("stimuli", {"type": "zip", "reference": "x"}),
     "stimuli", "folders"),
    ("folders without reference", with_change("stimuli", {"type": "folders"}),
     "stimuli.reference", "Field required"),
    ("excerpt too long", with_change("stimuli", {"type": "folders", "reference": "r",
                                                 "excerpt": {"duration": 60}}),
     "stimuli.excerpt.duration", "30"),
    ("negative excerpt start", with_change("stimuli", {"type": "folders", "reference": "r",
                                                       "excerpt": {"start": -1}}),
     "stimuli.excerpt.start", ">= 0"),
    ("sample rate too low", with_change("preparation", {"sample_rate": 100}),
     "preparation.sample_rate", "8000"),
    ("must-listen share over 1", with_change("design", {"must_listen_fraction": 1.5}),
     "design.must_listen_fraction", "1"),
    ("MUSHRA without hidden reference",
     {**with_change("kind", "mushra"), "questions": [{"key": "q", "label": "Q",
                                                      "scale": "mushra"}],
      "conditions": [{"key": "a", "folder": "a"}]}, "(top level)", "hidden_reference"),
    ("MUSHRA with a category scale", with_change("kind", "mushra"), "(top level)",
     "continuous"),
    ("MUSHRA with two questions",
     {**GOOD, "kind": "mushra", "questions": [{"key": "q", "label": "Q", "scale": "mushra"},
                                              {"key": "r", "label": "R", "scale": "mushra"}],
      "conditions": [{"key": "h", "role": "hidden_reference"}]}, "(top level)",
     "exactly one question"),
    ("ACR with a continuous scale", with_change("questions.0.scale", "mushra"), "(top level)",
     "categorical"),
    ("CCR without reference", with_change("kind", "ccr"), "(top level)", "role: reference"),
    ("choice field without choices", with_change("questionnaire", [{"key": "age",
                                                                    "label": "Age",
                                                                    "type": "choice"}]),
     "questionnaire[0]", "choices"),
    ("gold answer for unknown question",
     with_change("design", {"quality_control": [{"kind": "gold", "key": "g1", "file": "g.wav",
                                                 "expected": {"nope": 5}}]}),
     "(top level)", "unknown questions"),
    ("more than 12 MUSHRA conditions",
     {**GOOD, "kind": "mushra", "questions": [{"key": "q", "label": "Q", "scale": "mushra"}],
      "conditions": [{"key": "h", "role": "hidden_reference"}]
      + [{"key": f"s{i}", "folder": "x"} for i in range(12)]}, "(top level)", "at most 12"),
    ("files item naming an unknown condition",
     {**GOOD, "stimuli": {"type": "files", "items": [
         {"key": "i1", "files": {"truth": "a.wav", "l1": "b.wav", "zzz": "c.wav"}}]}},
     "(top level)", "unknown conditions"),
]


@pytest.mark.parametrize("case,data,field,fix", BAD, ids=[b[0] for b in BAD])
def test_bad_definition_names_field_and_fix(case, data, field, fix):
    with pytest.raises(DefinitionError) as info:
        parse_definition(data, source="study.yaml")
    message = str(info.value)
    assert message.startswith("study.yaml: ")
    assert any(p.startswith(field) for p in info.value.problems), info.value.problems
    assert fix.lower() in message.lower(), message


def test_not_a_mapping():
    with pytest.raises(DefinitionError, match="expected a mapping"):
        parse_definition_text("- a\n- b\n", "x.yaml")


def test_yaml_syntax_error_gives_line():
    with pytest.raises(DefinitionError, match="line 2"):
        parse_definition_text("name: x\nkind: a: b\n", "x.yaml")


def test_missing_file(tmp_path):
    with pytest.raises(DefinitionError, match="cannot read the file"):
        load_definition(tmp_path / "nope.yaml")


def test_study_protocol_is_expressible():
    """The two-question, five-category separation MOS protocol of the study."""
    text = (__import__("pathlib").Path(__file__).parents[1] / "examples"
            / "separation_mos.yaml").read_text(encoding="utf-8")
    d = parse_definition_text(text, "separation_mos.yaml")
    assert [q.key for q in d.questions] == ["accuracy", "contamination"]
    for q in d.questions:
        assert [c.score for c in q.resolved_scale().categories] == [5, 4, 3, 2, 1]
    assert d.show_source_name and d.stimuli.items == "track_random_source"
