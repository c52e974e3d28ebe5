"""CPU real-time factor of chunked Hybrid Demucs inference, ``tiny`` and ``light`` presets.

RTF = wall-clock seconds of ``apply_model`` (overlap-add, overlap 0.25, the preset's
training segment as chunk) / seconds of audio. Weights are random: the cost does not
depend on them. The anchor measured in the same run is the ``tiny`` preset; other
presets are reported as a ratio to it. Best of ``--repeats`` runs.

Usage::

    python bench/separation_rtf.py --seconds 30 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from separation.apply import apply_model
from separation.registry import build_model


def measure(preset: str, seconds: float, repeats: int, segment: float | None) -> dict:
    torch.manual_seed(0)
    model = build_model("hdemucs", preset=preset).eval()
    sr = model.sample_rate
    mix = 0.1 * torch.randn(2, int(seconds * sr))
    chunk = int((segment or model.segment) * sr)
    apply_model(model, mix[:, :chunk], segment=chunk)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        apply_model(model, mix, segment=chunk, overlap=0.25)
        best = min(best, time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    return {"preset": preset, "params_m": params / 1e6, "chunk_s": chunk / sr,
            "seconds": best, "rtf": best / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="audio length (44.1 kHz)")
    parser.add_argument("--presets", nargs="+", default=["tiny", "light"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--segment", type=float, default=None,
                        help="chunk seconds (default: each preset's training segment)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(p, args.seconds, args.repeats, args.segment) for p in args.presets]
    anchor = rows[0]["rtf"]
    print(f"CPU, {args.threads} thread(s), {args.seconds:.0f} s stereo 44.1 kHz, "
          f"anchor = {rows[0]['preset']}")
    print(f"{'preset':<8}{'params M':>10}{'chunk s':>9}{'wall s':>9}{'RTF':>8}{'x anchor':>10}")
    for r in rows:
        print(f"{r['preset']:<8}{r['params_m']:>10.2f}{r['chunk_s']:>9.1f}{r['seconds']:>9.2f}"
              f"{r['rtf']:>8.3f}{r['rtf'] / anchor:>10.2f}")


if __name__ == "__main__":
    main()
