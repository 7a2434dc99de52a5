"""Lazy re-exports for a subpackage's ``__init__`` (PEP 562).

Importing one module of such a subpackage does not import its siblings, nor makes import
circles between them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` re-exporting ``name -> module`` lazily.

    Args:
        package: The subpackage's dotted name.
        exports: Each public name and the submodule (relative to ``package``) that defines it.
    """

    def get_attribute(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def names() -> list[str]:
        return sorted(exports)

    return get_attribute, names
