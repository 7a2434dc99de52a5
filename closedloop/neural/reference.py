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
from closedloop.neural.reference_pool import (
    fired_ratio_reference,
    fired_regen_reference,
    irwin_hall_cdf_reference,
    pool_delay_reference,
    pool_fraction_reference,
    pool_regen_table_reference,
)
from closedloop.neural.reference_recording import (
    initiation_delay_reference,
    n1_latency_reference,
    n1p2_reference,
    refresh_templates_reference,
    synthesise_reference,
    template_estimate_reference,
    window_bounds_reference,
)
from closedloop.neural.reference_tables import (
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
