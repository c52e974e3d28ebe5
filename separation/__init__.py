"""Music source separation: Hybrid Demucs under three loss variants, training and inference.

The web application never imports this package; the CLI imports :mod:`separation.cli`,
which loads torch only inside its commands. Every public name below is therefore loaded
lazily (PEP 562), so ``import separation`` alone does not import torch.

Public API
----------
build_model(name, preset="default", **overrides)
    Build a registered model (``"hdemucs"`` with presets ``default``, ``light``, ``tiny``).
Separator(checkpoint, ...)
    Separate files and folders with a trained checkpoint.
load_checkpoint, save_checkpoint, model_from_checkpoint
    Checkpoint I/O (registry name + keyword arguments + state dict; ``weights_only``).
apply_model
    Chunked overlap-add inference on tensors.
TrainConfig, train
    Training entry point.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_model": "separation.registry",
    "build_from_kwargs": "separation.registry",
    "register_model": "separation.registry",
    "registered_models": "separation.registry",
    "preset_kwargs": "separation.registry",
    "Separator": "separation.api",
    "load_checkpoint": "separation.checkpoint",
    "save_checkpoint": "separation.checkpoint",
    "model_from_checkpoint": "separation.checkpoint",
    "apply_model": "separation.apply",
    "TrainConfig": "separation.train",
    "train": "separation.train",
    "VARIANTS": "separation.losses",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'separation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
