"""Signals shared by the audio tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def noise_stereo() -> np.ndarray:
    """Two seconds of white noise at 44.1 kHz, -20 dBFS RMS, shape (88200, 2)."""
    rng = np.random.default_rng(1234)
    return (0.1 * rng.standard_normal((88200, 2))).astype(np.float32)
