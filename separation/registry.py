"""Registry of separation systems: a name maps to a model class and named presets.

Every system (Hybrid Demucs, the U-Net mask, the query-based separator, ...) registers
itself here so that ``separation.build_model(name, preset=...)`` builds it and a
checkpoint (registry name + keyword arguments + state dict) rebuilds it without
pickling a class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn


@dataclass
class ModelEntry:
    name: str
    cls: type[nn.Module]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, presets: dict[str, dict[str, Any]] | None = None,
                   description: str = "") -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that registers a model under ``name`` with its presets."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, cls, dict(presets or {}), description)
        return cls

    return deco


def model_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(_REGISTRY)}") from None


def registered_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def preset_kwargs(name: str, preset: str = "default", **overrides: Any) -> dict[str, Any]:
    entry = model_entry(name)
    if preset not in entry.presets:
        raise KeyError(f"model {name!r} has no preset {preset!r}; presets: {sorted(entry.presets)}")
    return {**entry.presets[preset], **overrides}


def build_model(name: str, preset: str = "default", **overrides: Any) -> nn.Module:
    """Build a registered model from a named preset, with keyword overrides.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"hdemucs"``.
    preset : str
        Preset name, e.g. ``"default"``, ``"light"``, ``"tiny"``.
    **overrides
        Constructor keyword arguments that replace the preset's.
    """
    entry = model_entry(name)
    return entry.cls(**preset_kwargs(name, preset, **overrides))


def build_from_kwargs(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Rebuild a model from the keyword arguments stored in a checkpoint."""
    return model_entry(name).cls(**kwargs)


def _ensure_loaded() -> None:
    # Importing the models package runs every @register_model decorator.
    from . import models  # noqa: F401
