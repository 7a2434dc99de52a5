"""The metric functions of the fast-vs-MRG comparison: pure functions of arrays.

Each reduces one relation to numbers (a log-log slope, a strength-duration fit, the features of
a recovery cycle); :mod:`closedloop.fidelity.compare` applies them identically to both models.
"""

from __future__ import annotations

import math

import numpy as np

_NULL = float("nan")


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y on log x (NaN if fewer than two finite points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return _NULL
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def strength_duration(pws_us, thresholds_ma) -> tuple[float, float]:
    """Rheobase (mA) and chronaxie (µs) of the Weiss/Lapicque fit I = I_rh (1 + c / PW).

    Least squares on log I: for a chronaxie c the best log rheobase is the mean of
    ``log I - log(1 + c / PW)``; c is found by a log-spaced scan refined by golden section.

    Args:
        pws_us: Pulse widths (µs).
        thresholds_ma: Thresholds (mA) at those pulse widths.

    Returns:
        ``(rheobase_ma, chronaxie_us)``; NaN if fewer than three finite thresholds.
    """
    pw, th = np.asarray(pws_us, float), np.asarray(thresholds_ma, float)
    ok = np.isfinite(th) & (th > 0)
    if ok.sum() < 3:
        return _NULL, _NULL
    pw, log_i = pw[ok], np.log(th[ok])

    def sse(log_c):
        r = log_i - np.log1p(np.exp(np.asarray(log_c, float))[..., None] / pw)
        return np.sum((r - r.mean(axis=-1, keepdims=True)) ** 2, axis=-1)

    grid = np.linspace(math.log(1e-2), math.log(1e6), 161)
    k = int(np.argmin(sse(grid)))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    gold = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(50):  # golden section: the bracket shrinks by 1e-10
        a, b = hi - gold * (hi - lo), lo + gold * (hi - lo)
        lo, hi = (lo, b) if sse(a) < sse(b) else (a, hi)
    c = math.exp(0.5 * (lo + hi))
    rheo = math.exp(float(np.mean(log_i - np.log1p(c / pw))))
    return rheo, c


def recovery_features(interval_ms, threshold_ratio, arp_ms: float | None = None) -> dict:
    """Features of a paired-pulse recovery cycle (threshold after conditioning / at rest).

    The definitions of :func:`closedloop.fidelity.mrg_recovery.recovery_features`, with the
    absolute refractory period taken from the curve when none is given.

    Args:
        interval_ms: Conditioning-test intervals (ms), ascending.
        threshold_ratio: Threshold ratio per interval; None or NaN where no second AP fired.
        arp_ms: The absolute refractory period if measured more finely (ms); else the first
            interval with a second AP (the sampled upper bound).

    Returns:
        ``arp_ms``; ``rrp_end_ms``: where the ratio first falls to 1 (linear interpolation);
        ``supernormal_pct`` (100 (min ratio - 1), negative when supernormal) and
        ``supernormal_ms`` at the lowest ratio from there on; ``subnormal_pct`` (100 (max
        ratio - 1)) and ``subnormal_ms`` at the highest ratio after that minimum. NaN where
        undefined.
    """
    x = np.asarray(interval_ms, float)
    y = np.array([_NULL if v is None else float(v) for v in threshold_ratio])
    out = dict.fromkeys(
        (
            "arp_ms",
            "rrp_end_ms",
            "supernormal_pct",
            "supernormal_ms",
            "subnormal_pct",
            "subnormal_ms",
        ),
        _NULL,
    )
    ok = np.isfinite(y)
    if not ok.any():
        return out
    out["arp_ms"] = float(arp_ms) if arp_ms is not None else float(x[ok][0])
    x, y = x[ok], y[ok]
    below = np.flatnonzero(y <= 1.0)
    if below.size == 0:
        return out
    k = int(below[0])
    out["rrp_end_ms"] = (
        float(x[0])
        if k == 0
        else float(x[k - 1] + (y[k - 1] - 1.0) / (y[k - 1] - y[k]) * (x[k] - x[k - 1]))
    )
    i_min = k + int(np.argmin(y[k:]))
    out["supernormal_pct"], out["supernormal_ms"] = float(100.0 * (y[i_min] - 1.0)), float(x[i_min])
    if i_min + 1 < y.size:
        i_max = i_min + 1 + int(np.argmax(y[i_min + 1 :]))
        out["subnormal_pct"] = float(100.0 * (y[i_max] - 1.0))
        out["subnormal_ms"] = float(x[i_max])
    return out


def sfap_exponent(diameters_um, amplitude_uv) -> float:
    """Exponent e of SFAP amplitude ∝ D^e (log-log least squares over the diameters)."""
    return loglog_slope(diameters_um, np.abs(np.asarray(amplitude_uv, float)))


def interp(x, xp, fp) -> float:
    """Linear interpolation inside the sampled range, NaN outside."""
    xp, fp = np.asarray(xp, float), np.asarray(fp, float)
    ok = np.isfinite(fp)
    if ok.sum() < 1 or not xp[ok].min() <= x <= xp[ok].max():
        return _NULL
    return float(np.interp(x, xp[ok], fp[ok]))


def ratio_stats(fast_ma, mrg_ma, tol_rel: float) -> dict:
    """Fast/MRG threshold ratios over a grid: median, largest |error| and count beyond tol.

    Args:
        fast_ma: Fast-model thresholds (any shape, mA).
        mrg_ma: MRG thresholds of the same shape (mA).
        tol_rel: Relative tolerance (e.g. 0.1).

    Returns:
        ``{"median_ratio", "max_abs_error", "n_beyond", "n_points", "ratio"}``; a
        non-finite ratio counts as beyond and makes ``max_abs_error`` infinite.
    """
    ratio = np.asarray(fast_ma, float) / np.asarray(mrg_ma, float)
    err = np.abs(ratio - 1.0)
    finite = np.isfinite(err)
    return {
        "median_ratio": float(np.median(ratio[finite])) if finite.any() else _NULL,
        "max_abs_error": float(err.max()) if finite.all() else math.inf,
        "n_beyond": int(np.sum(~(err <= tol_rel))),
        "n_points": int(ratio.size),
        "ratio": ratio.tolist(),
    }


def grouped_ratio_stats(fast_ma, mrg_ma, groups, tol_rel: float) -> dict:
    """:func:`ratio_stats` per group label and over all points (key ``"all"``).

    Args:
        fast_ma: Fast-model thresholds, one per point (mA).
        mrg_ma: MRG thresholds of the same points (mA).
        groups: A label per point (e.g. the source configuration).
        tol_rel: Relative tolerance (e.g. 0.1).

    Returns:
        ``{label: ratio_stats, ..., "all": ratio_stats}``, labels in order of first appearance;
        each also has ``median_abs_error``.

    Raises:
        ValueError: If the three sequences differ in length.
    """
    fast_ma, mrg_ma = np.asarray(fast_ma, float), np.asarray(mrg_ma, float)
    groups = list(groups)
    if not fast_ma.shape == mrg_ma.shape == (len(groups),):
        raise ValueError("fast_ma, mrg_ma and groups must be 1-D of the same length")
    out = {}
    for label in [*dict.fromkeys(groups), "all"]:
        mask = np.array([label in ("all", g) for g in groups], bool)
        st = ratio_stats(fast_ma[mask], mrg_ma[mask], tol_rel)
        err = np.abs(np.asarray(st["ratio"]) - 1.0)
        st["median_abs_error"] = float(np.median(err)) if np.isfinite(err).all() else math.inf
        out[label] = st
    return out
