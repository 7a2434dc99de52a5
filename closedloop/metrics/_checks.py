"""Input checks and time weights shared by the metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from closedloop._config import ConfigError, check_value, range_text


def _scalar(
    name: str, value: Any, lo: float | None = None, lo_open: bool = False, unit: str = "1"
) -> float:
    """Check a finite scalar against ``[lo, inf)`` and return it as float."""
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    check_value(name, value, {"lo": lo, "hi": None, "lo_open": lo_open, "unit": unit})
    return float(value)


def _per_pulse(
    name: str,
    x: Any,
    n: int | None = None,
    lo: float | None = None,
    lo_open: bool = False,
    unit: str = "1",
    scalar_ok: bool = False,
) -> np.ndarray:
    """Check a per-pulse array (or a scalar if ``scalar_ok``): finite, >= lo, length ``n``."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be numeric, got {type(x).__name__}") from None
    if arr.ndim == 0 and scalar_ok:
        _scalar(name, float(arr), lo, lo_open, unit)
        return np.full(1 if n is None else n, float(arr))
    if arr.ndim != 1 or arr.size == 0 or (n is not None and arr.size != n):
        kind = "a scalar or " if scalar_ok else ""
        raise ConfigError(
            f"{name} must be {kind}a 1-D array with one entry per pulse "
            f"({n or 'at least 1'}), got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr)
    if lo is not None:
        bad |= (arr <= lo) if lo_open else (arr < lo)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        meta = {"lo": lo, "hi": None, "lo_open": lo_open, "unit": unit}
        raise ConfigError(
            f"{name}[{i}]={float(arr[i])!r} is out of range; valid range {range_text(meta)}, finite"
        )
    return arr


def _time(t_s: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated pulse times and their time weights (s)."""
    t = _per_pulse("t_s", t_s, unit="s")
    if t.size < 2:
        raise ConfigError(f"t_s has {t.size} pulse; at least 2 are needed to measure time")
    dt = np.diff(t)
    if np.any(dt <= 0):
        i = int(np.flatnonzero(dt <= 0)[0]) + 1
        raise ConfigError(
            f"t_s must be strictly increasing (s); t_s[{i}]={float(t[i])!r} <= "
            f"t_s[{i - 1}]={float(t[i - 1])!r}"
        )
    return t, np.append(dt, np.median(dt))


def _sensation(sensation: Any, discomfort: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated sensation (>= 0) and discomfort level (> 1), per pulse."""
    s = _per_pulse("sensation", sensation, n, lo=0.0, unit="× perception threshold")
    d = _per_pulse(
        "discomfort",
        discomfort,
        n,
        lo=1.0,
        lo_open=True,
        unit="× perception threshold",
        scalar_ok=True,
    )
    return s, d


def _frac(mask: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Time (s) and fraction of total time where ``mask`` holds."""
    time_s = float(np.sum(w[mask]))
    return time_s, time_s / float(np.sum(w))


def time_weights_s(t_s: Any) -> np.ndarray:
    """Per-pulse time weights (s): ``t_{i+1} - t_i``, the median of those for the last pulse.

    Args:
        t_s: Pulse times (s), strictly increasing, at least 2 pulses.
    """
    return _time(t_s)[1]
