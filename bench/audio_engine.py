"""Offline render speed of the AudioWorklet engine in headless Chromium.

Renders N stereo stimuli of S seconds through the engine's worklet while it
switches stimulus every 250 ms (each switch a 5 ms fade-out + 5 ms fade-in),
and, as the anchor measured in the same run, the same length through a plain
AudioBufferSourceNode -> GainNode graph. Prints the median wall times, the ratio
worklet / anchor, and the worklet's real-time factor (audio seconds per wall
second; realtime playback needs > 1 with a wide margin).

    .venv/bin/python bench/audio_engine.py [--stimuli 12] [--seconds 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


class Handler(SimpleHTTPRequestHandler):
    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith("/static/"):
            return str(ROOT / "static" / path[len("/static/") :])
        if path.startswith("/harness/"):
            return str(ROOT / "tests" / "browser" / "harness" / path[len("/harness/") :])
        return str(ROOT / "__none__")

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stimuli", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sample-rate", type=int, default=48000)
    ap.add_argument("--repeats", type=int, default=5)
    opts = ap.parse_args()

    from playwright.sync_api import sync_playwright

    Handler.extensions_map = {**Handler.extensions_map, ".js": "text/javascript"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/harness/engine.html")
            page.wait_for_function("() => !!(window.harness && window.harness.benchRender)")
            times: dict[str, list[float]] = {"worklet": [], "anchor": []}
            for _ in range(opts.repeats):  # interleaved so drift hits both alike
                for mode in ("anchor", "worklet"):
                    ms = page.evaluate(
                        "(o) => window.harness.benchRender(o)",
                        {
                            "n": opts.stimuli,
                            "seconds": opts.seconds,
                            "sampleRate": opts.sample_rate,
                            "switchEvery": 0.25,
                            "mode": mode,
                        },
                    )
                    times[mode].append(ms)
            browser.close()
    finally:
        server.shutdown()
    w = statistics.median(times["worklet"])
    a = statistics.median(times["anchor"])
    print(
        f"{opts.stimuli} stereo stimuli x {opts.seconds:g} s at {opts.sample_rate} Hz, "
        f"switch every 250 ms, {opts.repeats} repeats (median)"
    )
    print(f"anchor  (AudioBufferSourceNode): {a:8.1f} ms")
    print(f"worklet (mos-player)           : {w:8.1f} ms")
    print(f"ratio worklet / anchor         : {w / a:8.2f}")
    print(f"worklet real-time factor       : {opts.seconds / (w / 1000):8.1f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
