"""Configuration defaults and the pydantic schema of a test definition (YAML).

A test definition says what is rated (kind, questions and their scales), which audio
(a MUSDB-style reference folder plus one folder per system, or an explicit file
list), how it is prepared (rate, loudness, anchors, excerpts) and how participants
are served (subset size, training, quality control, questionnaire, crowd platform).
:func:`load_definition` turns a YAML file into a validated :class:`TestDefinition`
or raises :class:`DefinitionError` naming the file, the field path and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# --------------------------------------------------------------------------------------
# Application defaults (layer 1 of the configuration).
# --------------------------------------------------------------------------------------


class DefaultConfig:
    SECRET_KEY = "dev-not-secret"  # replaced from the instance folder on first run
    SQLALCHEMY_DATABASE_URI: str | None = None  # None -> SQLite in instance/
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {}
    MEDIA_ROOT: str | None = None  # None -> instance/media
    MAX_CONTENT_LENGTH = 64 * 1024 * 1024  # admin uploads; the API limits itself lower
    API_MAX_BYTES = 256 * 1024
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SECURE = False  # set MOSPLATFORM_SESSION_COOKIE_SECURE=true behind TLS
    # The cookie is signed and sent again only when the session changes, not on every
    # response (the participant API's hot path).
    SESSION_REFRESH_EACH_REQUEST = False
    WTF_CSRF_TIME_LIMIT = None
    LANGUAGES = ("en", "ja")
    SERVE_WORKERS: int | None = None
    SERVE_THREADS = 4
    SERVE_WORKER = "auto"  # or "asgi": gunicorn's asyncio worker (mosplatform/serving.py)
    USE_X_ACCEL_REDIRECT = False
    X_ACCEL_PREFIX = "/_protected_media/"
    # Plain audio requests and answers served before Flask's machinery (fastpath.py).
    FAST_PATHS = True
    # PostgreSQL: how a pooled connection is checked at checkout ("socket": a poll of its
    # socket, a ping only when it has news or sat idle DB_PING_IDLE_S; "query": a ping
    # every time; "off"). See mosplatform/database.py.
    DB_PRE_PING = "socket"
    DB_PING_IDLE_S = 30.0
    LOGIN_RATE_LIMIT = 10  # failed attempts per username+address per 5 minutes
    # Where relative audio paths in uploaded or pasted definitions start (default: cwd).
    IMPORT_ROOT: str | None = None
    # Base URL for participant links behind a proxy (default: the request's host).
    PUBLIC_URL: str | None = None


# --------------------------------------------------------------------------------------
# Test definition schema.
# --------------------------------------------------------------------------------------

LANGS = ("en", "ja")
TestKindName = Literal["mushra", "acr", "dcr", "ccr", "ab"]
RoleName = Literal[
    "reference", "hidden_reference", "low_anchor", "mid_anchor", "mixture", "system"
]
SOURCES_MUSDB = ("drums", "bass", "other", "vocals")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


LocalizedText = dict[str, str] | str


def localized(value: LocalizedText | None) -> dict[str, str]:
    """Normalise a plain string or a ``{lang: text}`` mapping to a mapping."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"en": value}
    return dict(value)


class Category(Strict):
    score: float
    label: LocalizedText

    @field_validator("label")
    @classmethod
    def _label_not_empty(cls, v: LocalizedText) -> LocalizedText:
        if not localized(v) or not all(str(t).strip() for t in localized(v).values()):
            raise ValueError("a category needs a non-empty label, e.g. label: {en: Excellent}")
        return v


class Band(Strict):
    min: float
    max: float
    label: LocalizedText


def _default_mushra_bands() -> list[Band]:
    names = [
        (0, 20, "Bad", "悪い"),
        (20, 40, "Poor", "やや悪い"),
        (40, 60, "Fair", "普通"),
        (60, 80, "Good", "良い"),
        (80, 100, "Excellent", "非常に良い"),
    ]
    return [Band(min=a, max=b, label={"en": en, "ja": ja}) for a, b, en, ja in names]


class CategoricalScale(Strict):
    type: Literal["categorical"]
    categories: list[Category] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique_scores(self) -> CategoricalScale:
        scores = [c.score for c in self.categories]
        if len(set(scores)) != len(scores):
            raise ValueError(f"category scores must be distinct, got {scores}")
        return self


class ContinuousScale(Strict):
    type: Literal["continuous"]
    min: float = 0.0
    max: float = 100.0
    step: float = 1.0
    bands: list[Band] = Field(default_factory=_default_mushra_bands)

    @model_validator(mode="after")
    def _range(self) -> ContinuousScale:
        if not self.max > self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        if self.step <= 0:
            raise ValueError("step must be positive")
        return self


Scale = Annotated[CategoricalScale | ContinuousScale, Field(discriminator="type")]

PRESET_SCALES: dict[str, dict[str, Any]] = {
    "acr": {
        "type": "categorical",
        "categories": [
            {"score": 5, "label": {"en": "Excellent", "ja": "非常に良い"}},
            {"score": 4, "label": {"en": "Good", "ja": "良い"}},
            {"score": 3, "label": {"en": "Fair", "ja": "普通"}},
            {"score": 2, "label": {"en": "Poor", "ja": "悪い"}},
            {"score": 1, "label": {"en": "Bad", "ja": "非常に悪い"}},
        ],
    },
    "dcr": {
        "type": "categorical",
        "categories": [
            {"score": 5, "label": {"en": "Degradation is inaudible", "ja": "劣化が分からない"}},
            {"score": 4, "label": {"en": "Degradation is audible but not annoying", "ja": "劣化が分かるが気にならない"}},
            {"score": 3, "label": {"en": "Degradation is slightly annoying", "ja": "劣化がわずかに気になる"}},
            {"score": 2, "label": {"en": "Degradation is annoying", "ja": "劣化が気になる"}},
            {"score": 1, "label": {"en": "Degradation is very annoying", "ja": "劣化が非常に気になる"}},
        ],
    },
    "ccr": {
        "type": "categorical",
        "categories": [
            {"score": 3, "label": {"en": "Much Better", "ja": "非常に良い"}},
            {"score": 2, "label": {"en": "Better", "ja": "良い"}},
            {"score": 1, "label": {"en": "Slightly Better", "ja": "わずかに良い"}},
            {"score": 0, "label": {"en": "About the Same", "ja": "同じ程度"}},
            {"score": -1, "label": {"en": "Slightly Worse", "ja": "わずかに悪い"}},
            {"score": -2, "label": {"en": "Worse", "ja": "悪い"}},
            {"score": -3, "label": {"en": "Much Worse", "ja": "非常に悪い"}},
        ],
    },
    "ab": {
        "type": "categorical",
        "categories": [
            {"score": 1, "label": {"en": "A", "ja": "A"}},
            {"score": 0, "label": {"en": "No preference", "ja": "どちらとも言えない"}},
            {"score": -1, "label": {"en": "B", "ja": "B"}},
        ],
    },
    "mushra": {"type": "continuous", "min": 0, "max": 100, "step": 1},
}


class QuestionDef(Strict):
    key: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    label: LocalizedText
    # Either a full scale or the name of a preset (acr, dcr, ccr, ab, mushra).
    scale: Scale

    @field_validator("scale", mode="before")
    @classmethod
    def _preset(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v not in PRESET_SCALES:
                raise ValueError(
                    f"unknown scale preset {v!r}; use one of {sorted(PRESET_SCALES)} or a "
                    "mapping with type: categorical | continuous")
            return PRESET_SCALES[v]
        if isinstance(v, dict) and v.get("type") not in ("categorical", "continuous"):
            raise ValueError("a scale mapping needs type: categorical or type: continuous")
        return v

    def resolved_scale(self) -> CategoricalScale | ContinuousScale:
        return self.scale


class ConditionDef(Strict):
    key: str = Field(pattern=r"^[A-Za-z0-9_\-.]{1,128}$")
    role: RoleName = "system"
    # MUSDB-style folder for this system (<track>/<source>.wav); ignored for anchors,
    # which are generated from the reference.
    folder: str | None = None
    description: str | None = None


class ExcerptDef(Strict):
    # start in seconds, or "auto": the span where all sources are active.
    start: float | Literal["auto"] = "auto"
    duration: float = Field(default=8.0, gt=0.5, le=30.0)

    @field_validator("start")
    @classmethod
    def _non_negative(cls, v: float | str) -> float | str:
        if isinstance(v, (int, float)) and v < 0:
            raise ValueError("start must be >= 0 seconds or 'auto'")
        return v


class FolderStimuli(Strict):
    """Source (a): a MUSDB-style reference folder plus one folder per system."""

    type: Literal["folders"] = "folders"
    reference: str
    tracks: list[str] | None = None  # default: every track folder found
    sources: list[str] = Field(default_factory=lambda: list(SOURCES_MUSDB), min_length=1)
    excerpt: ExcerptDef = Field(default_factory=ExcerptDef)
    # Per-track override of the excerpt start, in seconds.
    starts: dict[str, float] = Field(default_factory=dict)
    # How items are formed: one item per (track, source) or one per track with a
    # source drawn at random (the study: 20 clips, random target per clip).
    items: Literal["track_source", "track_random_source"] = "track_source"


class FileItemDef(Strict):
    key: str = Field(pattern=r"^[A-Za-z0-9_\-.]{1,128}$")
    track: str | None = None
    source: str | None = None
    start: float | None = None
    duration: float | None = None
    # condition key -> audio file path
    files: dict[str, str] = Field(min_length=1)


class FileStimuli(Strict):
    """Source (b): an explicit list of files per item and condition."""

    type: Literal["files"]
    items: list[FileItemDef] = Field(min_length=1)


StimuliDef = Annotated[FolderStimuli | FileStimuli, Field(discriminator="type")]


class PreparationDef(Strict):
    sample_rate: int = Field(default=44100, ge=8000, le=192000)
    loudness_lufs: float | None = Field(default=None, ge=-70, le=0)
    # "stimulus": every stimulus to the target (removes level cues between systems);
    # "item": one gain per item, keeping the level differences between conditions.
    loudness_mode: Literal["stimulus", "item"] = "stimulus"
    fade_ms: float = Field(default=20.0, ge=0, le=500)
    # How the reference of a separated source is stored: the ground-truth stem.
    allow_clipping: bool = False
    format: Literal["wav", "flac"] = "wav"


class QualityControlItemDef(Strict):
    kind: Literal["gold", "trap"]
    key: str = Field(pattern=r"^[A-Za-z0-9_\-.]{1,128}$")
    # Gold: the file whose answer is known; trap: generated speech unless a file is given.
    file: str | None = None
    expected: dict[str, float] = Field(min_length=1)  # question key -> answer


class DesignDef(Strict):
    trials_per_participant: int | None = Field(default=None, ge=1)
    target_votes: int = Field(default=20, ge=1)
    training: bool = True
    require_full_scale: bool = False  # MUSHRA: at least one condition rated 100
    must_listen_fraction: float = Field(default=0.8, ge=0, le=1)
    max_conditions_per_trial: int = Field(default=12, ge=1, le=12)
    headphone_check: Literal["none", "antiphase", "huggins"] = "none"
    calibration: bool = True
    quality_control: list[QualityControlItemDef] = Field(default_factory=list)


class QuestionnaireField(Strict):
    key: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    label: LocalizedText
    type: Literal["text", "number", "choice", "textarea"] = "text"
    choices: list[str] = Field(default_factory=list)
    required: bool = False

    @model_validator(mode="after")
    def _choices(self) -> QuestionnaireField:
        if self.type == "choice" and not self.choices:
            raise ValueError("a 'choice' field needs a non-empty 'choices' list")
        return self


class CrowdDef(Strict):
    platform: Literal["none", "prolific", "generic"] = "none"
    completion_code: str | None = None
    completion_url: str | None = None  # Prolific: https://app.prolific.com/submissions/complete?cc=CODE
    return_url: str | None = None  # generic: may contain {external_id} and {code}


class TestDefinition(Strict):
    """A whole listening test, as written in YAML."""

    name: str = Field(min_length=1, max_length=200)
    kind: TestKindName
    description: LocalizedText | None = None
    instructions: LocalizedText | None = None
    languages: list[Literal["en", "ja"]] = Field(default_factory=lambda: ["en"], min_length=1)
    show_source_name: bool = True
    questions: list[QuestionDef] = Field(min_length=1)
    conditions: list[ConditionDef] = Field(min_length=1)
    stimuli: StimuliDef
    preparation: PreparationDef = Field(default_factory=PreparationDef)
    design: DesignDef = Field(default_factory=DesignDef)
    questionnaire: list[QuestionnaireField] = Field(default_factory=list)
    crowd: CrowdDef = Field(default_factory=CrowdDef)
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> TestDefinition:
        keys = [c.key for c in self.conditions]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"condition keys must be unique; repeated: {dupes}")
        qkeys = [q.key for q in self.questions]
        if len(set(qkeys)) != len(qkeys):
            raise ValueError("question keys must be unique")
        roles = [c.role for c in self.conditions]
        rated = [c for c in self.conditions if c.role != "reference"]
        if self.kind == "mushra":
            if "hidden_reference" not in roles:
                raise ValueError(
                    "a MUSHRA test needs a condition with role: hidden_reference (BS.1534-3)"
                )
            if len(rated) > 12:
                raise ValueError(
                    f"MUSHRA allows at most 12 rated conditions per trial, got {len(rated)}"
                )
            if len(self.questions) != 1:
                raise ValueError(
                    "a MUSHRA test asks exactly one question per trial page (BS.1534-3); "
                    "make a second test for a second attribute")
            for q in self.questions:
                if not isinstance(q.resolved_scale(), ContinuousScale):
                    raise ValueError(
                        f"question '{q.key}': MUSHRA questions use a continuous scale "
                        "(scale: mushra)"
                    )
        if self.kind in ("dcr", "ccr") and "reference" not in roles:
            raise ValueError(
                f"a {self.kind.upper()} test needs a condition with role: reference "
                "(the unprocessed signal played first or in the pair)"
            )
        if self.kind == "ab" and len([c for c in rated]) < 2:
            raise ValueError("an AB test needs at least two rated conditions")
        if self.kind in ("acr", "dcr", "ccr", "ab"):
            for q in self.questions:
                if not isinstance(q.resolved_scale(), CategoricalScale):
                    raise ValueError(
                        f"question '{q.key}': {self.kind.upper()} questions use a categorical "
                        "scale (e.g. scale: acr)"
                    )
        if isinstance(self.stimuli, FolderStimuli):
            for c in self.conditions:
                if c.role == "system" and not c.folder:
                    raise ValueError(
                        f"condition '{c.key}' (role system) needs 'folder': the directory "
                        "with <track>/<source>.wav stems of that system"
                    )
        else:
            generated = {"low_anchor", "mid_anchor"}
            for item in self.stimuli.items:
                missing = [
                    c.key for c in self.conditions
                    if c.role not in generated and c.key not in item.files
                ]
                unknown = [k for k in item.files if k not in keys]
                if unknown:
                    raise ValueError(
                        f"item '{item.key}' lists files for unknown conditions {unknown}; "
                        f"known: {keys}"
                    )
                if missing:
                    raise ValueError(
                        f"item '{item.key}' has no file for conditions {missing}"
                    )
        for qc in self.design.quality_control:
            bad = [k for k in qc.expected if k not in qkeys]
            if bad:
                raise ValueError(
                    f"quality_control item '{qc.key}' gives answers for unknown questions {bad}"
                )
        return self

    def condition(self, key: str) -> ConditionDef:
        return next(c for c in self.conditions if c.key == key)


class DefinitionError(ValueError):
    """A test definition that cannot be used, with every problem spelled out."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            # pydantic adds the union member's tag to the path; keep the user's path.
            if p in ("folders", "files", "categorical", "continuous") and parts:
                continue
            if any(ch in str(p) for ch in "[(") or p in ("str", "dict"):
                continue
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def parse_definition(data: Any, source: str = "<definition>", base_dir: Path | None = None
                     ) -> TestDefinition:
    """Validate a definition mapping.

    Parameters
    ----------
    data : Any
        The mapping loaded from YAML or JSON.
    source : str
        Where it came from, used in error messages.
    base_dir : Path, optional
        Relative paths in the definition are resolved against this folder.

    Returns
    -------
    TestDefinition

    Raises
    ------
    DefinitionError
        With one line per problem: ``field.path: what is wrong``.
    """
    if not isinstance(data, dict):
        raise DefinitionError(source, [
            f"(top level): expected a mapping of fields (name, kind, questions, ...), "
            f"got {type(data).__name__}"
        ])
    try:
        definition = TestDefinition.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{_loc(err['loc'])}: {msg}")
        raise DefinitionError(source, problems) from None
    if base_dir is not None:
        _resolve_paths(definition, base_dir)
    return definition


def _resolve(path: str, base_dir: Path) -> str:
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else (base_dir / p).resolve())


def _resolve_paths(d: TestDefinition, base_dir: Path) -> None:
    for c in d.conditions:
        if c.folder:
            c.folder = _resolve(c.folder, base_dir)
    if isinstance(d.stimuli, FolderStimuli):
        d.stimuli.reference = _resolve(d.stimuli.reference, base_dir)
    else:
        for item in d.stimuli.items:
            item.files = {k: _resolve(v, base_dir) for k, v in item.files.items()}
    for qc in d.design.quality_control:
        if qc.file:
            qc.file = _resolve(qc.file, base_dir)


def load_definition(path: str | os.PathLike[str]) -> TestDefinition:
    """Read and validate a YAML test definition file.

    Parameters
    ----------
    path : path-like
        The YAML file. Relative audio paths inside it are resolved against its folder.

    Returns
    -------
    TestDefinition

    Raises
    ------
    DefinitionError
        If the file cannot be read, is not YAML, or fails validation.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    return parse_definition_text(text, str(path), base_dir=path.resolve().parent)


def parse_definition_text(text: str, source: str = "<definition>",
                          base_dir: Path | None = None) -> TestDefinition:
    """Parse YAML text and validate it (see :func:`parse_definition`)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise DefinitionError(source, [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
                              ) from None
    return parse_definition(data, source, base_dir)
