"""Benchmark: the garbage collector's full pass in an app server worker.

A gunicorn worker loads the application (modules, routes, templates, SQLAlchemy's
mappers) and then serves requests one at a time (``mosplatform.gworker.InlineWorker``):
while the collector walks every object the worker holds, every request queued on it
waits. ``mosplatform.serving.after_worker_init`` (gunicorn's ``post_worker_init``)
freezes what the loaded application holds. This script loads the application as a
worker does, serves a few requests, and times, best of ``--repeats``:

- the anchor: a full collection (``gc.collect()``) of the loaded application, as a
  worker without the hook does it now and then;
- the same after ``after_worker_init``, and a young-generation pass for scale.

Prints the times and their ratios to the anchor. Run::

    .venv/bin/python bench/gc_pause.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """The shortest of ``repeats`` calls of ``fn``, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    os.environ["MOSPLATFORM_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="mos_gc_")
    from mosplatform import create_app
    from mosplatform.serving import after_worker_init

    app = create_app()
    client = app.test_client()
    for path in ("/healthz", "/admin/login", "/healthz"):
        client.get(path)
    tracked = len(gc.get_objects())
    anchor = best_ms(gc.collect, args.repeats)
    after_worker_init(None)
    frozen = gc.get_freeze_count()
    full = best_ms(gc.collect, args.repeats)
    young = best_ms(lambda: gc.collect(0), args.repeats)
    print(f"objects the loaded application holds: {tracked}; frozen by the hook: {frozen}")
    print(f"full collection, no hook (anchor): {anchor:8.3f} ms  1.000")
    print(f"full collection, after the hook:    {full:8.3f} ms  {full / anchor:.5f} x anchor")
    print(f"young generation, after the hook:   {young:8.3f} ms  {young / anchor:.5f} x anchor")


if __name__ == "__main__":
    main()
