"""The world a load scenario runs in: generated material, a throwaway database, app servers.

Databases are throwaway: a SQLite file in a temporary folder, or a PostgreSQL database
``mos_load_<random>`` on either a private PostgreSQL cluster started for the run
(default: it can be restarted without disturbing anyone else) or the shared server on
127.0.0.1:5432 (``--pg shared``). App servers are real ``mosplatform serve`` processes
(gunicorn, gthread workers) on loopback ports.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

DEFINITION = """
name: Load test (ACR, separation MOS)
kind: acr
questions:
  - {{key: accuracy, label: Separation accuracy, scale: acr}}
  - {{key: contamination, label: Contamination, scale: acr}}
conditions:
  - {{key: truth, role: hidden_reference}}
  - {{key: sysA, folder: {sysA}}}
  - {{key: sysB, folder: {sysB}}}
stimuli:
  type: folders
  reference: {reference}
  items: track_random_source
  excerpt: {{start: 0.2, duration: 1.0}}
preparation: {{sample_rate: 16000, fade_ms: 10}}
design: {{trials_per_participant: {trials}, training: false, calibration: false}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def, type-arg]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL tool {name} not found")
    return path


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of our own, on a free port, removed afterwards."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        _run(_as_postgres([_pg_bin("initdb"), "-D", str(self.datadir), "-U", "postgres",
                           "--auth=trust", "-E", "UTF8", "--no-sync"]))
        self._ctl("start")

    def _ctl(self, action: str) -> None:
        # MOS_LOAD_PG_OPTIONS adds server options for a diagnosis, e.g. "-c
        # shared_preload_libraries=pg_stat_statements" (kept with --keep).
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c max_connections=300 -c shared_buffers=128MB "
                + os.environ.get("MOS_LOAD_PG_OPTIONS", ""))
        _run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-o", opts,
                           "-l", str(self.root / "postgres.log"), "-m", "fast", "-w", action]))

    def restart(self) -> None:
        self._ctl("restart")

    def pid(self) -> int | None:
        """The postmaster's process id (backends are its children)."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        try:
            self._ctl("stop")
        except subprocess.CalledProcessError:
            pass

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"


@dataclass
class SharedServer:
    """The machine's PostgreSQL on 127.0.0.1:5432 (restart disturbs other users)."""

    port: int = 5432

    def start(self) -> None:
        pass

    def restart(self) -> None:
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"])

    def stop(self) -> None:
        pass

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"


def create_database(server: PrivateCluster | SharedServer) -> str:
    from sqlalchemy import create_engine, text

    name = "mos_load_" + secrets.token_hex(4)
    eng = create_engine(server.url("postgres"), isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return name


def drop_database(server: PrivateCluster | SharedServer, name: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(server.url("postgres"), isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    eng.dispose()


# --------------------------------------------------------------------------------------
# Material and the test
# --------------------------------------------------------------------------------------


def prepare_test(db_url: str, instance: Path, media: Path, work: Path, trials: int,
                 secret_key: str) -> str:
    """Generate audio, create the schema and the test; returns the test's public id."""
    sys.path.insert(0, str(REPO))
    from mosplatform import create_app
    from mosplatform.config import load_definition
    from mosplatform.extensions import db
    from mosplatform.services.importer import create_test
    from tests.audiofixtures import make_musdb

    audio = work / "audio"
    if not audio.exists():
        make_musdb(audio, tracks=trials, seconds=1.5, sr=16000)
    dirs = {"reference": audio / "reference", "sysA": audio / "sysA", "sysB": audio / "sysB"}
    yaml_path = work / "load.yaml"
    yaml_path.write_text(DEFINITION.format(trials=trials, **{k: str(v) for k, v in dirs.items()}),
                         encoding="utf-8")
    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "INSTANCE_PATH": str(instance),
                      "MEDIA_ROOT": str(media), "SECRET_KEY": secret_key})
    with app.app_context():
        db.create_all()
        test = create_test(load_definition(yaml_path), open_now=True, compute_sdr=False)
        public_id = test.public_id
        db.session.remove()
        db.engine.dispose()
    return public_id


# --------------------------------------------------------------------------------------
# App servers
# --------------------------------------------------------------------------------------


@dataclass
class AppServer:
    """One ``mosplatform serve`` (gunicorn master + workers) on a loopback port."""

    env: dict[str, str]
    workers: int
    threads: int
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None  # type: ignore[type-arg]

    def start(self, timeout: float = 60.0) -> None:
        cmd = [PYTHON, "-m", "mosplatform.cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(self.workers),
               "--threads", str(self.threads), "--no-access-log"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app server exited; see {self.log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz",
                                            timeout=2) as resp:
                    if resp.status == 200 and len(self.worker_pids()) >= self.workers:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"app server on port {self.port} did not start; see {self.log}")

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in children.split()]

    def kill_worker(self) -> int | None:
        """kill -9 one worker (the master starts a replacement)."""
        pids = self.worker_pids()
        if not pids:
            return None
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    def kill_all(self) -> None:
        """kill -9 the master and its workers: the whole app server dies."""
        if self.proc is None:
            return
        pids = self.worker_pids()
        os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def server_env(db_url: str, instance: Path, media: Path, secret_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOSPLATFORM_")}
    env.update({
        "MOSPLATFORM_DATABASE_URL": db_url,
        "MOSPLATFORM_INSTANCE_PATH": str(instance),
        "MOSPLATFORM_MEDIA_ROOT": str(media),
        "MOSPLATFORM_SECRET_KEY": secret_key,
        "PYTHONPATH": str(REPO),
    })
    return env


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, its live descendants and the
    descendants that have exited and been reaped."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime + stime, plus cutime + cstime: children that exited and were reaped
        # (a gunicorn worker recycled after max_requests) still count.
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        stack += _children(p)
    return total


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle by all processes on the machine (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="mos_load_"))
    path.chmod(0o755)  # the private PostgreSQL cluster (user postgres) lives inside
    return path
