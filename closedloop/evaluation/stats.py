"""Statistics across patients and seeds: mean, median, IQM with bootstrap CIs, worst patient, CVaR.

Pure functions of arrays and result rows. Conventions:

* ``direction`` is +1 when higher is better and -1 when lower is better
  (:data:`closedloop.evaluation.episode_runner.DIRECTION`); "worst" follows it.
* The interquartile mean (IQM) is the mean of the middle 50 %: ``floor(n/4)`` values are cut
  from each end (as ``scipy.stats.trim_mean(x, 0.25)`` and rliable do).
* ``CVaR_alpha`` is the mean of the worst ``ceil(alpha n)`` values.
* NaN values (e.g. a settling time when nothing settled) are left out.
* Scores arrive as a matrix ``(patients, seeds)``. Mean, median and IQM pool all episodes; the
  worst patient and CVaR use each patient's mean over seeds, so they describe patients.
* Confidence intervals are percentile intervals of a bootstrap with a fixed-seed
  :class:`numpy.random.Generator`. ``hierarchical`` (default) resamples patients with
  replacement and, within each drawn patient, its seeds: the interval covers patient-to-patient
  spread, as a claim about new patients needs. ``stratified`` keeps every patient and resamples
  seeds within each (rliable's stratified bootstrap, patients as tasks): seed noise only.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from closedloop._config import ConfigError, as_real_array, check_value
from closedloop._io import check_memory

STATISTICS = ("mean", "median", "iqm")
"""Statistics that get bootstrap confidence intervals."""
BOOTSTRAP_MODES = ("hierarchical", "stratified")
DEFAULT_RESAMPLES = 2000
DEFAULT_ALPHA = 0.25
"""CVaR fraction: the mean of the worst quarter of patients."""
MAX_RESAMPLES = 1_000_000
"""Most bootstrap resamples (each holds every episode's index: memory grows with it)."""


def _rows(x: Any) -> np.ndarray:
    """``x`` as a float 2-D array (one sample per row)."""
    a = as_real_array("values", x)
    return a.reshape(1, -1) if a.ndim <= 1 else a.reshape(a.shape[0], -1)


def _sorted_sums(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted ascending (NaN last), valid counts, and cumulative sums with a 0 column."""
    s = np.sort(a, axis=1)
    n = np.count_nonzero(~np.isnan(s), axis=1)
    cs = np.concatenate((np.zeros((s.shape[0], 1)), np.cumsum(np.nan_to_num(s), axis=1)), axis=1)
    return s, n, cs


def _span_mean(cs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of sorted positions ``lo:hi`` per row from cumulative sums (NaN if empty)."""
    take = np.take_along_axis
    total = take(cs, hi[:, None], 1)[:, 0] - take(cs, lo[:, None], 1)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hi > lo, total / (hi - lo), np.nan)


def row_statistic(
    x: Any, stat: str, direction: int = -1, alpha: float = DEFAULT_ALPHA
) -> np.ndarray:
    """One statistic of every row of ``x`` (vectorised, NaN left out).

    Args:
        x: Samples, one per row: shape ``(rows, n)`` (a 1-D array is one row).
        stat: ``mean``, ``median``, ``iqm``, ``worst`` or ``cvar``.
        direction: +1 higher is better, -1 lower is better (for ``worst`` and ``cvar``).
        alpha: CVaR fraction in (0, 1].

    Returns:
        One value per row (NaN for a row without valid values).
    """
    a = _rows(x)
    if stat == "median":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN
            return np.nanmedian(a, axis=1) if a.shape[1] else np.full(a.shape[0], np.nan)
    s, n, cs = _sorted_sums(a)
    if stat == "mean":
        return _span_mean(cs, np.zeros_like(n), n)
    if stat == "iqm":
        k = n // 4
        return _span_mean(cs, k, n - k)
    _check_direction(direction)
    if stat == "worst":
        idx = np.maximum(n - 1, 0) if direction < 0 else np.zeros_like(n)
        return np.where(n > 0, np.take_along_axis(s, idx[:, None], 1)[:, 0], np.nan)
    if stat == "cvar":
        m = np.ceil(_check_alpha(alpha) * n - 1e-9).astype(np.int64)
        return _span_mean(cs, n - m, n) if direction < 0 else _span_mean(cs, np.zeros_like(m), m)
    raise ConfigError(f"stat={stat!r} is unknown; valid: mean, median, iqm, worst, cvar")


def _check_direction(direction: int) -> None:
    if direction not in (1, -1):
        raise ConfigError(
            f"direction={direction!r} is invalid; valid: 1 (higher is better) or "
            "-1 (lower is better)"
        )


def _check_alpha(alpha: float) -> float:
    check_value("alpha", alpha, {"lo": 0.0, "hi": 1.0, "lo_open": True, "unit": "1"}, "real")
    return float(alpha)


def iqm(x: Any) -> float:
    """Interquartile mean: the mean of the middle 50 % (NaN left out)."""
    return float(row_statistic(np.ravel(x), "iqm")[0])


def worst(x: Any, direction: int) -> float:
    """The worst value: the maximum if lower is better (``direction`` -1), else the minimum."""
    return float(row_statistic(np.ravel(x), "worst", direction)[0])


def cvar(x: Any, alpha: float = DEFAULT_ALPHA, direction: int = -1) -> float:
    """Conditional value at risk: the mean of the worst ``ceil(alpha n)`` values."""
    return float(row_statistic(np.ravel(x), "cvar", direction, alpha)[0])


def resample(
    values: Any, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, mode: str = "hierarchical"
) -> np.ndarray:
    """Bootstrap resamples of a ``(patients, seeds)`` matrix, flattened per resample.

    Args:
        values: Scores, shape ``(patients, seeds)``; NaN marks a missing episode.
        n_resamples: Number of resamples, >= 1.
        seed: Seed of the :class:`numpy.random.Generator`.
        mode: ``hierarchical`` or ``stratified`` (see the module docstring).

    Returns:
        Shape ``(n_resamples, patients * seeds)``.
    """
    return _indexed(_matrix(values), _indices(np.shape(_matrix(values)), n_resamples, seed, mode))


def _indices(
    shape: tuple[int, int], n_resamples: int, seed: int, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Patient and seed indices of the resamples, shapes ``(B, P, 1)`` and ``(B, P, S)``."""
    if mode not in BOOTSTRAP_MODES:
        raise ConfigError(f"mode={mode!r} is unknown; valid: {', '.join(BOOTSTRAP_MODES)}")
    check_value("n_resamples", n_resamples, {"lo": 1, "hi": MAX_RESAMPLES, "unit": "1"}, "int")
    check_value("seed", seed, {"lo": 0, "unit": "1"}, "int")
    p, s = shape
    b = int(n_resamples)
    check_memory(
        f"n_resamples={b} of {p} x {s} episodes", 8.0 * b * p * (4 * s + 1), "use fewer resamples"
    )
    rng = np.random.default_rng(seed)
    if mode == "hierarchical":
        pi = rng.integers(p, size=(b, p, 1))
    else:
        pi = np.broadcast_to(np.arange(p)[None, :, None], (b, p, 1))
    return pi, rng.integers(s, size=(b, p, s))


def _indexed(m: np.ndarray, idx: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The resampled entries of ``m`` (seeds drawn from each patient's own episodes)."""
    pi, si = idx
    return m[pi, si].reshape(si.shape[0], -1)


def _matrix(values: Any) -> np.ndarray:
    """``values`` as a non-empty float ``(patients, seeds)`` matrix."""
    m = as_real_array("values", values)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.size == 0:
        raise ConfigError(
            f"values must be a non-empty (patients, seeds) matrix, got shape {np.shape(values)}"
        )
    return m


def bootstrap_ci(
    values: Any,
    stat: str = "iqm",
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str = "hierarchical",
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``stat`` over a ``(patients, seeds)`` matrix.

    Args:
        values: Scores, shape ``(patients, seeds)`` (a 1-D array: one seed per patient).
        stat: ``mean``, ``median`` or ``iqm``.
        n_resamples: Bootstrap resamples.
        confidence: Interval coverage in (0, 1).
        seed: Seed of the resampling Generator (fixed: the same input gives the same CI).
        mode: ``hierarchical`` or ``stratified``.

    Returns:
        ``(low, high)``.
    """
    _check_stat(stat)
    boot = row_statistic(resample(values, n_resamples, seed, mode), stat)
    return _percentiles(boot, confidence)


def _check_stat(stat: str) -> None:
    if stat not in STATISTICS:
        raise ConfigError(f"stat={stat!r} is unknown; valid: {', '.join(STATISTICS)}")


def _percentiles(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap statistics (NaN resamples left out)."""
    check_value(
        "confidence", confidence, {"lo": 0.0, "hi": 1.0, "lo_open": True, "unit": "1"}, "real"
    )
    if confidence == 1.0:
        raise ConfigError("confidence=1.0 is out of range; valid range (0, 1)")
    ok = boot[~np.isnan(boot)]
    if ok.size == 0:
        return math.nan, math.nan
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(ok, [tail, 100.0 - tail])
    return float(lo), float(hi)


def describe(
    values: Any,
    direction: int,
    alpha: float = DEFAULT_ALPHA,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str = "hierarchical",
) -> dict[str, float]:
    """Every statistic of one ``(patients, seeds)`` score matrix.

    Args:
        values: Scores, shape ``(patients, seeds)``, NaN for missing episodes.
        direction: +1 higher is better, -1 lower is better, 0 neutral (no worst/CVaR).
        alpha: CVaR fraction.
        n_resamples: Bootstrap resamples.
        confidence: CI coverage.
        seed: Bootstrap seed.
        mode: Bootstrap mode.

    Returns:
        ``mean``, ``median``, ``iqm``, their CIs ``<stat>_lo``/``<stat>_hi``, ``worst``,
        ``worst_index`` (the worst patient's row, -1 if none), ``cvar`` and ``n``.
    """
    m = _matrix(values)
    flat = m.reshape(1, -1)
    boot = resample(m, n_resamples, seed, mode)
    out: dict[str, float] = {"n": int(np.count_nonzero(~np.isnan(m)))}
    for stat in STATISTICS:
        out[stat] = float(row_statistic(flat, stat)[0])
        out[f"{stat}_lo"], out[f"{stat}_hi"] = _percentiles(row_statistic(boot, stat), confidence)
    out.update(_tail(m, direction, alpha))
    return out


def _tail(m: np.ndarray, direction: int, alpha: float) -> dict[str, float]:
    """Worst patient (by its mean over seeds), its row index, and CVaR over patients."""
    per_patient = row_statistic(m, "mean")
    if direction == 0 or np.all(np.isnan(per_patient)):
        return {"worst": math.nan, "worst_index": -1, "cvar": math.nan}
    w = worst(per_patient, direction)
    index = int(np.flatnonzero(per_patient == w)[0])
    return {"worst": w, "worst_index": index, "cvar": cvar(per_patient, alpha, direction)}


def paired_ratio(
    values: Any,
    baseline: Any,
    stat: str = "mean",
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str = "hierarchical",
) -> dict[str, float]:
    """``stat(values) / stat(baseline)`` with a paired bootstrap CI.

    Both matrices are ``(patients, seeds)`` over the same patients and seeds; each resample
    draws the same patients and seeds for both, so the shared patient spread cancels.

    Returns:
        ``ratio``, ``ratio_lo``, ``ratio_hi``, ``value`` and ``baseline`` (the two statistics).
    """
    _check_stat(stat)
    a, b = _matrix(values), _matrix(baseline)
    if a.shape != b.shape:
        raise ConfigError(
            f"values shape {a.shape} and baseline shape {b.shape} differ; paired "
            "statistics need the same patients and seeds"
        )
    both = np.isnan(a) | np.isnan(b)
    a, b = np.where(both, np.nan, a), np.where(both, np.nan, b)
    idx = _indices(a.shape, n_resamples, seed, mode)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = row_statistic(_indexed(a, idx), stat) / row_statistic(_indexed(b, idx), stat)
        va, vb = (float(row_statistic(x.reshape(1, -1), stat)[0]) for x in (a, b))
        ratio = va / vb if vb != 0 else math.nan
    boot[~np.isfinite(boot)] = np.nan
    lo, hi = _percentiles(boot, confidence)
    return {"ratio": ratio, "ratio_lo": lo, "ratio_hi": hi, "value": va, "baseline": vb}
