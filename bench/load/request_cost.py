"""App-server CPU per request under gunicorn, for the audio request a trial repeats.

    .venv/bin/python bench/load/request_cost.py [--seconds S] [--clients N]

Starts ``mosplatform serve`` (4 workers x 1 thread, as scenario 1 of ``run.py``) on a
fresh SQLite test, once with the fast paths (``mosplatform/fastpath.py``) and once with
``FAST_PATHS`` off, so that every request goes through Flask. In each, one participant
walks to its first trial with the harness's client, and N keep-alive connections then
send, for S seconds each:

* ``GET /healthz``, a Flask view with no work of its own (the anchor);
* ``GET /media/<token>`` of that participant (the whole file, 64 KB);
* the same with ``If-None-Match`` (a 304).

It prints the app server's CPU per request (master and workers, from ``/proc``: what
the client costs is not counted) and its ratio to the anchor of the same server.
Answers cannot be repeated this way (a second answer is a replay); the load harness
(``run.py``) measures them.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import secrets
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import env as envmod  # noqa: E402
from client import Browser, hammer  # noqa: E402

TRIAL_CONFIG = re.compile(rb'id="trial-config">(.*?)</script>', re.S)
CSRF_FIELD = re.compile(rb'name="csrf_token" value="([^"]+)"')
HOST = "127.0.0.1"


async def first_trial(port: int, public_id: str) -> tuple[Browser, dict]:  # type: ignore[type-arg]
    """A participant's browser at its first trial page, and that page's configuration."""
    browser = Browser(timeout=30)
    resp = await browser.request(HOST, port, "GET", f"/t/{public_id}?PROLIFIC_PID=cost")
    location = urlsplit(resp.headers["location"]).path
    for _ in range(20):
        resp = await browser.request(HOST, port, "GET", location)
        if resp.status in (301, 302, 303):
            location = urlsplit(resp.headers["location"]).path
            continue
        match = TRIAL_CONFIG.search(resp.body)
        if match:
            return browser, json.loads(html.unescape(match.group(1).decode()))
        csrf = CSRF_FIELD.search(resp.body)
        form = f"consent=yes&csrf_token={csrf.group(1).decode() if csrf else ''}"
        resp = await browser.request(HOST, port, "POST", location,
                                     {"Content-Type": "application/x-www-form-urlencoded"},
                                     form.encode())
        location = urlsplit(resp.headers["location"]).path
    raise RuntimeError("the participant did not reach a trial page")


def measure(server: envmod.AppServer, public_id: str, seconds: float,
            clients: int) -> dict[str, float]:
    """Server CPU microseconds per request of each kind."""

    async def run() -> dict[str, float]:
        browser, config = await first_trial(server.port, public_id)
        media = config["stimuli"][0]["url"]
        first = await browser.request(HOST, server.port, "GET", media)
        etag = first.headers["etag"]
        await browser.close()
        kinds = (("healthz", "/healthz", {}, 200), ("media 200", media, {}, 200),
                 ("media 304", media, {"If-None-Match": etag}, 304))
        out = {}
        for name, path, headers, expect in kinds:
            await hammer(server.port, path, 1.0, clients, cookies=browser.cookies,
                         headers=headers, expect=expect)
            before = envmod.tree_cpu_seconds(server.proc.pid)
            n = await hammer(server.port, path, seconds, clients, cookies=browser.cookies,
                             headers=headers, expect=expect)
            used = envmod.tree_cpu_seconds(server.proc.pid) - before
            out[name] = 1e6 * used / n
            print(f"    {name:10s} {n / seconds:7.0f} requests/s, "
                  f"{out[name]:6.0f} us app CPU per request", flush=True)
        return out

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    work = envmod.workdir()
    try:
        instance, media = work / "instance", work / "media"
        secret = "cost-" + secrets.token_hex(16)
        db_url = f"sqlite:///{work / 'cost.sqlite'}"
        public_id = envmod.prepare_test(db_url, instance, media, work, 10, secret)
        results = {}
        for label, fast in (("fast paths", "true"), ("Flask only", "false")):
            server_env = {**envmod.server_env(db_url, instance, media, secret),
                          "MOSPLATFORM_FAST_PATHS": fast}
            server = envmod.AppServer(server_env, 4, 1, work / f"server-{fast}.log")
            server.start()
            print(f"{label} (FAST_PATHS={fast}), {args.clients} connections:", flush=True)
            try:
                results[label] = measure(server, public_id, args.seconds, args.clients)
            finally:
                server.stop()
            time.sleep(1)
        print("\nrequest     fast paths us (x anchor)   Flask only us (x anchor)   fast/Flask")
        for name in results["fast paths"]:
            f, s = results["fast paths"][name], results["Flask only"][name]
            fa, sa = results["fast paths"]["healthz"], results["Flask only"]["healthz"]
            print(f"{name:10s} {f:10.0f} ({f / fa:4.2f})          {s:10.0f} ({s / sa:4.2f})"
                  f"          {f / s:5.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
