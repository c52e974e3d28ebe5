"""BSS Eval of MUSDB-style folders: ``<dir>/<track>/<source>.wav``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from .aggregate import FRAME_COLUMNS, framewise_table
from .bsseval import bss_eval

__all__ = ["NON_SOURCE_STEMS", "evaluate_folders", "evaluate_track"]

#: Stems of a MUSDB track folder that are not sources: the mixture, and the
#: accompaniment (a sum of sources, which would make the Gram matrix singular).
NON_SOURCE_STEMS = frozenset({"mixture", "accompaniment"})


def _stems(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*.wav"))}


def _read(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return data, int(sr)


def evaluate_track(
    reference_folder: str | Path,
    estimate_folder: str | Path,
    sources: Sequence[str] | None = None,
    *,
    window: float | None = None,
    hop: float | None = None,
    filter_length: int = 512,
    mode: str = "v4",
) -> pd.DataFrame:
    """Framewise BSS Eval of one track folder against its reference folder.

    Parameters
    ----------
    reference_folder, estimate_folder : str or pathlib.Path
        Folders holding ``<source>.wav`` files.
    sources : sequence of str, optional
        Sources to score (each needs a reference and an estimate). Default: every
        reference stem with an estimate, except :data:`NON_SOURCE_STEMS`.
    window, hop : float, optional
        In seconds; default one second (museval's 44100 samples at 44.1 kHz).
    filter_length : int, optional
        Distortion filter taps.
    mode : {"v4", "v3"}, optional
        BSS Eval version.

    Returns
    -------
    pandas.DataFrame
        Framewise table (:data:`~mosplatform.metrics.aggregate.FRAME_COLUMNS`).

    Notes
    -----
    Every reference stem except :data:`NON_SOURCE_STEMS` enters the projection, as
    museval evaluates all four MUSDB sources together, even when only some are
    scored. An all-zero reference stem is left out (museval refuses it) with a
    warning, and a scored source whose reference is silent gets no rows. Estimates
    are zero-padded or cut to the reference length.
    """
    reference_folder, estimate_folder = Path(reference_folder), Path(estimate_folder)
    track = estimate_folder.name
    ref_paths = {k: v for k, v in _stems(reference_folder).items() if k not in NON_SOURCE_STEMS}
    est_paths = _stems(estimate_folder)
    if sources is None:
        targets = [s for s in ref_paths if s in est_paths]
    else:
        targets = list(dict.fromkeys(sources))
        missing = [s for s in targets if s not in ref_paths or s not in est_paths]
        if missing:
            raise ValueError(f"track {track}: no reference or estimate for {missing}")
    if not targets:
        raise ValueError(
            f"track {track}: no source has both a reference in {reference_folder} and an "
            f"estimate in {estimate_folder}"
        )
    refs: dict[str, np.ndarray] = {}
    rate = None
    for name, path in ref_paths.items():
        data, sr = _read(path)
        if rate is not None and sr != rate:
            raise ValueError(f"track {track}: {path.name} is at {sr} Hz, others at {rate} Hz")
        rate = sr
        refs[name] = data
    n = max(x.shape[0] for x in refs.values())
    refs = {k: np.pad(x, [(0, n - x.shape[0]), (0, 0)]) for k, x in refs.items()}
    silent = [k for k, x in refs.items() if np.all(x.sum(axis=1) == 0)]
    if silent:
        warnings.warn(f"track {track}: silent reference stem(s) {silent} left out", stacklevel=2)
    targets = [s for s in targets if s not in silent]
    if not targets:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in FRAME_COLUMNS})
    ests = []
    for name in targets:
        data, sr = _read(est_paths[name])
        if sr != rate:
            raise ValueError(f"track {track}: estimate {name} is at {sr} Hz, references at {rate}")
        if data.shape[1] != refs[name].shape[1]:
            raise ValueError(f"track {track}: estimate {name} has {data.shape[1]} channels")
        ests.append(data[:n] if data.shape[0] >= n else np.pad(data, [(0, n - len(data)), (0, 0)]))
    order = targets + [s for s in refs if s not in targets and s not in silent]
    window_samples = rate * (1.0 if window is None else float(window))
    hop_samples = rate * (1.0 if hop is None else float(hop))
    result = bss_eval(
        np.stack([refs[s] for s in order]),
        np.stack(ests),
        window=window_samples,
        hop=hop_samples,
        filter_length=filter_length,
        mode=mode,
    )
    return framewise_table(result, track=track, sources=targets, sample_rate=rate,
                           hop=hop_samples if result.n_frames > 1 else 0.0)


def evaluate_folders(
    reference_dir: str | Path,
    estimate_dir: str | Path,
    sources: Sequence[str] | None = None,
    progress: bool = True,
    *,
    window: float | None = None,
    hop: float | None = None,
    filter_length: int = 512,
    mode: str = "v4",
) -> pd.DataFrame:
    """Framewise BSS Eval of every track of a MUSDB-style estimate folder.

    Parameters
    ----------
    reference_dir : str or pathlib.Path
        ``<reference_dir>/<track>/<source>.wav`` (e.g. MUSDB18-HQ ``test``).
    estimate_dir : str or pathlib.Path
        ``<estimate_dir>/<track>/<source>.wav``; every track folder holding a WAV
        file is evaluated and needs its reference folder.
    sources : sequence of str, optional
        Sources to score; default: those with both a reference and an estimate.
    progress : bool, optional
        Show a tqdm progress bar over the tracks.
    window, hop : float, optional
        In seconds (default one second).
    filter_length : int, optional
        Distortion filter taps (512).
    mode : {"v4", "v3"}, optional
        BSS Eval version.

    Returns
    -------
    pandas.DataFrame
        Framewise table (:data:`~mosplatform.metrics.aggregate.FRAME_COLUMNS`);
        aggregate it with :mod:`mosplatform.metrics.aggregate`.

    Raises
    ------
    ValueError
        When the estimate folder holds no track, or a track has no reference folder.

    Examples
    --------
    >>> frames = evaluate_folders("musdb18hq/test", "estimates/test")  # doctest: +SKIP
    >>> summarize(frames)["sources"]  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    reference_dir, estimate_dir = Path(reference_dir), Path(estimate_dir)
    if not estimate_dir.is_dir():
        raise ValueError(f"{estimate_dir} is not a folder")
    tracks = sorted(p for p in estimate_dir.iterdir() if p.is_dir() and any(p.glob("*.wav")))
    if not tracks:
        raise ValueError(f"{estimate_dir} holds no <track>/<source>.wav folders")
    missing = [p.name for p in tracks if not (reference_dir / p.name).is_dir()]
    if missing:
        raise ValueError(f"no reference folder in {reference_dir} for track(s) {missing}")
    tables = []
    for folder in tqdm(tracks, desc="BSS Eval", unit="track", disable=not progress):
        tables.append(
            evaluate_track(reference_dir / folder.name, folder, sources, window=window,
                           hop=hop, filter_length=filter_length, mode=mode)
        )
    return pd.concat(tables, ignore_index=True)
