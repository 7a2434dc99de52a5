"""Settling time and overshoot of the ECAP after posture changes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from closedloop._config import ConfigError
from closedloop.metrics._checks import _per_pulse, _scalar, _time


def _one_change(
    t: np.ndarray, rel: np.ndarray, k: int, stop: int, band_rel: float, horizon_s: float
) -> tuple[float, float]:
    """Settling time (s, NaN if unsettled) and overshoot of the change at pulse ``k``."""
    h_end = k + int(np.searchsorted(t[k:], t[k] + horizon_s, side="left"))
    overshoot = max(0.0, float(np.max(rel[k:h_end])))
    seg_end = min(h_end, stop)
    out = np.flatnonzero(np.abs(rel[k:seg_end]) > band_rel)
    if out.size == 0:
        return 0.0, overshoot
    if k + out[-1] + 1 >= seg_end:
        return math.nan, overshoot
    return float(t[k + out[-1] + 1] - t[k]), overshoot


def _summarise_changes(per_change: list[dict[str, Any]]) -> dict[str, Any]:
    settle = np.array([c["settling_time_s"] for c in per_change], dtype=float)
    over = np.array([c["overshoot_rel"] for c in per_change], dtype=float)
    done = settle[~np.isnan(settle)]
    return {
        "n_changes": len(per_change),
        "settling_time_s_mean": float(np.mean(done)) if done.size else math.nan,
        "settling_time_s_max": float(np.max(done)) if done.size else math.nan,
        "unsettled_changes": int(settle.size - done.size),
        "overshoot_rel_mean": float(np.mean(over)) if over.size else math.nan,
        "overshoot_rel_max": float(np.max(over)) if over.size else math.nan,
        "per_change": per_change,
    }


def posture_response(
    t_s: Any,
    ecap_uv: Any,
    target_uv: Any,
    posture: Any,
    band_rel: float = 0.2,
    horizon_s: float = 10.0,
) -> dict[str, Any]:
    """Settling time and overshoot of the ECAP after each posture change.

    A change happens at pulse ``k`` where ``posture[k] != posture[k-1]``. Its settling time is
    the time from ``t_k`` until the ECAP enters the band ``|ecap - target| <= band_rel * target``
    and stays in it up to the end of the horizon, ``min(t_k + horizon_s, next change, end)``:
    0 if it never left the band, NaN if it is still outside at the horizon's last pulse.
    Overshoot is ``max(0, max((ecap - target) / target))`` over ``[t_k, t_k + horizon_s)``.

    Measurement noise alone can leave the band and adds its peak to the overshoot: pass the
    noise-free ECAP where the simulator records it, or a ``band_rel`` well above the noise.

    Args:
        t_s: Pulse times (s), strictly increasing.
        ecap_uv: ECAP amplitude per pulse (µV), finite.
        target_uv: ECAP target (µV), > 0: scalar or per pulse.
        posture: Posture per pulse (codes of :data:`closedloop.patients.postures.POSTURES`,
            or names).
        band_rel: Half-width of the settling band relative to the target, > 0.
        horizon_s: Time after each change that is examined (s), > 0.

    Returns:
        ``n_changes``, ``settling_time_s_mean``/``_max`` (settled changes; NaN if none),
        ``unsettled_changes``, ``overshoot_rel_mean``/``_max`` and ``per_change``: dicts with
        ``t_s``, ``from``, ``to``, ``settling_time_s`` and ``overshoot_rel``.
    """
    t, _ = _time(t_s)
    ecap = _per_pulse("ecap_uv", ecap_uv, t.size, unit="µV")
    target = _per_pulse(
        "target_uv", target_uv, t.size, lo=0.0, lo_open=True, unit="µV", scalar_ok=True
    )
    pose = np.asarray(posture)
    if pose.shape != t.shape or (pose.dtype.kind == "f" and not np.all(np.isfinite(pose))):
        raise ConfigError(
            f"posture must be a finite 1-D array of length {t.size} (one posture "
            f"code or name per pulse), got shape {pose.shape}"
        )
    band = _scalar("band_rel", band_rel, lo=0.0, lo_open=True)
    horizon = _scalar("horizon_s", horizon_s, lo=0.0, lo_open=True, unit="s")
    rel = (ecap - target) / target
    changes = list(np.flatnonzero(pose[1:] != pose[:-1]) + 1) + [t.size]
    per_change = []
    for k, stop in zip(changes[:-1], changes[1:], strict=True):
        settle, over = _one_change(t, rel, int(k), int(stop), band, horizon)
        per_change.append(
            {
                "t_s": float(t[k]),
                "from": pose[k - 1].item(),
                "to": pose[k].item(),
                "settling_time_s": settle,
                "overshoot_rel": over,
            }
        )
    return _summarise_changes(per_change)
