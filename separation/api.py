"""``Separator``: the one entry point the CLI (and anything outside this package) uses."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .apply import apply_model
from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import AUDIO_EXTENSIONS, fit_channels, read_audio, resample, write_audio
from .train import resolve_device

# Registry names of the mask-based systems (issue 9), rendered by systems.render.
MASK_SYSTEMS = ("unet", "query", "tagbox")


@dataclass
class SeparationResult:
    """Stems of one input and the timing of its separation.

    ``stems`` maps source name -> ``(time, channels)`` float32 array at ``sample_rate``
    (the input file's rate); ``rtf`` = processing seconds / audio seconds.
    """

    name: str
    stems: dict[str, np.ndarray]
    sample_rate: int
    seconds: float
    audio_seconds: float
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rtf(self) -> float:
        return self.seconds / max(self.audio_seconds, 1e-9)


class Separator:
    """Separate audio files with a trained checkpoint.

    Parameters
    ----------
    checkpoint : path
        A checkpoint written by training (``best.pt``/``last.pt``) or
        :func:`separation.checkpoint.save_checkpoint`.
    device : str
        ``auto`` (CUDA when present), ``cpu``, ``cuda``...
    segment : float, optional
        Chunk length in seconds (default: the model's training segment).
    overlap : float
        Chunk overlap as a fraction of the segment.
    shifts : int
        Random-shift passes to average (0 = off).
    batch_size : int
        Chunks evaluated at once.
    progress : bool
        Show progress bars.

    Example
    -------
    >>> sep = Separator("runs/l1_stft/best.pt")                         # doctest: +SKIP
    >>> results = sep.separate_folder("demo_data/test", "stems/l1_stft")  # doctest: +SKIP
    """

    def __init__(self, checkpoint: str | Path, device: str = "auto", segment: float | None = None,
                 overlap: float = 0.25, shifts: int = 0, batch_size: int = 1,
                 progress: bool = True) -> None:
        self.device = resolve_device(device)
        package = load_checkpoint(checkpoint)
        self._system = None
        if package["model"] in MASK_SYSTEMS:
            # U-Net, query-based and TAGBOX systems separate mono spectrogram masks
            # their own way; the renderer gives them the same interface.
            from .systems.render import SystemRenderer

            self._system = SystemRenderer(checkpoint, progress=progress)
            self.model = self._system.model
            self.meta = dict(package.get("meta", {}))
            self.model_name = package["model"]
            self.sources = list(self._system.sources)
            self.sample_rate = self._system.sample_rate
            self.audio_channels = 1
            self.progress = progress
            return
        self.model = model_from_checkpoint(package, self.device)
        self.meta = dict(package.get("meta", {}))
        self.model_name = package["model"]
        self.sources: list[str] = list(self.model.sources)
        self.sample_rate: int = int(self.model.sample_rate)
        self.audio_channels: int = int(getattr(self.model, "audio_channels", 2))
        seconds = segment or self.meta.get("segment") or getattr(self.model, "segment", 10.0)
        self.segment = int(round(float(seconds) * self.sample_rate))
        self.overlap = overlap
        self.shifts = shifts
        self.batch_size = batch_size
        self.progress = progress

    def separate_array(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Separate ``(time, channels)`` (or ``(time,)``) audio at ``sample_rate`` Hz.

        Returns source name -> ``(time, channels)`` at the input's rate and channel count.
        """
        if self._system is not None:
            return self._system.separate_array(audio, sample_rate)
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[:, None]
        in_channels, length = audio.shape[1], audio.shape[0]
        x = fit_channels(resample(audio, sample_rate, self.sample_rate), self.audio_channels)
        mix = torch.from_numpy(np.ascontiguousarray(x.T))
        est = apply_model(self.model, mix, self.segment, self.overlap, self.shifts,
                          self.batch_size, self.device, self.progress)
        stems = {}
        for name, wave in zip(self.sources, est.cpu().numpy(), strict=True):
            wave = resample(wave.T, self.sample_rate, sample_rate)
            wave = fit_channels(wave, in_channels)
            if wave.shape[0] < length:
                wave = np.pad(wave, ((0, length - wave.shape[0]), (0, 0)))
            stems[name] = np.ascontiguousarray(wave[:length], dtype=np.float32)
        return stems

    def separate_file(self, path: str | Path, out_dir: str | Path | None = None,
                      name: str | None = None, subtype: str = "PCM_16") -> SeparationResult:
        """Separate one file; with ``out_dir`` write ``<out_dir>/<name>/<source>.wav``.

        ``name`` defaults to the file's stem, or to its folder's name for a MUSDB-layout
        ``<track>/mixture.wav``.
        """
        path = Path(path)
        if name is None:
            name = path.parent.name if path.stem == "mixture" else path.stem
        audio, sr = read_audio(path)
        t0 = time.perf_counter()
        stems = self.separate_array(audio, sr)
        seconds = time.perf_counter() - t0
        result = SeparationResult(name, stems, sr, seconds, audio.shape[0] / sr)
        if out_dir is not None:
            result.out_dir = Path(out_dir) / name
            for source, wave in stems.items():
                target = result.out_dir / f"{source}.wav"
                write_audio(target, wave, sr, subtype)
                result.files[source] = target
        return result

    def separate_folder(self, in_dir: str | Path, out_dir: str | Path,
                        subtype: str = "PCM_16") -> list[SeparationResult]:
        """Separate every input of ``in_dir`` into ``<out_dir>/<track>/<source>.wav``.

        Inputs are ``<in_dir>/<track>/mixture.wav`` (MUSDB layout) and audio files
        directly in ``in_dir`` (track name = file stem), in name order.
        """
        in_dir = Path(in_dir)
        inputs = find_inputs(in_dir)
        if not inputs:
            raise FileNotFoundError(f"no mixtures or audio files found in {in_dir}")
        results = []
        for path in tqdm(inputs, desc="tracks", unit="track", disable=not self.progress):
            results.append(self.separate_file(path, out_dir, subtype=subtype))
        return results


def find_inputs(folder: Path) -> list[Path]:
    """Mixture files of a folder: ``*/mixture.wav`` plus loose audio files."""
    found = [p / "mixture.wav" for p in sorted(folder.iterdir())
             if p.is_dir() and (p / "mixture.wav").exists()]
    found += [p for p in sorted(folder.iterdir())
              if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS]
    return found


def total_rtf(results: list[SeparationResult]) -> float:
    """Real-time factor over several results: total processing / total audio seconds."""
    audio = sum(r.audio_seconds for r in results)
    return sum(r.seconds for r in results) / max(audio, 1e-9)
