"""Slow pure-NumPy reference implementation of the neural response model, for testing.

This is a second, independent implementation of :mod:`closedloop.neural.geometry` (in
:mod:`closedloop.neural.reference_tables`), :mod:`closedloop.neural.kernels` (with
:mod:`closedloop.neural.pool`, in :mod:`closedloop.neural.reference_pool`) and
:mod:`closedloop.neural.recording`: it calls no numba-compiled function. Pulses are processed in a
Python loop; fibres, nodes and samples are vectorised with NumPy. Floating-point expressions are
evaluated in the same order as in the kernels, sums that the kernels accumulate in a loop are
accumulated sequentially here (``np.cumsum``, ``np.bincount``), and exponentials use ``math.exp``
(libm, as in the kernels) rather than NumPy's SIMD ``exp``, so that recruitment and the ADC
rounding agree exactly.

Without ``waveforms`` only the estimator window of each sweep is synthesised; every estimate
reads that window alone, so the records do not depend on ``waveforms`` or on how a train is
split into calls.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.neural.kernels import (
    FLUSH,
    PULSE_DTYPE,
    REBASE_ARG,
    KernelParams,
    KernelState,
    KernelTables,
    PulseInputs,
)
from closedloop.neural.recording import NOISE_SALT, ORDER_PW_US, SUPPORT_WIDTHS, TEMPLATE_RATIO
from closedloop.neural.reference_pool import (
    fired_ratio_reference,
    fired_regen_reference,
    irwin_hall_cdf_reference,
    pool_delay_reference,
    pool_fraction_reference,
    pool_regen_table_reference,
)
from closedloop.neural.reference_tables import (
    _exp,
    _seq_sum,
    build_tables_reference,
    sd_tables_reference,
)
from closedloop.neural.rng import fmix32_np, hash_normal_np, pulse_key_np

__all__ = [
    "build_tables_reference",
    "fired_ratio_reference",
    "fired_regen_reference",
    "initiation_delay_reference",
    "irwin_hall_cdf_reference",
    "n1_latency_reference",
    "n1p2_reference",
    "pool_delay_reference",
    "pool_fraction_reference",
    "pool_regen_table_reference",
    "recruit_reference",
    "refresh_templates_reference",
    "run_pulses_reference",
    "synthesise_reference",
    "template_estimate_reference",
    "sd_tables_reference",
    "window_bounds_reference",
]


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


# --- fibre dynamics --------------------------------------------------------------------------


def _advance_clock_reference(
    state: KernelState, kparams: KernelParams, interval_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Advance the lazy processes' clock (rebasing as needed); their decay and gain factors."""
    clock = state.clock_ms
    clock[0] += float(interval_s) * 1e3
    taus = (
        kparams.tau_rel_ms,
        kparams.tau_sn_ms,
        kparams.adapt_tau0_s * 1e3,
        kparams.adapt_tau1_s * 1e3,
        kparams.adapt_tau2_s * 1e3,
    )
    decay = np.empty(5)
    for k, tau in enumerate(taus):
        arg = (clock[0] - clock[1 + k]) / tau
        if arg > REBASE_ARG:
            v = state.decay_ref[k].astype(np.float64) * math.exp(-arg)  # float32 storage
            state.decay_ref[k] = np.where(v >= FLUSH, v, 0.0)
            clock[1 + k], arg = clock[0], 0.0
        decay[k] = math.exp(-arg)
    return decay, 1.0 / decay


def recruit_reference(
    state: KernelState,
    tables: KernelTables,
    kparams: KernelParams,
    current_ma: float,
    pw_us: float,
    csf_mm: float,
    interval_s: float,
    key: np.uint64,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Decay the fibre state over ``interval_s`` (s) and fire one pulse (mA, µs, at mm CSF).

    Every fibre's threshold is evaluated (no pruning), from the lazily stored processes. In
    pool mode (``kparams.pool_fraction``) each fibre fires the fraction
    :func:`pool_fraction_reference` of its pool at its nominal threshold (no draw), and its
    processes move by that fraction (see :func:`_pool_reference`).

    Returns:
        ``(n_recruited, acc, delay_acc)``: the count (pool mode: the sum of the fractions), the
        summed SFAP weight (µV) per class and the summed weight x initiation delay (µV ms) per
        class.
    """
    decay, gain = _advance_clock_reference(state, kparams, interval_s)
    g = min(
        max((csf_mm - kparams.csf0_mm) / kparams.dcsf_mm, 0.0), tables.rheo_ma.shape[0] - 1.000001
    )
    j = int(g)
    f = g - j
    x = state.decay_ref * decay[:, None]
    xr, xs, b = x[0], x[1], x[2:]
    m = 1.0 + kparams.rel_amplitude * xr - kparams.sn_amplitude * xs
    m = m + kparams.adapt_gain0 * b[0] + kparams.adapt_gain1 * b[1] + kparams.adapt_gain2 * b[2]
    f64 = np.float64  # float32 tables, float64 arithmetic
    r0, r1 = tables.rheo_ma[j].astype(f64), tables.rheo_ma[j + 1].astype(f64)
    rheo = r0 + f * (r1 - r0)
    q0, q1 = tables.sd_q_ma[j].astype(f64), tables.sd_q_ma[j + 1].astype(f64)
    th = (rheo + (q0 + f * (q1 - q0)) * pw_us**-kparams.sd_exponent) * m
    w0, w1 = tables.sfap_uv[j].astype(f64), tables.sfap_uv[j + 1].astype(f64)
    w = w0 + f * (w1 - w0)
    x_abs = math.exp(-kparams.t_abs_ms / kparams.tau_rel_ms)
    if kparams.pool_fraction > 0.5:
        th = np.where(xr <= x_abs, th, np.inf)
        return _pool_reference(state, tables, kparams, current_ma, pw_us, th, w, x, gain)
    z = hash_normal_np(fmix32_np(tables.fibre_hash.astype(np.uint64) ^ key))
    th = th * (1.0 + kparams.jitter_rel * z)
    fire = (current_ma >= th) & (xr <= x_abs)
    state.decay_ref[0, fire], state.decay_ref[1, fire] = gain[0], gain[1]
    for k, inc in enumerate((kparams.adapt_inc0, kparams.adapt_inc1, kparams.adapt_inc2)):
        state.decay_ref[2 + k, fire] = (b[k, fire] + inc * (1.0 - b[k, fire])) * gain[2 + k]
    acc = np.bincount(
        tables.fibre_class[fire], weights=w[fire], minlength=state.templates.shape[0]
    ).astype(np.float64)
    u = th[fire] * (1.0 / current_ma) if fire.any() else th[fire]
    dly = initiation_delay_reference(u, pw_us, kparams, tables.init_delay_ms)
    dacc = np.bincount(
        tables.fibre_class[fire], weights=w[fire] * dly, minlength=state.templates.shape[0]
    ).astype(np.float64)
    return float(fire.sum()), acc, dacc


def _pool_reference(
    state: KernelState,
    tables: KernelTables,
    kparams: KernelParams,
    current_ma: float,
    pw_us: float,
    th: np.ndarray,
    w: np.ndarray,
    x: np.ndarray,
    gain: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Pool-mode firing at nominal thresholds ``th`` (mA; inf if absolutely refractory).

    ``w``: SFAP weights (µV); ``x``: the (5, N) process values; ``gain``: the lazy storage's
    gains. Fibres with fraction q > 0 add ``q w`` per class and ``q w`` x the mean delay of
    the members that fire (:func:`pool_delay_reference`); refractory and
    supernormal values become ``x + q (1 - x)``, adaptation ``a + q inc (1 - a)``.
    """
    q = pool_fraction_reference(current_ma, th, kparams.jitter_rel)
    on = q > 0.0
    qs = q[on]
    for k in range(2):
        state.decay_ref[k, on] = (x[k, on] + qs * (1.0 - x[k, on])) * gain[k]
    for k, inc in enumerate((kparams.adapt_inc0, kparams.adapt_inc1, kparams.adapt_inc2)):
        b = x[2 + k, on]
        state.decay_ref[2 + k, on] = (b + (qs * inc) * (1.0 - b)) * gain[2 + k]
    n_cls, cls = state.templates.shape[0], tables.fibre_class[on]
    qw = qs * w[on]
    acc = np.bincount(cls, weights=qw, minlength=n_cls).astype(np.float64)
    dly = pool_delay_reference(
        current_ma, pw_us, th[on], qs, kparams, tables.init_delay_ms, tables.pool_regen_ms
    )
    dacc = np.bincount(cls, weights=qw * dly, minlength=n_cls).astype(np.float64)
    return float(_seq_sum(qs)), acc, dacc


# --- recording chain -------------------------------------------------------------------------


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


# --- pulse loop ------------------------------------------------------------------------------


def _one_pulse(state, tables, kparams, inputs, p, full, neural, rec, r) -> None:
    """Deliver pulse ``p`` of ``inputs`` and write its ``PULSE_DTYPE`` record into ``r``."""
    cur, pw = float(inputs.current_ma[p]), float(inputs.pw_us[p])
    n_s = state.templates.shape[1]
    if pw != state.cache[0]:
        refresh_templates_reference(state, tables, kparams, pw)
    key = pulse_key_np(kparams.seed_pulse_a, kparams.seed_pulse_b, int(state.pulse_count[0]))
    state.pulse_count[0] += 1
    n_rec, acc, dacc = recruit_reference(
        state, tables, kparams, cur, pw, float(inputs.csf_mm[p]), float(inputs.interval_s[p]), key
    )
    frac = n_rec / tables.fibre_class.size
    lo, hi = window_bounds_reference(pw, kparams, n_s)
    emg = synthesise_reference(
        state,
        tables,
        kparams,
        acc,
        dacc,
        pw,
        frac,
        cur,
        key,
        0 if full else lo,
        n_s if full else hi,
        neural,
        rec,
    )
    true_amp, i_min = n1p2_reference(neural, lo, hi)
    r["ecap_n1p2_uv"] = n1p2_reference(rec, lo, hi)[0]
    r["ecap_template_uv"] = template_estimate_reference(
        state, rec, lo, hi, int(kparams.template_lag), pw, float(inputs.interval_s[p])
    )
    r["ecap_uv"] = r["ecap_template_uv"] if kparams.use_template > 0.5 else r["ecap_n1p2_uv"]
    r["ecap_true_uv"] = true_amp
    n_round = math.floor(n_rec + 0.5)  # pool mode: the rounded sum of fractions
    r["n1_latency_ms"] = (
        n1_latency_reference(neural, i_min, lo, hi, 1e3 / kparams.fs_hz) if n_round > 0 else np.nan
    )  # pool mode: NaN below half a fibre
    r["detected"] = r["ecap_template_uv"] > kparams.detect_snr * state.cache[3]
    r["saturated"] = bool(np.any(np.abs(rec[lo:hi]) >= kparams.adc_range_uv))
    r["n_recruited"] = n_round
    r["frac_recruited"] = frac
    r["charge_uc"] = cur * pw * 1e-3
    r["emg_uv"] = emg


def run_pulses_reference(
    state: KernelState,
    tables: KernelTables,
    kparams: KernelParams,
    inputs: PulseInputs,
    waveforms: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Deliver ``P`` pulses to one patient, as :func:`closedloop.neural.kernels.run_pulses`.

    Args:
        state: ``KernelState`` of NumPy arrays, updated in place.
        tables: ``KernelTables`` of the patient.
        kparams: ``KernelParams``.
        inputs: ``PulseInputs`` with arrays of length P (mA, µs, mm, s).
        waveforms: Also return the recorded sweeps.

    Returns:
        ``(out, wave)``: ``PULSE_DTYPE`` records of length P, and the sweeps (µV) of shape
        (P, S), or (0, S) without ``waveforms``.
    """
    n_s = state.templates.shape[1]
    n_p = np.asarray(inputs.current_ma).size
    out = np.zeros(n_p, PULSE_DTYPE)
    wave = np.zeros((n_p if waveforms else 0, n_s))
    neural, rec = np.zeros(n_s), np.zeros(n_s)  # scratch sweeps, kept across pulses
    for p in range(n_p):
        _one_pulse(state, tables, kparams, inputs, p, waveforms, neural, rec, out[p])
        if waveforms:
            wave[p] = rec
    return out, wave
