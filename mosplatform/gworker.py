"""A gunicorn worker for one thread per process: gthread's event loop without its pool.

gunicorn's ``gthread`` worker keeps connections alive on an event loop and hands each
request to a thread pool, which hands the connection back to the loop through a pipe.
With one thread per process (what ``bench/load/run.py`` measured best on two cores:
the app's Python is CPU-bound), the loop only waits for that one thread, and the
hand-over (a future, a condition variable, a pipe write and read, two thread
switches) cost a sizeable share of each request's CPU. :class:`InlineWorker` runs
each request on the loop's own thread instead. Everything else is gthread's: keep-alive,
timeouts of idle connections, the worker connection limit, graceful stops,
``max_requests``, the heartbeat between requests.

As with one gthread thread, a worker serves one request at a time, and a request
that arrives slowly holds its worker while it is read: put nginx (which buffers
requests) in front, as ``deploy/`` does. A new connection waits on the loop until its
first bytes arrive, so a client that connects and says nothing holds no worker.
:func:`mosplatform.serving.gunicorn_options` picks this worker when
``SERVE_THREADS`` is 1.

One turn of the loop serves every connection that was ready when it began, so under
load a turn can take a while; two things gthread did between requests are therefore
done differently:

* every connection waiting to be accepted is accepted in one turn (up to
  :data:`ACCEPT_BATCH`), and one whose request is there already is served at once;
* a kept-alive or new connection whose time is up is served instead of closed when its
  request has arrived meanwhile (gthread's loop, turning often, would have seen it).
"""

from __future__ import annotations

import asyncio
import errno
import selectors
import socket
import time
from collections import deque
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi
from gunicorn.workers.gthread import TConn, ThreadWorker

ACCEPT_BATCH = 64


def _request_waiting(sock: socket.socket) -> bool:
    """Whether the peer has sent bytes that are waiting to be read (not EOF).

    False for a TLS socket (which takes no flags): such a connection is treated as
    gthread treats every connection, closed when its time is up.
    """
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (OSError, ValueError):  # nothing yet (EAGAIN), a failed connection, TLS
        return False


class InlineWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with its single request thread folded into the event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ready: deque[Any] = deque()
        self._serving = False

    def accept(self, listener: Any) -> None:
        """Accept the waiting connections; serve those whose request is there, and
        leave the others on the loop until their first bytes arrive."""
        for _ in range(min(ACCEPT_BATCH, self.worker_connections - self.nr_conns)):
            try:
                client_sock, client_addr = listener.accept()
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                return
            self.nr_conns += 1
            conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
            if _request_waiting(client_sock):
                conn.data_ready = True
                self.enqueue_req(conn)
                continue
            conn.timeout = time.monotonic() + self.cfg.keepalive
            self.pending_conns.append(conn)
            self.poller.register(client_sock, selectors.EVENT_READ,
                                 partial(self.on_pending_socket_readable, conn))

    def murder_keepalived(self, force: bool = False) -> None:
        """Close the kept-alive connections whose time is up, unless a request came."""
        if force:
            super().murder_keepalived(force=True)
        else:
            self._expire(self.keepalived_conns)

    def murder_pending(self) -> None:
        """Close the new connections that sent nothing in time, unless a request came."""
        self._expire(self.pending_conns)

    def _expire(self, conns: deque[Any]) -> None:
        now = time.monotonic()
        while conns and conns[0].timeout <= now:
            conn = conns.popleft()
            try:
                self.poller.unregister(conn.sock)
            except (OSError, KeyError, ValueError):
                pass
            if _request_waiting(conn.sock):
                conn.data_ready = True
                self.enqueue_req(conn)
            else:
                self.nr_conns -= 1
                conn.close()

    def enqueue_req(self, conn: Any) -> None:
        """Serve the request on ``conn`` now, on this thread.

        ``finish_request`` calls back here when a connection already holds its next
        request: it is queued and served by the loop below, not by recursion.
        """
        self._ready.append(conn)
        if self._serving:
            return
        self._serving = True
        try:
            while self._ready:
                ready = self._ready.popleft()
                outcome: futures.Future[Any] = futures.Future()
                try:
                    outcome.set_result(self.handle(ready))
                except Exception as exc:  # finish_request closes the connection
                    outcome.set_exception(exc)
                self.finish_request(ready, outcome)
        finally:
            self._serving = False


class SilenceTimeoutProtocol(ASGIProtocol):  # type: ignore[misc]
    """gunicorn's asyncio HTTP protocol, closing a new connection that says nothing.

    gunicorn's protocol times out a kept-alive connection between requests, but not a
    new one before its first request: such connections would stay open until the
    worker's connection limit is reached. As gthread (and :class:`InlineWorker`) does,
    a new connection gets ``keepalive`` seconds (``timeout`` if keep-alive is off) to
    send its first bytes.
    """

    _silence: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        cfg = self.worker.cfg
        wait = cfg.keepalive if cfg.keepalive > 0 else cfg.timeout
        if wait > 0:
            self._silence = self.worker.loop.call_later(wait, transport.close)

    def data_received(self, data: bytes) -> None:
        self._heard()
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._heard()
        super().connection_lost(exc)

    def _heard(self) -> None:
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None


class AsgiWorker(gasgi.ASGIWorker):  # type: ignore[misc]
    """gunicorn's ``asgi`` worker with :class:`SilenceTimeoutProtocol`.

    The worker builds its protocol from its module's ``ASGIProtocol``; in this worker's
    process (and only there: each worker is a process of its own) that name is
    :class:`SilenceTimeoutProtocol`. ``mosplatform serve`` picks this worker with
    ``SERVE_WORKER = "asgi"`` and serves :class:`mosplatform.asgi.InlineWSGI` on it.
    """

    def init_process(self) -> None:
        use_silence_timeout_protocol()
        super().init_process()


def use_silence_timeout_protocol() -> None:
    """Make gunicorn's asgi worker build :class:`SilenceTimeoutProtocol` (in this
    process).

    gunicorn records whether its C parser is installed on the class it is asked from,
    and reads the answer back from ``ASGIProtocol`` itself: asked first from the
    subclass, ``ASGIProtocol`` would never learn it, and every connection would get
    the Python parser (a quarter more CPU per request, measured). So it is asked
    from ``ASGIProtocol`` first.
    """
    ASGIProtocol._check_h1c_protocol_available()
    gasgi.ASGIProtocol = SilenceTimeoutProtocol
