"""Fixtures of the analysis tests: small synthetic tables with known structure."""

from __future__ import annotations

import pandas as pd
import pytest

from mosplatform.analysis.synthetic import simulate_mushra, simulate_study


@pytest.fixture
def study() -> pd.DataFrame:
    """ACR study: 40 listeners × 10 clips × 2 questions, random condition and source."""
    return simulate_study(n_participants=40, clips_per_participant=10, seed=3)


@pytest.fixture
def mushra() -> pd.DataFrame:
    """Complete MUSHRA design: 12 listeners × 6 items × 6 conditions."""
    return simulate_mushra(n_participants=12, n_items=6, seed=4)
