"""Server CPU per request of the participant flow, in process (no HTTP, no concurrency).

    .venv/bin/python bench/load/endpoint_cost.py [PARTICIPANTS] [--profile [tottime]]
    .venv/bin/python bench/load/endpoint_cost.py [PARTICIPANTS] --instructions [ENDPOINT]
    (either with --postgres: on a throwaway database of the PostgreSQL on 127.0.0.1)

Walks N participants through the real views with Flask's test client on SQLite and
prints the mean CPU time per endpoint (``time.thread_time``: the test client runs the
request in this thread), which is steadier than wall time on a shared machine. The
anchor is the sum over one rating's requests (media, ratings with the page's events,
and the trial page where one is loaded: the ratings answer brings the next trial's
configuration, which the page shows in place, so only a participant's first trial
page is loaded): its inverse is the
single-core ceiling of rating submissions per second that the load harness
(``bench/load/run.py``) approaches under concurrency.

CPU time on a shared virtual machine moves by up to 40 % between runs. With
``--instructions`` the script runs itself under valgrind's callgrind and counts the
machine instructions of the walk instead (all requests of the participants after
three warm-up ones, or only the requests of ``ENDPOINT``, e.g. ``ratings``): the
count is the same from run to run whatever else the machine does, so two versions
of the code can be compared by one run each. It runs about 50 times slower.
"""

from __future__ import annotations

import collections
import cProfile
import json
import operator
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mosplatform.config import load_definition  # noqa: E402
from mosplatform.services.importer import create_test  # noqa: E402
from tests.audiofixtures import ACR_YAML, make_musdb, write_definition  # noqa: E402
from tests.conftest import make_app  # noqa: E402

CONFIG = re.compile(r'id="trial-config">(.*?)</script>', re.S)
PER_RATING = ("trial_get", "ratings", "media")
WARM_UP = 3  # participants walked before counting instructions
UNDER_CALLGRIND = "ENDPOINT_COST_UNDER_CALLGRIND"


class Timer:
    def __init__(self, counted: str | None = None) -> None:
        self.times: dict[str, list[float]] = collections.defaultdict(list)
        # Under callgrind, instructions are collected only inside operator.call (a C
        # function valgrind can see): the requests of this endpoint go through it.
        self.counted = counted

    def __call__(self, name, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.thread_time()
        if name == self.counted:
            response = operator.call(request, *args, **kwargs)
        else:
            response = request(*args, **kwargs)
        self.times[name].append(time.thread_time() - started)
        return response


def walk(app, public_id: str, i: int, timed: Timer) -> None:  # type: ignore[no-untyped-def]
    c = app.test_client()
    r = timed("arrive", c.get, f"/t/{public_id}?PROLIFIC_PID=p{i}")
    welcome = r.location
    assert welcome.endswith("/welcome"), welcome
    timed("welcome_get", c.get, welcome)
    r = timed("welcome_post", c.post, welcome, data={"consent": "yes"})
    r = timed("instructions_post", c.post, r.location)
    location = r.location
    while True:
        if "/trial/" not in location:
            r = timed("after_trials", c.get, location)
            if "/trial/" not in (r.location or ""):
                return
            location = r.location
        page = timed("trial_get", c.get, location)
        cfg = json.loads(CONFIG.search(page.get_data(as_text=True)).group(1))
        while cfg is not None:
            for stimulus in cfg["stimuli"]:
                timed("media", c.get, stimulus["url"])
            events = [{"kind": "play", "stimulus": 0, "t_ms": 1.0}] * 4
            body = {"ratings": [{"stimulus": 0, "question": q["key"], "score": 3}
                                for q in cfg["questions"]], "events": events,
                    "shown": cfg["shown"]}
            r = timed("ratings", c.post, cfg["submit_url"], json=body,
                      headers={"Idempotency-Key": f"k{i}-{cfg['position']}",
                               "X-CSRFToken": cfg["csrf_token"]})
            assert r.status_code == 200, r.get_data(as_text=True)
            # The answer brings the next trial (shown in place) or names the next page.
            cfg = r.get_json().get("next_config")
            location = r.get_json()["next_url"]


def count_instructions(argv: list[str]) -> None:
    """Run this script under callgrind and print instructions per participant/rating."""
    out = Path(tempfile.mkdtemp()) / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no",
           "--toggle-collect=_operator_call", f"--callgrind-out-file={out}",
           sys.executable, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, UNDER_CALLGRIND: "1", "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        sys.exit(f"valgrind failed:\n{proc.stderr[-2000:]}")
    collected = int(re.search(r"Collected : (\d+)", proc.stderr).group(1))
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    what = counts["endpoint"] or "whole flow"
    print(f"{counts['participants']} participants after {WARM_UP} warm-up ones, "
          f"{counts['ratings']} ratings; counted: {what}")
    print(f"instructions: {collected:,} in all")
    if counts["requests"]:
        print(f"  per request counted: {collected / counts['requests']:,.0f}")
    print(f"  per participant: {collected / counts['participants']:,.0f}")
    print(f"  per rating: {collected / counts['ratings']:,.0f}")


def main() -> None:
    n = next((int(a) for a in sys.argv[1:] if a.isdigit()), 20)
    if "--instructions" in sys.argv:
        if not os.environ.get(UNDER_CALLGRIND):
            count_instructions(sys.argv)
            return
    tmp = Path(tempfile.mkdtemp())
    dirs = make_musdb(tmp / "audio", tracks=6, seconds=2.0)
    postgres = None
    if "--postgres" in sys.argv:
        # A throwaway database on the machine's PostgreSQL (127.0.0.1:5432): the app's
        # side of each request (driver, round trips) is counted, not the server's.
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import env as envmod

        postgres = envmod.SharedServer()
        name = envmod.create_database(postgres)
        app = make_app(postgres.url(name), tmp)
    else:
        app = make_app("sqlite:///" + str(tmp / "bench.sqlite"), tmp)
    try:
        run(app, dirs, tmp, n)
    finally:
        if postgres is not None:
            from mosplatform.extensions import db

            with app.app_context():
                db.engine.dispose()
            envmod.drop_database(postgres, name)


def run(app, dirs, tmp: Path, n: int) -> None:  # type: ignore[no-untyped-def]
    """Create the test, walk ``n`` participants and print what the mode asks for."""
    endpoint = None
    if os.environ.get(UNDER_CALLGRIND):
        after = sys.argv[sys.argv.index("--instructions") + 1:]
        endpoint = after[0] if after and not after[0].startswith("-") \
            and not after[0].isdigit() else None
    text = (ACR_YAML.replace("{{start: 0.5, duration: 2.0}}", "{{start: 0.2, duration: 1.0}}")
            .replace("trials_per_participant: 2", "trials_per_participant: 6"))
    with app.app_context():
        test = create_test(load_definition(write_definition(tmp, text, dirs, "acr.yaml")),
                           open_now=True, compute_sdr=False)
        public_id = test.public_id
    if os.environ.get(UNDER_CALLGRIND):
        for i in range(WARM_UP):
            walk(app, public_id, i, Timer())
        timed = Timer(counted=endpoint)
        if endpoint is None:
            operator.call(lambda: [walk(app, public_id, WARM_UP + i, timed) for i in range(n)])
        else:
            for i in range(n):
                walk(app, public_id, WARM_UP + i, timed)
        print(json.dumps({"endpoint": endpoint, "participants": n,
                          "ratings": len(timed.times["ratings"]),
                          "requests": len(timed.times[endpoint]) if endpoint else 0}))
        return
    timed = Timer()
    profiling = "--profile" in sys.argv
    profile = cProfile.Profile()
    if profiling:  # the profiler alone triples the times
        profile.enable()
    started = time.perf_counter()
    for i in range(n):
        walk(app, public_id, i, timed)
    total = time.perf_counter() - started
    if profiling:
        profile.disable()
    ratings = len(timed.times["ratings"])
    print(f"{n} participants, {ratings} rating submissions in {total:.2f} s "
          f"({ratings / total:.1f}/s, one thread, whole flow)")
    for name, values in sorted(timed.times.items(), key=lambda kv: -sum(kv[1])):
        print(f"{name:18s} n={len(values):4d} mean={1000 * sum(values) / len(values):6.2f} ms "
              f"median={1000 * sorted(values)[len(values) // 2]:6.2f} ms")
    per_rating = sum(sum(timed.times[k]) for k in PER_RATING)
    print(f"requests of one rating: {1000 * per_rating / ratings:.1f} ms -> "
          f"{ratings / per_rating:.1f} ratings/s per core (anchor)")
    if profiling:
        order = "tottime" if "tottime" in sys.argv else "cumulative"
        pstats.Stats(profile).sort_stats(order).print_stats(45)


if __name__ == "__main__":
    main()
