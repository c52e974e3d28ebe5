"""Flask's signed-cookie sessions, with each verified cookie remembered per process.

A participant's browser sends the same session cookie with every request of a
test (the cookie changes only when the session does), and every request used to
check its signature and decode it again. :class:`RememberingSessionInterface`
keeps what a cookie decoded to, keyed by the whole cookie value: a cookie that
was verified once, signature included, decodes to the same data every time. Its
age is still checked on every request against the session lifetime, and the
session each request gets is its own copy.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer

MAX_REMEMBERED = 20_000  # cookies of under 1 KB each: at most ~20 MB per process


class RememberingSessionInterface(SecureCookieSessionInterface):
    """:class:`flask.sessions.SecureCookieSessionInterface` that decodes each distinct
    cookie once per process (and builds its serializer once per key set)."""

    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self.max_remembered = max_remembered
        self._decoded: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()
        self._lock = threading.Lock()
        self._serializer: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = self._serializer
        if cached is None or cached[0] != keys:
            cached = (keys, super().get_signing_serializer(app))
            self._serializer = cached
            with self._lock:
                self._decoded.clear()  # decoded under other keys
        return cached[1]

    def decode(self, app: Flask, value: str) -> dict[str, Any] | None:
        """What the session cookie ``value`` holds, or None if it is forged, expired or
        cannot be checked (no secret key). The dict is shared: do not change it."""
        s = self.get_signing_serializer(app)
        if s is None:
            return None
        max_age = app.permanent_session_lifetime.total_seconds()
        with self._lock:
            hit = self._decoded.get(value)
            if hit is not None:
                self._decoded.move_to_end(value)
        if hit is None:
            try:
                data, signed = s.loads(value, max_age=int(max_age), return_timestamp=True)
            except BadSignature:
                return None
            hit = (data, signed.timestamp())
            with self._lock:
                self._decoded[value] = hit
                while len(self._decoded) > self.max_remembered:
                    self._decoded.popitem(last=False)
        elif time.time() - hit[1] > max_age:
            return None  # expired since it was first seen
        return hit[0]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_signing_serializer(app) is None:
            return None
        val = request.cookies.get(self.get_cookie_name(app))
        data = self.decode(app, val) if val else None
        if data is None:
            return self.session_class()
        return self.session_class(copy.deepcopy(data))
