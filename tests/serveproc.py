"""A real `mosplatform serve` in a subprocess, for the tests that need gunicorn itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(port: int, *, instance: Path, db_url: str, workers: int, threads: int,
                **settings: str) -> subprocess.Popen[bytes]:
    """Start ``mosplatform serve`` on ``port`` (no access log, output discarded).

    The environment keeps none of this process's ``MOSPLATFORM_*`` variables; it sets
    the instance folder, the database and ``MOSPLATFORM_<KEY>`` for each of
    ``settings``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOSPLATFORM_")}
    env.update(MOSPLATFORM_INSTANCE_PATH=str(instance), MOSPLATFORM_DATABASE_URL=db_url,
               PYTHONPATH=str(REPO),
               **{f"MOSPLATFORM_{key}": value for key, value in settings.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "mosplatform.cli", "serve", "--host", "127.0.0.1", "--port",
         str(port), "--workers", str(workers), "--threads", str(threads), "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
