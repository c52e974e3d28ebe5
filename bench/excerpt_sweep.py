"""Check automatic excerpt selection over many generated demo tracks.

    .venv/bin/python bench/excerpt_sweep.py [N_TRACKS] [SEED]

For each track, looks for 8 s and 10 s spans with all four sources active and counts
the fallbacks; also checks that no stem reaches full scale.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from mosplatform.audio.excerpt import find_active_span
from mosplatform.demodata import STEMS, render_demo_track


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    started = time.time()
    fallbacks = []
    for i in range(n):
        _name, audio, desc = render_demo_track([seed, 1, i], 20.0, 44100)
        sources = {s: audio[s].astype(np.float32) / 32768 for s in STEMS}
        for length in (8.0, 10.0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                span = find_active_span(sources, 44100, length)
            if span.fallback:
                fallbacks.append((i, length, desc.get("groove"), span.reason[:90]))
        assert max(np.abs(audio[s]).max() for s in audio) < 32767
    print(f"{n} tracks in {time.time() - started:.1f}s; fallbacks: {len(fallbacks)}")
    for f in fallbacks:
        print(f)


if __name__ == "__main__":
    main()
