"""Input checks of the device model's :func:`~closedloop.device.apply_limits`.

Each check raises a :class:`~closedloop._config.ConfigError` naming the argument and, for an
array, its first offending index; arrays are screened with two reductions, so a valid input
costs little.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop._config import ConfigError, as_real_array

MAX_PULSES = 1_000_000
"""Largest ``n_pulses`` of :func:`~closedloop.device.apply_limits` (one output entry per pulse)."""


def check_n_pulses(n_pulses) -> int:
    """``n_pulses`` as an int; ConfigError unless it is an integer in [1, MAX_PULSES]."""
    if (
        isinstance(n_pulses, (int, np.integer))
        and not isinstance(n_pulses, bool)
        and 1 <= n_pulses <= MAX_PULSES
    ):
        return int(n_pulses)
    raise ConfigError(f"n_pulses={n_pulses!r} must be an integer in [1, {MAX_PULSES}]")


def index_text(bad: np.ndarray) -> str:
    """``[i]`` / ``[i, j]`` of the first True entry of ``bad``, or ``""`` for a 0-d array."""
    if bad.ndim == 0:
        return ""
    return str(list(np.argwhere(bad)[0].tolist()))


def checked(
    name: str, value, lo: float = -math.inf, lo_open: bool = False, need: str = "must be finite"
) -> float | np.ndarray:
    """``value`` as a float or float64 array; ConfigError naming the first bad entry.

    An entry is bad if it is not finite or lies below ``lo`` (at ``lo`` too if ``lo_open``).
    Python numbers take a fast scalar path; for arrays NaN propagates through the ``min`` and
    ``max`` reductions, so two reductions screen the whole array. Anything but real numbers
    (strings, bytes, dicts, None, bool or complex values, ragged lists) is refused by
    :func:`closedloop._config.as_real_array`.
    """
    if type(value) in (float, int):
        mn = mx = float(value)
        a = None
    else:
        try:
            a = as_real_array(name, value)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; {name} {need}") from None
        if a.size == 0:
            return a
        mn, mx = np.minimum.reduce(a, axis=None), np.maximum.reduce(a, axis=None)
    if (mn > lo if lo_open else mn >= lo) and -math.inf < mn and mx < math.inf:
        return mn if a is None else a
    a = np.asarray(value, dtype=np.float64) if a is None else a
    bad = ~np.isfinite(a) | ((a <= lo) if lo_open else (a < lo))
    v = float(a[tuple(np.argwhere(bad)[0])]) if a.ndim else float(a)
    raise ConfigError(f"{name}{index_text(bad)}={v!r} {need}")


def check_limit_inputs(
    requested_ma, previous_ma, pw_us, impedance_ohm, min_ma, max_ma, contact_length_mm
) -> tuple:
    """The numeric inputs of :func:`~closedloop.device.apply_limits`, validated and converted.

    Returns:
        The seven inputs in order, each a float or a float64 array.

    Raises:
        ConfigError: Naming the argument (and an array's first bad index) if one is not finite
            or out of range, or if ``max_ma < min_ma`` anywhere.
    """
    values = (
        checked("requested_ma", requested_ma),
        checked("previous_ma", previous_ma),
        checked("pw_us", pw_us, 0.0, True, "must be finite and > 0 µs"),
        checked("impedance_ohm", impedance_ohm, 0.0, True, "must be finite and > 0 Ω"),
        checked("min_ma", min_ma, 0.0, False, "must be finite and >= 0 mA"),
        checked("max_ma", max_ma, 0.0, False, "must be finite and >= 0 mA"),
        checked("contact_length_mm", contact_length_mm, 0.0, True, "must be finite and > 0 mm"),
    )
    lo, hi = values[4], values[5]
    if (hi < lo) if type(lo) is type(hi) is float else np.less(hi, lo).any():
        raise ConfigError(
            f"max_ma < min_ma at {index_text(np.less(hi, lo)) or 'scalar'}: "
            "the clinician window [min_ma, max_ma] is empty"
        )
    return values


def flat_f64(value, shape: tuple, size: int) -> np.ndarray:
    """``value`` (float or float64 array) broadcast to ``shape``, as a 1-D float64 array.

    A writable C-contiguous array of the full shape is used as is (a view; the kernels of
    :mod:`closedloop.device_limits` do not write to their inputs); anything else is copied into
    a new array. Either way the kernel sees one array type, hence one compiled specialisation.
    """
    if (
        type(value) is np.ndarray
        and value.shape == shape
        and value.flags.c_contiguous
        and value.flags.writeable
    ):
        return value if value.ndim == 1 else value.reshape(size)
    out = np.empty(size)
    out.reshape(shape)[...] = value
    return out
