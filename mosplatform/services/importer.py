"""Create a test from a validated definition: find, check, prepare and store stimuli.

Everything is checked before anything is stored: unreadable files, sample-rate,
channel or length mismatches within an item, clipping and silence are collected
into one report (:class:`ImportProblems`). Then each excerpt is cut, resampled to
one rate, optionally loudness-aligned (ITU-R BS.1770), faded at its edges and
written under its content hash; the 3.5 kHz and 7 kHz anchors (ITU-R BS.1534-3)
are built from the reference; SDR and SI-SDR are computed for every stimulus that
has a reference. The database rows are created in one transaction at the end, so
a failed import changes nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flask import current_app
from sqlalchemy import select
from tqdm import tqdm

from ..audio import anchors as anchor_filters
from ..audio import checks, excerpt, loudness, storage
from ..audio.io import read_audio
from ..audio.resample import resample
from ..config import (
    FileStimuli,
    FolderStimuli,
    TestDefinition,
    localized,
)
from ..extensions import db
from ..models import (
    AdminUser,
    Condition,
    Item,
    ItemKind,
    ObjectiveScore,
    Question,
    Stimulus,
    Test,
    TestStatus,
)

GENERATED_ROLES = {"low_anchor", "mid_anchor"}
REFERENCE_ROLES = {"reference", "hidden_reference"}


class ImportProblems(Exception):
    """Every problem found in the stimuli, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class PlannedItem:
    key: str
    track: str
    source: str | None
    start: float | str | None
    duration: float | None
    # condition key -> source file (None for generated anchors)
    files: dict[str, Path | None]
    # the other reference stems of the track, for SIR/SAR (folder sources only)
    interferers: list[Path] = field(default_factory=list)
    all_sources: dict[str, Path] = field(default_factory=dict)


def plan_items(definition: TestDefinition) -> tuple[list[PlannedItem], list[str]]:
    """Work out items and their files from the definition; report missing files."""
    problems: list[str] = []
    planned: list[PlannedItem] = []
    reference_key = next((c.key for c in definition.conditions if c.role in REFERENCE_ROLES),
                         None)
    if isinstance(definition.stimuli, FolderStimuli):
        st = definition.stimuli
        ref_root = Path(st.reference)
        if not ref_root.is_dir():
            return [], [f"stimuli.reference: folder {ref_root} does not exist"]
        tracks = st.tracks or sorted(p.name for p in ref_root.iterdir() if p.is_dir())
        if not tracks:
            problems.append(f"stimuli.reference: no track folders in {ref_root}")
        rng = np.random.default_rng(definition.seed)
        for track in tracks:
            tdir = ref_root / track
            if not tdir.is_dir():
                problems.append(f"stimuli.tracks: track folder {tdir} does not exist")
                continue
            if st.items == "track_random_source":
                sources = [st.sources[int(rng.integers(len(st.sources)))]]
            else:
                sources = list(st.sources)
            stems = {s: tdir / f"{s}.wav" for s in st.sources}
            for source in sources:
                files: dict[str, Path | None] = {}
                for c in definition.conditions:
                    if c.role in GENERATED_ROLES:
                        files[c.key] = None
                    elif c.role in REFERENCE_ROLES:
                        files[c.key] = tdir / f"{source}.wav"
                    elif c.role == "mixture":
                        files[c.key] = Path(c.folder) / track / "mixture.wav" if c.folder \
                            else tdir / "mixture.wav"
                    else:
                        files[c.key] = Path(c.folder or "") / track / f"{source}.wav"
                start: float | str = st.starts.get(track, st.excerpt.start)
                planned.append(PlannedItem(
                    key=f"{track}/{source}" if len(sources) > 1 or st.items == "track_source"
                    else track,
                    track=track, source=source, start=start, duration=st.excerpt.duration,
                    files=files,
                    interferers=[p for s, p in stems.items() if s != source],
                    all_sources=stems))
    else:
        st_files: FileStimuli = definition.stimuli
        for it in st_files.items:
            files = {c.key: (Path(it.files[c.key]) if c.key in it.files else None)
                     for c in definition.conditions}
            planned.append(PlannedItem(key=it.key, track=it.track or it.key, source=it.source,
                                       start=it.start if it.start is not None else 0.0,
                                       duration=it.duration, files=files))
    for item in planned:
        if any(v is None for k, v in item.files.items()
               if definition.condition(k).role in GENERATED_ROLES) and reference_key is None:
            problems.append("anchors are generated from the reference: add a condition with "
                            "role hidden_reference or reference")
            break
        for key, path in item.files.items():
            if path is not None and not path.is_file():
                problems.append(f"item {item.key}, condition {key}: file {path} not found")
    return planned, problems


def _excerpt_span(item: PlannedItem, sr: int, num_frames: int,
                  stems: dict[str, np.ndarray]) -> tuple[int, int, list[str], list[str]]:
    """Start and length in frames, problems, warnings."""
    length = num_frames if item.duration is None else int(round(item.duration * sr))
    if length > num_frames:
        return 0, 0, [f"item {item.key}: excerpt of {length / sr:.2f} s is longer than the "
                      f"audio ({num_frames / sr:.2f} s)"], []
    if item.start == "auto":
        if not stems:
            return 0, length, [], []
        span = excerpt.find_active_span(
            {k: v[:num_frames] for k, v in stems.items()}, sr, length / sr)
        warnings = [f"item {item.key}: {span.reason}"] if span.fallback else []
        return span.start_frame, span.num_frames, [], warnings
    start = int(round(float(item.start or 0.0) * sr))
    if start + length > num_frames:
        return start, length, [f"item {item.key}: excerpt {start / sr:.2f} s + {length / sr:.2f}"
                               f" s runs past the end of the audio ({num_frames / sr:.2f} s)"], []
    return start, length, [], []


class _TrackFiles:
    """Reads each file once per track: items of one track share the reference stems
    (as conditions, interferers and for excerpt selection). Holds one track at a time."""

    def __init__(self) -> None:
        self.track: str | None = None
        self.cache: dict[Path, tuple[np.ndarray, int]] = {}

    def read(self, track: str, path: Path) -> tuple[np.ndarray, int]:
        if track != self.track:
            self.track, self.cache = track, {}
        if path not in self.cache:
            self.cache[path] = read_audio(path)
        return self.cache[path]


def _read_all(item: PlannedItem, files: _TrackFiles, problems: list[str]
              ) -> dict[str, tuple[np.ndarray, int]]:
    audio: dict[str, tuple[np.ndarray, int]] = {}
    for key, path in item.files.items():
        if path is None:
            continue
        try:
            audio[key] = files.read(item.track, path)
        except Exception as exc:  # noqa: BLE001 - report every unreadable file
            problems.append(f"item {item.key}, condition {key}: cannot read {path}: {exc}")
    return audio


def _prepare(definition: TestDefinition, planned: list[PlannedItem], media_root: Path,
             compute_sdr: bool, progress: bool
             ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Read, check and prepare every stimulus; returns rows, problems and warnings."""
    prep = definition.preparation
    sr_out = prep.sample_rate
    clip_threshold = float("inf") if prep.allow_clipping else 0.999
    problems: list[str] = []
    warnings: list[str] = []
    prepared: list[dict[str, Any]] = []
    roles = {c.key: c.role for c in definition.conditions}
    ref_key = next((k for k, r in roles.items() if r == "hidden_reference"),
                   next((k for k, r in roles.items() if r == "reference"), None))
    track_files = _TrackFiles()
    for item in tqdm(planned, desc="preparing stimuli", unit="item", disable=not progress):
        files = {f"item {item.key}, condition {k}": p for k, p in item.files.items()
                 if p is not None}
        label_role = {f"item {item.key}, condition {k}": roles[k] for k in item.files}
        found = checks.check_audio(files, clip_threshold=clip_threshold)
        # A system that outputs (near) silence is a valid, bad system: keep it and warn.
        # Silent references, anchors' sources and mixtures are errors.
        silent_systems = [p for p in found if p.kind == "silence"
                          and label_role.get(p.label) == "system"]
        warnings.extend(str(p) for p in silent_systems)
        found = [p for p in found if p not in silent_systems]
        if found:
            problems.extend(str(p) for p in found)
            continue
        audio = _read_all(item, track_files, problems)
        if len(audio) != len(files):
            continue
        sr_in = next(iter(audio.values()))[1]
        # The track's stems pick automatic excerpts and are the interferers for SIR.
        stems: dict[str, np.ndarray] = {}
        for s, p in (item.all_sources.items() if item.start == "auto" or compute_sdr
                     else ()):
            try:
                x, stem_sr = track_files.read(item.track, p)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"item {item.key}: cannot read reference stem {p}: {exc}")
                continue
            if stem_sr == sr_in:
                stems[s] = x
        num_frames = min(a.shape[0] for a, _ in audio.values())
        start, length, bad, notes = _excerpt_span(item, sr_in, num_frames, stems)
        problems.extend(bad)
        warnings.extend(notes)
        if bad:
            continue
        cut = {k: a[start:start + length] for k, (a, _) in audio.items()}
        if ref_key is not None and ref_key in cut:
            try:
                for key, path in item.files.items():
                    if path is None:
                        filt = anchor_filters.low_anchor_3k5 if roles[key] == "low_anchor" \
                            else anchor_filters.mid_anchor_7k
                        cut[key] = np.asarray(filt(cut[ref_key], sr_in), dtype=np.float32)
            except ValueError as exc:
                problems.append(f"item {item.key}: cannot build anchor '{key}': {exc}")
                continue
        objective: dict[str, dict[str, float | None]] = {}
        if compute_sdr and ref_key is not None and ref_key in cut:
            objective = _objective_scores(item, cut, roles, ref_key, stems, start, length,
                                          sr_in)
        signals = {k: (resample(x, sr_in, sr_out) if sr_in != sr_out else x)
                   for k, x in cut.items()}
        if prep.loudness_lufs is not None:
            result = loudness.normalize_loudness(signals, sr_out, prep.loudness_lufs,
                                                 mode=prep.loudness_mode,
                                                 reference=ref_key if prep.loudness_mode ==
                                                 "item" else None, on_clip="flag")
            if result.clipped and not prep.allow_clipping:
                problems.append(
                    f"item {item.key}: loudness alignment to {prep.loudness_lufs} LUFS would "
                    f"clip {sorted(result.clipped)}; choose a lower preparation.loudness_lufs")
                continue
            signals = result.signals
        for key, y in signals.items():
            lufs = loudness.integrated_loudness(y, sr_out)
            fade_s = prep.fade_ms / 1000.0
            y = excerpt.apply_fades(y, sr_out, fade_s, fade_s)
            stored = storage.store_audio(y, sr_out, media_root, fmt=prep.format)
            prepared.append({"item": item, "condition": key, "stored": stored,
                             "lufs": lufs if np.isfinite(lufs) else None,
                             "source_path": str(item.files[key]) if item.files[key] else None,
                             "start": start / sr_in, "duration": length / sr_in,
                             "objective": objective.get(key, {})})
    return prepared, problems, warnings


def _objective_scores(item: PlannedItem, cut: dict[str, np.ndarray], roles: dict[str, str],
                      ref_key: str, stems: dict[str, np.ndarray], start: int, length: int,
                      sr: int) -> dict[str, dict[str, float | None]]:
    from ..metrics import stimulus_scores

    reference = cut[ref_key]
    interferers = [stems[s][start:start + length] for s in stems if s != item.source]
    out: dict[str, dict[str, float | None]] = {}
    for key, x in cut.items():
        if roles[key] == "reference":
            continue
        try:
            scores = stimulus_scores(reference, x, sr, interferers=interferers or None)
        except Exception as exc:  # noqa: BLE001 - a metric failure must not block a test
            current_app.logger.warning("SDR failed for %s/%s: %s", item.key, key, exc)
            continue
        out[key] = {k: (float(v) if v is not None and np.isfinite(v) else None)
                    for k, v in scores.items()}
    return out


def _quality_control(definition: TestDefinition, media_root: Path) -> list[dict[str, Any]]:
    from ..audio import traps
    from ..audio.io import read_audio as _read

    out = []
    sr = definition.preparation.sample_rate
    for qc in definition.design.quality_control:
        if qc.file:
            x, file_sr = _read(qc.file)
            x = resample(x, file_sr, sr) if file_sr != sr else x
        else:
            if qc.kind != "trap":
                raise ImportProblems([f"quality_control {qc.key}: a gold item needs 'file'"])
            question = next(q for q in definition.questions if q.key in qc.expected)
            scale = question.resolved_scale()
            answer = qc.expected[question.key]
            label = next((localized(c.label).get("en") for c in getattr(scale, "categories", [])
                          if c.score == answer), str(answer))
            x = traps.make_trap_clip(label, sr, lang="en")
        fade_s = definition.preparation.fade_ms / 1000.0
        x = excerpt.apply_fades(np.asarray(x, dtype=np.float32), sr, fade_s, fade_s)
        out.append({"qc": qc, "stored": storage.store_audio(x, sr, media_root,
                                                            fmt=definition.preparation.format)})
    return out


def new_public_id() -> str:
    """A test's public id for its link: 72 random bits, URL-safe, never starting with
    ``-`` (which a command line, ``mosplatform set-status <id>`` for one, would read as
    an option)."""
    while True:
        public_id = secrets.token_urlsafe(9)
        if not public_id.startswith("-"):
            return public_id


def create_test(definition: TestDefinition, *, owner: str | AdminUser | None = None,
                open_now: bool = False, compute_sdr: bool = True,
                progress: bool = False) -> Test:
    """Prepare every stimulus of ``definition`` and create the test in one transaction.

    Parameters
    ----------
    definition : TestDefinition
        A validated definition (:func:`mosplatform.config.load_definition`).
    owner : str or AdminUser, optional
        The admin who owns the test.
    open_now : bool
        Open the test for participants immediately (else it stays a draft).
    compute_sdr : bool
        Store SDR/SI-SDR for every stimulus that has a reference.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Test

    Raises
    ------
    ImportProblems
        Listing every problem; nothing is written to the database.
    """
    if isinstance(owner, str):
        user = db.session.execute(
            select(AdminUser).where(AdminUser.username == owner)).scalar_one_or_none()
        if user is None:
            raise ImportProblems([f"owner: no admin named {owner!r}"])
        owner = user
    media_root = Path(current_app.config["MEDIA_ROOT"])
    planned, problems = plan_items(definition)
    if problems:
        raise ImportProblems(problems)
    prepared, problems, warnings = _prepare(definition, planned, media_root, compute_sdr,
                                            progress)
    if problems:
        raise ImportProblems(problems)
    qc_prepared = _quality_control(definition, media_root)

    data = definition.model_dump(mode="json")
    test = Test(public_id=new_public_id(), name=definition.name, kind=definition.kind,
                status=TestStatus.open.value if open_now else TestStatus.draft.value,
                owner=owner if isinstance(owner, AdminUser) else None, definition=data,
                settings={"import_warnings": warnings},
                seed=definition.seed)
    db.session.add(test)
    for pos, q in enumerate(definition.questions):
        scale = q.resolved_scale().model_dump(mode="json")
        db.session.add(Question(test=test, key=q.key, position=pos, label=localized(q.label),
                                scale=scale))
    conditions = {}
    for pos, c in enumerate(definition.conditions):
        conditions[c.key] = Condition(test=test, key=c.key, role=c.role, position=pos,
                                      description=c.description)
        db.session.add(conditions[c.key])
    items: dict[str, Item] = {}
    for pos, p in enumerate(planned):
        first = next((r for r in prepared if r["item"] is p), None)
        if first is None:
            continue
        items[p.key] = Item(test=test, key=p.key, position=pos, track=p.track, source=p.source,
                            kind=ItemKind.regular.value, start_s=first["start"],
                            duration_s=first["duration"])
        db.session.add(items[p.key])
    for row in prepared:
        st = row["stored"]
        stim = Stimulus(item=items[row["item"].key], condition=conditions[row["condition"]],
                        content_hash=st.content_hash, path=st.relpath,
                        sample_rate=st.sample_rate, channels=st.channels,
                        num_frames=st.num_frames, duration_s=st.duration_s,
                        loudness_lufs=row["lufs"], peak_dbfs=st.peak_dbfs,
                        source_path=row["source_path"])
        db.session.add(stim)
        for metric, value in row["objective"].items():
            db.session.add(ObjectiveScore(stimulus=stim, metric=metric, value=value))
    for pos, row in enumerate(qc_prepared, start=len(planned)):
        qc, st = row["qc"], row["stored"]
        item = Item(test=test, key=qc.key, position=pos, track=qc.key, source=None,
                    kind=qc.kind, start_s=0.0, duration_s=st.duration_s,
                    expected=dict(qc.expected))
        db.session.add(item)
        db.session.add(Stimulus(item=item, condition=None, content_hash=st.content_hash,
                                path=st.relpath, sample_rate=st.sample_rate,
                                channels=st.channels, num_frames=st.num_frames,
                                duration_s=st.duration_s, peak_dbfs=st.peak_dbfs))
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return test

