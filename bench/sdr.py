"""Time mosplatform's BSS Eval against museval and fast_bss_eval in the same run.

Every measurement runs in its own subprocess (so peak memory is that of one
implementation), on the same seeded 4-source stereo 44.1 kHz signals, with the BLAS
and FFT libraries held to ``--threads`` threads (default 1: museval runs on one core,
and the machine is shared). museval and fast_bss_eval are imported only in the
benchmark environment (``--bench-python``, default ``.venv-bench/bin/python``;
``import museval`` needs an ``ffmpeg`` binary); mosplatform runs in the current one.

    .venv/bin/python bench/sdr.py                       # 30 s and 180 s
    .venv/bin/python bench/sdr.py --lengths 10 --out bench/results/sdr.md

With ``--repeat N`` each mosplatform implementation runs N times and the run with
the median wall time is reported (peak memory: the largest of the N). Ratios are
museval's time over the other's, for wall-clock and for CPU time (CPU time
is the steadier figure on a loaded machine). ``mosplatform_2threads`` runs
``bss_eval_v4(..., workers=2)``: two threads of its own (BLAS still held to
``--threads``), so only its wall-clock ratio compares like with like; its CPU time
counts both threads. ``peak`` is the subprocess's peak RSS
during the evaluation (the mark is reset once the inputs exist, through
``/proc/self/clear_refs``), ``extra`` the peak minus the RSS before the evaluation
(the inputs alone are 4 x 2 x 8 bytes per sample and per signal: 1 GB for the
references and estimates of 180 s, included in ``peak``).
fast_bss_eval computes the "sources" variant on the whole signal (channels as a
batch), not framewise v4: a speed reference only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SR = 44100
N_SOURCES = 4
N_CHANNELS = 2

IMPLEMENTATIONS = {
    # name: (environment, description)
    "museval": ("bench", "museval.evaluate v4, all four metrics"),
    "fast_bss_eval": ("bench", "fast_bss_eval.bss_eval_sources, whole signal"),
    "fast_bss_eval_sdr": ("bench", "fast_bss_eval.sdr, whole signal"),
    "mosplatform": ("self", "bss_eval_v4, all four metrics, one thread"),
    "mosplatform_2threads": ("self", "bss_eval_v4, all four metrics, workers=2 (2 threads)"),
    "mosplatform_sdr": ("self", "framewise_sdr (v4 SDR alone)"),
}


def make_signals(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stems (coloured noise + tones + dither) and leaky, noisy estimates."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    refs = np.empty((N_SOURCES, n, N_CHANNELS))
    for j in range(N_SOURCES):
        base = lfilter([1.0], [1.0, -0.6 - 0.1 * j], rng.standard_normal(n))
        base += np.sin(2 * np.pi * (110.0 * (j + 1)) * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
        for c in range(N_CHANNELS):
            refs[j, :, c] = (0.5 + 0.2 * c) * base + 0.1 * rng.standard_normal(n)
    refs *= 0.1
    ests = np.roll(refs, 1, axis=0)
    ests *= 0.2
    ests += refs
    for j in range(N_SOURCES):  # in place, source by source, to keep generation small
        ests[j] += 0.01 * rng.standard_normal(ests[j].shape)
    return refs, ests


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Restart the peak-RSS mark (Linux >= 4.0), so input generation does not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _patch_numpy2_vector_solve() -> None:
    """fast_bss_eval 0.1.4 predates NumPy 2, whose ``solve`` reads a stack of vectors
    ``b`` (``b.ndim == a.ndim - 1``) as matrices; restore the NumPy 1 reading."""
    solve = np.linalg.solve

    def vector_solve(a, b):
        a, b = np.asarray(a), np.asarray(b)
        if b.ndim == a.ndim - 1 and b.ndim > 1:
            return solve(a, b[..., None])[..., 0]
        return solve(a, b)

    np.linalg.solve = vector_solve


def worker(name: str, seconds: float, out_npy: str) -> None:
    """Run one implementation once and print one JSON line of measurements."""
    import time

    refs, ests = make_signals(seconds)
    if name == "museval":
        import museval

        def run():
            return np.asarray(museval.evaluate(refs, ests, win=SR, hop=SR)[0])
    elif name.startswith("fast_bss_eval"):
        import fast_bss_eval

        _patch_numpy2_vector_solve()

        ref_b = np.ascontiguousarray(refs.transpose(2, 0, 1))  # (channels, sources, samples)
        est_b = np.ascontiguousarray(ests.transpose(2, 0, 1))
        if name == "fast_bss_eval_sdr":
            def run():
                return fast_bss_eval.sdr(ref_b, est_b, filter_length=512)
        else:
            def run():
                return fast_bss_eval.bss_eval_sources(
                    ref_b, est_b, filter_length=512, compute_permutation=False)[0]
    else:
        sys.path.insert(0, str(REPO))
        from mosplatform.metrics import bss_eval_v4, framewise_sdr

        workers = 2 if name == "mosplatform_2threads" else 1
        if name == "mosplatform_sdr":
            def run():
                return framewise_sdr(refs, ests, window=SR, hop=SR)
        else:
            def run():
                return bss_eval_v4(refs, ests, window=SR, hop=SR, workers=workers).sdr
    import gc

    gc.collect()
    if not _reset_peak_rss():
        print("warning: cannot reset the peak RSS; it includes input generation",
              file=sys.stderr)
    base = _status_mb("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    sdr = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    np.save(out_npy, np.asarray(sdr, dtype=np.float64))
    peak = _status_mb("VmHWM")
    print(json.dumps({"name": name, "seconds": seconds, "wall": wall, "cpu": cpu,
                      "peak_mb": peak, "extra_mb": peak - base}))


def _run(python: str, name: str, seconds: float, threads: int, tmp: Path) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    out = tmp / f"{name}_{seconds:g}.npy"
    cmd = [python, str(Path(__file__).resolve()), "--worker", name, "--seconds",
           str(seconds), "--result", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("{")][-1]
    record = json.loads(line)
    record["sdr"] = np.load(out)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[30.0, 180.0],
                        help="track lengths in seconds")
    parser.add_argument("--bench-python", default=str(REPO / ".venv-bench" / "bin" / "python"),
                        help="interpreter with museval and fast_bss_eval")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per process")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each mosplatform implementation this many times and report "
                             "the run with the median wall time (museval, far slower, runs once)")
    parser.add_argument("--only", nargs="+", choices=sorted(IMPLEMENTATIONS),
                        help="run only these implementations")
    parser.add_argument("--out", type=Path, help="also write a Markdown table here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.seconds, args.result)
        return

    names = args.only or list(IMPLEMENTATIONS)
    load_before = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1/5/15 min) before: {load_before}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.lengths:
            records = {}
            for name in names:
                python = sys.executable if IMPLEMENTATIONS[name][0] == "self" else args.bench_python
                runs = args.repeat if name.startswith("mosplatform") else 1
                trials = sorted((_run(python, name, seconds, args.threads, Path(tmp))
                                 for _ in range(max(1, runs))), key=lambda t: t["wall"])
                records[name] = r = dict(trials[len(trials) // 2])
                r["runs"] = len(trials)
                r["peak_mb"] = max(t["peak_mb"] for t in trials)
                r["extra_mb"] = max(t["extra_mb"] for t in trials)
                print(f"{seconds:6g} s  {name:20s} wall {r['wall']:8.3f} s  cpu {r['cpu']:8.3f} s"
                      f"  peak {r['peak_mb']:7.0f} MB  extra {r['extra_mb']:7.0f} MB", flush=True)
            anchor = records.get("museval")
            for name, r in records.items():
                r["wall_ratio"] = anchor["wall"] / r["wall"] if anchor else float("nan")
                r["cpu_ratio"] = anchor["cpu"] / r["cpu"] if anchor else float("nan")
                r["max_diff_db"] = float("nan")
                if anchor and name.startswith("mosplatform"):
                    r["max_diff_db"] = float(np.nanmax(np.abs(r["sdr"] - anchor["sdr"])))
                rows.append(r)
    header = ("| length | implementation | runs | wall s | CPU s | x museval (wall) "
              "| x museval (CPU) | peak RSS MB | extra MB | max SDR diff vs museval (dB) |")
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['seconds']:g} s | {r['name']} | {r['runs']} | {r['wall']:.3f} | {r['cpu']:.3f} | "
            f"{r['wall_ratio']:.1f} | {r['cpu_ratio']:.1f} | {r['peak_mb']:.0f} | "
            f"{r['extra_mb']:.0f} | {r['max_diff_db']:.1e} |")
    table = "\n".join(lines)
    load_after = "/".join(f"{x:.2f}" for x in os.getloadavg())
    loads = f"load average (1/5/15 min): {load_before} before, {load_after} after"
    print()
    print(table)
    print(loads)
    if args.out:
        command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "bench/sdr.py",
                                                     *(argv if argv is not None else sys.argv[1:])])
        args.out.write_text(f"Command: `{command}` (threads={args.threads}; {loads})\n\n"
                            f"{table}\n")


if __name__ == "__main__":
    main()
