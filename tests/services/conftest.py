from __future__ import annotations

import pytest

from mosplatform.config import load_definition
from mosplatform.services.importer import create_test
from tests.audiofixtures import ACR_YAML, MUSHRA_YAML, make_musdb, write_definition


@pytest.fixture
def audio_dirs(tmp_path):
    return make_musdb(tmp_path / "audio", tracks=3, seconds=3.0)


@pytest.fixture
def mushra_test(app, audio_dirs, tmp_path):
    d = load_definition(write_definition(tmp_path, MUSHRA_YAML, audio_dirs, "m.yaml"))
    return create_test(d, open_now=True, compute_sdr=False)


@pytest.fixture
def acr_test(app, audio_dirs, tmp_path):
    d = load_definition(write_definition(tmp_path, ACR_YAML, audio_dirs, "a.yaml"))
    return create_test(d, open_now=True, compute_sdr=False)
