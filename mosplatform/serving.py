"""Run the app under gunicorn (production) or Flask's reloader (``--dev``)."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any


def default_workers() -> int:
    """gunicorn's rule of thumb: 2 x cores + 1, capped at 9."""
    return min(2 * multiprocessing.cpu_count() + 1, 9)


def gunicorn_options(host: str, port: int, workers: int | None, threads: int | None,
                     access_log: bool) -> dict[str, Any]:
    from . import create_app

    app_cfg = create_app().config
    workers = workers or app_cfg.get("SERVE_WORKERS") or default_workers()
    threads = threads or app_cfg.get("SERVE_THREADS") or 4
    return {
        "bind": f"{host}:{port}",
        "workers": int(workers),
        "threads": int(threads),
        "worker_class": "gthread",
        "timeout": 60,
        "graceful_timeout": 30,
        "keepalive": 5,
        "max_requests": 5000,
        "max_requests_jitter": 500,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "forwarded_allow_ips": os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
    }


def serve(host: str = "127.0.0.1", port: int = 5000, workers: int | None = None,
          threads: int | None = None, dev: bool = False, access_log: bool = True) -> None:
    """Serve until interrupted. SIGHUP reloads workers gracefully (gunicorn)."""
    from . import create_app

    if dev:
        create_app().run(host=host, port=port, debug=True, use_reloader=True)
        return
    from gunicorn.app.base import BaseApplication

    options = gunicorn_options(host, port, workers, threads, access_log)

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return create_app()

    _App().run()
