"""SDR of the U-Net mask, the query-based separator and TAGBOX steering on held-out demo tracks.

Trains the small presets on the demo data on the CPU (cached: an existing checkpoint in
``--out`` is reused unless ``--retrain``), separates the demo ``test`` tracks and reports
SDR beside the anchor of the same run, the mixture as estimate.  Everything is mono at
16 kHz (the systems' rate).  SDR is BSS Eval v4 (1 s windows and hop, median over frames
per track, median over tracks) from :mod:`mosplatform.metrics.bsseval`; whole-signal SDR
is given too.

Usage::

    python bench/systems_sdr.py --out bench/out/systems
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mosplatform.metrics.bsseval import bss_eval_v4
from separation.checkpoint import load_checkpoint, model_from_checkpoint
from separation.systems.common import SAMPLE_RATE, load_mono_tracks, whole_sdr
from separation.systems.query_train import (
    CLASSES,
    QueryTrainConfig,
    evaluate_query,
    load_queries,
    summarise,
    train_query,
)
from separation.systems.speech import espeak_available, generate_speech_dataset
from separation.systems.tagbox_steer import TagboxTrainConfig, steer_long, train_tagbox
from separation.systems.unet_train import TASKS, UNetTrainConfig, train_unet


def v4_median(target: np.ndarray, estimate: np.ndarray, mixture: np.ndarray,
              other_estimate: np.ndarray | None = None) -> float:
    """Median over 1 s frames of BSS Eval v4 SDR of ``target``.

    The problem is posed as two sources, ``target`` and ``mixture - target``, estimated
    by ``estimate`` and ``other_estimate`` (default ``mixture - estimate``).  Only the
    target's SDR is returned (v4 SDR of one source does not depend on the other
    estimate, which museval nevertheless requires to be non-silent).
    """
    other = mixture - estimate if other_estimate is None else other_estimate
    if not np.any(estimate) or not np.any(other):
        return float("nan")
    refs = np.stack([target, mixture - target])[:, :, None]
    ests = np.stack([estimate, other])[:, :, None]
    sdr = bss_eval_v4(refs, ests, window=SAMPLE_RATE, hop=SAMPLE_RATE).sdr[0]
    return float(np.nanmedian(sdr))


def score(target: np.ndarray, estimate: np.ndarray, mixture: np.ndarray) -> dict[str, float]:
    """v4 and whole-signal SDR of ``estimate`` and of the mixture baseline."""
    return {"v4": v4_median(target, estimate, mixture),
            "v4_mixture": v4_median(target, mixture, mixture, other_estimate=mixture),
            "whole": whole_sdr(estimate, target), "whole_mixture": whole_sdr(mixture, target)}


def aggregate(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """Median over tracks of every metric, per group of ``keys``."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, items in groups.items():
        row = dict(zip(keys, key, strict=True))
        row["n"] = len(items)
        for m in ("v4", "v4_mixture", "whole", "whole_mixture"):
            row[m] = float(np.nanmedian([i[m] for i in items]))
        row["v4_improvement"] = row["v4"] - row["v4_mixture"]
        out.append(row)
    return out


def run_unet(data: Path, out: Path, task: str, steps: int, retrain: bool) -> tuple[list, float]:
    """Train (unless cached) and score the U-Net of one task; returns rows, train seconds."""
    ckpt = out / f"unet_{task}" / "unet.pt"
    seconds = 0.0
    if retrain or not ckpt.exists():
        t0 = time.perf_counter()
        train_unet(UNetTrainConfig(data=str(data), out=str(ckpt.parent), task=task,
                                   steps=steps, progress=False))
        seconds = time.perf_counter() - t0
    model = model_from_checkpoint(ckpt)
    spec = TASKS[task]
    rows = []
    for track in load_mono_tracks(data, "test", spec["stems"]):
        mix = track.stems["mixture"]
        with torch.no_grad():
            est = model.separate(torch.from_numpy(mix)[None])[0].numpy()
        target = track.stems[spec["target"]]
        for name, e, ref in zip(spec["sources"], est, [target, mix - target], strict=True):
            rows.append({"system": f"unet ({task})", "source": name, "track": track.name,
                         **score(ref, e, mix)})
    return rows, seconds


def run_query(data: Path, out: Path, holdout: str, sed_steps: int, sep_steps: int,
              retrain: bool) -> tuple[list, float, list]:
    """Train (unless cached) and score the query-based system, seen and unseen classes."""
    ckpt = out / "query" / "query.pt"
    seconds = 0.0
    if retrain or not ckpt.exists():
        t0 = time.perf_counter()
        train_query(QueryTrainConfig(data=str(data), out=str(ckpt.parent), holdout=holdout,
                                     sed_steps=sed_steps, sep_steps=sep_steps, progress=False))
        seconds = time.perf_counter() - t0
    package = load_checkpoint(ckpt)
    system = model_from_checkpoint(package)
    queries = load_queries(package["meta"])
    tracks = load_mono_tracks(data, "test", CLASSES)
    rows = []
    for track in tracks:
        mix = track.stems["mixture"]
        for label, query in queries.items():
            with torch.no_grad():
                est = system.separate(torch.from_numpy(mix)[None], query)[0, 0].numpy()
            seen = "seen" if label != holdout else "unseen (zero-shot)"
            rows.append({"system": f"query, {seen}", "source": label, "track": track.name,
                         **score(track.stems[label], est, mix)})
            if holdout in queries and label != holdout:
                # Control: another class's query, scored against the held-out class.
                rows.append({"system": "query, control: other classes' queries",
                             "source": holdout, "track": track.name,
                             **score(track.stems[holdout], est, mix)})
    pairs = summarise(evaluate_query(system, queries, tracks, holdout))
    return rows, seconds, pairs


def run_tagbox(data: Path, out: Path, ae_steps: int, tagger_steps: int, targets: list[str],
               steer_steps: int, steer_lr: float, offset: float, seconds_eval: float,
               retrain: bool) -> tuple[list, float]:
    """Train (unless cached) autoencoder and tagger, then score steering on excerpts."""
    ckpt = out / "tagbox" / "tagbox.pt"
    seconds = 0.0
    if retrain or not ckpt.exists():
        t0 = time.perf_counter()
        train_tagbox(TagboxTrainConfig(data=str(data), out=str(ckpt.parent), ae_steps=ae_steps,
                                       tagger_steps=tagger_steps, progress=False))
        seconds = time.perf_counter() - t0
    system = model_from_checkpoint(ckpt)
    rows = []
    a, b = int(offset * SAMPLE_RATE), int((offset + seconds_eval) * SAMPLE_RATE)
    for track in load_mono_tracks(data, "test", CLASSES):
        mix = track.stems["mixture"][a:b]
        for tag in targets:
            est, _, finals = steer_long(system, mix, [tag], steer_steps, steer_lr)
            rows.append({"system": "tagbox", "source": tag, "track": track.name,
                         "tagger_bce": float(np.mean(finals)),
                         **score(track.stems[tag][a:b], est, mix)})
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="bench/out/systems_demo",
                        help="demo data root (generated when missing)")
    parser.add_argument("--out", default="bench/out/systems")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--unet-steps", type=int, default=500)
    parser.add_argument("--speech-steps", type=int, default=300)
    parser.add_argument("--sed-steps", type=int, default=150)
    parser.add_argument("--query-steps", type=int, default=500)
    parser.add_argument("--holdout", default="bass")
    parser.add_argument("--ae-steps", type=int, default=500)
    parser.add_argument("--tagger-steps", type=int, default=300)
    parser.add_argument("--steer-steps", type=int, default=40)
    parser.add_argument("--steer-lr", type=float, default=0.2)
    parser.add_argument("--tagbox-targets", default="drums,bass,vocals")
    parser.add_argument("--tagbox-offset", type=float, default=5.0)
    parser.add_argument("--tagbox-seconds", type=float, default=10.0)
    parser.add_argument("--only", default="unet,speech,query,tagbox")
    args = parser.parse_args()
    # One thread: on a shared, oversubscribed CPU, OpenMP threads mostly spin and wait.
    torch.set_num_threads(1)
    data, out = Path(args.data), Path(args.out)
    if not (data / "test").is_dir():
        from mosplatform.demodata import generate_demo_dataset

        generate_demo_dataset(data, n_train=8, n_test=4, duration=20.0, seed=0, progress=False)
    only = set(args.only.split(","))
    rows: list[dict] = []
    train_seconds: dict[str, float] = {}
    extra: dict = {}
    t_all = time.perf_counter()
    if "unet" in only:
        r, train_seconds["unet (vocals)"] = run_unet(data, out, "vocals", args.unet_steps,
                                                     args.retrain)
        rows += r
    if "speech" in only and espeak_available():
        speech_root = out / "speech_data"
        if not (speech_root / "speech.json").exists():
            generate_speech_dataset(data, speech_root)
        r, train_seconds["unet (speech)"] = run_unet(speech_root, out, "speech",
                                                     args.speech_steps, args.retrain)
        rows += r
    if "query" in only:
        r, train_seconds["query"], extra["query_eval"] = run_query(
            data, out, args.holdout, args.sed_steps, args.query_steps, args.retrain)
        rows += r
    if "tagbox" in only:
        r, train_seconds["tagbox"] = run_tagbox(
            data, out, args.ae_steps, args.tagger_steps, args.tagbox_targets.split(","),
            args.steer_steps, args.steer_lr, args.tagbox_offset, args.tagbox_seconds,
            args.retrain)
        rows += r
    table = aggregate(rows, ("system", "source"))
    result = {"table": table, "rows": rows, "train_seconds": train_seconds,
              "total_seconds": time.perf_counter() - t_all, **extra}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results_{'_'.join(sorted(only))}.json").write_text(json.dumps(result, indent=1))
    print("| system | source | tracks | SDR v4 (dB) | mixture v4 (dB) | improvement (dB) "
          "| whole SDR | whole mixture |")
    print("|---|---|---|---|---|---|---|---|")
    for row in table:
        print(f"| {row['system']} | {row['source']} | {row['n']} | {row['v4']:.2f} | "
              f"{row['v4_mixture']:.2f} | {row['v4_improvement']:+.2f} | {row['whole']:.2f} | "
              f"{row['whole_mixture']:.2f} |")
    if "query_eval" in extra:
        print("\nquery, whole-signal SDRi by condition (track = full mix, pair = two clips):")
        for row in extra["query_eval"]:
            print(f"  {row['condition']:5s} {row['class']:7s} seen={row['seen']!s:5s} "
                  f"SDR {row['sdr']:6.2f}  mixture {row['sdr_mixture']:6.2f}  "
                  f"SDRi {row['sdri']:+.2f}")
    print(f"\ntraining seconds: {json.dumps({k: round(v, 1) for k, v in train_seconds.items()})}")
    print(f"total seconds: {result['total_seconds']:.0f}")


if __name__ == "__main__":
    main()
