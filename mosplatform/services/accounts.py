"""Admin accounts: creation, password hashing and checking, login throttling."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from threading import Lock

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import AdminUser

MIN_PASSWORD_LENGTH = 8
# Dummy hash so that unknown usernames cost as much time as wrong passwords.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


class AccountError(ValueError):
    """An account operation that cannot be done, with the reason."""


def hash_password(password: str) -> str:
    """scrypt (memory-hard KDF) with a random salt, via werkzeug."""
    return generate_password_hash(password, method="scrypt")


def create_admin(username: str, password: str, *, superuser: bool = False) -> AdminUser:
    """Create an admin account.

    Raises
    ------
    AccountError
        If the name is taken or empty, or the password is shorter than 8 characters.
    """
    username = username.strip()
    if not username or len(username) > 80:
        raise AccountError("username must be 1-80 characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if db.session.execute(select(AdminUser).where(AdminUser.username == username)).scalar():
        raise AccountError(f"admin '{username}' already exists")
    user = AdminUser(username=username, password_hash=hash_password(password),
                     is_superuser=superuser)
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(username: str, password: str) -> AdminUser | None:
    """The admin with these credentials, or None (constant work either way)."""
    user = db.session.execute(
        select(AdminUser).where(AdminUser.username == username)).scalar_one_or_none()
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


class LoginThrottle:
    """Sliding-window limit of failed logins per (username, address), per process.

    Each app server throttles on its own; behind several servers the effective limit
    is multiplied by their number, which still defeats online guessing.
    """

    def __init__(self, limit: int = 10, window_s: float = 300.0):
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._failures[key]
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, key: str) -> bool:
        with self._lock:
            return len(self._prune(key, time.monotonic())) >= self.limit

    def failure(self, key: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._prune(key, now).append(now)

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
