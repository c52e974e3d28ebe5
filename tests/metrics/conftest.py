"""Shared helpers for the metrics tests: the generated cases and museval's outputs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


def _load_cases():
    name = "mosplatform_metrics_test_cases"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "bsseval_cases.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cases = _load_cases()


@pytest.fixture(scope="session")
def museval_reference() -> dict[str, np.ndarray]:
    with np.load(HERE / "fixtures" / "museval_reference.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def generated_cases(museval_reference):
    """Regenerate every case's signals, checking them against the stored checksums."""
    out = {}
    for case in cases.CASES:
        refs, ests = cases.make_case(case)
        stored = museval_reference[f"{case.name}__checksum"]
        if not np.allclose(cases.checksum(refs, ests), stored, rtol=1e-12, atol=0):
            pytest.fail(f"the generator of {case.name} changed; rerun make_fixtures.py")
        out[case.name] = (case, refs, ests)
    return out
