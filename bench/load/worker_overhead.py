"""Server CPU per request of gunicorn's one-thread workers, the application aside.

    .venv/bin/python bench/load/worker_overhead.py [--seconds S] [--clients N]

Starts gunicorn with one worker process and one thread, in turn with:

* ``mosplatform.gworker.InlineWorker`` (the anchor: ``mosplatform serve`` with one
  thread and ``SERVE_WORKER = "auto"``);
* gunicorn's ``asgi`` worker with :class:`mosplatform.asgi.InlineWSGI`
  (``SERVE_WORKER = "asgi"``),

each serving two applications: a bare WSGI application that answers ``ok`` (what is
measured is then the worker's own HTTP handling), and the real application's
``GET /healthz`` through ``mosplatform serve`` (a Flask view with no work of its own,
on SQLite). N keep-alive clients (the load harness's client) send requests for S
seconds; the server's CPU (master and worker, from ``/proc``; the client's is not
counted) is divided by the requests answered. Prints microseconds per request and
the ratio to the anchor of the same application, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import env as envmod  # noqa: E402
from client import Browser  # noqa: E402

WORKERS = {"inline": "mosplatform.gworker.InlineWorker", "asgi": "mosplatform.gworker.AsgiWorker"}


def bare_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The smallest WSGI application: ``ok``."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


def bare_asgi() -> Any:
    """:func:`bare_wsgi` for the asgi worker (``worker_overhead:bare_asgi()``)."""
    from mosplatform.asgi import InlineWSGI

    return InlineWSGI(bare_wsgi, multiprocess=False)


def start(kind: str, app: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    """gunicorn (bare application) or ``mosplatform serve`` (``app == "flask"``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOSPLATFORM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO)])
    if app == "flask":
        env.update(MOSPLATFORM_INSTANCE_PATH=str(tmp / f"instance-{kind}"),
                   MOSPLATFORM_DATABASE_URL=f"sqlite:///{tmp / f'{kind}.sqlite'}",
                   MOSPLATFORM_SECRET_KEY=secrets.token_hex(16),
                   MOSPLATFORM_SERVE_WORKER="asgi" if kind == "asgi" else "auto")
        cmd = [sys.executable, "-m", "mosplatform.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--threads", "1", "--no-access-log"]
    else:
        target = "worker_overhead:bare_asgi()" if kind == "asgi" else "worker_overhead:bare_wsgi"
        # The loop mosplatform serve gives the asgi worker (mosplatform/serving.py).
        loop = ["--asgi-loop", "asyncio"] if kind == "asgi" else []
        cmd = [sys.executable, "-m", "gunicorn", "-k", WORKERS[kind], "-w", "1",
               "--threads", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
               "--no-control-socket", *loop, target]
    return subprocess.Popen(cmd, env=env, cwd=str(tmp), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


async def hammer(port: int, path: str, clients: int, seconds: float) -> int:
    """Requests answered by ``clients`` keep-alive connections in ``seconds``."""
    done = 0
    stop = time.monotonic() + seconds

    async def one() -> None:
        nonlocal done
        browser = Browser()
        while time.monotonic() < stop:
            response = await browser.request("127.0.0.1", port, "GET", path)
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}")
            done += 1
        await browser.close()

    await asyncio.gather(*(one() for _ in range(clients)))
    return done


async def ready(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await Browser(timeout=2).request("127.0.0.1", port, "GET", path)
            return
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def measure(kind: str, app: str, args: argparse.Namespace, tmp: Path) -> float:
    """Server CPU microseconds per request."""
    port = envmod.free_port()
    path = "/healthz" if app == "flask" else "/"
    proc = start(kind, app, port, tmp)
    try:
        asyncio.run(ready(port, path))
        asyncio.run(hammer(port, path, args.clients, 1.0))  # warm up
        cpu0 = envmod.tree_cpu_seconds(proc.pid)
        count = asyncio.run(hammer(port, path, args.clients, args.seconds))
        cpu = envmod.tree_cpu_seconds(proc.pid) - cpu0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    return 1e6 * cpu / max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mos_worker_"))
    try:
        for app in ("bare", "flask"):
            anchor = None
            for kind in ("inline", "asgi"):
                us = measure(kind, app, args, tmp)
                anchor = anchor or us
                label = "bare WSGI app" if app == "bare" else "GET /healthz (Flask)"
                print(f"{label:22s} {kind:7s} {us:7.0f} us/request  "
                      f"{us / anchor:.3f} x anchor (inline)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
