"""Slow NumPy references of the recording chain, for tests.

The initiation delay, the estimation window, the templates, the synthesised sweep and the
amplitude estimators (compiled in :mod:`closedloop.neural.recording`).
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.neural.kernels import (
    KernelParams,
    KernelState,
    KernelTables,
)
from closedloop.neural.latency import TEMPLATE_RATIO
from closedloop.neural.recording import NOISE_SALT, ORDER_PW_US, SUPPORT_WIDTHS
from closedloop.neural.reference_tables import (
    _exp,
    _seq_sum,
)
from closedloop.neural.rng import fmix32_np, hash_normal_np


def initiation_delay_reference(
    u: np.ndarray, pw_us: float, kparams: KernelParams, table: np.ndarray
) -> np.ndarray:
    """Initiation delay (ms after pulse onset) at ``u`` = threshold / current (array in [0, 1]).

    ``offset + pw_fraction * PW * u`` plus the tabulated regenerative delay, interpolated
    linearly (``KernelTables.init_delay_ms``).
    """
    x = u * (table.size - 2)
    k = np.minimum(x.astype(np.int64), table.size - 2)
    g0 = table[k]
    return (
        kparams.init_offset_ms
        + kparams.init_pw_fraction * (pw_us * 1e-3) * u
        + (g0 + (x - k) * (table[k + 1] - g0))
    )


def window_bounds_reference(pw_us: float, kparams: KernelParams, n_samples: int) -> tuple[int, int]:
    """First and one-past-last sample of the estimator window for a pulse width (µs)."""
    t_end_ms = (2.0 * pw_us + kparams.interphase_us) * 1e-3
    lo = min(int(math.ceil((t_end_ms + kparams.blank_ms) * kparams.fs_hz * 1e-3)), n_samples - 2)
    hi = int(math.floor(kparams.est_end_ms * kparams.fs_hz * 1e-3)) + 1
    return lo, max(min(hi, n_samples), lo + 2)


def _sfap_shape(u: np.ndarray, asym: float) -> np.ndarray:
    """Triphasic SFAP at normalised times ``u``; N1 = -1 at u = 0."""
    g = _exp(-0.5 * u * u)
    return -(1.0 - u * u) * g + asym * u * g


def refresh_templates_reference(
    state: KernelState, tables: KernelTables, kparams: KernelParams, pw_us: float
) -> None:
    """Recompute the templates, matched filter, artefact/EMG shapes and cache for ``pw_us`` (µs).

    The class templates are unit-N1 SFAPs delayed by the initiation delay at
    ``TEMPLATE_RATIO`` times threshold + conduction; the
    artefact shape is ``exp(-(t - t_end) / tau)`` after the pulse end ``t_end`` (NaN before
    it) and the EMG shape ``u exp((1 - u²) / 2)`` with ``u = (t - latency) / width`` (t in ms).
    The filter is the mixed template (or, with ``tables.template_ref``, the "recruited"
    reference ECAP: class b's weight share of unit-N1 SFAPs at its fibres' mean initiation
    delay plus conduction) on the window (zero elsewhere), less its mean and its
    projections on the artefact decay as read at lags 0 and ``-template_lag`` (Gram-Schmidt,
    as ``recording.artefact_orthogonal``); ``cache[1] = 1 / |filter|²``
    (= 1 / <template, filter>), ``cache[2]`` the template's N1-P2 over the window,
    ``cache[3]`` the estimate's noise sd (µV).
    """
    n_s = state.templates.shape[1]
    t = np.arange(n_s) * (1e3 / kparams.fs_hz)
    c = _template_delay_reference(pw_us, kparams, tables) + tables.class_delay_ms
    state.templates[:] = _sfap_shape(
        (t[None, :] - c[:, None]) / kparams.sfap_width_ms, kparams.sfap_asymmetry
    )
    lo, hi = window_bounds_reference(pw_us, kparams, n_s)
    mf = np.zeros(n_s)
    ref = tables.template_ref
    if ref[0].sum() > 0.0:  # "recruited": each class at its fibres' own initiation delay
        for b in np.flatnonzero(ref[0] > 0.0):
            cb = (
                kparams.init_offset_ms
                + kparams.init_pw_fraction * (pw_us * 1e-3) * ref[1, b]
                + ref[2, b]
            ) + tables.class_delay_ms[b]
            mf += ref[0, b] * _sfap_shape((t - cb) / kparams.sfap_width_ms, kparams.sfap_asymmetry)
    else:
        for b in range(c.size):
            mf += tables.class_mix[b] * state.templates[b].astype(np.float64)
    i_min = lo + int(np.argmin(mf[lo:hi]))
    amp = max(mf[i_min:hi].max(), -1e300) - mf[i_min]
    t_end = (2.0 * pw_us + kparams.interphase_us) * 1e-3
    after = t >= t_end
    state.shapes[0] = np.nan
    state.shapes[0, after] = _exp(-(t[after] - t_end) / kparams.artefact_tau_ms)
    u = (t - kparams.emg_latency_ms) / kparams.emg_width_ms
    state.shapes[1] = u * _exp(0.5 * (1.0 - u * u))
    # the filter: orthogonal over the window to a constant and the artefact at lags 0, -lag
    lag = min(int(kparams.template_lag), hi - lo - 1)
    mf[:lo], mf[hi:] = 0.0, 0.0
    n = hi - lo
    art = state.shapes[0, lo:hi]
    lagged = np.zeros(n)
    lagged[lag:] = art[: n - lag]
    mean, am, bm = _seq_sum(mf[lo:hi]) / n, _seq_sum(art) / n, _seq_sum(lagged) / n
    mf[lo:hi] -= mean
    v2, b = art - am, lagged - bm
    aa, ba = _seq_sum(v2 * v2), _seq_sum(b * v2)
    if aa > 0.0:
        kb = ba / aa
        mf[lo:hi] -= (_seq_sum(mf[lo:hi] * v2) / aa) * v2
        v3 = b - kb * v2
        vv, eb = _seq_sum(v3 * v3), _seq_sum(mf[lo:hi] * v3)
        if vv > 0.0:
            mf[lo:hi] -= (eb / vv) * v3
    ss = _seq_sum(mf[lo:hi] * mf[lo:hi])
    state.mf[:] = mf
    state.cache[0] = pw_us
    state.cache[1] = 1.0 / ss if ss > 0.0 else 0.0
    state.cache[2] = amp
    state.cache[3] = kparams.noise_uv_rms * math.sqrt(state.cache[1]) * state.cache[2]
    # the kernel's per-width constants (recording.cache_pulse_constants); the reference's
    # pulses compute them afresh and do not read these
    state.cache[4:10] = (
        pw_us**-kparams.sd_exponent,
        ORDER_PW_US**-kparams.sd_exponent,
        math.exp(-kparams.t_abs_ms / kparams.tau_rel_ms),
        _template_delay_reference(pw_us, kparams, tables),
        lo,
        hi,
    )


def _template_delay_reference(pw_us: float, kparams: KernelParams, tables: KernelTables) -> float:
    """Initiation delay (ms) the class templates are cached at (``TEMPLATE_RATIO``)."""
    u = np.array([1.0 / TEMPLATE_RATIO])
    return float(initiation_delay_reference(u, pw_us, kparams, tables.init_delay_ms)[0])


def synthesise_reference(
    state: KernelState,
    tables: KernelTables,
    kparams: KernelParams,
    acc: np.ndarray,
    dacc: np.ndarray,
    pw_us: float,
    frac: float,
    current_ma: float,
    key: np.uint64,
    lo: int,
    hi: int,
    neural: np.ndarray,
    rec: np.ndarray,
) -> float:
    """Fill samples ``lo:hi`` of the noise-free ECAP ``neural`` and the recorded ``rec`` (µV).

    Class b's template is shifted by its mean initiation delay ``dacc[b] / acc[b]`` less the
    templates' own, in samples ``k + w`` (k whole): ``(1 - w) T[s - k] + w T[s - k - 1]``,
    over the samples for which both lie inside the sweep and within ``SUPPORT_WIDTHS`` SFAP
    time scales of the shifted centre.

    The recorded sample is ECAP + artefact + EMG (the ADC full scale during a nonzero pulse)
    plus amplifier noise, clipped to the ADC range and rounded to its LSB.

    Returns:
        The peak of the late muscle response (µV).
    """
    neural[lo:hi] = 0.0
    n_s = state.templates.shape[1]
    t_ref = _template_delay_reference(pw_us, kparams, tables)
    per_ms = kparams.fs_hz * 1e-3
    half = SUPPORT_WIDTHS * kparams.sfap_width_ms * per_ms
    for b in np.flatnonzero(acc != 0.0):
        a = acc[b]
        x = (dacc[b] / a - t_ref) * per_ms
        k = math.floor(x)
        a0, a1 = a * (1.0 - (x - k)), a * (x - k)
        c = (t_ref + float(tables.class_delay_ms[b])) * per_ms + x
        s0 = max(lo, k + 1, math.ceil(c - half))
        s1 = min(hi, n_s + k, math.floor(c + half) + 1)
        if s1 > s0:
            row = state.templates[b].astype(np.float64)
            neural[s0:s1] += a0 * row[s0 - k : s1 - k] + a1 * row[s0 - k - 1 : s1 - k - 1]
    emg = kparams.emg_uv_per_fraction * max(frac - kparams.motor_fraction, 0.0)
    art = kparams.artefact_offset_uv + kparams.artefact_uv_per_ma * current_ma
    top = kparams.adc_range_uv
    art_shape, emg_shape = state.shapes[0, lo:hi], state.shapes[1, lo:hi]
    during = np.isnan(art_shape)
    v = neural[lo:hi] + art * art_shape + emg * emg_shape
    v[during] = top if current_ma > 0.0 else neural[lo:hi][during]
    key2 = fmix32_np(key ^ NOISE_SALT)
    v = v + kparams.noise_uv_rms * hash_normal_np(
        fmix32_np(tables.sample_hash[lo:hi].astype(np.uint64) ^ key2)
    )
    rec[lo:hi] = np.round(np.clip(v, -top, top) * (1.0 / kparams.adc_lsb_uv)) * kparams.adc_lsb_uv
    return emg


def n1p2_reference(x: np.ndarray, lo: int, hi: int) -> tuple[float, int]:
    """N1-P2 amplitude of ``x[lo:hi]`` and the index of N1 (the first minimum)."""
    i_min = lo + int(np.argmin(x[lo:hi]))
    return float(x[i_min:hi].max() - x[i_min]), i_min


def template_estimate_reference(
    state: KernelState,
    x: np.ndarray,
    lo: int,
    hi: int,
    max_lag: int,
    pw_us: float = math.nan,
    interval_s: float = math.nan,
) -> float:
    """Sliding matched-filter amplitude of the sweep ``x`` (µV, template N1-P2 scale).

    For every lag in ``[-max_lag, max_lag]`` the projection ``sum_s x[s + lag] * mf[s]`` over
    the ``s`` for which both ``s`` and ``s + lag`` lie in ``lo:hi`` is formed. Without lag
    tracking (``state.lag_track[0] == 0``) the largest is kept; with it, the projection at the
    first lag where the average of the earlier pulses' projections is largest, and the
    average (time constant ``lag_track[0]`` s, pulses ``interval_s`` apart, restarted when the
    pulse width ``pw_us`` changes) then takes this pulse's. Scaled by ``cache[1] * cache[2]``
    (1 / sum mf², template N1-P2).
    """
    dots = np.zeros(2 * max_lag + 1)
    for q, lag in enumerate(range(-max_lag, max_lag + 1)):
        a, b = max(lo, lo - lag), min(hi, hi - lag)
        dots[q] = _seq_sum(x[a + lag : b + lag] * state.mf[a:b]) if b > a else 0.0
    track = state.lag_track
    tau_s = float(track[0])
    if tau_s > 0.0 and track[1] == pw_us:
        best = dots[int(np.argmax(track[2 : 2 + dots.size]))]
        alpha = -math.expm1(-interval_s / tau_s)
        track[2 : 2 + dots.size] += alpha * (dots - track[2 : 2 + dots.size])
    else:
        best = dots.max()
        if tau_s > 0.0:
            track[1], track[2 : 2 + dots.size] = pw_us, dots
    return float(best) * state.cache[1] * state.cache[2]


def n1_latency_reference(neural: np.ndarray, i_min: int, lo: int, hi: int, dt_ms: float) -> float:
    """N1 time (ms) by parabolic refinement around sample ``i_min`` inside ``lo:hi``."""
    if i_min <= lo or i_min >= hi - 1:
        return i_min * dt_ms
    a, b, c = neural[i_min - 1], neural[i_min], neural[i_min + 1]
    den = a - 2.0 * b + c
    off = 0.5 * (a - c) / den if den > 0.0 else 0.0
    return float((i_min + off) * dt_ms)
