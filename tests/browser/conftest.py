"""Fixtures for the browser tests: Debian's Chromium driven by Playwright.

``browser`` (session) launches Chromium once; ``page`` gives each test a fresh
context and page; ``static_server`` serves the repository's ``static/``, the
test harness pages and a per-test media folder over a tiny threaded HTTP
server (``localhost`` counts as a secure context, which AudioWorklet needs).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
SCREENSHOT_DIR = REPO_ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Debian Chromium, shared by the session."""
    if not CHROMIUM.exists():
        _skip_or_fail(f"{CHROMIUM} not found; install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the environment
        _skip_or_fail("the playwright Python package is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser) -> Iterator[object]:
    """A fresh browser context and page; console errors are kept on ``page.console_errors``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda exc: pg.console_errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()


@dataclass
class StaticServer:
    """Serves /static/ (repository), /harness/ (test pages) and /media/ (a tmp folder)."""

    url: str
    media_dir: Path


class _Handler(SimpleHTTPRequestHandler):
    routes: dict[str, Path] = {}

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, folder in self.routes.items():
            if clean.startswith(prefix):
                rel = clean[len(prefix) :]
                target = (folder / rel).resolve()
                if folder.resolve() in target.parents or target == folder.resolve():
                    return str(target)
        return str(REPO_ROOT / "__not_found__")

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


@pytest.fixture()
def static_server(tmp_path: Path) -> Iterator[StaticServer]:
    """Start a threaded HTTP server on 127.0.0.1 for one test."""
    media = tmp_path / "media"
    media.mkdir()
    routes = {
        "/static/": REPO_ROOT / "static",
        "/harness/": HARNESS_DIR,
        "/media/": media,
    }
    handler = functools.partial(type("Handler", (_Handler,), {"routes": routes}))
    handler.func.extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".wav": "audio/wav",
        ".flac": "audio/flac",
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StaticServer(url=f"http://127.0.0.1:{server.server_address[1]}", media_dir=media)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def save_screenshot(pg: object, name: str) -> Path:
    """Save a full-page screenshot under test-output/screenshots/ and return its path."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture()
def screenshot():
    """``screenshot(page, name)`` saves test-output/screenshots/<name>.png."""
    return save_screenshot
