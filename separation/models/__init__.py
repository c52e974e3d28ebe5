"""Separation models. Importing this package registers every model.

Each system module registers itself with :func:`separation.registry.register_model`;
add new modules to the import list below.
"""

import importlib

_MODULES = ["hdemucs", "unet", "query", "tagbox"]

for _name in _MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a system not written yet
        if exc.name != f"{__name__}.{_name}":
            raise
