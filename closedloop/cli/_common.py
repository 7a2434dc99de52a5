"""Helpers shared by the subcommands: argument parsing of lists and ranges."""

from __future__ import annotations

import math

import numpy as np

from closedloop._config import ConfigError

PROG = "closedloop"
MAX_LEVELS = 1001
"""Most current levels a sweep may have."""


def parse_currents(text: str) -> np.ndarray:
    """Parse ``START:STOP:STEP`` (mA) into levels from START to STOP inclusive.

    Args:
        text: E.g. ``"0:15:0.5"``.

    Returns:
        The current levels (mA).

    Raises:
        ConfigError: If the text is malformed, the step is not positive or STOP < START.
    """
    form = f"--currents={text!r} must be START:STOP:STEP in mA with STEP > 0 and STOP >= START"
    try:
        start, stop, step = (float(p) for p in text.split(":"))
    except ValueError:
        raise ConfigError(form) from None
    if not all(map(math.isfinite, (start, stop, step))) or step <= 0 or stop < start:
        raise ConfigError(form)
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    if n > MAX_LEVELS:
        raise ConfigError(f"--currents={text!r} gives {n} levels; valid: at most {MAX_LEVELS}")
    return start + step * np.arange(n)


def parse_float_list(name: str, text: str) -> list[float]:
    """Parse a comma-separated list of finite numbers, naming ``name`` in errors."""
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        values = []
    if not values or not all(map(math.isfinite, values)):
        raise ConfigError(f"{name}={text!r} must be a comma-separated list of finite numbers")
    return values


def parse_names(option: str, text: str) -> list[str]:
    """Parse a comma-separated list of names, naming ``option`` in errors."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError(f"{option}={text!r} must be a comma-separated list of names")
    return names


def parse_int_list(option: str, text: str) -> list[int]:
    """Parse a comma-separated list of integers, naming ``option`` in errors."""
    try:
        return [int(t) for t in parse_names(option, text)]
    except ValueError:
        raise ConfigError(f"{option}={text!r} must be a comma-separated list of integers") from None


def check_out_path(option: str, path: str | None) -> None:
    """Raise ConfigError early if ``path`` cannot be written as a file (None is fine).

    Its directory must exist, and ``path`` itself must not be a directory.
    """
    from pathlib import Path

    if path is None:
        return
    if not Path(path).resolve().parent.is_dir():
        raise ConfigError(f"{option}={path!r}: the directory does not exist")
    if Path(path).is_dir():
        raise ConfigError(f"{option}={path!r} is a directory; valid: a file path")


def add_ray_options(p, task: str) -> None:
    """``--ray [ADDRESS]`` and ``--max-retries``; each ``task`` is then a Ray task."""
    from closedloop._ray import MAX_RETRIES

    p.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=False,
        metavar="ADDRESS",
        help=f'run each {task} as a Ray task (pip install "closedloop[ray]"): without '
        "ADDRESS start or join a local Ray instance (RAY_ADDRESS or `ray start` on this "
        "machine), with HOST:PORT join that cluster; results are written here as they arrive",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=MAX_RETRIES,
        metavar="N",
        help=f"with --ray, re-runs of a task whose worker or node died (default {MAX_RETRIES})",
    )


def check_ray_options(args) -> None:
    """Check ``--ray`` and ``--max-retries`` (ConfigError naming the option)."""
    from closedloop._ray import check_address, check_retries

    if args.ray is not True and args.ray is not False:
        check_address(args.ray, "--ray")
    check_retries(args.max_retries, "--max-retries")
