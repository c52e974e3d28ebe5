"""Stimulus preparation: pure numpy/scipy functions the importer calls.

Signals are ``float32`` arrays of shape (frames, channels) with a sample rate in Hz.
A typical preparation of one item::

    problems = check_audio(files)                       # checks: report every problem
    x, sr = read_audio(path); x = resample(x, sr, 48000)  # io, resample
    span = find_active_span(sources, 48000, 8.0)        # excerpt: all sources active
    ref = cut_excerpt(x, span)                          # 20 ms raised-cosine fades
    low, mid = low_anchor_3k5(ref, 48000), mid_anchor_7k(ref, 48000)  # BS.1534-3
    res = normalize_loudness({"ref": ref, ...}, 48000, -23.0, reference="ref")
    stored = store_audio(res.signals["ref"], 48000, media_root)  # content-hashed

Modules: :mod:`.io`, :mod:`.checks`, :mod:`.resample`, :mod:`.anchors`, :mod:`.loudness`,
:mod:`.excerpt`, :mod:`.storage`, :mod:`.traps` (P.808 trapping clips),
:mod:`.headphone` (screening signals).
"""

from .anchors import LOW_ANCHOR_3K5, MID_ANCHOR_7K, low_anchor_3k5, mid_anchor_7k
from .checks import PROBLEM_KINDS, Problem, check_audio, check_signal, format_problems
from .excerpt import (
    ExcerptSpan,
    ExcerptWarning,
    apply_fades,
    cut_excerpt,
    explicit_span,
    find_active_span,
)
from .io import read_audio, write_audio
from .loudness import (
    LoudnessClippingError,
    LoudnessResult,
    integrated_loudness,
    normalize_loudness,
)
from .resample import resample
from .storage import StorageIntegrityError, StoredFile, store_audio, verify_stored

__all__ = [
    "LOW_ANCHOR_3K5",
    "MID_ANCHOR_7K",
    "PROBLEM_KINDS",
    "ExcerptSpan",
    "ExcerptWarning",
    "LoudnessClippingError",
    "LoudnessResult",
    "Problem",
    "StorageIntegrityError",
    "StoredFile",
    "apply_fades",
    "check_audio",
    "check_signal",
    "cut_excerpt",
    "explicit_span",
    "find_active_span",
    "format_problems",
    "integrated_loudness",
    "low_anchor_3k5",
    "mid_anchor_7k",
    "normalize_loudness",
    "read_audio",
    "resample",
    "store_audio",
    "verify_stored",
    "write_audio",
]
