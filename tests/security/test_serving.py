"""gunicorn settings come from the configuration layers, with safe defaults."""

from __future__ import annotations

import pytest

from mosplatform.serving import ACCESS_LOG_FORMAT, default_workers, gunicorn_options


def test_options_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MOSPLATFORM_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("MOSPLATFORM_SERVE_WORKERS", "3")
    monkeypatch.setenv("MOSPLATFORM_SERVE_THREADS", "6")
    monkeypatch.setenv("MOSPLATFORM_SERVE_TIMEOUT", "45")
    monkeypatch.setenv("MOSPLATFORM_SERVE_ACCESS_LOG", '"/var/log/mos/access.log"')
    opts = gunicorn_options("127.0.0.1", 8123, None, None, access_log=True)
    assert opts["bind"] == "127.0.0.1:8123"
    assert (opts["workers"], opts["threads"], opts["timeout"]) == (3, 6, 45)
    assert opts["worker_class"] == "gthread" and opts["graceful_timeout"] > 0
    assert opts["accesslog"] == "/var/log/mos/access.log"
    assert opts["access_log_format"] == ACCESS_LOG_FORMAT and "%(q)s" not in ACCESS_LOG_FORMAT
    # Command-line arguments win over the configuration; no access log when asked.
    opts = gunicorn_options("0.0.0.0", 80, 2, 16, access_log=False)
    assert (opts["workers"], opts["threads"], opts["accesslog"]) == (2, 16, None)


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("MOSPLATFORM_INSTANCE_PATH", str(tmp_path))
    opts = gunicorn_options("127.0.0.1", 5000, None, None, access_log=True)
    assert opts["workers"] == default_workers() and 3 <= opts["workers"] <= 9
    assert opts["threads"] == 4 and opts["accesslog"] == "-"
    assert opts["max_requests"] > 0 and opts["max_requests_jitter"] > 0


@pytest.mark.slow
def test_hup_replaces_workers_gracefully_and_keeps_serving(tmp_path):
    """A real `mosplatform serve`: SIGHUP starts new workers; requests keep succeeding."""
    import signal
    import time
    import urllib.request
    from pathlib import Path

    from tests.serveproc import free_port, start_serve

    port = free_port()
    proc = start_serve(port, instance=tmp_path / "instance",
                       db_url=f"sqlite:///{tmp_path / 'db.sqlite'}", workers=2, threads=2)

    def workers() -> set[int]:
        try:
            text = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
        except OSError:
            return set()
        return {int(p) for p in text.split()}

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        deadline = time.monotonic() + 60
        while not (healthy() and len(workers()) == 2) and time.monotonic() < deadline:
            time.sleep(0.3)
        before = workers()
        assert len(before) == 2 and healthy()
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        ok = 0
        while time.monotonic() < deadline:
            ok += healthy()
            now = workers()
            if len(now) == 2 and not now & before:
                break
            time.sleep(0.2)
        assert len(workers()) == 2 and not workers() & before, "workers were not replaced"
        assert healthy() and ok > 0
        assert proc.poll() is None  # the master never went down
    finally:
        proc.terminate()
        proc.wait(30)


def test_workers_freeze_the_loaded_application(monkeypatch, tmp_path):
    """gunicorn calls after_worker_init once the app is loaded: what is there then is
    out of the collector's reach, what comes later is collected as usual."""
    import gc

    from gunicorn.config import Config

    from mosplatform.serving import after_worker_init

    monkeypatch.setenv("MOSPLATFORM_INSTANCE_PATH", str(tmp_path))
    opts = gunicorn_options("127.0.0.1", 5000, None, None, access_log=False)
    assert opts["post_worker_init"] is after_worker_init
    cfg = Config()
    cfg.set("post_worker_init", opts["post_worker_init"])  # gunicorn accepts the hook
    assert gc.get_freeze_count() == 0
    try:
        cfg.post_worker_init(object())
        frozen = gc.get_freeze_count()
        assert frozen > 1000

        class Cycle:
            pass

        cycle = Cycle()
        cycle.me = cycle  # type: ignore[attr-defined]
        del cycle
        assert gc.collect() >= 1  # garbage made later is still collected
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_deploy_config_has_the_hook():
    """``deploy/gunicorn.conf.py`` sets the same hook as ``mosplatform serve``."""
    from pathlib import Path

    from mosplatform.serving import after_worker_init

    conf = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"
    settings: dict[str, object] = {}
    exec(compile(conf.read_text(), str(conf), "exec"), settings)  # noqa: S102
    assert settings["post_worker_init"] is after_worker_init
    assert settings["worker_class"] in ("gthread", "mosplatform.gworker.InlineWorker")
