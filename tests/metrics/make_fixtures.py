"""Compute museval's outputs for the generated cases once and store them as fixtures.

Run in an environment with museval (it needs an ``ffmpeg`` binary to import)::

    .venv-bench/bin/python tests/metrics/make_fixtures.py

The tests then compare :mod:`mosplatform.metrics.bsseval` with these numbers
without needing museval.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _cases_module():
    spec = importlib.util.spec_from_file_location("bsseval_cases", HERE / "bsseval_cases.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bsseval_cases"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    import museval
    from museval import metrics as museval_metrics

    cases = _cases_module()
    from importlib.metadata import version

    out = {"museval_version": np.array(version("museval"))}
    for case in cases.CASES:
        refs, ests = cases.make_case(case)
        if case.filter_length == 512:
            sdr, isr, sir, sar = museval.evaluate(
                refs, ests, win=case.window, hop=case.hop, mode=case.mode
            )
        else:
            padded = museval.pad_or_truncate(refs, ests)[1]
            sdr, isr, sir, sar, _ = museval_metrics.bss_eval(
                refs, padded, window=case.window, hop=case.hop, compute_permutation=False,
                filters_len=case.filter_length, framewise_filters=case.mode == "v3",
                bsseval_sources_version=False,
            )
        for name, values in zip(("SDR", "ISR", "SIR", "SAR"), (sdr, isr, sir, sar), strict=True):
            out[f"{case.name}__{name}"] = np.asarray(values, dtype=np.float64)
        out[f"{case.name}__checksum"] = cases.checksum(refs, ests)
        print(case.name, np.asarray(sdr).shape, np.round(np.asarray(sdr)[:, :4], 3).tolist(),
              flush=True)
    target = HERE / "fixtures" / "museval_reference.npz"
    target.parent.mkdir(exist_ok=True)
    np.savez_compressed(target, **out)
    print("wrote", target, target.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
