"""Atomic file output, and the memory check that refuses work too big to fit.

A crash or interruption never leaves a half-written file behind; work whose arrays would not fit
in the available memory is refused before anything is allocated (:func:`check_memory`).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from closedloop._config import ConfigError


def write_atomic(
    path: str | os.PathLike, write: Callable[[IO], None], binary: bool = False
) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it into place.

    Args:
        path: Destination; its directory must exist.
        write: Writes the content to the open file object.
        binary: Open the temporary file in binary mode.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(
            fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})
        ) as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda fh: fh.write(text))


def nan_to_none(obj):
    """Replace non-finite floats by None, recursively through dicts, lists and tuples.

    JSON has no NaN; result files store a missing value as ``null``.
    """
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def toml_literal(value) -> str:
    """A TOML literal for a bool, number, string or list of those (for the spec files we write).

    Floats keep their shortest round-trip ``repr``; strings use JSON escaping, which is valid in
    TOML basic strings.
    """
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_literal(x) for x in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


GIB = 2.0**30
"""Bytes per GiB."""


def available_memory_bytes() -> float:
    """Memory the process can still allocate without swapping (bytes; inf if unknown).

    ``MemAvailable`` of ``/proc/meminfo`` on Linux, else the free physical pages.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return math.inf


def check_memory(what: str, n_bytes: float, hint: str = "") -> None:
    """Refuse work whose arrays would not fit in the available memory.

    Args:
        what: The work and its size, e.g. ``"duration_s=1e+09 (5e+10 pulses)"``.
        n_bytes: Estimated peak bytes the work allocates.
        hint: What to change, e.g. ``"shorten duration_s"``.

    Raises:
        ConfigError: Saying how much the work would need and how much is available.
    """
    free = available_memory_bytes()
    if n_bytes > free:
        raise ConfigError(
            f"{what} would need {n_bytes / GIB:.3g} GiB of memory; "
            f"{free / GIB:.3g} GiB is available" + (f"; {hint}" if hint else "")
        )
