"""Time the demo-data generator and the audio preparation steps.

    .venv/bin/python bench/audio_prep.py [OUT_DIR]

Anchor: the real time of the rendered audio (8 train + 4 test tracks of 20 s = 240 s);
the generator's speed is printed as a multiple of it, per core.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from mosplatform.audio import low_anchor_3k5, read_audio, store_audio
from mosplatform.demodata import generate_demo_dataset


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "demo"
    t0, c0 = time.perf_counter(), time.process_time()
    root = generate_demo_dataset(out, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"demo set: wall {wall:.2f} s, cpu {cpu:.2f} s, {240 / cpu:.1f}x real time per core")
    t0 = time.perf_counter()
    generate_demo_dataset(out, progress=False)
    print(f"second call (manifest check): {1000 * (time.perf_counter() - t0):.2f} ms")
    x, sr = read_audio(next(root.glob("test/*/mixture.wav")))
    c0 = time.process_time()
    y = low_anchor_3k5(x, sr)
    c = time.process_time() - c0
    print(f"low_anchor_3k5 on 20 s stereo: cpu {1000 * c:.0f} ms ({20 / c:.0f}x real time)")
    c0 = time.process_time()
    store_audio(y * 0.5, sr, str(out) + "_media")
    print(f"store_audio 20 s stereo PCM_16: cpu {1000 * (time.process_time() - c0):.0f} ms")


if __name__ == "__main__":
    main()
