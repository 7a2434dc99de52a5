"""Clinical metrics of a closed-loop SCS run, as pure functions of recorded per-pulse arrays.

Per-pulse inputs are 1-D arrays aligned with the pulse times ``t_s``. Durations use the time
weights of :func:`time_weights_s`, so non-uniform pulse rates are scored by time, not by count.
Sensation is in units of the perception threshold (:mod:`closedloop.perception`); the
therapeutic window is ``1 <= sensation < discomfort``. :func:`clinical_metrics` returns one flat
dict whose keys :data:`METRIC_DOCS` documents (the schema of result files) and
:data:`METRIC_DIRECTION` ranks. Invalid input raises :class:`~closedloop._config.ConfigError`
naming the argument and its valid range.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from closedloop._config import ConfigError, check_value, param, range_text, validate

HOURS_PER_YEAR = 8766.0
"""Mean hours per year (365.25 d), for battery-life projections."""

METRIC_DOCS: dict[str, str] = {
    "scored_duration_s": "scored time after warm-up, sum of pulse time weights (s)",
    "n_pulses": "number of scored pulses (1)",
    "mad_uv": "time-weighted mean |ECAP - target| (µV)",
    "rmse_uv": "time-weighted root-mean-square ECAP - target (µV)",
    "mean_rel_error": "time-weighted mean |ECAP - target| / target (1)",
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
}
"""Key -> one-line meaning with unit, for every key :func:`clinical_metrics` returns."""

METRIC_DIRECTION: dict[str, int] = {
    **dict.fromkeys(METRIC_DOCS, -1),
    "scored_duration_s": 0, "n_pulses": 0, "n_changes": 0,
    "time_in_window_frac": 1, "time_in_window_s": 1, "battery_life_years": 1,
}
"""Key -> +1 (higher is better), -1 (lower is better) or 0 (neutral), for leaderboards."""


@dataclasses.dataclass(frozen=True)
class BatterySpec:
    """Implanted pulse generator battery and power budget for battery-life projections."""

    capacity_mah: float = param(4000.0, "mAh", "assumption: primary-cell IPG ~3-4.5 Ah", 0.0,
                                1e5, lo_open=True, doc="usable battery capacity")
    voltage_v: float = param(3.2, "V", "assumption: Li/CFx-type cell", 0.0, 10.0, lo_open=True,
                             doc="mean cell voltage over discharge")
    efficiency: float = param(0.5, "1", "assumption: conversion and compliance-drive efficiency "
                              "of the output stage", 0.0, 1.0, lo_open=True,
                              doc="tissue energy / battery energy spent on stimulation")
    quiescent_uw: float = param(30.0, "µW", "assumption: electronics incl. ECAP sensing", 0.0,
                                1e5, doc="battery power drawn besides stimulation")

    def __post_init__(self) -> None:
        validate(self, "battery.")

    @property
    def capacity_wh(self) -> float:
        """Usable energy of the cell (Wh)."""
        return self.capacity_mah * 1e-3 * self.voltage_v


DEFAULT_BATTERY = BatterySpec()
"""The default :class:`BatterySpec` (immutable, safe as an argument default)."""


def _scalar(name: str, value: Any, lo: float | None = None, lo_open: bool = False,
            unit: str = "1") -> float:
    """Check a finite scalar against ``[lo, inf)`` and return it as float."""
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    check_value(name, value, {"lo": lo, "hi": None, "lo_open": lo_open, "unit": unit})
    return float(value)


def _per_pulse(name: str, x: Any, n: int | None = None, lo: float | None = None,
               lo_open: bool = False, unit: str = "1", scalar_ok: bool = False) -> np.ndarray:
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
        raise ConfigError(f"{name} must be {kind}a 1-D array with one entry per pulse "
                          f"({n or 'at least 1'}), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if lo is not None:
        bad |= (arr <= lo) if lo_open else (arr < lo)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        meta = {"lo": lo, "hi": None, "lo_open": lo_open, "unit": unit}
        raise ConfigError(f"{name}[{i}]={float(arr[i])!r} is out of range; valid range "
                          f"{range_text(meta)}, finite")
    return arr


def _time(t_s: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated pulse times and their time weights (s)."""
    t = _per_pulse("t_s", t_s, unit="s")
    if t.size < 2:
        raise ConfigError(f"t_s has {t.size} pulse; at least 2 are needed to measure time")
    dt = np.diff(t)
    if np.any(dt <= 0):
        i = int(np.flatnonzero(dt <= 0)[0]) + 1
        raise ConfigError(f"t_s must be strictly increasing (s); t_s[{i}]={float(t[i])!r} <= "
                          f"t_s[{i - 1}]={float(t[i - 1])!r}")
    return t, np.append(dt, np.median(dt))


def _sensation(sensation: Any, discomfort: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated sensation (>= 0) and discomfort level (> 1), per pulse."""
    s = _per_pulse("sensation", sensation, n, lo=0.0, unit="× perception threshold")
    d = _per_pulse("discomfort", discomfort, n, lo=1.0, lo_open=True,
                   unit="× perception threshold", scalar_ok=True)
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


def tracking_error(ecap_uv: Any, target_uv: Any, weights: Any = None) -> dict[str, float]:
    """How closely the ECAP follows its target.

    Args:
        ecap_uv: ECAP amplitude per pulse (µV), finite.
        target_uv: ECAP target (µV), > 0: a scalar or one per pulse.
        weights: Optional non-negative weights per pulse (e.g. :func:`time_weights_s`, s);
            unweighted (per pulse) if None.

    Returns:
        ``mad_uv`` (mean |ecap - target|, µV), ``rmse_uv`` (µV) and ``mean_rel_error`` (1).
    """
    ecap = _per_pulse("ecap_uv", ecap_uv, unit="µV")
    n = ecap.size
    target = _per_pulse("target_uv", target_uv, n, lo=0.0, lo_open=True, unit="µV",
                        scalar_ok=True)
    w = np.ones(n) if weights is None else _per_pulse("weights", weights, n, lo=0.0)
    if not np.sum(w) > 0:
        raise ConfigError("weights must have a positive sum; valid range [0, inf) each")
    err = np.abs(ecap - target)
    return {"mad_uv": float(np.average(err, weights=w)),
            "rmse_uv": math.sqrt(np.average(err**2, weights=w)),
            "mean_rel_error": float(np.average(err / target, weights=w))}


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
    return {"time_in_window_frac": in_f, "time_below_perception_frac": below_f,
            "time_above_discomfort_frac": above_f, "time_in_window_s": in_s,
            "time_below_perception_s": below_s, "time_above_discomfort_s": above_s}


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
        raise ConfigError(f"mask must be a boolean array of length {t.size} (one per pulse), "
                          f"got dtype {m.dtype} and shape {m.shape}")
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


def overstimulation(t_s: Any, sensation: Any, discomfort: Any,
                    min_gap_s: float = 0.5) -> dict[str, float]:
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
    return {"overstim_time_s": time_s, "overstim_frac": frac, "overstim_events": n_events,
            "overstim_events_per_hour": n_events / (float(np.sum(w)) / 3600.0),
            "overstim_max_sensation": float(np.max(s))}


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


def charge_metrics(t_s: Any, charge_uc: Any) -> dict[str, float]:
    """Charge delivered by charge-balanced biphasic pulses (counted per phase).

    Args:
        t_s: Pulse times (s), strictly increasing.
        charge_uc: Charge per phase per pulse (µC), finite, >= 0.

    Returns:
        ``charge_per_pulse_uc`` (mean, µC), ``total_charge_uc`` and ``charge_rate_uc_per_s``.
    """
    _, w = _time(t_s)
    q = _per_pulse("charge_uc", charge_uc, w.size, lo=0.0, unit="µC")
    total = float(np.sum(q))
    return {"charge_per_pulse_uc": float(np.mean(q)), "total_charge_uc": total,
            "charge_rate_uc_per_s": total / float(np.sum(w))}


def battery_life_years(stim_power_uw: float, battery: BatterySpec = DEFAULT_BATTERY) -> float:
    """Projected battery life: ``capacity_wh / (stim_power / efficiency + quiescent) / 8766 h``.

    Args:
        stim_power_uw: Mean stimulation power into the tissue (µW), >= 0.
        battery: Battery and power budget.

    Returns:
        Life in years (inf if nothing draws power).
    """
    if not isinstance(battery, BatterySpec):
        raise ConfigError(f"battery must be a BatterySpec, got {type(battery).__name__}")
    p_uw = _scalar("stim_power_uw", stim_power_uw, lo=0.0, unit="µW")
    draw_w = (p_uw / battery.efficiency + battery.quiescent_uw) * 1e-6
    return math.inf if draw_w == 0 else battery.capacity_wh / draw_w / HOURS_PER_YEAR


def energy_metrics(t_s: Any, current_ma: Any, pw_us: Any, impedance_ohm: Any,
                   battery: BatterySpec = DEFAULT_BATTERY) -> dict[str, float]:
    """Energy into the tissue, ``E = 2 I^2 R PW`` per biphasic pulse, and battery life.

    Args:
        t_s: Pulse times (s), strictly increasing.
        current_ma: Current amplitude per pulse (mA), finite, >= 0.
        pw_us: Pulse width per phase (µs), >= 0: scalar or per pulse.
        impedance_ohm: Electrode-tissue impedance (Ω), > 0: scalar or per pulse.
        battery: Battery and power budget for :func:`battery_life_years`.

    Returns:
        ``energy_per_pulse_uj`` (mean), ``total_energy_mj``, ``stim_power_uw`` (total energy
        / scored duration) and ``battery_life_years``.
    """
    _, w = _time(t_s)
    n = w.size
    i_ma = _per_pulse("current_ma", current_ma, n, lo=0.0, unit="mA")
    pw = _per_pulse("pw_us", pw_us, n, lo=0.0, unit="µs", scalar_ok=True)
    r = _per_pulse("impedance_ohm", impedance_ohm, n, lo=0.0, lo_open=True, unit="Ω",
                   scalar_ok=True)
    e_uj = 2.0 * (i_ma * 1e-3) ** 2 * r * pw  # A^2 * Ω * µs = µJ
    total_uj = float(np.sum(e_uj))
    power_uw = total_uj / float(np.sum(w))
    return {"energy_per_pulse_uj": float(np.mean(e_uj)), "total_energy_mj": total_uj * 1e-3,
            "stim_power_uw": power_uw, "battery_life_years": battery_life_years(power_uw,
                                                                                battery)}


def _one_change(t: np.ndarray, rel: np.ndarray, k: int, stop: int, band_rel: float,
                horizon_s: float) -> tuple[float, float]:
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
    return {"n_changes": len(per_change),
            "settling_time_s_mean": float(np.mean(done)) if done.size else math.nan,
            "settling_time_s_max": float(np.max(done)) if done.size else math.nan,
            "unsettled_changes": int(settle.size - done.size),
            "overshoot_rel_mean": float(np.mean(over)) if over.size else math.nan,
            "overshoot_rel_max": float(np.max(over)) if over.size else math.nan,
            "per_change": per_change}


def posture_response(t_s: Any, ecap_uv: Any, target_uv: Any, posture: Any,
                     band_rel: float = 0.2, horizon_s: float = 10.0) -> dict[str, Any]:
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
        posture: Posture per pulse (codes of :data:`closedloop.postures.POSTURES`, or names).
        band_rel: Half-width of the settling band relative to the target, > 0.
        horizon_s: Time after each change that is examined (s), > 0.

    Returns:
        ``n_changes``, ``settling_time_s_mean``/``_max`` (settled changes; NaN if none),
        ``unsettled_changes``, ``overshoot_rel_mean``/``_max`` and ``per_change``: dicts with
        ``t_s``, ``from``, ``to``, ``settling_time_s`` and ``overshoot_rel``.
    """
    t, _ = _time(t_s)
    ecap = _per_pulse("ecap_uv", ecap_uv, t.size, unit="µV")
    target = _per_pulse("target_uv", target_uv, t.size, lo=0.0, lo_open=True, unit="µV",
                        scalar_ok=True)
    pose = np.asarray(posture)
    if pose.shape != t.shape or (pose.dtype.kind == "f" and not np.all(np.isfinite(pose))):
        raise ConfigError(f"posture must be a finite 1-D array of length {t.size} (one posture "
                          f"code or name per pulse), got shape {pose.shape}")
    band = _scalar("band_rel", band_rel, lo=0.0, lo_open=True)
    horizon = _scalar("horizon_s", horizon_s, lo=0.0, lo_open=True, unit="s")
    rel = (ecap - target) / target
    changes = list(np.flatnonzero(pose[1:] != pose[:-1]) + 1) + [t.size]
    per_change = []
    for k, stop in zip(changes[:-1], changes[1:], strict=True):
        settle, over = _one_change(t, rel, int(k), int(stop), band, horizon)
        per_change.append({"t_s": float(t[k]), "from": pose[k - 1].item(),
                           "to": pose[k].item(), "settling_time_s": settle,
                           "overshoot_rel": over})
    return _summarise_changes(per_change)


def _scored(name: str, x: Any, n: int, keep: np.ndarray) -> Any:
    """Restrict a per-pulse input to the scored pulses (scalars pass through)."""
    if x is None or np.ndim(x) == 0:
        return x
    if np.shape(x) != (n,):
        raise ConfigError(f"{name} must have one entry per pulse ({n}), got shape {np.shape(x)}")
    return np.asarray(x)[keep]


def clinical_metrics(t_s: Any, ecap_uv: Any, target_uv: Any, sensation: Any, discomfort: Any,
                     charge_uc: Any, current_ma: Any, pw_us: Any, impedance_ohm: Any,
                     posture: Any = None, warmup_s: float = 0.0,
                     battery: BatterySpec = DEFAULT_BATTERY, min_gap_s: float = 0.5,
                     band_rel: float = 0.2, horizon_s: float = 10.0) -> dict[str, float]:
    """All clinical metrics of one run, scored after a warm-up, as one flat dict.

    Pulses with ``t_s < t_s[0] + warmup_s`` are excluded from every metric. Tracking error is
    time-weighted. Posture changes are those within the scored period; without ``posture``
    ``n_changes`` is 0 and the settling/overshoot metrics are NaN.

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

    Returns:
        One float or int per key of :data:`METRIC_DOCS`, in that order.

    Raises:
        ConfigError: If an input is invalid or fewer than 2 pulses remain after the warm-up.
    """
    t, _ = _time(t_s)
    warm = _scalar("warmup_s", warmup_s, lo=0.0, unit="s")
    keep = t >= t[0] + warm
    if np.count_nonzero(keep) < 2:
        raise ConfigError(f"warmup_s={warmup_s!r} leaves {np.count_nonzero(keep)} scored "
                          f"pulse(s); valid range [0, {t[-2] - t[0]:g}] s for this run")
    args = {"ecap_uv": ecap_uv, "target_uv": target_uv, "sensation": sensation,
            "discomfort": discomfort, "charge_uc": charge_uc, "current_ma": current_ma,
            "pw_us": pw_us, "impedance_ohm": impedance_ohm, "posture": posture}
    a = {name: _scored(name, x, t.size, keep) for name, x in args.items()}
    ts = t[keep]
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
    return {key: out[key] for key in METRIC_DOCS}
