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
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import env as envmod  # noqa: E402
from client import hammer  # noqa: E402

from mosplatform.serving import ASGI_LOOP, worker_class  # noqa: E402

KINDS = {"inline": "auto", "asgi": "asgi"}  # SERVE_WORKER of each measured worker


def bare_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The smallest WSGI application: ``ok``."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


def bare_asgi() -> Any:
    """:func:`bare_wsgi` for the asgi worker (``worker_overhead:bare_asgi()``)."""
    from mosplatform.asgi import InlineWSGI

    return InlineWSGI(bare_wsgi, multiprocess=False)


class BareServer:
    """gunicorn itself, one worker of ``kind`` and one thread, serving the bare app."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.port = envmod.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOSPLATFORM_")}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO)])
        loop = ["--asgi-loop", ASGI_LOOP] if kind == "asgi" else []
        target = "worker_overhead:bare_asgi()" if kind == "asgi" else "worker_overhead:bare_wsgi"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", worker_class(KINDS[kind], 1), "-w", "1",
             "--threads", "1", "-b", f"127.0.0.1:{self.port}", "--log-level", "warning",
             "--no-control-socket", *loop, target],
            env=env, cwd=str(tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)


def flask_server(kind: str, tmp: Path) -> envmod.AppServer:
    """``mosplatform serve`` with the worker ``kind`` (one process, one thread)."""
    env = {**envmod.server_env(f"sqlite:///{tmp / f'{kind}.sqlite'}", tmp / f"instance-{kind}",
                               tmp / "media", secrets.token_hex(16)),
           "MOSPLATFORM_SERVE_WORKER": KINDS[kind]}
    server = envmod.AppServer(env, 1, 1, tmp / f"serve-{kind}.log")
    server.start()
    return server


def measure(kind: str, app: str, args: argparse.Namespace, tmp: Path) -> float:
    """Server CPU microseconds per request."""
    server: Any = flask_server(kind, tmp) if app == "flask" else BareServer(kind, tmp)
    path = "/healthz" if app == "flask" else "/"
    try:
        asyncio.run(hammer(server.port, path, 1.0, args.clients, expect=200))  # warm up
        cpu0 = envmod.tree_cpu_seconds(server.proc.pid)
        count = asyncio.run(hammer(server.port, path, args.seconds, args.clients,
                                   expect=200))
        cpu = envmod.tree_cpu_seconds(server.proc.pid) - cpu0
    finally:
        server.stop()
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
