"""Validation of per-pulse inputs: every bad value is named with its valid range."""

from __future__ import annotations

import numpy as np

from closedloop._config import ConfigError
from closedloop.neural.geometry import CSF_GRID_MM

CURRENT_RANGE_MA = (0.0, 25.5)
PW_RANGE_US = (20.0, 1000.0)
RATE_RANGE_HZ = (1.0, 10_000.0)
CSF_RANGE_MM = (CSF_GRID_MM[0], CSF_GRID_MM[1])


def check_array(name: str, value, lo: float, hi: float, unit: str, *, lo_open: bool = False,
                ) -> np.ndarray:
    """Return ``value`` as a float array, or raise naming ``name`` and ``[lo, hi]``."""
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    left = "(" if lo_open else "["
    rng = f"{left}{lo:g}, {hi:g}] {unit}"
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be finite (got NaN or inf); valid range {rng}")
    bad = (arr <= lo) if lo_open else (arr < lo)
    bad |= arr > hi
    if np.any(bad):
        raise ConfigError(f"{name}={arr[bad][0]:g} is out of range; valid range {rng}")
    return arr


def check_rate(rate_hz: float) -> float:
    """Validate a pulse rate (Hz)."""
    return float(check_array("rate_hz", rate_hz, *RATE_RANGE_HZ, "Hz")[0])


def check_inputs(current_ma, pw_us, csf_mm, interval_s) -> tuple[np.ndarray, ...]:
    """Validate and broadcast per-pulse inputs to contiguous float arrays of one length."""
    arrays = (
        check_array("current_ma", current_ma, *CURRENT_RANGE_MA, "mA"),
        check_array("pw_us", pw_us, *PW_RANGE_US, "µs"),
        check_array("csf_mm", csf_mm, *CSF_RANGE_MM, "mm"),
        check_array("interval_s", interval_s, 1.0 / RATE_RANGE_HZ[1] * (1 - 1e-9),
                    1e6, "s"),
    )
    try:
        shaped = np.broadcast_arrays(*arrays)
    except ValueError as exc:
        raise ConfigError(f"per-pulse inputs must share one length: {exc}") from None
    return tuple(np.ascontiguousarray(a.ravel()) for a in shaped)
