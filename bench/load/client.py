"""A small asyncio HTTP/1.1 client for the load harness (loopback only).

One :class:`Browser` per simulated participant: a cookie jar and one keep-alive
connection per server, no redirects followed automatically, gzip bodies decoded.
Written on asyncio streams so that the harness needs nothing beyond the standard library.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import dataclass, field
from typing import Any

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_timeout = getattr(asyncio, "timeout", None)  # Python 3.11+


class HttpError(ConnectionError):
    """The connection failed, was reset, or the answer was not valid HTTP."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class Browser:
    """Cookies and keep-alive connections of one simulated browser."""

    timeout: float = 30.0
    cookies: dict[str, str] = field(default_factory=dict)
    _conns: dict[tuple[str, int], _Conn] = field(default_factory=dict)

    def fork(self) -> Browser:
        """Another tab of the same browser: shared cookies, its own connections.

        One connection carries one request at a time; concurrent requests of one
        participant (a double click) need a second tab.
        """
        return Browser(timeout=self.timeout, cookies=self.cookies)

    async def _connect(self, host: str, port: int) -> _Conn:
        if host not in LOOPBACK:
            raise ValueError("the load harness only talks to the loopback interface")
        key = (host, port)
        conn = self._conns.get(key)
        if conn is None or conn.writer.is_closing():
            reader, writer = await asyncio.open_connection(host, port, limit=2**22)
            conn = self._conns[key] = _Conn(reader, writer)
        return conn

    def _drop(self, host: str, port: int) -> None:
        conn = self._conns.pop((host, port), None)
        if conn is not None:
            conn.writer.close()

    async def close(self) -> None:
        for host, port in list(self._conns):
            self._drop(host, port)

    async def request(self, host: str, port: int, method: str, path: str,
                      headers: dict[str, str] | None = None, body: bytes | None = None,
                      ) -> Response:
        """Send one request and read its answer; raises :class:`HttpError` on failure."""
        try:
            exchange = self._request(host, port, method, path, headers or {}, body)
            if _timeout is None:  # Python 3.10
                return await asyncio.wait_for(exchange, self.timeout)
            # The simulator's own CPU is taken from the app servers on this machine:
            # a timeout scope is cheaper than wait_for's extra task per request.
            async with _timeout(self.timeout):
                return await exchange
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.TimeoutError, ValueError, IndexError) as exc:
            self._drop(host, port)
            if isinstance(exc, ValueError) and "loopback" in str(exc):
                raise
            raise HttpError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def _request(self, host: str, port: int, method: str, path: str,
                       headers: dict[str, str], body: bytes | None) -> Response:
        reused = (host, port) in self._conns
        try:
            return await self._exchange(host, port, method, path, headers, body)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
            # A keep-alive connection the server closed while idle: like browsers, resend
            # a GET once on a new connection. POSTs are not resent here (the caller
            # retries them with their Idempotency-Key, and counts the failure).
            if not (reused and method == "GET"):
                raise
            self._drop(host, port)
            return await self._exchange(host, port, method, path, headers, body)

    async def _exchange(self, host: str, port: int, method: str, path: str,
                        headers: dict[str, str], body: bytes | None) -> Response:
        conn = await self._connect(host, port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}",
                 "Accept-Encoding: gzip", "Connection: keep-alive"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        for k, v in headers.items():
            lines.append(f"{k}: {v}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        conn.writer.write(head + (body or b""))
        await conn.writer.drain()

        # The status line and headers in one read.
        head_block = await conn.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head_block[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        resp_headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            if name == "set-cookie":
                cookie = value.split(";", 1)[0]
                cname, _, cvalue = cookie.partition("=")
                self.cookies[cname.strip()] = cvalue.strip()
            resp_headers[name] = value
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            data = b""
        elif resp_headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await conn.reader.readline()).split(b";")[0].strip(), 16)
                if size == 0:
                    await conn.reader.readline()
                    break
                chunks.append(await conn.reader.readexactly(size))
                await conn.reader.readexactly(2)
            data = b"".join(chunks)
        elif "content-length" in resp_headers:
            data = await conn.reader.readexactly(int(resp_headers["content-length"]))
        else:
            data = await conn.reader.read()
            resp_headers["connection"] = "close"
        if resp_headers.get("connection", "").lower() == "close":
            self._drop(host, port)
        if resp_headers.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        return Response(status, resp_headers, data)


async def hammer(port: int, path: str, seconds: float, clients: int, *,
                 cookies: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                 expect: int | None = None, timeout: float = 30.0) -> int:
    """Requests answered in ``seconds`` by ``clients`` keep-alive connections to one
    loopback server, each sending ``GET path`` again as soon as it has its answer.

    A failed connection waits 50 ms and tries again (it counts nothing); an answer
    with another status than ``expect`` (when given) raises ``RuntimeError``.
    """
    done = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def one() -> None:
        nonlocal done
        browser = Browser(timeout=timeout, cookies=dict(cookies or {}))
        while loop.time() < end:
            try:
                resp = await browser.request("127.0.0.1", port, "GET", path, headers)
            except HttpError:
                await asyncio.sleep(0.05)
                continue
            if expect is not None and resp.status != expect:
                raise RuntimeError(f"GET {path}: {resp.status}, expected {expect}")
            done += 1
        await browser.close()

    await asyncio.gather(*(one() for _ in range(clients)))
    return done
