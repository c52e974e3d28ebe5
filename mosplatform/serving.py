"""Run the app under gunicorn (production) or Flask's reloader (``--dev``).

gunicorn runs ``gthread`` workers (processes x threads), or with one thread per
process :class:`mosplatform.gworker.InlineWorker` (gthread's event loop, each request
served on the loop's thread). ``SERVE_WORKER = "asgi"`` runs gunicorn's asyncio worker
instead, with :class:`mosplatform.asgi.InlineWSGI` serving the application on its
loop, one request at a time per process: the load harness's fastest setting (the
first request of a new connection waits about one turn of the loop longer than on the
threaded workers; ``bench/load/worker_overhead.py``, BENCHMARKS.md); threads are then
not used. Every
option can be set in the instance config or as ``MOSPLATFORM_SERVE_*`` environment
variables:

=============================  ==========================================  =========
key                            meaning                                     default
=============================  ==========================================  =========
``SERVE_WORKERS``              worker processes                            2 x cores + 1 (max 9)
``SERVE_THREADS``              threads per worker                          4
``SERVE_WORKER``               ``auto`` (by threads) or ``asgi``           ``auto``
``SERVE_TIMEOUT``              seconds before a silent worker is killed    60
``SERVE_GRACEFUL_TIMEOUT``     seconds a worker may finish on restart      30
``SERVE_KEEPALIVE``            keep-alive seconds (behind nginx: > its)    5
``SERVE_MAX_REQUESTS``         recycle a worker after this many requests   5000
``SERVE_ACCESS_LOG``           access log file, ``-`` for stdout           ``-``
``SERVE_ERROR_LOG``            error log file, ``-`` for stderr            ``-``
``SERVE_FORWARDED_ALLOW_IPS``  proxies trusted for X-Forwarded-*           127.0.0.1
=============================  ==========================================  =========

Signals (gunicorn): ``HUP`` reloads the configuration and replaces the workers
gracefully (in-flight requests finish), ``TERM`` stops gracefully, ``USR1`` reopens
the log files (logrotate), ``TTIN``/``TTOU`` add or remove a worker.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from pathlib import Path
from typing import Any

# Request time in microseconds (%(D)s) makes the access log usable for latency checks;
# the query string is left out because participant links carry external ids.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(D)sus "%(a)s"'


def default_workers() -> int:
    """gunicorn's rule of thumb: 2 x cores + 1, capped at 9."""
    return min(2 * multiprocessing.cpu_count() + 1, 9)


def after_worker_init(worker: Any) -> None:
    """gunicorn's ``post_worker_init`` hook: move the loaded application out of the
    garbage collector's way.

    A worker holds about 200 000 objects once the application is loaded (modules,
    routes, templates, SQLAlchemy's mappers), none of which ever becomes garbage. A
    full collection walks them all: about 100 ms on the load harness's machine
    (``bench/gc_pause.py``), during which the worker (one request at a time with
    :class:`~mosplatform.gworker.InlineWorker`) answers nothing, so every request
    queued on it waits that long. :func:`gc.freeze` after one last collection puts
    those objects in a generation that is never collected; what requests allocate
    is collected as before.

    Parameters
    ----------
    worker : gunicorn.workers.base.Worker
        The worker, its application loaded (unused).
    """
    gc.collect()
    gc.freeze()


WORKERS = ("auto", "asgi")
# The asgi worker on asyncio's own loop, not uvloop: under load uvloop left new
# connections in the listen queue for seconds (20-50 waiting, arrivals p50 1.3-2.2 s),
# where asyncio accepts every waiting one when the socket is ready (arrivals p50 0.3 s,
# and more ratings/s; bench/results/load.md).
ASGI_LOOP = "asyncio"


def worker_class(worker: str, threads: int) -> str:
    """gunicorn's ``worker_class`` for ``SERVE_WORKER`` and the thread count.

    Parameters
    ----------
    worker : str
        ``"auto"``: ``gthread``, or :class:`~mosplatform.gworker.InlineWorker` with one
        thread; ``"asgi"``: gunicorn's asyncio worker (the application is then wrapped
        in :class:`mosplatform.asgi.InlineWSGI`).
    threads : int
        Threads per worker.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For another value, naming the setting and the choices.
    """
    if worker == "asgi":
        return "mosplatform.gworker.AsgiWorker"
    if worker != "auto":
        raise ValueError(f"SERVE_WORKER must be one of {', '.join(WORKERS)}, not {worker!r}")
    return "mosplatform.gworker.InlineWorker" if threads == 1 else "gthread"


def gunicorn_options(host: str, port: int, workers: int | None, threads: int | None,
                     access_log: bool, worker: str | None = None) -> dict[str, Any]:
    """gunicorn settings from the arguments, then the app config, then defaults.

    Parameters
    ----------
    host, port : str, int
        Address to bind.
    workers, threads : int, optional
        Override ``SERVE_WORKERS`` / ``SERVE_THREADS``.
    access_log : bool
        Write the access log (to ``SERVE_ACCESS_LOG``, default stdout).
    worker : str, optional
        Override ``SERVE_WORKER`` (see :func:`worker_class`).

    Returns
    -------
    dict
        gunicorn setting name -> value.
    """
    from . import create_app

    cfg = create_app().config

    def setting(key: str, default: Any) -> Any:
        value = cfg.get(key)
        return default if value in (None, "") else value

    workers = workers or setting("SERVE_WORKERS", None) or default_workers()
    threads = threads or setting("SERVE_THREADS", 4)
    # Worker heartbeats go to a RAM-backed folder where there is one: a busy disk
    # must not make the master think a healthy worker hung.
    tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) \
        else None
    return {
        "bind": f"{host}:{port}",
        "workers": int(workers),
        "threads": int(threads),
        "worker_class": worker_class(worker or str(setting("SERVE_WORKER", "auto")),
                                     int(threads)),
        "timeout": int(setting("SERVE_TIMEOUT", 60)),
        "graceful_timeout": int(setting("SERVE_GRACEFUL_TIMEOUT", 30)),
        "keepalive": int(setting("SERVE_KEEPALIVE", 5)),
        # Recycle a worker now and then (a leak cannot grow for ever), but rarely: a
        # restart costs a second of CPU, and a busy worker serves 5000 requests in
        # well under a minute.
        "max_requests": int(setting("SERVE_MAX_REQUESTS", 100_000)),
        "max_requests_jitter": int(setting("SERVE_MAX_REQUESTS", 100_000)) // 10,
        "accesslog": str(setting("SERVE_ACCESS_LOG", "-")) if access_log else None,
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": str(setting("SERVE_ERROR_LOG", "-")),
        "forwarded_allow_ips": str(setting("SERVE_FORWARDED_ALLOW_IPS",
                                           os.environ.get("FORWARDED_ALLOW_IPS",
                                                          "127.0.0.1"))),
        "worker_tmp_dir": tmp_dir,
        "proc_name": f"mosplatform:{port}",
        "post_worker_init": after_worker_init,
        # gunicorn >= 24 opens a control socket at one fixed path per user; several app
        # servers on one machine would fight over it, and nothing here uses it.
        "control_socket_disable": True,
        "asgi_loop": ASGI_LOOP,
    }


def serve(host: str = "127.0.0.1", port: int = 5000, workers: int | None = None,
          threads: int | None = None, dev: bool = False, access_log: bool = True,
          worker: str | None = None) -> None:
    """Serve until interrupted. SIGHUP reloads workers gracefully (gunicorn)."""
    from . import create_app

    if dev:
        create_app().run(host=host, port=port, debug=True, use_reloader=True)
        return
    from gunicorn.app.base import BaseApplication

    options = gunicorn_options(host, port, workers, threads, access_log, worker)

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                # Skip settings this gunicorn version does not know.
                if value is not None and key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            if options["worker_class"] == worker_class("asgi", 1):
                from .asgi import wrap

                return wrap(create_app(), multiprocess=options["workers"] > 1)
            return create_app()

    _App().run()
