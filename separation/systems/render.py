"""Stems of a ``unet``, ``query`` or ``tagbox`` checkpoint, in the layout of the other systems.

The systems work on mono audio at 16 kHz; every stem is resampled back to the input's
rate and duplicated to its channel count, so ``<out>/<track>/<source>.wav`` files line up
with the references and the Hybrid Demucs stems.

- ``unet``: the target and the remainder (``vocals``/``accompaniment`` or
  ``speech``/``music``);
- ``query``: one stem per class with a stored query (or per example folder given);
- ``tagbox``: one stem per tag, each steered towards that tag alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..api import find_inputs
from ..checkpoint import load_checkpoint, model_from_checkpoint
from ..data import AUDIO_EXTENSIONS, fit_channels, read_audio, resample, write_audio

SYSTEMS = ("unet", "query", "tagbox")


class SystemRenderer:
    """Separate audio with a ``unet``, ``query`` or ``tagbox`` checkpoint.

    Parameters
    ----------
    checkpoint : path
        Checkpoint written by :mod:`.unet_train`, :mod:`.query_train` or
        :mod:`.tagbox_steer`.
    sources : sequence of str, optional
        Stems to produce (query: classes; tagbox: tags; unet: its two sources).
        Default: all.
    query_examples : dict of str to sequence of path, optional
        Query-based system only: example recordings per class; their mean embedding
        replaces (or adds) the stored query of that class.
    steps : int, optional
        TAGBOX steering steps (default: the checkpoint's).
    progress : bool
        Show a progress bar over tracks.
    """

    def __init__(self, checkpoint: str | Path, sources: Sequence[str] | None = None,
                 query_examples: dict[str, Sequence[str | Path]] | None = None,
                 steps: int | None = None, progress: bool = True) -> None:
        package = load_checkpoint(checkpoint)
        self.model_name: str = package["model"]
        if self.model_name not in SYSTEMS:
            raise ValueError(f"{checkpoint} holds a {self.model_name!r} model; this renderer "
                             f"handles {SYSTEMS} (use Separator for the others)")
        self.meta: dict[str, Any] = dict(package.get("meta", {}))
        self.model = model_from_checkpoint(package)
        self.sample_rate = int(self.model.sample_rate)
        self.steps = steps
        self.progress = progress
        self.queries: dict[str, torch.Tensor] = {}
        if self.model_name == "unet":
            available = list(self.model.sources)
        elif self.model_name == "query":
            self.queries = {k: torch.tensor(v, dtype=torch.float32)
                            for k, v in self.meta.get("queries", {}).items()}
            for label, paths in (query_examples or {}).items():
                clips = [torch.from_numpy(read_audio(p, self.sample_rate, 1)[0][:, 0])
                         for p in paths]
                self.queries[label] = self.model.query_from_examples(clips)
            available = list(self.queries)
        else:
            available = list(self.model.tags)
        if sources:
            unknown = sorted(set(sources) - set(available))
            if unknown:
                raise ValueError(f"unknown sources {unknown}; this checkpoint offers {available}")
        self.sources = list(sources) if sources else available

    @torch.no_grad()
    def _separate_mono(self, mono: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))[None]
        if self.model_name == "unet":
            est = self.model.separate(x)[0].numpy()
            return {s: e for s, e in zip(self.model.sources, est, strict=True) if s in self.sources}
        if self.model_name == "query":
            return {s: self.model.separate(x, self.queries[s])[0, 0].numpy()
                    for s in self.sources}
        from .tagbox_steer import steer_long

        with torch.enable_grad():
            return {s: steer_long(self.model, mono, [s], self.steps)[0] for s in self.sources}

    def separate_array(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Separate ``(time, channels)`` or ``(time,)`` audio at ``sample_rate`` Hz.

        Returns
        -------
        dict
            Source name -> ``(time, channels)`` float32 at the input's rate and channels.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[:, None]
        length, channels = audio.shape
        mono = resample(audio.mean(axis=1), sample_rate, self.sample_rate)
        stems = {}
        for name, wave in self._separate_mono(mono).items():
            wave = resample(wave.astype(np.float32), self.sample_rate, sample_rate)
            wave = np.pad(wave, (0, max(0, length - len(wave))))[:length]
            stems[name] = np.ascontiguousarray(fit_channels(wave[:, None], channels))
        return stems

    def render(self, input_path: str | Path, out_dir: str | Path,
               subtype: str = "PCM_16") -> list[dict[str, Any]]:
        """Write ``<out_dir>/<track>/<source>.wav`` for a file or every track of a folder.

        Parameters
        ----------
        input_path : path
            An audio file, a MUSDB track folder (with ``mixture.wav``), a folder of such
            track folders and/or audio files, or a data set root (its ``test/`` split).

        Returns
        -------
        list of dict
            ``track, files, seconds, audio_seconds, rtf`` per input.
        """
        inputs = find_mixture_files(Path(input_path))
        if not inputs:
            raise FileNotFoundError(f"no mixtures or audio files found in {input_path}")
        rows = []
        for name, path in tqdm(inputs, desc=self.model_name, unit="track",
                               disable=not self.progress):
            audio, sr = read_audio(path)
            t0 = time.perf_counter()
            stems = self.separate_array(audio, sr)
            seconds = time.perf_counter() - t0
            files = {}
            for source, wave in stems.items():
                files[source] = Path(out_dir) / name / f"{source}.wav"
                write_audio(files[source], wave, sr, subtype)
            audio_seconds = audio.shape[0] / sr
            rows.append({"track": name, "files": files, "seconds": seconds,
                         "audio_seconds": audio_seconds, "rtf": seconds / audio_seconds})
        return rows


def find_mixture_files(path: Path) -> list[tuple[str, Path]]:
    """``(track name, mixture file)`` pairs of a file, track folder, folder or data set root."""
    if path.is_file():
        name = path.parent.name if path.stem == "mixture" else path.stem
        return [(name, path)]
    if (path / "mixture.wav").exists():
        return [(path.name, path / "mixture.wav")]
    if (path / "test").is_dir() and not find_inputs(path):
        path = path / "test"
    return [(p.parent.name if p.stem == "mixture" else p.stem, p) for p in find_inputs(path)
            if p.suffix.lower() in AUDIO_EXTENSIONS]


def render_system(checkpoint: str | Path, input_path: str | Path, out_dir: str | Path,
                  sources: Sequence[str] | None = None, steps: int | None = None,
                  subtype: str = "PCM_16", progress: bool = True) -> list[dict[str, Any]]:
    """Convenience wrapper: :class:`SystemRenderer` then :meth:`SystemRenderer.render`."""
    renderer = SystemRenderer(checkpoint, sources=sources, steps=steps, progress=progress)
    return renderer.render(input_path, out_dir, subtype)
