"""The one-thread workers over raw sockets: a real `mosplatform serve --threads 1`, with
the default worker (``mosplatform.gworker.InlineWorker``) and with ``--worker asgi``
(gunicorn's asyncio worker and ``mosplatform.asgi.InlineWSGI``)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from mosplatform.serving import gunicorn_options
from tests.serveproc import free_port, start_serve

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_one_thread_picks_the_inline_worker(monkeypatch, tmp_path):
    monkeypatch.setenv("MOSPLATFORM_INSTANCE_PATH", str(tmp_path))
    assert gunicorn_options("127.0.0.1", 1, 2, 1, False)["worker_class"] == \
        "mosplatform.gworker.InlineWorker"
    assert gunicorn_options("127.0.0.1", 1, 2, 2, False)["worker_class"] == "gthread"


@pytest.fixture(scope="module", params=["auto", "asgi"])
def server(request, tmp_path_factory) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """One worker process with one thread, so any request it holds blocks the rest."""
    tmp = tmp_path_factory.mktemp("gworker")
    port = free_port()
    proc = start_serve(port, instance=tmp / "instance", db_url=f"sqlite:///{tmp / 'db.sqlite'}",
                       workers=1, threads=1, SERVE_KEEPALIVE="2", SERVE_WORKER=request.param)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(REQUEST)
                if c.recv(100).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the server did not start")
    yield port, proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def _responses(sock: socket.socket, count: int, timeout: float = 10) -> list[bytes]:
    """Read ``count`` whole responses (each with a Content-Length)."""
    sock.settimeout(timeout)
    data, out = b"", []
    while len(out) < count:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            if len(rest) >= length:
                out.append(head + sep + rest[:length])
                data = rest[length:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} responses")
        data += chunk
    return out


def test_keep_alive_and_pipelined_requests(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as c:
        for _ in range(3):  # one after another on one connection
            c.sendall(REQUEST)
            assert _responses(c, 1)[0].startswith(b"HTTP/1.1 200")
        c.sendall(REQUEST * 20)  # twenty in one write: each answered, in order
        answers = _responses(c, 20)
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
        post = (b"POST /api/p/none/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/json\r\nContent-Length: 2\r\n\r\n{}")
        c.sendall(post + REQUEST)  # a refused request with a body, then one more
        refused, after = _responses(c, 2)
        assert refused.split(b" ")[1].startswith(b"4") and after.startswith(b"HTTP/1.1 200")


def test_a_huge_declared_body_is_refused_unread(server):
    """A body declared far over the API's limit is answered 413 without waiting for
    it (the worker reads none of it), and the worker goes on serving."""
    port, _ = server
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"POST /api/p/none/trial/1/ratings HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
                  + b"{" * 1000)
        assert _responses(c, 1, timeout=10)[0].startswith(b"HTTP/1.1 413")
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(REQUEST)
        assert _responses(c, 1)[0].startswith(b"HTTP/1.1 200")


def test_a_silent_connection_holds_no_worker(server):
    """The single worker answers others while a connection has sent nothing, and while
    another sits idle between requests; the idle ones are closed after keep-alive."""
    port, _ = server
    silent = socket.create_connection(("127.0.0.1", port))
    idle = socket.create_connection(("127.0.0.1", port))
    try:
        idle.sendall(REQUEST)
        _responses(idle, 1)
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(REQUEST)
            assert _responses(c, 1, timeout=4)[0].startswith(b"HTTP/1.1 200")
        assert time.monotonic() - start < 4
        for quiet in (silent, idle):  # keep-alive is 2 s
            quiet.settimeout(10)
            assert quiet.recv(100) == b""
    finally:
        silent.close()
        idle.close()


def test_term_lets_the_request_in_hand_finish(server):
    port, proc = server
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(REQUEST)
        assert _responses(c, 1)[0].startswith(b"HTTP/1.1 200")
        proc.send_signal(signal.SIGTERM)
        c.sendall(REQUEST)  # on the kept-alive connection, while the worker stops
        assert _responses(c, 1)[0].startswith(b"HTTP/1.1 200")
        c.settimeout(10)
        assert c.recv(100) == b""  # and then the worker closes it and exits
    assert proc.wait(30) == 0


def _bare_worker(monkeypatch):  # type: ignore[no-untyped-def]
    """An InlineWorker without a gunicorn arbiter: the loop's state, and a record of
    the connections it serves instead of serving them."""
    import selectors
    from collections import deque
    from types import SimpleNamespace

    from mosplatform.gworker import InlineWorker

    worker = InlineWorker.__new__(InlineWorker)
    worker.cfg = SimpleNamespace(keepalive=2)
    worker.worker_connections = 100
    worker.nr_conns = 0
    worker.poller = selectors.DefaultSelector()
    worker.pending_conns, worker.keepalived_conns = deque(), deque()
    served: list = []
    monkeypatch.setattr(worker, "enqueue_req", served.append)
    return worker, served


def test_accept_takes_every_waiting_connection_and_serves_those_that_spoke(monkeypatch):
    worker, served = _bare_worker(monkeypatch)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(5)]
        for c in clients[:3]:
            c.sendall(REQUEST)
        time.sleep(0.2)
        worker.accept(listener)  # one readiness event, five connections
        try:
            assert worker.nr_conns == 5
            assert len(served) == 3 and all(conn.data_ready for conn in served)
            assert len(worker.pending_conns) == 2
        finally:
            for c in clients:
                c.close()
            for conn in [*served, *worker.pending_conns]:
                conn.sock.close()


def test_a_connection_whose_time_is_up_is_served_if_its_request_came(monkeypatch):
    """The loop can be busy past a connection's keep-alive while its next request
    arrives: that connection is served, a silent or closed one is closed."""
    from mosplatform.gworker import TConn

    worker, served = _bare_worker(monkeypatch)
    pairs = [socket.socketpair() for _ in range(3)]
    conns = []
    for server_end, _ in pairs:
        conn = TConn(worker.cfg, server_end, ("peer", 0), ("here", 0))
        conn.timeout = time.monotonic() - 1
        worker.poller.register(server_end, 1)
        conns.append(conn)
    worker.keepalived_conns.extend(conns)
    worker.nr_conns = 3
    pairs[0][1].sendall(REQUEST)  # spoke
    pairs[2][1].close()  # hung up; pairs[1] said nothing
    worker.murder_keepalived()
    try:
        assert served == [conns[0]] and not worker.keepalived_conns
        assert worker.nr_conns == 1 and conns[1].sock.fileno() == -1
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_a_tls_connection_is_never_read_ahead():
    """A TLS socket takes no recv flags: the check says "no request" instead of failing."""
    import ssl

    from mosplatform.gworker import _request_waiting

    a, b = socket.socketpair()
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        wrapped = context.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
        b.sendall(b"x")
        assert _request_waiting(wrapped) is False
    finally:
        a.close()
        b.close()
