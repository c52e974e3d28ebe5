"""Participant simulator: walks the real HTTP journey of a listening test.

Each of ``slots`` concurrent simulated browsers opens the test link, consents, passes
the instructions (and calibration), and for every trial loads the page, fetches every
stimulus, "listens" (sleeps), and posts the ratings as the page does (with its events
and its "shown" stamp) with an Idempotency-Key, retrying on connection errors and 5xx
with the same key and failing over to another app server. When a journey is done the slot starts a new participant,
until the deadline. Every ratings answer with a 2xx is written to a :class:`Ledger`,
which the database check compares with what was stored.
"""

from __future__ import annotations

import asyncio
import html
import json
import random
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from client import Browser, HttpError, Response

TRIAL_CONFIG = re.compile(
    rb'<script type="application/json" id="trial-config">(.*?)</script>', re.S)
CSRF_FIELD = re.compile(rb'name="csrf_token" value="([^"]+)"')


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


class Stats:
    """Latency samples per endpoint: (end time, seconds, status)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
        self.failures: dict[str, int] = defaultdict(int)

    def record(self, endpoint: str, start: float, end: float, status: int) -> None:
        self.samples[endpoint].append((end, end - start, status))

    def failure(self, endpoint: str) -> None:
        self.failures[endpoint] += 1

    def summary(self, window: tuple[float, float]) -> dict[str, dict[str, float]]:
        """Per endpoint: count, ok count, rate over ``window`` (start, end), percentiles (ms)."""
        t0, t1 = window
        span = max(t1 - t0, 1e-9)
        out = {}
        for name, rows in sorted(self.samples.items()):
            if not rows:
                continue
            lat = [r[1] for r in rows]
            ok = sum(1 for r in rows if 200 <= r[2] < 400)
            inside = sum(1 for r in rows if t0 <= r[0] <= t1 and 200 <= r[2] < 400)
            out[name] = {
                "count": len(rows), "ok": ok, "errors": len(rows) - ok,
                "conn_failures": self.failures.get(name, 0),
                "rate_per_s": inside / span,
                "p50_ms": percentile(lat, 50) * 1e3, "p95_ms": percentile(lat, 95) * 1e3,
                "p99_ms": percentile(lat, 99) * 1e3, "max_ms": max(lat, default=0.0) * 1e3,
            }
        return out

    def per_second(self, endpoint: str, window: tuple[float, float]) -> list[int]:
        """2xx answers of ``endpoint`` in each whole second of ``window``."""
        t0, t1 = window
        bins = [0] * max(1, int(t1 - t0))
        for end, _, status in self.samples.get(endpoint, []):
            k = int(end - t0)
            if 0 <= k < len(bins) and 200 <= status < 300:
                bins[k] += 1
        return bins


@dataclass
class Ledger:
    """What the server acknowledged, to compare with the database afterwards."""

    # (participant token, trial position 0-based) -> {(stimulus position, question): score}
    acked: dict[tuple[str, int], dict[tuple[int, str], float]] = field(default_factory=dict)
    # Unexpected answers: (what, status, body excerpt)
    anomalies: list[tuple[str, int, str]] = field(default_factory=list)
    # Expected refusals seen by hostile clients (409 etc.), by kind.
    refusals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    participants_started: int = 0
    participants_finished: int = 0
    gave_up: int = 0

    def ack(self, token: str, position: int, answers: dict[tuple[int, str], float]) -> None:
        prior = self.acked.get((token, position))
        if prior is not None and prior != answers:
            self.anomalies.append(("two different answers acknowledged", 200,
                                   f"{token[:8]} trial {position}"))
        self.acked.setdefault((token, position), answers)


@dataclass
class SimConfig:
    servers: list[tuple[str, int]]
    public_id: str
    duration: float  # seconds of measurement once every slot has reached a trial
    think_s: float = 1.2  # mean "listening" time per trial
    # Paced mode: offer this many rating submissions per second in all (None: think
    # ``think_s`` per trial however long the requests took). Each participant then
    # answers a trial a mean of ``slots / rate`` seconds after the previous answer
    # (from 0.5 to 1.5 times that, at random); the time its requests took counts
    # towards it, so slow answers do not lower the load offered until a participant
    # has no listening time left.
    rate: float | None = None
    hostile_share: float = 0.0  # share of participants that misbehave (scenario 5)
    max_attempts: int = 30  # per request, with backoff, across servers
    max_request_s: float = 120.0  # a logical request (with its retries) gives up after this
    run_tag: str = "load"
    ramp_s: float = 10.0  # participants arrive spread over this many seconds


class GiveUp(Exception):
    """A request kept failing on every server until the attempts ran out."""


def _endpoint(method: str, path: str) -> str:
    parts = path.split("?")[0].strip("/").split("/")
    if parts[0] == "t":
        return "GET /t/<id>"
    if parts[0] == "media":
        return "GET /media/<token>"
    if parts[0] == "api":
        return f"POST /api/p/<token>/{'ratings' if parts[-1] == 'ratings' else 'events'}"
    if parts[0] == "p":
        stage = parts[2] if len(parts) > 2 else ""
        if stage == "trial":
            return f"{method} /p/<token>/trial/<n>"
        return f"{method} /p/<token>/{stage}"
    return f"{method} {path}"


class Simulator:
    def __init__(self, cfg: SimConfig, stats: Stats, ledger: Ledger, seed: int = 0) -> None:
        self.cfg = cfg
        self.stats = stats
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.pending_after_close: list[tuple[Browser, int, dict[str, Any]]] = []
        # Arrival phase, then measurement: the clock starts once every slot's first
        # participant has reached a trial page (or after ``max_arrival_s``). Nobody waits
        # for it: participants who arrived early are mid-journey by then, so journeys
        # (and the arrivals that replace finished participants) stay spread out as the
        # ramp spread them, instead of starting together in one wave.
        self.deadline = float("inf")
        self.measure_start: float | None = None
        self.started = asyncio.Event()
        self._arrived: set[int] = set()
        self.slots = 0
        self.max_arrival_s = 120.0

    def _start_measuring(self) -> None:
        if not self.started.is_set():
            # time.monotonic(), the clock of the request stats (an event loop's own
            # clock need not be: uvloop's counts in whole milliseconds).
            now = time.monotonic()
            self.measure_start = now
            self.deadline = now + self.cfg.duration
            self.started.set()

    def _arrive(self, slot: int) -> None:
        """Note that ``slot``'s participant reached a trial; start measuring at the last."""
        self._arrived.add(slot)
        if len(self._arrived) >= self.slots:
            self._start_measuring()

    async def run_all(self, slots: int) -> None:
        self.slots = slots
        timer = asyncio.get_running_loop().call_later(self.max_arrival_s,
                                                      self._start_measuring)
        try:
            await asyncio.gather(*(self.run_slot(i) for i in range(slots)))
        finally:
            timer.cancel()

    async def call(self, browser: Browser, server_ix: list[int], method: str, path: str,
                   headers: dict[str, str] | None = None, body: bytes | None = None,
                   retry_statuses: tuple[int, ...] = (500, 502, 503, 504)) -> Response:
        """One logical request: retried with backoff, failing over between servers."""
        name = _endpoint(method, path)
        delay = 0.05
        give_up_at = time.monotonic() + self.cfg.max_request_s
        for _attempt in range(self.cfg.max_attempts):
            if time.monotonic() > give_up_at:
                break
            host, port = self.cfg.servers[server_ix[0] % len(self.cfg.servers)]
            start = time.monotonic()
            try:
                resp = await browser.request(host, port, method, path, headers, body)
            except HttpError:
                self.stats.failure(name)
                server_ix[0] += 1  # fail over to the next app server
                await asyncio.sleep(delay + self.rng.random() * delay)
                delay = min(delay * 2, 2.0)
                continue
            self.stats.record(name, start, time.monotonic(), resp.status)
            if resp.status in retry_statuses:
                server_ix[0] += 1
                await asyncio.sleep(delay + self.rng.random() * delay)
                delay = min(delay * 2, 2.0)
                continue
            return resp
        raise GiveUp(f"{method} {path}")

    async def run_slot(self, slot: int) -> None:
        """Run participants one after the other until the deadline."""
        await asyncio.sleep(self.rng.random() * self.cfg.ramp_s)  # spread arrivals
        n = 0
        while time.monotonic() < self.deadline:
            browser = Browser()
            hostile = self.rng.random() < self.cfg.hostile_share
            try:
                await self.participant(browser, f"{self.cfg.run_tag}-{slot}-{n}", slot, hostile)
            except GiveUp as exc:
                self.ledger.gave_up += 1
                self.ledger.anomalies.append(("gave up", 0, str(exc)[:120]))
            except Exception as exc:  # noqa: BLE001 - a client bug must not stop the run
                self.ledger.anomalies.append(("client error", 0, repr(exc)[:160]))
            finally:
                if not any(b is browser for b, _, _ in self.pending_after_close):
                    await browser.close()
            n += 1

    async def participant(self, browser: Browser, external_id: str, slot: int,
                          hostile: bool) -> None:
        server_ix = [slot]
        resp = await self.call(browser, server_ix, "GET",
                               f"/t/{self.cfg.public_id}?PROLIFIC_PID={external_id}")
        if resp.status != 302:
            self.ledger.anomalies.append(("link", resp.status, resp.text[:120]))
            return
        self.ledger.participants_started += 1
        location = urlsplit(resp.headers["location"]).path
        token = location.strip("/").split("/")[1]
        for _step in range(200):
            resp = await self.call(browser, server_ix, "GET", location)
            if resp.status in (301, 302, 303):
                location = urlsplit(resp.headers["location"]).path
                continue
            if resp.status != 200:
                self.ledger.anomalies.append((location, resp.status, resp.text[:120]))
                return
            if location.endswith("/done"):
                self.ledger.participants_finished += 1
                return
            match = TRIAL_CONFIG.search(resp.body)
            if match:
                if not self.started.is_set():
                    self._arrive(slot)
                if time.monotonic() > self.deadline:
                    return  # stop between trials at the end of the run
                config = json.loads(html.unescape(match.group(1).decode()))
                strings = config.get("strings")
                while True:
                    location, config = await self.trial(browser, server_ix, token, config,
                                                        hostile)
                    if location is None:
                        return
                    if config is None:
                        break  # load the next page (the rest of the journey)
                    # The answer brought the next trial: shown in place, as the page does.
                    config["strings"] = strings
                    if time.monotonic() > self.deadline:
                        return
                continue
            csrf = CSRF_FIELD.search(resp.body)
            form = f"consent=yes&csrf_token={csrf.group(1).decode() if csrf else ''}"
            resp = await self.call(browser, server_ix, "POST", location,
                                   {"Content-Type": "application/x-www-form-urlencoded"},
                                   form.encode())
            if resp.status not in (302, 303):
                self.ledger.anomalies.append(("POST " + location, resp.status, resp.text[:120]))
                return
            location = urlsplit(resp.headers["location"]).path

    async def trial(self, browser: Browser, server_ix: list[int], token: str,
                    config: dict[str, Any], hostile: bool
                    ) -> tuple[str | None, dict[str, Any] | None]:
        """Answer one trial; returns the next page's path (None: stop) and the next
        trial's config when the answer brought it."""
        began = time.monotonic()
        urls = [s["url"] for s in config["stimuli"]]
        if config.get("reference"):
            urls.append(config["reference"]["url"])
        etags = []
        for url in urls:
            resp = await self.call(browser, server_ix, "GET", url)
            if resp.status != 200 or int(resp.headers.get("content-length", -1)) != len(
                    resp.body):
                self.ledger.anomalies.append(("media", resp.status, url))
            etags.append(resp.headers.get("etag"))
        if etags and etags[0] and self.rng.random() < 0.1:  # a revalidation, as on reload
            resp = await self.call(browser, server_ix, "GET", urls[0],
                                   {"If-None-Match": etags[0]})
            if resp.status != 304:
                self.ledger.anomalies.append(("media revalidation", resp.status, urls[0]))
        await asyncio.sleep(self.listening_s(began))
        csrf = config["csrf_token"]
        json_headers = {"Content-Type": "application/json", "X-CSRFToken": csrf}
        now = int(time.time() * 1000)
        events = [{"kind": "page_load", "stimulus": None, "trial": config["trial"], "t_ms": now}]
        for i in range(len(config["stimuli"])):
            events += [{"kind": "play", "stimulus": i, "trial": config["trial"], "t_ms": now + i,
                        "position_s": 0.0},
                       {"kind": "heard", "stimulus": i, "trial": config["trial"],
                        "t_ms": now + i + 500}]

        answers = {}
        ratings = []
        for q in config["questions"]:
            scale = q["scale"]
            for i in range(len(config["stimuli"])):
                if scale["type"] == "categorical":
                    score = self.rng.choice([c["score"] for c in scale["categories"]])
                else:
                    score = float(self.rng.randint(int(scale["min"]), int(scale["max"])))
                ratings.append({"stimulus": i, "question": q["key"], "score": score})
                answers[(i, q["key"])] = float(score)
        # As the page does: its pending events ride along with the answer.
        listening = [{"stimulus": i, "heard_s": 1.0, "plays": 1} for i in range(len(urls))]
        body = json.dumps({"ratings": ratings, "events": events, "shown": config.get("shown"),
                           "listening": listening}).encode()
        position = config["trial"]
        key = str(uuid.uuid4())
        headers = {**json_headers, "Idempotency-Key": key}

        if hostile:
            await self.misbehave_before(browser, server_ix, config, json_headers, ratings)
        if hostile and self.rng.random() < 0.5:
            # Two identical submissions at once (double click, or a retry racing the first).
            tab = browser.fork()
            both = await asyncio.gather(
                self.call(browser, server_ix, "POST", config["submit_url"], headers, body),
                self.call(tab, [server_ix[0] + 1], "POST", config["submit_url"], headers,
                          body))
            await tab.close()
            resp = both[0]
            for r in both:
                if r.status == 200:
                    self.ledger.ack(token, position, answers)
                else:
                    self.ledger.anomalies.append(("double submit", r.status, r.text[:120]))
        else:
            resp = await self.call(browser, server_ix, "POST", config["submit_url"], headers,
                                   body)
            if resp.status == 200:
                self.ledger.ack(token, position, answers)
        if resp.status != 200:
            self.ledger.anomalies.append(("ratings", resp.status, resp.text[:160]))
            return None, None
        if hostile:
            await self.misbehave_after(browser, server_ix, config, json_headers, ratings, body)
        answer = resp.json()
        next_url = answer.get("next_url") or f"/p/{token}/"
        if hostile and position == 1 and len(self.pending_after_close) < 20:
            # Leave the rest unanswered, to submit the next trial after the test is closed.
            self.pending_after_close.append((browser, server_ix[0], config))
            return None, None
        return urlsplit(next_url).path, answer.get("next_config")

    def listening_s(self, began: float) -> float:
        """How long to "listen" before answering a trial whose page came at ``began``."""
        jitter = 0.5 + self.rng.random()
        if self.cfg.rate is None:
            return self.cfg.think_s * jitter
        interval = max(self.slots, 1) / self.cfg.rate * jitter
        return max(0.0, began + interval - time.monotonic())

    async def misbehave_before(self, browser: Browser, server_ix: list[int],
                               config: dict[str, Any], headers: dict[str, str],
                               ratings: list[dict[str, Any]]) -> None:
        """Out of order: answer the next trial before this one (must be refused)."""
        if config["trial"] + 1 >= config["total"]:
            return
        later = config["submit_url"].replace(f"/trial/{config['trial'] + 1}/",
                                             f"/trial/{config['trial'] + 2}/")
        resp = await self.call(browser, server_ix, "POST", later,
                               {**headers, "Idempotency-Key": str(uuid.uuid4())},
                               json.dumps({"ratings": ratings}).encode())
        if resp.status == 409:
            self.ledger.refusals["out of order -> 409"] += 1
        else:
            self.ledger.anomalies.append(("out of order", resp.status, resp.text[:120]))

    async def misbehave_after(self, browser: Browser, server_ix: list[int],
                              config: dict[str, Any], headers: dict[str, str],
                              ratings: list[dict[str, Any]], body: bytes) -> None:
        """Submit again: same answers with a new key (replayed), then changed (409)."""
        resp = await self.call(browser, server_ix, "POST", config["submit_url"],
                               {**headers, "Idempotency-Key": str(uuid.uuid4())}, body)
        if resp.status == 200 and resp.json().get("replayed"):
            self.ledger.refusals["same answers again -> 200 replayed"] += 1
        else:
            self.ledger.anomalies.append(("resubmit same", resp.status, resp.text[:120]))
        changed = [dict(r) for r in ratings]
        changed[0]["score"] = next(
            c["score"] for q in config["questions"] if q["key"] == changed[0]["question"]
            for c in q["scale"]["categories"] if c["score"] != changed[0]["score"])
        resp = await self.call(browser, server_ix, "POST", config["submit_url"],
                               {**headers, "Idempotency-Key": str(uuid.uuid4())},
                               json.dumps({"ratings": changed}).encode())
        if resp.status == 409:
            self.ledger.refusals["changed answers -> 409"] += 1
        else:
            self.ledger.anomalies.append(("resubmit changed", resp.status, resp.text[:120]))

    async def submit_after_close(self) -> None:
        """Submit the trials kept open once the test is closed: each must get 409."""
        for browser, server, config in self.pending_after_close:
            ratings = [{"stimulus": i, "question": q["key"],
                        "score": q["scale"]["categories"][0]["score"]}
                       for q in config["questions"] for i in range(len(config["stimuli"]))]
            # The kept config is of the trial just answered; the open one is the next.
            url = config["submit_url"].replace(f"/trial/{config['trial'] + 1}/",
                                               f"/trial/{config['trial'] + 2}/")
            resp = await self.call(browser, [server], "POST", url,
                                   {"Content-Type": "application/json",
                                    "X-CSRFToken": config["csrf_token"],
                                    "Idempotency-Key": str(uuid.uuid4())},
                                   json.dumps({"ratings": ratings}).encode())
            if resp.status == 409 and "closed" in resp.text:
                self.ledger.refusals["after close -> 409"] += 1
            else:
                self.ledger.anomalies.append(("after close", resp.status, resp.text[:120]))
            await browser.close()
