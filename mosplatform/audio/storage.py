"""Content-addressed storage of prepared stimuli.

Every prepared stimulus is written once under a media root that is *not* served as
static files (the media blueprint hands out opaque per-participant tokens instead),
at ``<hash[:2]>/<hash>.<ext>`` where ``hash`` is the SHA-256 of the file's bytes. A
file therefore cannot change silently between participants: its name is its content,
and :func:`verify_stored` re-checks it.

WAV files are produced here byte for byte (a plain 44-byte RIFF header and PCM data,
no timestamps or encoder strings), so the same samples always give the same hash, in
any process and with any libsndfile version. FLAC goes through libsndfile/libFLAC,
whose output (it embeds the encoder's vendor string) is deterministic for a given
library version only.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .io import as_frames

__all__ = [
    "StoredFile",
    "StorageIntegrityError",
    "encode_audio",
    "store_audio",
    "stored_path",
    "verify_stored",
]

_BITS = {"PCM_16": 16, "PCM_24": 24}


class StorageIntegrityError(RuntimeError):
    """A stored file's bytes do not match the hash in its name."""


@dataclass(frozen=True)
class StoredFile:
    """A stimulus in the media store.

    Attributes
    ----------
    content_hash : str
        SHA-256 (hex) of the file bytes.
    relpath : str
        POSIX path relative to the media root, ``<hash[:2]>/<hash>.<ext>``.
    sample_rate, channels, num_frames : int
        Audio properties.
    duration_s : float
        ``num_frames / sample_rate``.
    peak_dbfs : float
        Sample peak of the stored (quantised) audio; ``-inf`` for silence.
    fmt : str
        ``"wav"`` or ``"flac"``.
    subtype : str
        ``"PCM_16"`` or ``"PCM_24"``.
    size_bytes : int
        File size.
    """

    content_hash: str
    relpath: str
    sample_rate: int
    channels: int
    num_frames: int
    duration_s: float
    peak_dbfs: float
    fmt: str = "wav"
    subtype: str = "PCM_16"
    size_bytes: int = 0


def _quantise(x: np.ndarray, bits: int) -> np.ndarray:
    scale = float(2 ** (bits - 1))
    q = np.round(x.astype(np.float64) * scale)
    return np.clip(q, -scale, scale - 1).astype(np.int32)


def encode_audio(x: np.ndarray, sample_rate: int, fmt: str = "wav", subtype: str = "PCM_16"
                 ) -> tuple[bytes, np.ndarray]:
    """Encode samples to file bytes, deterministically.

    Parameters
    ----------
    x : array_like
        Samples in [-1, 1], (frames,) or (frames, channels).
    sample_rate : int
        Hz.
    fmt : {"wav", "flac"}
        Container.
    subtype : {"PCM_16", "PCM_24"}
        Sample format. Floats are scaled by ``2**(bits-1)`` and rounded to nearest (no
        dither, so encoding is reproducible).

    Returns
    -------
    data : bytes
        The file content.
    quantised : numpy.ndarray
        The integer samples written, ``int32`` (frames, channels).

    Raises
    ------
    ValueError
        On non-finite samples, samples beyond full scale (> 1.0, which would clip), an
        empty signal or an unknown format/subtype.
    """
    fmt = fmt.lower()
    if fmt not in ("wav", "flac"):
        raise ValueError(f"fmt must be 'wav' or 'flac', got {fmt!r}")
    if subtype not in _BITS:
        raise ValueError(f"subtype must be one of {sorted(_BITS)}, got {subtype!r}")
    arr = as_frames(x)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError("cannot store an empty signal")
    if not np.all(np.isfinite(arr)):
        raise ValueError("cannot store audio with NaN or inf samples")
    peak = float(np.max(np.abs(arr)))
    if peak > 1.0:
        raise ValueError(f"cannot store audio that clips: peak {peak:.4f} "
                         f"({20 * math.log10(peak):+.2f} dBFS) exceeds full scale")
    bits = _BITS[subtype]
    q = _quantise(arr, bits)
    if fmt == "wav":
        if bits == 16:
            frames = q.astype("<i2").tobytes()
        else:
            frames = q.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(arr.shape[1])
            w.setsampwidth(bits // 8)
            w.setframerate(int(sample_rate))
            w.setnframes(arr.shape[0])
            w.writeframes(frames)
        return buf.getvalue(), q
    buf = io.BytesIO()
    dtype = np.int16 if bits == 16 else np.int32
    data = q.astype(dtype) if bits == 16 else (q.astype(np.int32) << 8)
    sf.write(buf, data, int(sample_rate), format="FLAC", subtype=subtype)
    return buf.getvalue(), q


def stored_path(media_root: str | os.PathLike, relpath: str) -> Path:
    """Resolve a stored file's relative path, refusing anything outside the store layout.

    Parameters
    ----------
    media_root : path-like
        Root of the media store.
    relpath : str
        ``<hash[:2]>/<hash>.<ext>`` as in :attr:`StoredFile.relpath`.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If ``relpath`` is not of the store's form (no traversal, no other names).
    """
    m = re.fullmatch(r"([0-9a-f]{2})/([0-9a-f]{64})\.(wav|flac)", relpath)
    if m is None or not m.group(2).startswith(m.group(1)):
        raise ValueError(f"not a media store path: {relpath!r}")
    return Path(media_root) / m.group(1) / f"{m.group(2)}.{m.group(3)}"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_stored(media_root: str | os.PathLike, relpath: str) -> bool:
    """True when the file exists and its SHA-256 matches the hash in its name."""
    path = stored_path(media_root, relpath)
    try:
        return _sha256_file(path) == path.stem
    except OSError:
        return False


def store_audio(x: np.ndarray, sample_rate: int, media_root: str | os.PathLike,
                fmt: str = "wav", subtype: str = "PCM_16") -> StoredFile:
    """Write a stimulus into the content-addressed media store.

    Parameters
    ----------
    x : array_like
        Samples in [-1, 1], (frames,) or (frames, channels).
    sample_rate : int
        Hz.
    media_root : path-like
        Root of the store; keep it outside ``static/`` (files are served by token).
    fmt : {"wav", "flac"}
        Container (default WAV; see the module notes on FLAC determinism).
    subtype : {"PCM_16", "PCM_24"}
        Sample format.

    Returns
    -------
    StoredFile

    Raises
    ------
    ValueError
        As :func:`encode_audio`.
    StorageIntegrityError
        If a file already exists at the target path with other content (a corrupted
        store); it is never overwritten.

    Notes
    -----
    Writing is atomic: the bytes go to a temporary file in the target folder, are
    flushed to disk, then renamed into place. Storing the same audio again (from any
    process) finds the existing file, checks its hash and returns the same record.

    Examples
    --------
    >>> a = store_audio(x, 44100, "instance/media")  # doctest: +SKIP
    >>> b = store_audio(x, 44100, "instance/media")  # doctest: +SKIP
    >>> a == b  # doctest: +SKIP
    True
    """
    data, q = encode_audio(x, sample_rate, fmt, subtype)
    digest = hashlib.sha256(data).hexdigest()
    ext = fmt.lower()
    relpath = f"{digest[:2]}/{digest}.{ext}"
    path = stored_path(media_root, relpath)
    if path.exists():
        if _sha256_file(path) != digest:
            raise StorageIntegrityError(
                f"{path} exists with content that does not match its name; the media store "
                "is corrupted (the file was left untouched)")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{digest[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    bits = _BITS[subtype]
    peak = float(np.max(np.abs(q))) / 2 ** (bits - 1)
    return StoredFile(
        content_hash=digest, relpath=relpath, sample_rate=int(sample_rate),
        channels=int(q.shape[1]), num_frames=int(q.shape[0]),
        duration_s=q.shape[0] / int(sample_rate),
        peak_dbfs=20 * math.log10(peak) if peak > 0 else -math.inf,
        fmt=ext, subtype=subtype, size_bytes=len(data),
    )
