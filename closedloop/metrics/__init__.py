"""Clinical metrics of a closed-loop SCS run, as pure functions of recorded per-pulse arrays.

Per-pulse inputs are 1-D arrays aligned with the pulse times ``t_s``. Durations use the time
weights of :func:`time_weights_s`, so non-uniform pulse rates are scored by time, not by count.
Sensation is in units of the perception threshold (:mod:`closedloop.patients.perception`); the
therapeutic window is ``1 <= sensation < discomfort``. :func:`clinical_metrics` returns one flat
dict whose keys :data:`METRIC_DOCS` documents (the schema of result files) and
:data:`METRIC_DIRECTION` ranks. Invalid input raises :class:`~closedloop._config.ConfigError`
naming the argument and its valid range.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from closedloop._config import ConfigError
from closedloop.metrics._checks import _frac, _per_pulse, _scalar, _sensation, _time, time_weights_s
from closedloop.metrics.energy import (
    DEFAULT_BATTERY,
    HOURS_PER_YEAR,
    BatterySpec,
    battery_life_years,
    charge_metrics,
    energy_metrics,
)
from closedloop.metrics.posture import posture_response
from closedloop.metrics.scoring import (
    UNSCORED_DOCS,
    posture_codes,
    subset_times,
    unscored_mask,
    unscored_metrics,
)

__all__ = [
    "DEFAULT_BATTERY",
    "HOURS_PER_YEAR",
    "METRIC_DIRECTION",
    "METRIC_DOCS",
    "BatterySpec",
    "UNSCORED_DOCS",
    "battery_life_years",
    "charge_metrics",
    "clinical_metrics",
    "energy_metrics",
    "episodes_above",
    "overstimulation",
    "posture_codes",
    "posture_response",
    "subset_times",
    "time_weights_s",
    "tracking_error",
    "understimulation",
    "unscored_mask",
    "unscored_metrics",
    "window_occupancy",
]

METRIC_DOCS: dict[str, str] = {
    "scored_duration_s": "scored time after warm-up, sum of pulse time weights (s)",
    "n_pulses": "number of scored pulses (1)",
    "mad_uv": "time-weighted mean |ECAP - target| (µV)",
    "rmse_uv": "time-weighted root-mean-square ECAP - target (µV)",
    "mean_rel_error": "time-weighted mean |ECAP - target| / target (1)",
    "time_within_10pct_frac": "fraction of time with |ECAP - target| <= 10 % of target (1)",
    "time_within_20pct_frac": "fraction of time with |ECAP - target| <= 20 % of target (1)",
    "time_in_window_frac": "fraction of time with 1 <= sensation < discomfort (1)",
    "time_below_perception_frac": "fraction of time with sensation < 1 (1)",
    "time_above_discomfort_frac": "fraction of time with sensation >= discomfort (1)",
    "time_in_window_s": "time with 1 <= sensation < discomfort (s)",
    "time_below_perception_s": "time with sensation < 1 (s)",
    "time_above_discomfort_s": "time with sensation >= discomfort (s)",
    "overstim_time_s": "time with sensation >= discomfort (s)",
    "overstim_frac": "fraction of time with sensation >= discomfort (1)",
    "overstim_events": "overstimulation episodes, merged when < min_gap_s apart (count)",
    "overstim_events_per_hour": "overstimulation episodes per scored hour (1/h)",
    "overstim_max_sensation": "peak sensation (perception-threshold units)",
    "understim_time_s": "time with sensation < 1, i.e. not perceived (s)",
    "understim_frac": "fraction of time with sensation < 1 (1)",
    "charge_per_pulse_uc": "mean charge per phase per pulse (µC)",
    "total_charge_uc": "sum of per-phase charge over pulses (µC)",
    "charge_rate_uc_per_s": "per-phase charge delivered per second (µC/s)",
    "energy_per_pulse_uj": "mean biphasic pulse energy into the tissue, 2 I^2 R PW (µJ)",
    "total_energy_mj": "total stimulation energy into the tissue (mJ)",
    "stim_power_uw": "mean stimulation power into the tissue (µW)",
    "battery_life_years": "projected primary-cell life at this power, see BatterySpec (years)",
    "n_changes": "posture changes in the scored period (count)",
    "settling_time_s_mean": "mean time to re-enter and stay in the ECAP band, settled only (s)",
    "settling_time_s_max": "longest settling time over settled posture changes (s)",
    "unsettled_changes": "posture changes whose ECAP never settled within the horizon (count)",
    "overshoot_rel_mean": "mean ECAP overshoot above target after a change, / target (1)",
    "overshoot_rel_max": "largest ECAP overshoot above target after a change, / target (1)",
    **UNSCORED_DOCS,
}
"""Key -> one-line meaning with unit, for every key :func:`clinical_metrics` returns."""

METRIC_DIRECTION: dict[str, int] = {
    **dict.fromkeys(METRIC_DOCS, -1),
    "scored_duration_s": 0,
    "n_pulses": 0,
    "n_changes": 0,
    "time_in_window_frac": 1,
    "time_in_window_s": 1,
    "battery_life_years": 1,
    "time_within_10pct_frac": 1,
    "time_within_20pct_frac": 1,
    "unscored_duration_s": 0,
    "unscored_time_in_window_frac": 1,
}
"""Key -> +1 (higher is better), -1 (lower is better) or 0 (neutral), for leaderboards."""


def tracking_error(ecap_uv: Any, target_uv: Any, weights: Any = None) -> dict[str, float]:
    """How closely the ECAP follows its target.

    Args:
        ecap_uv: ECAP amplitude per pulse (µV), finite.
        target_uv: ECAP target (µV), > 0: a scalar or one per pulse.
        weights: Optional non-negative weights per pulse (e.g. :func:`time_weights_s`, s);
            unweighted (per pulse) if None.

    Returns:
        ``mad_uv`` (mean |ecap - target|, µV; the dose accuracy of clinical ECAP studies),
        ``rmse_uv`` (µV), ``mean_rel_error`` (1), and ``time_within_10pct_frac`` and
        ``time_within_20pct_frac``: the weighted fraction with |ecap - target| at most 10 % and
        20 % of the target (1).
    """
    ecap = _per_pulse("ecap_uv", ecap_uv, unit="µV")
    n = ecap.size
    target = _per_pulse("target_uv", target_uv, n, lo=0.0, lo_open=True, unit="µV", scalar_ok=True)
    w = np.ones(n) if weights is None else _per_pulse("weights", weights, n, lo=0.0)
    if not np.sum(w) > 0:
        raise ConfigError("weights must have a positive sum; valid range [0, inf) each")
    err = np.abs(ecap - target)
    rel = err / target
    return {
        "mad_uv": float(np.average(err, weights=w)),
        "rmse_uv": math.sqrt(np.average(err**2, weights=w)),
        "mean_rel_error": float(np.average(rel, weights=w)),
        "time_within_10pct_frac": float(np.average(rel <= 0.1, weights=w)),
        "time_within_20pct_frac": float(np.average(rel <= 0.2, weights=w)),
    }


def window_occupancy(t_s: Any, sensation: Any, discomfort: Any) -> dict[str, float]:
    """Time below perception, inside the therapeutic window and at or above discomfort.

    Args:
        t_s: Pulse times (s), strictly increasing.
        sensation: Sensation per pulse (perception-threshold units), finite, >= 0.
        discomfort: Discomfort level (perception-threshold units), > 1: scalar or per pulse.

    Returns:
        ``time_{in_window,below_perception,above_discomfort}_frac`` (sum 1) and ``..._s`` (s).
    """
    _, w = _time(t_s)
    s, d = _sensation(sensation, discomfort, w.size)
    below, above = s < 1.0, s >= d
    in_s, in_f = _frac(~below & ~above, w)
    below_s, below_f = _frac(below, w)
    above_s, above_f = _frac(above, w)
    return {
        "time_in_window_frac": in_f,
        "time_below_perception_frac": below_f,
        "time_above_discomfort_frac": above_f,
        "time_in_window_s": in_s,
        "time_below_perception_s": below_s,
        "time_above_discomfort_s": above_s,
    }


def episodes_above(t_s: Any, mask: Any, min_gap_s: float = 0.5) -> list[tuple[float, float]]:
    """Contiguous runs of True in ``mask``, merging runs less than ``min_gap_s`` apart.

    A run of pulses ``i..j`` spans ``[t_i, t_j + dt_j)``, so its length is the sum of its time
    weights; the gap between two runs is the time weight of the False pulses between them.

    Args:
        t_s: Pulse times (s), strictly increasing.
        mask: Boolean per pulse (e.g. ``sensation >= discomfort``).
        min_gap_s: Runs separated by a gap shorter than this merge into one event (s), >= 0.

    Returns:
        ``(start_s, end_s)`` of each event, in time order.
    """
    t, w = _time(t_s)
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != t.shape:
        raise ConfigError(
            f"mask must be a boolean array of length {t.size} (one per pulse), "
            f"got dtype {m.dtype} and shape {m.shape}"
        )
    gap = _scalar("min_gap_s", min_gap_s, lo=0.0, unit="s")
    edges = np.diff(np.concatenate(([0], m.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    events: list[tuple[float, float]] = []
    for i, j in zip(starts, stops, strict=True):
        start, end = float(t[i]), float(t[j] + w[j])
        if events and start - events[-1][1] < gap:
            events[-1] = (events[-1][0], end)
        else:
            events.append((start, end))
    return events


def overstimulation(
    t_s: Any, sensation: Any, discomfort: Any, min_gap_s: float = 0.5
) -> dict[str, float]:
    """Time and episodes at or above discomfort (``sensation >= discomfort``).

    Args:
        t_s: Pulse times (s), strictly increasing.
        sensation: Sensation per pulse (perception-threshold units), finite, >= 0.
        discomfort: Discomfort level (perception-threshold units), > 1: scalar or per pulse.
        min_gap_s: Episodes closer than this count as one event (s), >= 0.

    Returns:
        ``overstim_time_s``, ``overstim_frac``, ``overstim_events`` (merged),
        ``overstim_events_per_hour`` and ``overstim_max_sensation``, see :data:`METRIC_DOCS`.
    """
    t, w = _time(t_s)
    s, d = _sensation(sensation, discomfort, t.size)
    above = s >= d
    n_events = len(episodes_above(t, above, min_gap_s))
    time_s, frac = _frac(above, w)
    return {
        "overstim_time_s": time_s,
        "overstim_frac": frac,
        "overstim_events": n_events,
        "overstim_events_per_hour": n_events / (float(np.sum(w)) / 3600.0),
        "overstim_max_sensation": float(np.max(s)),
    }


def understimulation(t_s: Any, sensation: Any) -> dict[str, float]:
    """Time below perception (``sensation < 1``), where the stimulation is not felt.

    Args:
        t_s: Pulse times (s), strictly increasing.
        sensation: Sensation per pulse (perception-threshold units), finite, >= 0.

    Returns:
        ``understim_time_s`` (s) and ``understim_frac``.
    """
    _, w = _time(t_s)
    s = _per_pulse("sensation", sensation, w.size, lo=0.0, unit="× perception threshold")
    time_s, frac = _frac(s < 1.0, w)
    return {"understim_time_s": time_s, "understim_frac": frac}


def _scored(name: str, x: Any, n: int, keep: np.ndarray) -> Any:
    """Restrict a per-pulse input to the scored pulses (scalars pass through)."""
    if x is None or np.ndim(x) == 0:
        return x
    if np.shape(x) != (n,):
        raise ConfigError(f"{name} must have one entry per pulse ({n}), got shape {np.shape(x)}")
    return np.asarray(x)[keep]


def clinical_metrics(
    t_s: Any,
    ecap_uv: Any,
    target_uv: Any,
    sensation: Any,
    discomfort: Any,
    charge_uc: Any,
    current_ma: Any,
    pw_us: Any,
    impedance_ohm: Any,
    posture: Any = None,
    warmup_s: float = 0.0,
    battery: BatterySpec = DEFAULT_BATTERY,
    min_gap_s: float = 0.5,
    band_rel: float = 0.2,
    horizon_s: float = 10.0,
    scored: Any = None,
) -> dict[str, float]:
    """All clinical metrics of one run, scored after a warm-up, as one flat dict.

    Pulses with ``t_s < t_s[0] + warmup_s`` are excluded from every metric. Pulses after the
    warm-up with ``scored`` False (e.g. :func:`~closedloop.metrics.scoring.unscored_mask`: a
    posture the protocol scores separately) are left out of every metric but the ``unscored_*``
    ones, which score exactly those pulses; each scored pulse keeps its own time weight
    (:func:`~closedloop.metrics.scoring.subset_times`). Tracking error is time-weighted.
    Posture changes are those within the scored pulses; without ``posture`` ``n_changes`` is 0
    and the settling/overshoot metrics are NaN.

    Args:
        t_s: Pulse times (s), strictly increasing.
        ecap_uv: ECAP amplitude per pulse (µV), e.g. noise-free for the posture metrics.
        target_uv: ECAP target (µV), > 0: scalar or per pulse.
        sensation: Sensation per pulse (perception-threshold units), >= 0.
        discomfort: Discomfort level (perception-threshold units), > 1: scalar or per pulse.
        charge_uc: Charge per phase per pulse (µC), >= 0.
        current_ma: Current amplitude per pulse (mA), >= 0.
        pw_us: Pulse width per phase (µs): scalar or per pulse.
        impedance_ohm: Electrode-tissue impedance (Ω): scalar or per pulse.
        posture: Optional posture code or name per pulse.
        warmup_s: Time from the first pulse excluded from scoring (s), >= 0.
        battery: Battery and power budget for the battery-life projection.
        min_gap_s: Overstimulation episodes closer than this merge (s).
        band_rel: Settling band half-width relative to the target.
        horizon_s: Time examined after each posture change (s).
        scored: Optional boolean per pulse, True where the primary metrics score the pulse;
            all pulses if None.

    Returns:
        One float or int per key of :data:`METRIC_DOCS`, in that order.

    Raises:
        ConfigError: If an input is invalid or fewer than 2 pulses remain after the warm-up.
    """
    t, _ = _time(t_s)
    warm = _scalar("warmup_s", warmup_s, lo=0.0, unit="s")
    after_warmup = t >= t[0] + warm
    keep = after_warmup & _scored_mask(scored, t.size)
    if np.count_nonzero(keep) < 2:
        raise ConfigError(
            f"warmup_s={warmup_s!r} and scored leave {np.count_nonzero(keep)} "
            f"scored pulse(s); at least 2 are needed (warmup_s valid range [0, "
            f"{t[-2] - t[0]:g}] s for this run)"
        )
    args = {
        "ecap_uv": ecap_uv,
        "target_uv": target_uv,
        "sensation": sensation,
        "discomfort": discomfort,
        "charge_uc": charge_uc,
        "current_ma": current_ma,
        "pw_us": pw_us,
        "impedance_ohm": impedance_ohm,
        "posture": posture,
    }
    a = {name: _scored(name, x, t.size, keep) for name, x in args.items()}
    ts = subset_times(t, keep)
    w = time_weights_s(ts)
    out: dict[str, Any] = {"scored_duration_s": float(np.sum(w)), "n_pulses": int(ts.size)}
    out |= tracking_error(a["ecap_uv"], a["target_uv"], weights=w)
    out |= window_occupancy(ts, a["sensation"], a["discomfort"])
    out |= overstimulation(ts, a["sensation"], a["discomfort"], min_gap_s)
    out |= understimulation(ts, a["sensation"])
    out |= charge_metrics(ts, a["charge_uc"])
    out |= energy_metrics(ts, a["current_ma"], a["pw_us"], a["impedance_ohm"], battery)
    pose = np.zeros(ts.size) if a["posture"] is None else a["posture"]
    out |= posture_response(ts, a["ecap_uv"], a["target_uv"], pose, band_rel, horizon_s)
    u = {
        name: _scored(name, args[name], t.size, after_warmup)
        for name in ("ecap_uv", "target_uv", "sensation", "discomfort", "charge_uc")
    }
    out |= unscored_metrics(t[after_warmup], **u, unscored=~keep[after_warmup])
    return {key: out[key] for key in METRIC_DOCS}


def _scored_mask(scored: Any, n: int) -> np.ndarray:
    """The ``scored`` argument of :func:`clinical_metrics` as a boolean array (all if None)."""
    if scored is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(scored)
    if mask.dtype != bool or mask.shape != (n,):
        raise ConfigError(
            f"scored must be None or a boolean array of length {n} (one per "
            f"pulse), got dtype {mask.dtype} and shape {mask.shape}"
        )
    return mask
