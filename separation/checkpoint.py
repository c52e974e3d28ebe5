"""Checkpoints: registry name + constructor keyword arguments + state dict + metadata.

A checkpoint is a plain dict ``{"model": str, "kwargs": dict, "state": state_dict,
"meta": dict}`` (plus ``"train_state"`` in a training run's ``last.pt``) holding only
tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``; no class is ever pickled.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .registry import build_from_kwargs, model_entry


def _plain(value: Any) -> Any:
    """Convert paths and tuples recursively so ``weights_only`` loading accepts them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def resolved_kwargs(model_name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with the constructor's defaults, as plain values.

    Checkpoints store every argument, so a later change of a default cannot silently
    change what an old checkpoint rebuilds.
    """
    signature = inspect.signature(model_entry(model_name).cls.__init__)
    full = {name: p.default for name, p in signature.parameters.items()
            if name != "self" and p.default is not inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    full.update(kwargs)
    return _plain(full)


def save_checkpoint(path: str | Path, model_name: str, kwargs: dict[str, Any],
                    state: dict[str, torch.Tensor], meta: dict[str, Any] | None = None,
                    **extra: Any) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Parameters
    ----------
    path : path
        Destination file (``.pt``).
    model_name : str
        Registry name (``"hdemucs"``).
    kwargs : dict
        Constructor keyword arguments of the model.
    state : dict
        ``model.state_dict()`` (tensors are moved to the CPU).
    meta : dict, optional
        Training metadata (config, epoch, metrics, sources, sample rate, ...).
    **extra
        Further top-level entries (e.g. ``train_state`` for resuming).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    package = {
        "model": model_name,
        "kwargs": _plain(kwargs),
        "state": {k: v.detach().cpu() for k, v in state.items()},
        "meta": _plain(meta or {}),
        **extra,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(package, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``torch.load(weights_only=True)``."""
    package = torch.load(str(path), map_location=map_location, weights_only=True)
    for key in ("model", "kwargs", "state"):
        if key not in package:
            raise ValueError(f"{path} is not a separation checkpoint (missing {key!r})")
    return package


def model_from_checkpoint(checkpoint: str | Path | dict[str, Any],
                          device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of a checkpoint (path or loaded dict), in eval mode on ``device``."""
    package = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    model = build_from_kwargs(package["model"], dict(package["kwargs"]))
    model.load_state_dict(package["state"])
    return model.to(device).eval()
