"""Train the three loss variants (tiny Hybrid Demucs) on the demo data; SDR on held-out tracks.

For each variant: train on ``DATA/train`` (validation on held-out train tracks), render
stems of every ``DATA/test`` track with ``Separator`` into ``OUT/stems/<variant>/`` and
score them with the whole-signal SDR of ``separation.data.sdr`` (per source: median over
tracks; "all" = mean of the four source medians). Anchors measured in the same run on
the same tracks: the mixture used as every source's estimate (the issue's baseline),
silence (0 dB by definition) and the mixture divided by the number of sources.

Usage::

    python bench/train_variants.py --data bench/out/demo_data --out bench/out/variants \
        --epochs 6 --samples-per-epoch 48

If ``--data`` does not exist it is generated with ``mosplatform.demodata``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from separation.api import Separator, total_rtf
from separation.data import SOURCES, list_tracks, load_track, sdr
from separation.train import TrainConfig, train

VARIANTS = ["l1", "l1_stft", "l1_stft_adv"]


def score(estimates: dict[str, dict[str, np.ndarray]], refs: dict[str, torch.Tensor]) -> dict:
    """Per-source median SDR over tracks and their mean ("all")."""
    per_source: dict[str, list[float]] = {s: [] for s in SOURCES}
    for track, ref in refs.items():
        est = torch.from_numpy(np.stack([estimates[track][s].T for s in SOURCES]))
        n = min(est.shape[-1], ref.shape[-1])
        for s, value in zip(SOURCES, sdr(est[..., :n], ref[..., :n]).tolist(), strict=True):
            per_source[s].append(value)
    medians = {s: float(np.median(v)) for s, v in per_source.items()}
    return {"all": float(np.mean(list(medians.values()))), **medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="bench/out/demo_data")
    parser.add_argument("--out", default="bench/out/variants")
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--samples-per-epoch", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--segment", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--valid-seconds", type=float, default=10.0)
    parser.add_argument("--disc-channels", type=int, default=8)
    parser.add_argument("--disc-max-channels", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    data, out = Path(args.data), Path(args.out)
    if not (data / "train").is_dir():
        from mosplatform.demodata import generate_demo_dataset

        generate_demo_dataset(data, n_train=16, n_test=6, duration=20.0, seed=0)

    test_tracks = list_tracks(data, "test")
    refs, mixes = {}, {}
    for track in test_tracks:
        mix, ref = load_track(track, SOURCES, test_tracks[0].sample_rate, 2)
        refs[track.name], mixes[track.name] = ref, mix
    anchors = {
        "mixture": {t: {s: m.T.numpy() for s in SOURCES} for t, m in mixes.items()},
        "silence": {t: {s: np.zeros_like(m.T.numpy()) for s in SOURCES}
                    for t, m in mixes.items()},
        "mixture/4": {t: {s: m.T.numpy() / len(SOURCES) for s in SOURCES}
                      for t, m in mixes.items()},
    }
    results: dict[str, dict] = {name: {"sdr": score(est, refs)} for name, est in anchors.items()}
    base = results["mixture"]["sdr"]["all"]

    for variant in args.variants:
        config = TrainConfig(
            data=str(data), out=str(out / "runs" / variant), variant=variant,
            preset=args.preset, epochs=args.epochs, batch_size=args.batch_size,
            segment=args.segment, samples_per_epoch=args.samples_per_epoch, lr=args.lr,
            valid_seconds=args.valid_seconds, disc_channels=args.disc_channels,
            disc_max_channels=args.disc_max_channels, threads=args.threads,
            device=args.device, seed=args.seed, progress=False)
        t0 = time.perf_counter()
        summary = train(config)
        train_s = time.perf_counter() - t0
        sep = Separator(summary["best"], device=args.device, progress=False)
        rendered = sep.separate_folder(data / "test", out / "stems" / variant)
        estimates = {r.name: r.stems for r in rendered}
        results[variant] = {
            "sdr": score(estimates, refs), "train_seconds": round(train_s, 1),
            "best_valid_sdr": summary["best_valid_sdr"], "separate_rtf": total_rtf(rendered),
            "history": summary["history"],
        }
        print(f"{variant}: trained {train_s:.0f} s, test SDR {results[variant]['sdr']['all']:.2f}"
              f" dB", flush=True)

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "results": results},
                                                 indent=1))
    print(f"\nheld-out tracks: {len(refs)} ({data / 'test'}); whole-signal SDR in dB, "
          "median over tracks per source, 'all' = mean of the source medians")
    header = f"{'estimate':<14}" + "".join(f"{k:>9}" for k in ["all", *SOURCES])
    print(header + f"{'vs mixture':>12}{'train s':>9}")
    for name, res in results.items():
        row = res["sdr"]
        line = f"{name:<14}" + "".join(f"{row[k]:>9.2f}" for k in ["all", *SOURCES])
        line += f"{row['all'] - base:>+12.2f}"
        line += f"{res.get('train_seconds', ''):>9}"
        print(line)


if __name__ == "__main__":
    main()
