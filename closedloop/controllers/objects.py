"""Objects named by ``module:attr`` or ``path/to/file.py:attr``, and the controller check.

Below both :mod:`closedloop.controllers.registry` (a spec's ``controller = "module:Class"``)
and :mod:`closedloop.controllers.sources` (a reference on the command line).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError


def _load_file_module(path: Path, where: str) -> Any:
    """Import the Python file ``path`` once per process (as a uniquely named module)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"closedloop_user_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{where}: cannot import {str(path)!r} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look classes up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_object(ref: str, where: str = "controller") -> Any:
    """The object that ``module:attr`` or ``path/to/file.py:attr`` names.

    Raises:
        ConfigError: Naming ``where`` if the module or file cannot be imported or has no such
            attribute (an exception raised while importing the user's module propagates).
    """
    module_part, _, attr = ref.rpartition(":")
    if not module_part or not attr:
        raise ConfigError(f"{where}={ref!r} is not of the form module:Class or file.py:Class")
    if module_part.endswith(".py"):
        path = Path(module_part).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{where}={ref!r}: no such file {str(path)!r}")
        module = _load_file_module(path, where)
    else:
        try:
            module = importlib.import_module(module_part)
        except (ModuleNotFoundError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{where}={ref!r}: cannot import module {module_part!r} "
                f"({exc}); valid: an importable module, or a path to a .py "
                "file"
            ) from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}={ref!r}: {module_part!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def check_controller(obj: Any, where: str) -> Any:
    """Return ``obj`` if it has SB3's ``predict`` (and a callable ``reset`` if any)."""
    if not callable(getattr(obj, "predict", None)):
        raise ConfigError(
            f"{where}: {type(obj).__name__} has no predict(obs, state, "
            "episode_start, deterministic) method; a controller needs SB3's "
            "predict and, optionally, reset(context)"
        )
    if hasattr(obj, "reset") and not callable(obj.reset):
        raise ConfigError(f"{where}: {type(obj).__name__}.reset is not callable")
    return obj


def source_id(source: str | Callable) -> str:
    """A stable text naming a source: the spec name, or the factory's ``source_id``."""
    if isinstance(source, str):
        return source
    sid = getattr(source, "source_id", None)
    if isinstance(sid, str):
        return sid
    return f"{getattr(source, '__module__', '?')}:{getattr(source, '__qualname__', repr(source))}"
