"""Load and fault harness: simulated participants against real app servers.

Run by ``make bench`` (not by ``make test``)::

    python bench/load/run.py                      # all five scenarios
    python bench/load/run.py --scenario 1 --slots 500 --duration 40
    python bench/load/run.py --scenario 2 --rate 330   # offer the goal's load, paced

By default each participant "listens" 0.6-1.8 s per trial, which offers more than
the servers take: such a run measures their capacity. ``--rate R`` paces the
participants to offer R rating submissions per second in all, the goal's load as
the goal words it. The app servers run ``mosplatform serve --worker asgi`` (gunicorn's
asyncio worker, one request at a time per process); ``--worker inline`` runs
``mosplatform.gworker.InlineWorker`` instead, for comparison.

Scenarios (each on a fresh throwaway database):

1. ``sqlite``: 500 concurrent participants, one gunicorn server on SQLite.
2. ``postgres``: the same on PostgreSQL with two app servers on different ports.
3. ``kill``: as 2, then kill -9 one worker and later a whole app server mid-run;
   clients retry with the same Idempotency-Key and fail over to the other server.
4. ``pg-restart``: as 2, with PostgreSQL restarted mid-run; no app restart.
5. ``hostile``: a share of clients double-submit, submit out of order, change answers,
   and submit after the test is closed.

Each scenario reports per-endpoint throughput and p50/p95/p99 latency, then checks the
database: every rating answered with a 2xx is stored exactly once with its score, and
votes stay balanced over each item's conditions. As an anchor measured in the same run,
the ``/healthz`` rate of one server (50 keep-alive clients, 3 s) is reported and the
rating rate is given relative to it. Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import env as envmod  # noqa: E402
from check import check_database  # noqa: E402
from client import hammer  # noqa: E402
from simulator import Ledger, SimConfig, Simulator, Stats  # noqa: E402

RATINGS = "POST /api/p/<token>/ratings"
SCENARIOS = {
    1: {"name": "sqlite", "db": "sqlite", "servers": 1},
    2: {"name": "postgres", "db": "postgres", "servers": 2},
    3: {"name": "kill", "db": "postgres", "servers": 2},
    4: {"name": "pg-restart", "db": "postgres", "servers": 2},
    5: {"name": "hostile", "db": "postgres", "servers": 2},
}


def run_loop(coro: Any, use_uvloop: bool) -> Any:
    """Run ``coro`` on uvloop where it is installed (``pip install -e .[bench]``) and
    wanted, else on asyncio's own loop.

    The simulator shares the machine's two cores with the app servers, so its own CPU
    per request is taken from theirs: uvloop's event loop and sockets, written in C,
    spend less of it.
    """
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


async def anchor_rate(port: int, seconds: float = 3.0, clients: int = 50) -> float:
    """Requests per second of GET /healthz on one server (keep-alive, closed loop)."""
    return await hammer(port, "/healthz", seconds, clients, timeout=10) / seconds


def cpu_snapshot(server_pids: list[int], db_pid: int | None) -> dict[str, float]:
    """CPU seconds so far: this process (the simulator), the app servers, the database
    server (private PostgreSQL cluster; after a restart its new processes only) and the
    whole machine (including other users' jobs)."""
    return {"simulator": time.process_time(),
            "app_servers": sum(envmod.tree_cpu_seconds(p) for p in server_pids),
            "database": envmod.tree_cpu_seconds(db_pid) if db_pid else 0.0,
            "machine": envmod.machine_busy_seconds()}


async def drive(sim: Simulator, slots: int, faults: list[tuple[float, str, Any]],
                log: list[str], cpu: dict[str, Any] | None = None) -> None:
    """Run the participants; inject faults at offsets from the start of measurement.

    ``cpu["probe"]()`` is sampled when measurement starts and at the deadline; the
    differences are stored in ``cpu["window"]``.
    """

    async def account() -> None:
        if cpu is None:
            return
        await sim.started.wait()
        if cpu.get("on_start"):
            cpu["on_start"]()
        first = cpu["probe"]()
        await asyncio.sleep(max(0.0, sim.deadline - time.monotonic()))
        last = cpu["probe"]()
        cpu["window"] = {k: round(last[k] - first[k], 2) for k in first}

    async def inject() -> None:
        await sim.started.wait()
        start = sim.measure_start
        for at, label, action in faults:
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            t0 = time.monotonic()
            result = await asyncio.to_thread(action)
            log.append(f"t={t0 - start:5.1f}s {label}"
                       + (f": {result}" if result is not None else "")
                       + f" ({time.monotonic() - t0:.1f} s)")
            print("   ", log[-1], flush=True)

    await asyncio.gather(inject(), account(), sim.run_all(slots))


def run_scenario(number: int, args: argparse.Namespace) -> dict[str, Any]:
    spec = SCENARIOS[number]
    print(f"\n=== scenario {number}: {spec['name']} ===", flush=True)
    work = envmod.workdir()
    instance, media = work / "instance", work / "media"
    secret = "load-" + secrets.token_hex(16)
    pg = None
    dbname = None
    servers: list[envmod.AppServer] = []
    result: dict[str, Any] = {"scenario": number, "name": spec["name"]}
    try:
        if spec["db"] == "sqlite":
            db_url = f"sqlite:///{work / 'load.sqlite'}"
        else:
            pg = envmod.SharedServer() if args.pg == "shared" else envmod.PrivateCluster(
                work / "pg")
            pg.start()
            dbname = envmod.create_database(pg)
            db_url = pg.url(dbname)
        public_id = envmod.prepare_test(db_url, instance, media, work, args.trials, secret)
        server_env = envmod.server_env(db_url, instance, media, secret)
        if args.worker == "asgi":
            server_env["MOSPLATFORM_SERVE_WORKER"] = "asgi"
        workers = args.workers or (4 if spec["servers"] == 1 else 2)
        for i in range(spec["servers"]):
            srv = envmod.AppServer(server_env, workers, args.threads, work / f"server{i}.log")
            srv.start()
            servers.append(srv)
        result["servers"] = [f"127.0.0.1:{s.port} ({workers} {args.worker} workers x "
                             f"{args.threads} threads)"
                             for s in servers]

        anchor = run_loop(anchor_rate(servers[0].port), args.uvloop)
        print(f"    anchor: GET /healthz {anchor:.0f}/s on one server", flush=True)

        faults: list[tuple[float, str, Any]] = []
        d = args.duration
        if number == 3:
            faults = [(0.3 * d, "kill -9 one worker of server 1", servers[0].kill_worker),
                      (0.6 * d, "kill -9 app server 2 (master and workers)", servers[1].kill_all)]
        if number == 4:
            faults = [(0.4 * d, "PostgreSQL restart", pg.restart)]

        stats, ledger = Stats(), Ledger()
        log: list[str] = []
        profilers: list[tuple[Path, Any]] = []

        def start_profilers() -> None:
            """py-spy on every app server for the measured window (not the arrivals)."""
            import subprocess

            for i, srv in enumerate(servers):
                out = args.profile / f"scenario{number}-server{i}.txt"
                args.profile.mkdir(parents=True, exist_ok=True)
                profilers.append((out, subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                     str(srv.proc.pid), "--subprocesses", "--duration", str(int(args.duration)),
                     "--rate", "100", "--gil", "--format", "raw", "--output", str(out), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))

        cpu: dict[str, Any] = {"on_start": start_profilers if args.profile else None,
                               "probe": lambda: cpu_snapshot(
            [s.proc.pid for s in servers if s.proc is not None],
            pg.pid() if isinstance(pg, envmod.PrivateCluster) else None)}

        async def main() -> tuple[float, float, float]:
            t_first = time.monotonic()
            cfg = SimConfig(servers=[("127.0.0.1", s.port) for s in servers],
                            public_id=public_id, duration=d, think_s=args.think,
                            rate=args.rate,
                            hostile_share=0.2 if number == 5 else 0.0, ramp_s=args.ramp,
                            run_tag=f"s{number}-{secrets.token_hex(3)}")
            sim = Simulator(cfg, stats, ledger, seed=number)
            await drive(sim, args.slots, faults, log, cpu)
            start, end = sim.measure_start, min(time.monotonic(), sim.deadline)
            if number == 5:
                close_test(db_url, public_id)
                log.append(f"test closed; {len(sim.pending_after_close)} clients submit now")
                await sim.submit_after_close()
            return t_first, start, end

        t_first, start, end = run_loop(main(), args.uvloop)
        # Stats and the window both use time.monotonic().
        window = (start, end)  # measurement: every slot has arrived
        arrival = Stats()
        arrival.samples = {k: [r for r in v if r[0] < start] for k, v in stats.samples.items()}
        stats.samples = {k: [r for r in v if r[0] >= start] for k, v in stats.samples.items()}
        arrival_summary = arrival.summary((t_first, start))
        summary = stats.summary(window)
        rates = stats.per_second(RATINGS, window)
        for out, prof in profilers:
            prof.wait(60)
            result.setdefault("profile", {})[out.name] = hot_functions(out)
        for srv in servers:
            srv.stop()
        db = check_database(db_url, public_id, ledger)
        ratings = summary.get(RATINGS, {})
        result.update({
            "duration_s": round(end - start, 1), "slots": args.slots, "think_s": args.think,
            "offered_per_s": args.rate,
            "arrival_s": round(start - t_first, 1),
            "arrivals_per_s": round(args.slots / max(start - t_first, 1e-9), 1),
            "arrival_endpoints": arrival_summary,
            "anchor_healthz_per_s": round(anchor, 1),
            "ratings_per_s": round(ratings.get("rate_per_s", 0.0), 1),
            "ratings_per_s_min_1s": min(rates) if rates else 0,
            "ratings_vs_anchor": round(ratings.get("rate_per_s", 0.0) / anchor, 3)
            if anchor else None,
            "endpoints": summary, "faults": log, "db": db,
            "cpu_s": cpu.get("window", {}),
            "participants_started": ledger.participants_started,
            "participants_finished": ledger.participants_finished,
            "gave_up": ledger.gave_up,
            "refusals": dict(ledger.refusals),
            "anomalies": len(ledger.anomalies),
            "anomaly_examples": ledger.anomalies[:8],
        })
        ok = db["lost"] == 0 and db["duplicated"] == 0 and db["max_cell_spread"] <= 1
        if number == 5:
            ok = ok and db["stored_unacked_trials"] == 0 and not ledger.anomalies
        result["passed"] = ok
        print_result(result)
        return result
    finally:
        for srv in servers:
            try:
                srv.kill_all() if srv.proc and srv.proc.poll() is None else None
            except Exception:  # noqa: BLE001
                pass
        if pg is not None:
            if dbname and not args.keep:
                try:
                    envmod.drop_database(pg, dbname)
                except Exception as exc:  # noqa: BLE001
                    print(f"    could not drop {dbname}: {exc}")
            pg.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"    kept {work}")


def hot_functions(collapsed: Path, top: int = 12) -> list[tuple[str, float]]:
    """Share of busy samples in which each mosplatform function (or SQL/Jinja) is on the stack."""
    from collections import Counter

    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "(gunicorn/" in stack.split(";")[-1] and (
                "select" in stack.split(";")[-1] or "sleep" in stack.split(";")[-1]):
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            name = frame.split(" (")[0]
            where = frame.split(" (")[-1]
            if "mosplatform/" in where or name in ("execute", "render", "dumps", "loads"):
                key = f"{name} ({where.split('/')[-1].rstrip(')')})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += n
    return [(k, round(v / total, 3)) for k, v in inclusive.most_common(top)] if total else []


GOAL_PER_S = 300  # issue 8: rating submissions per second, sustained ...
GOAL_P99_MS = 250  # ... with the ratings' p99 under this


def close_test(db_url: str, public_id: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE test SET status = 'closed' WHERE public_id = :p"),
                     {"p": public_id})
    eng.dispose()


def print_result(r: dict[str, Any]) -> None:
    link = r["arrival_endpoints"].get("GET /t/<id>", {})
    print(f"    arrival phase: {r['slots']} participants reached a trial in {r['arrival_s']} s "
          f"({r['arrivals_per_s']}/s); GET /t/<id> p50 {link.get('p50_ms', 0):.0f} ms, "
          f"p99 {link.get('p99_ms', 0):.0f} ms")
    pace = (f"paced to offer {r['offered_per_s']} ratings/s" if r.get("offered_per_s")
            else f"think {r['think_s']} s")
    print(f"    measured: {r['duration_s']} s, {r['slots']} concurrent participants, {pace}"
          f"; started {r['participants_started']}, finished "
          f"{r['participants_finished']}, gave up {r['gave_up']}")
    print(f"    {'endpoint':34s} {'count':>7s} {'err':>5s} {'conn':>5s} {'/s':>7s} "
          f"{'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}")
    for name, e in r["endpoints"].items():
        print(f"    {name:34s} {e['count']:7d} {e['errors']:5d} {e['conn_failures']:5d} "
              f"{e['rate_per_s']:7.1f} {e['p50_ms']:8.1f} {e['p95_ms']:8.1f} "
              f"{e['p99_ms']:8.1f}")
    if r.get("cpu_s"):
        c = r["cpu_s"]
        per = 1000.0 / max(r["ratings_per_s"] * r["duration_s"], 1e-9)
        print(f"    CPU in the window: app servers {c['app_servers']} s, simulator "
              f"{c['simulator']} s, database {c['database']} s, machine {c['machine']} s of "
              f"{2 * r['duration_s']:.0f} s; per rating: app {c['app_servers'] * per:.1f} ms, "
              f"simulator {c['simulator'] * per:.1f} ms")
    print(f"    rating submissions/s: {r['ratings_per_s']} (slowest second "
          f"{r['ratings_per_s_min_1s']}); {r['ratings_vs_anchor']} x anchor "
          f"({r['anchor_healthz_per_s']} /healthz per s)")
    p99 = r["endpoints"].get(RATINGS, {}).get("p99_ms", float("inf"))
    met = r["ratings_per_s"] >= GOAL_PER_S and p99 < GOAL_P99_MS
    print(f"    goal (>= {GOAL_PER_S}/s with ratings p99 < {GOAL_P99_MS} ms): "
          f"{'met' if met else 'not met'}")
    db = r["db"]
    print(f"    DB: acked trials {db['acked_trials']} ({db['acked_ratings']} ratings), stored "
          f"{db['stored_ratings']}, lost {db['lost']}, duplicated {db['duplicated']}, stored "
          f"but unacked trials {db['stored_unacked_trials']}, max vote spread per item "
          f"{db['max_cell_spread']}")
    if r["refusals"]:
        print(f"    expected refusals: {r['refusals']}")
    if r["anomalies"]:
        print(f"    anomalies ({r['anomalies']}): {r['anomaly_examples']}")
    print(f"    {'PASS' if r['passed'] else 'FAIL'}", flush=True)


def markdown(results: list[dict[str, Any]]) -> str:
    """Markdown tables of a run's results (``--report results.json``)."""
    lines = [
        "| # | scenario | arrival (500 to first trial) | rating POSTs/s | vs anchor | "
        "ratings p50 / p95 / p99 ms | non-2xx / conn. failures (retried or expected) | acked ratings | "
        "stored | lost | dup. | vote spread | faults |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        e = r["endpoints"].get(RATINGS, {})
        db = r["db"]
        lines.append(
            f"| {r['scenario']} | {r['name']} | {r['arrival_s']} s ({r['arrivals_per_s']}/s) | "
            f"{r['ratings_per_s']} | {r['ratings_vs_anchor']} | "
            f"{e.get('p50_ms', 0):.0f} / {e.get('p95_ms', 0):.0f} / {e.get('p99_ms', 0):.0f} | "
            f"{e.get('errors', 0)} / {e.get('conn_failures', 0)} | "
            f"{db['acked_ratings']} | {db['stored_ratings']} | {db['lost']} | "
            f"{db['duplicated']} | {db['max_cell_spread']} | "
            f"{'; '.join(r['faults']) or '-'} |")
    lines += ["", "Per endpoint (measured window):", ""]
    for r in results:
        pace = (f"paced to offer {r['offered_per_s']} ratings/s" if r.get("offered_per_s")
                else f"think {r.get('think_s')} s")
        lines += [f"Scenario {r['scenario']} ({r['name']}, {pace}), anchor GET /healthz "
                  f"{r['anchor_healthz_per_s']}/s:", "",
                  "| endpoint | count | 4xx/5xx | conn. failures | /s | p50 ms | p95 ms | p99 ms |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, e in r["endpoints"].items():
            lines.append(f"| `{name}` | {e['count']} | {e['errors']} | {e['conn_failures']} | "
                         f"{e['rate_per_s']:.1f} | {e['p50_ms']:.0f} | {e['p95_ms']:.0f} | "
                         f"{e['p99_ms']:.0f} |")
        if r.get("refusals"):
            lines.append(f"\nExpected refusals seen by the hostile clients: {r['refusals']}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="all",
                        help="1-5, comma-separated, or 'all'")
    parser.add_argument("--slots", type=int, default=500, help="concurrent participants")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds measured once every participant has arrived")
    parser.add_argument("--think", type=float, default=1.2,
                        help="mean listening time per trial, seconds")
    parser.add_argument("--rate", type=float, default=None,
                        help="paced mode: the participants together offer this many rating "
                             "submissions per second (each answers every slots/rate s on "
                             "average, its requests' time included) instead of thinking "
                             "--think s per trial")
    parser.add_argument("--trials", type=int, default=10, help="trials per participant")
    parser.add_argument("--worker", choices=("asgi", "inline"), default="asgi",
                        help="gunicorn worker, one request at a time per process: asgi "
                        "(SERVE_WORKER=asgi: gunicorn's asyncio worker and "
                        "mosplatform.asgi.InlineWSGI, measured fastest) or inline "
                        "(mosplatform.gworker.InlineWorker, the default of --threads 1 "
                        "until the ninth session)")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers per server (default 4 alone, 2 when two)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per worker (CPU-bound Python: one thread per "
                             "process measured best on 2 cores, see BENCHMARKS.md)")
    parser.add_argument("--pg", choices=("private", "shared"), default="private",
                        help="private: a throwaway cluster; shared: 127.0.0.1:5432")
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false",
                        help="run the simulator on asyncio's own event loop even where "
                             "uvloop is installed")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and database")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record the app servers with py-spy into this folder")
    parser.add_argument("--ramp", type=float, default=10.0,
                        help="seconds over which the participants arrive")
    parser.add_argument("--report", type=Path, default=None,
                        help="print Markdown tables of a --json results file and exit")
    args = parser.parse_args(argv)
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return 0
    numbers = sorted(SCENARIOS) if args.scenario == "all" else [
        int(x) for x in args.scenario.split(",")]
    print(f"mosplatform load harness on {platform.node()}: {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} (shared machine)")
    results = [run_scenario(n, args) for n in numbers]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    failed = [r["scenario"] for r in results if not r["passed"]]
    print(f"\n{len(results) - len(failed)}/{len(results)} scenarios passed"
          + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
