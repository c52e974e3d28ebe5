"""Fixtures of the separation tests (helpers in ``separation_fixtures``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from separation_fixtures import make_multitrack


@pytest.fixture(scope="session")
def multitrack_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_multitrack(tmp_path_factory.mktemp("musdb"))


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # The test machine is shared: one thread avoids OpenMP threads spinning against
    # each other, which makes these small models several times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
