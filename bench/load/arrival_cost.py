"""Cost of one arrival (participant + trial assignment) as a test fills up.

    .venv/bin/python bench/load/arrival_cost.py [BATCHES] [--db URL]

Admits BATCHES x 500 participants to a 10-item ACR test (10 trials each) with
``admit_participant``, in process, and prints the mean wall time per arrival of each
batch of 500. The anchor is the first batch: an assignment that counted every trial
assigned so far grows with the test (it did: 9 ms at 500 participants, 29 ms at
3000), while one that keeps per-cell counts stays flat (ratio ~1). Arrivals are
serialised per test, so this time caps arrivals per second for the whole cluster.
Default database: a throwaway SQLite file; ``--db postgresql://...`` for PostgreSQL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mosplatform.config import load_definition  # noqa: E402
from mosplatform.services.assignment import Arrival, admit_participant  # noqa: E402
from mosplatform.services.importer import create_test  # noqa: E402
from tests.audiofixtures import ACR_YAML, make_musdb, write_definition  # noqa: E402
from tests.conftest import make_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("batches", type=int, nargs="?", default=6)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    dirs = make_musdb(tmp / "audio", tracks=10, seconds=1.5)
    app = make_app(args.db or "sqlite:///" + str(tmp / "arrivals.sqlite"), tmp)
    text = (ACR_YAML.replace("{{start: 0.5, duration: 2.0}}", "{{start: 0.2, duration: 1.0}}")
            .replace("trials_per_participant: 2", "trials_per_participant: 10"))
    with app.app_context():
        test = create_test(load_definition(write_definition(tmp, text, dirs, "acr.yaml")),
                           open_now=True, compute_sdr=False)
        n = 0
        anchor = None
        for _ in range(args.batches):
            started = time.perf_counter()
            for _ in range(500):
                admit_participant(test, Arrival(external_id=f"x{n}"))
                n += 1
            ms = 1000 * (time.perf_counter() - started) / 500
            anchor = anchor or ms
            print(f"participants {n:6d}: {ms:6.2f} ms per arrival ({ms / anchor:.2f} x the "
                  f"first 500)", flush=True)


if __name__ == "__main__":
    main()
