"""Importing stimuli from folders: items, anchors, loudness, hashes, problems."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy import signal
from sqlalchemy import func, select

from mosplatform.audio import loudness
from mosplatform.config import load_definition
from mosplatform.extensions import db
from mosplatform.models import Condition, Item, Stimulus, Test
from mosplatform.services.importer import ImportProblems, create_test
from tests.audiofixtures import ACR_YAML, MUSHRA_YAML, make_musdb, write_definition


@pytest.fixture
def dirs(tmp_path):
    return make_musdb(tmp_path / "audio", tracks=2, seconds=3.0, sr=32000)


def _media(app, stim):  # type: ignore[no-untyped-def]
    from pathlib import Path

    return sf.read(Path(app.config["MEDIA_ROOT"]) / stim.path, always_2d=True)


def test_mushra_import_creates_items_conditions_and_anchors(app, dirs, tmp_path):
    d = load_definition(write_definition(tmp_path, MUSHRA_YAML, dirs, "m.yaml"))
    test = create_test(d, compute_sdr=False)
    assert test.kind == "mushra" and test.status == "draft"
    assert sorted(i.key for i in test.items) == [
        "track00/bass", "track00/vocals", "track01/bass", "track01/vocals"]
    assert [c.role for c in test.conditions] == [
        "reference", "hidden_reference", "low_anchor", "mid_anchor", "system", "system"]
    n = db.session.scalar(select(func.count()).select_from(Stimulus))
    assert n == 4 * 6
    stim = db.session.execute(select(Stimulus).join(Condition).where(
        Condition.role == "low_anchor")).scalars().first()
    x, sr = _media(app, stim)
    assert sr == 32000 and x.shape == (64000, 2)
    # The 3.5 kHz anchor keeps almost nothing above 4.5 kHz (>= 50 dB down).
    ref = db.session.execute(select(Stimulus).join(Condition).where(
        Condition.role == "hidden_reference", Stimulus.item_id == stim.item_id)).scalar_one()
    r, _ = _media(app, ref)
    f, p_anchor = signal.welch(x[:, 0], sr, nperseg=2048)
    _, p_ref = signal.welch(r[:, 0], sr, nperseg=2048)
    band = (f > 4700) & (f < 7500)
    atten = 10 * np.log10(p_ref[band].sum() / max(p_anchor[band].sum(), 1e-30))
    assert atten > 45
    pass_band = (f > 200) & (f < 3000)
    ratio = 10 * np.log10(p_anchor[pass_band].sum() / p_ref[pass_band].sum())
    assert abs(ratio) < 0.3


def test_fades_at_excerpt_edges(app, dirs, tmp_path):
    d = load_definition(write_definition(tmp_path, MUSHRA_YAML, dirs, "m.yaml"))
    test = create_test(d, compute_sdr=False)
    stim = test.items[0].stimuli[0]
    x, sr = _media(app, stim)
    assert abs(x[0]).max() < 1e-3 and abs(x[-1]).max() < 1e-3
    assert abs(x[sr // 2]).max() > 1e-3


def test_loudness_alignment_within_half_lu(app, dirs, tmp_path):
    text = MUSHRA_YAML.replace("preparation: {{sample_rate: 32000, fade_ms: 10}}",
                               "preparation: {{sample_rate: 32000, fade_ms: 10, "
                               "loudness_lufs: -30}}")
    d = load_definition(write_definition(tmp_path, text, dirs, "m.yaml"))
    test = create_test(d, compute_sdr=False)
    for item in test.items:
        for stim in item.stimuli:
            x, sr = _media(app, stim)
            # Measured on the stored file with pyloudnorm (BS.1770), fades included.
            assert abs(loudness.integrated_loudness(x, sr) - (-30)) < 0.5
            assert abs(stim.loudness_lufs - (-30)) < 0.5


def test_content_hashes_are_stable_across_imports(app, dirs, tmp_path):
    d = load_definition(write_definition(tmp_path, MUSHRA_YAML, dirs, "m.yaml"))
    first = create_test(d, compute_sdr=False)
    second = create_test(d, compute_sdr=False)
    h1 = sorted(s.content_hash for i in first.items for s in i.stimuli)
    h2 = sorted(s.content_hash for i in second.items for s in i.stimuli)
    assert h1 == h2
    # Only the open and the hidden reference of an item share their audio.
    assert len(set(h1)) == len(h1) - len(first.items)
    import hashlib
    from pathlib import Path

    stim = first.items[0].stimuli[0]
    data = (Path(app.config["MEDIA_ROOT"]) / stim.path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == stim.content_hash
    assert stim.content_hash in stim.path


def test_random_source_items_follow_seed(app, dirs, tmp_path):
    d = load_definition(write_definition(tmp_path, ACR_YAML, dirs, "a.yaml"))
    test = create_test(d, compute_sdr=False)
    assert len(test.items) == 2
    assert all(i.source in ("drums", "bass", "other", "vocals") for i in test.items)
    again = create_test(d, compute_sdr=False)
    assert [i.source for i in again.items] == [i.source for i in test.items]


def test_problems_are_all_reported_and_nothing_is_stored(app, dirs, tmp_path):
    # Break several files in different ways.
    sf.write(dirs["reference"] / "track00" / "vocals.wav", np.zeros((96000, 2)), 32000)  # silent
    sf.write(dirs["sysB"] / "track01" / "bass.wav",
             np.ones((96000, 2), dtype=np.float32), 32000)  # clipped
    (dirs["sysA"] / "track01" / "vocals.wav").write_bytes(b"not audio")  # unreadable
    sf.write(dirs["sysB"] / "track00" / "vocals.wav",
             0.1 * np.random.default_rng(0).standard_normal((22050, 2)), 22050)  # rate
    d = load_definition(write_definition(tmp_path, MUSHRA_YAML, dirs, "m.yaml"))
    with pytest.raises(ImportProblems) as info:
        create_test(d, compute_sdr=False)
    text = "\n".join(info.value.problems)
    for kind in ("silence", "clipping", "unreadable", "sample_rate"):
        assert kind in text, text
    assert db.session.scalar(select(func.count()).select_from(Test)) == 0
    assert db.session.scalar(select(func.count()).select_from(Item)) == 0


def test_silent_system_output_is_kept_with_a_warning(app, dirs, tmp_path):
    # A system that outputs silence is a valid (bad) condition, unlike a silent reference.
    sf.write(dirs["sysA"] / "track00" / "vocals.wav", np.zeros((96000, 2)), 32000)
    d = load_definition(write_definition(tmp_path, MUSHRA_YAML, dirs, "m.yaml"))
    test = create_test(d, compute_sdr=False)
    assert any("silence" in w and "sysA" in w for w in test.settings["import_warnings"])
    assert db.session.scalar(select(func.count()).select_from(Stimulus)) == 24


def test_missing_system_folder_is_reported(app, dirs, tmp_path):
    import shutil

    shutil.rmtree(dirs["sysB"])
    d = load_definition(write_definition(tmp_path, MUSHRA_YAML, dirs, "m.yaml"))
    with pytest.raises(ImportProblems, match="not found"):
        create_test(d, compute_sdr=False)
    assert db.session.scalar(select(func.count()).select_from(Test)) == 0


def test_public_ids_never_start_with_a_dash():
    """A command line (``mosplatform set-status <id>``) would read one as an option."""
    from mosplatform.services.importer import new_public_id

    ids = {new_public_id() for _ in range(3000)}
    assert len(ids) == 3000 and not any(i.startswith("-") for i in ids)
    assert all(len(i) == 12 for i in ids)
