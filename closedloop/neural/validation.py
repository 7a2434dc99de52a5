"""Validation of per-pulse inputs: every bad value is named with its valid range."""

from __future__ import annotations

import numpy as np

from closedloop._config import ConfigError, as_real_array, is_real, short_repr
from closedloop.neural.geometry import CSF_GRID_MM

CURRENT_RANGE_MA = (0.0, 25.5)
PW_RANGE_US = (20.0, 1000.0)
RATE_RANGE_HZ = (1.0, 10_000.0)
CSF_RANGE_MM = (CSF_GRID_MM[0], CSF_GRID_MM[1])


def _range_text(lo: float, hi: float, unit: str, lo_open: bool) -> str:
    """``[lo, hi] unit`` (``(lo, hi] unit`` if ``lo_open``)."""
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}] {unit}"


def check_array(
    name: str,
    value,
    lo: float,
    hi: float,
    unit: str,
    *,
    lo_open: bool = False,
) -> np.ndarray:
    """Return ``value`` as a non-empty 1-D-or-more float64 array inside ``[lo, hi]``.

    A float64 array takes a fast path; anything else goes through
    :func:`closedloop._config.as_real_array`, which refuses strings, bytes, dicts, None,
    complex and bool values and ragged lists.

    Raises:
        ConfigError: Naming ``name`` and its valid range.
    """
    rng = _range_text(lo, hi, unit, lo_open)
    if type(value) is np.ndarray and value.dtype == np.float64:
        arr = value
    else:
        try:
            arr = as_real_array(name, value)
        except ConfigError as exc:
            raise ConfigError(f"{exc}; valid range {rng}") from None
    arr = np.atleast_1d(arr)
    if arr.size == 0:
        raise ConfigError(f"{name} is empty; it needs at least one value in {rng}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be finite (got NaN or inf); valid range {rng}")
    bad = (arr <= lo) if lo_open else (arr < lo)
    bad |= arr > hi
    if np.any(bad):
        raise ConfigError(f"{name}={arr[bad][0]:g} is out of range; valid range {rng}")
    return arr


def check_scalar(
    name: str, value, lo: float, hi: float, unit: str, *, lo_open: bool = False
) -> float:
    """Return ``value`` as a float inside ``[lo, hi]``; ConfigError unless a real number.

    Raises:
        ConfigError: Naming ``name`` and its valid range (a list, string, bool or complex
            value is refused, not taken as an array or converted).
    """
    if not is_real(value):
        raise ConfigError(
            f"{name}={short_repr(value)} must be a number in {_range_text(lo, hi, unit, lo_open)}"
        )
    return float(check_array(name, float(value), lo, hi, unit, lo_open=lo_open)[0])


def check_rate(rate_hz: float) -> float:
    """Validate a pulse rate (Hz): a real number in :data:`RATE_RANGE_HZ`."""
    return check_scalar("rate_hz", rate_hz, *RATE_RANGE_HZ, "Hz")


def check_inputs(current_ma, pw_us, csf_mm, interval_s) -> tuple[np.ndarray, ...]:
    """Validate and broadcast per-pulse inputs to contiguous float arrays of one length."""
    arrays = (
        check_array("current_ma", current_ma, *CURRENT_RANGE_MA, "mA"),
        check_array("pw_us", pw_us, *PW_RANGE_US, "µs"),
        check_array("csf_mm", csf_mm, *CSF_RANGE_MM, "mm"),
        check_array("interval_s", interval_s, 1.0 / RATE_RANGE_HZ[1] * (1 - 1e-9), 1e6, "s"),
    )
    try:
        shaped = np.broadcast_arrays(*arrays)
    except ValueError as exc:
        raise ConfigError(f"per-pulse inputs must share one length: {exc}") from None
    return tuple(np.ascontiguousarray(a.ravel()) for a in shaped)
