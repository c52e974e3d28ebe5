"""The load harness's pacing (bench/load/simulator.py): what a simulated participant
waits before answering a trial."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "load"))

from simulator import Ledger, SimConfig, Simulator, Stats  # noqa: E402


def _sim(**kw):  # type: ignore[no-untyped-def]
    sim = Simulator(SimConfig(servers=[("127.0.0.1", 1)], public_id="x", duration=1, **kw),
                    Stats(), Ledger(), seed=3)
    sim.slots = 500
    return sim


def test_think_mode_listens_half_to_one_and_a_half_think_times():
    sim = _sim(think_s=1.2)
    waits = [sim.listening_s(time.monotonic()) for _ in range(2000)]
    assert 0.6 <= min(waits) and max(waits) <= 1.8
    assert sum(waits) / len(waits) == pytest.approx(1.2, rel=0.05)


def test_paced_mode_offers_the_rate_and_counts_the_requests_time():
    sim = _sim(rate=250.0)  # 500 participants: one answer each every 2 s on average
    now = time.monotonic()
    waits = [sim.listening_s(now) for _ in range(2000)]
    assert sum(waits) / len(waits) == pytest.approx(2.0, rel=0.05)
    assert max(waits) <= 3.0
    # Requests that took 1 s already count towards the interval...
    later = [sim.listening_s(now - 1.0) for _ in range(2000)]
    assert sum(later) / len(later) == pytest.approx(1.0, rel=0.1)
    # ... and a participant with no time left answers at once.
    assert sim.listening_s(now - 10.0) == 0.0
