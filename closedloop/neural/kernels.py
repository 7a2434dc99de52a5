"""The numba kernels of the neural response model: the one copy of the dynamics.

``run_pulses`` advances one patient through a sequence of pulses. Per pulse it advances the
clock of the fibres' decaying refractory and adaptation processes (stored lazily, so resting
fibres cost nothing). For the leading fibres (stored in screening order) that might fire it
interpolates its strength-duration law at the current CSF thickness, applies it,
refractoriness, adaptation and a jittered draw, and decides recruitment. Recruited fibres add
their SFAP weight (and weight x initiation delay) to their diameter class; the recorded sweep
is synthesised from the class templates, the late muscle response, the stimulus artefact,
amplifier noise and the ADC, and the ECAP amplitude is estimated from it.

The helpers of a pulse, and ``run_pulses`` itself, are inlined at numba's IR level
(``inline="always"``) into their callers (the batch kernel, the environments' compiled steps):
as separate compiled functions, every call took its tuples of arrays with a reference-count
operation per array, and the whole took about a quarter more time per pulse. Nothing in a
pulse allocates (the template estimator's scratch is in ``KernelWork``, which must come from
:func:`new_work` for the patient's sizes and lag), so the batch kernel's loop over patients
(:func:`closedloop.neural.batch._chunk`) and :func:`run_pulses_unshared` are compiled without
reference counting at all.

The arrays and scalars a kernel takes are laid out in :mod:`closedloop.neural.layout`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from closedloop.neural.estimators import clipped, n1_latency, n1p2, template_estimate
from closedloop.neural.latency import delay_at
from closedloop.neural.layout import (
    PULSE_DTYPE,
    KernelParams,
    KernelState,
    KernelTables,
    KernelWork,
    PulseInputs,
    new_work,
)
from closedloop.neural.pool import fired_fraction, pool_fire
from closedloop.neural.recording import refresh_templates, synthesise
from closedloop.neural.rng import Z_MAX, fmix32, hash_normal, pulse_key

__all__ = [  # the layout is re-exported: callers import it from here
    "FLOOR_BLOCK",
    "FLUSH",
    "PULSE_DTYPE",
    "REBASE_ARG",
    "KernelParams",
    "KernelState",
    "KernelTables",
    "KernelWork",
    "PulseInputs",
    "fired_fraction",
    "new_work",
    "nominal_thresholds",
    "pool_fire",
    "recruit",
    "run_pulses",
    "run_pulses_unshared",
]

FLOOR_BLOCK = 16
"""Fibres per block of ``KernelTables.cell_floor``: the kernel examines whole blocks."""
REBASE_ARG = 80.0
"""A process is rebased once exp(-(t - t_ref) / tau) falls below exp(-80) (about 2e-35), so a
stored value (at most exp(80), about 6e34) fits float32 (up to 3.4e38)."""
FLUSH = 1e-30
"""Process values below this are set to zero when rebased: every stored value is then a normal
float32 (above 1.2e-38), no float64 product is subnormal (subnormal arithmetic is about 100
times slower), and 1e-30 is far below anything that changes a threshold."""


@njit(cache=True, inline="always")
def sd_ratio_min(sd_ratio_range, s, s_order):
    """Lower bound over fibres of ``(1 + c s) / (1 + c s_order)`` (monotone in c = Q / rheo).

    ``s = PW^-beta`` of the pulse and ``s_order`` that of ``ORDER_PW_US``. With it, no fibre in
    grid cell j can have a threshold below its screening key
    (:func:`closedloop.neural.build.cell_floors`) times ``ratio * m_min`` (see :func:`recruit`).
    """
    lo, hi = sd_ratio_range[0], sd_ratio_range[1]
    a = (1.0 + lo * s) / (1.0 + lo * s_order)
    b = (1.0 + hi * s) / (1.0 + hi * s_order)
    return min(a, b)


@njit(cache=True, inline="always")
def screen_m_min(kparams, interval_s):
    """Lower bound over fibres of the excitability factor ``m`` (see :func:`recruit`) at a pulse.

    A fibre that last fired ``t >= interval_s`` ago (s) has supernormal value
    ``exp(-t / tau_sn)`` and adaptation values ``a_k >= inc_k exp(-t / tau_k)`` (a spike sets
    ``a_k`` to ``a_k + inc_k (1 - a_k) >= inc_k``); one that never fired has ``m >= 1``; the
    refractory term is positive. So ``m >= 1 - max(0, D(t))`` with ``D(t) = sn exp(-t / tau_sn)
    - sum_k gain_k inc_k exp(-t / tau_k)`` over the processes with ``tau_k >= tau_sn``, whose
    sum decays no faster than the supernormal term: ``D(t) <= max(0, D(interval_s))`` for
    ``t >= interval_s``. The margins (1e-6) cover the float32 storage of the processes.
    """
    t_ms = interval_s * 1e3
    deficit = kparams.sn_amplitude * math.exp(-t_ms / kparams.tau_sn_ms) * (1.0 + 1e-6)
    taus_ms = (kparams.adapt_tau0_s * 1e3, kparams.adapt_tau1_s * 1e3, kparams.adapt_tau2_s * 1e3)
    incs = (kparams.adapt_inc0, kparams.adapt_inc1, kparams.adapt_inc2)
    gains = (kparams.adapt_gain0, kparams.adapt_gain1, kparams.adapt_gain2)
    credit = 0.0
    for k in range(3):
        if taus_ms[k] >= kparams.tau_sn_ms:
            credit += gains[k] * incs[k] * math.exp(-t_ms / taus_ms[k])
    return 1.0 - max(deficit - credit * (1.0 - 1e-6), 0.0)


@njit(cache=True, inline="always")
def advance_clock(decay_ref, clock, kparams, interval_s, decay, gain):
    """Advance ``clock`` (``KernelState.clock_ms``); ``decay[k]``, ``gain[k]``: exp(∓Δt/tau_k).

    Like :func:`~closedloop.neural.recording.synthesise`, it takes the arrays it uses rather
    than the state tuple: numba adds a reference-count operation per array of a tuple an
    inlined helper takes.

    A process whose factor would fall below exp(-REBASE_ARG) is rebased first: every fibre's
    value is multiplied by the factor (values under ``FLUSH`` become 0) and its reference time
    moves to now.
    """
    clock[0] += interval_s * 1e3
    taus = (
        kparams.tau_rel_ms,
        kparams.tau_sn_ms,
        kparams.adapt_tau0_s * 1e3,
        kparams.adapt_tau1_s * 1e3,
        kparams.adapt_tau2_s * 1e3,
    )
    for k in range(5):
        arg = (clock[0] - clock[1 + k]) / taus[k]
        if arg > REBASE_ARG:
            e = math.exp(-arg)
            row = decay_ref[k]
            for i in range(row.size):
                v = row[i] * e
                row[i] = v if v >= FLUSH else 0.0
            clock[1 + k] = clock[0]
            arg = 0.0
        decay[k] = math.exp(-arg)
        gain[k] = 1.0 / decay[k]


@njit(cache=True, inline="always")
def recruit(state, work, tables, kparams, current_ma, pw_us, csf_mm, interval_s, key):
    """Advance the fibre state over one interval and fire one pulse; return the recruited count.

    Fibre i's threshold (mA) is its strength-duration law ``rheo + Q PW^-beta`` interpolated
    at the CSF thickness (grid cell ``j`` + fraction ``f``), times
    ``m = 1 + rel x_rel - sn x_sn + sum_k gain_k a_k`` (refractory, supernormal and adaptation
    processes). It fires if ``x_rel <= exp(-t_abs / tau_rel)`` (out of its absolute refractory
    period) and ``current >= threshold * (1 + jitter_rel * z_i)``, z_i the pulse's jitter draw.
    The fibres are stored in screening order (:func:`closedloop.neural.build.screening_order`),
    and only the leading ones that ``tables.cell_floor`` allows a threshold below the current
    are examined (the others cannot fire at any draw). The screen's bound on ``m`` is
    :func:`screen_m_min` (a fibre fired at the previous pulse at the latest; the spike that
    starts its supernormal period also raises its slower adaptation processes). Adds each
    recruited fibre's SFAP weight (µV) into ``work.class_acc`` (zeroed first), and its weight
    times its initiation delay into ``work.class_delay`` (see :func:`fire`).

    In pool mode (``kparams.pool_fraction`` 1.0) the same fibres are examined, at their nominal
    thresholds (no draw), and each fires the fraction :func:`fired_fraction` of its pool
    (:func:`pool_fire`); the return value is then the sum of the fractions (a float either way).
    """
    decay, gain = work.factors[0], work.factors[1]
    advance_clock(state.decay_ref, state.clock_ms, kparams, interval_s, decay, gain)
    rheo = tables.rheo_ma
    g = min(max((csf_mm - kparams.csf0_mm) / kparams.dcsf_mm, 0.0), rheo.shape[0] - 1.000001)
    j = int(g)
    f = g - j
    low = (1.0 - kparams.jitter_rel * Z_MAX) * (1.0 - 1e-12)
    m_min = screen_m_min(kparams, interval_s)
    s = state.cache[4]  # pw_us ** -kparams.sd_exponent (cache_pulse_constants)
    ratio = sd_ratio_min(tables.sd_ratio_range, s, state.cache[5])
    limit = current_ma / (low * m_min * ratio)
    n_exam = exam_count(tables.cell_floor[j], limit * (1.0 + 1e-9), rheo.shape[1])
    if kparams.pool_fraction > 0.5:
        nominal_thresholds(state, work, tables, kparams, s, j, f, n_exam)
        return pool_fire(state, work, tables, kparams, current_ma, pw_us, j, f, n_exam)
    thresholds(state, work, tables, kparams, s, j, f, key, n_exam)
    return np.float64(fire(state, work, tables, kparams, current_ma, pw_us, j, f, n_exam))


@njit(cache=True, inline="always")
def exam_count(floor, limit, n_fibres):
    """Number of leading fibres to examine: blocks up to the first whose floor exceeds ``limit``.

    ``floor[b]`` is the smallest screening key of the fibres from block ``b`` on (non-decreasing
    in ``b``), so no fibre after that block can have a threshold below the current.
    """
    b = 0
    while b < floor.size and floor[b] <= limit:
        b += 1
    return min(b * FLOOR_BLOCK, n_fibres)


@njit(cache=True, inline="always")
def thresholds(state, work, tables, kparams, s, j, f, key, n):
    """Write the jittered thresholds (mA) of fibres ``0:n`` into ``work.th``.

    The threshold (see :func:`recruit`) times ``1 + jitter_rel * z`` with the fibre's draw z for
    this pulse; infinite during the absolute refractory period. Two branch-free loops over
    contiguous arrays, so that the compiler vectorises them: :func:`nominal_thresholds`, then
    the jittered draw in a loop of its own (one loop with everything in it ran out of vector
    registers and took about a tenth longer).
    """
    nominal_thresholds(state, work, tables, kparams, s, j, f, n)
    jit, fh, th = kparams.jitter_rel, tables.fibre_hash, work.th[:n]
    key32 = np.uint32(key)
    for i in range(n):
        th[i] = th[i] * (1.0 + jit * hash_normal(fmix32(fh[i] ^ key32)))


@njit(cache=True, inline="always")
def nominal_thresholds(state, work, tables, kparams, s, j, f, n):
    """Write the thresholds (mA) of fibres ``0:n``, without jitter, into ``work.th``.

    The strength-duration law interpolated at the CSF (``s = PW^-beta``, grid cell ``j`` +
    fraction ``f``) times the excitability factor ``m`` (see :func:`recruit`); infinite
    during the absolute refractory period.
    """
    x_abs = state.cache[6]  # exp(-t_abs / tau_rel)
    r0, r1 = tables.rheo_ma[j], tables.rheo_ma[j + 1]
    q0, q1 = tables.sd_q_ma[j], tables.sd_q_ma[j + 1]
    ref = state.decay_ref
    p0, p1, p2, p3, p4 = ref[0], ref[1], ref[2], ref[3], ref[4]
    decay = work.factors[0]
    d0, d1, d2, d3, d4 = decay[0], decay[1], decay[2], decay[3], decay[4]
    rel, sn = kparams.rel_amplitude, kparams.sn_amplitude
    g0, g1, g2 = kparams.adapt_gain0, kparams.adapt_gain1, kparams.adapt_gain2
    th = work.th[:n]
    for i in range(n):
        xr = p0[i] * d0
        m = 1.0 + rel * xr - sn * (p1[i] * d1)
        m = m + g0 * (p2[i] * d2) + g1 * (p3[i] * d3) + g2 * (p4[i] * d4)
        a, b = np.float64(r0[i]), np.float64(r1[i])  # float32 tables, float64 arithmetic
        c, d = np.float64(q0[i]), np.float64(q1[i])
        t = ((a + f * (b - a)) + (c + f * (d - c)) * s) * m
        th[i] = t if xr <= x_abs else np.inf  # inf times the (positive) jitter factor: inf


@njit(cache=True, inline="always")
def fire(state, work, tables, kparams, current_ma, pw_us, j, f, n):
    """Fire the fibres among ``0:n`` whose ``work.th`` is at most the current; return the count.

    The recruited fibres' processes are reset through their compacted indices (a pass over the
    span from the first to the last of them, masked, took twice as long: the recruited fibres
    are interleaved with many that do not fire), and their SFAP weights ``w`` are added per
    class in fibre order, into ``work.class_acc``,
    and ``w`` times their initiation delay (ms, :func:`~closedloop.neural.latency.delay_at`
    at ``u = th / current``) into ``work.class_delay``.
    """
    th, idx, acc, dacc = work.th, work.idx, work.class_acc, work.class_delay
    acc[:] = 0.0
    dacc[:] = 0.0
    n_rec = 0
    for i in range(n):  # branch-free compaction of the recruited fibres
        idx[n_rec] = i
        n_rec += current_ma >= th[i]
    if n_rec == 0:
        return 0
    _reset_processes(state.decay_ref, work.factors, kparams, idx, n_rec)
    w0, w1, cls = tables.sfap_uv[j], tables.sfap_uv[j + 1], tables.fibre_class
    t0, kpw, table = kparams.init_offset_ms, kparams.init_pw_fraction, tables.init_delay_ms
    inv_cur = 1.0 / current_ma
    for q in range(n_rec):
        i = idx[q]
        a, b = np.float64(w0[i]), np.float64(w1[i])
        w = a + f * (b - a)
        acc[cls[i]] += w
        dacc[cls[i]] += w * delay_at(th[i] * inv_cur, pw_us, t0, kpw, table)
    return n_rec


@njit(cache=True, inline="always")
def _reset_processes(ref, factors, kparams, idx, n_rec):
    """Reset the processes of the recruited fibres ``idx[:n_rec]``.

    Refractoriness and supernormality restart (stored as the gains ``exp(+(t - t_ref) / tau)``
    of the lazy storage); each adaptation process ``a`` becomes ``a + inc (1 - a)``.
    """
    decay, gain = factors[0], factors[1]
    p0, p1, p2, p3, p4 = ref[0], ref[1], ref[2], ref[3], ref[4]
    r0, r1 = np.float32(gain[0]), np.float32(gain[1])
    d2, d3, d4, e2, e3, e4 = decay[2], decay[3], decay[4], gain[2], gain[3], gain[4]
    i0, i1, i2 = kparams.adapt_inc0, kparams.adapt_inc1, kparams.adapt_inc2
    for q in range(n_rec):
        i = idx[q]
        b0, b1, b2 = p2[i] * d2, p3[i] * d3, p4[i] * d4
        p0[i] = r0
        p1[i] = r1
        p2[i] = np.float32((b0 + i0 * (1.0 - b0)) * e2)
        p3[i] = np.float32((b1 + i1 * (1.0 - b1)) * e3)
        p4[i] = np.float32((b2 + i2 * (1.0 - b2)) * e4)


@njit(cache=True, inline="always")
def run_pulses(state, tables, kparams, inputs, out, wave, work):
    """Deliver ``P`` pulses to one patient, writing one ``PULSE_DTYPE`` record per pulse.

    Args:
        state: ``KernelState``, updated in place.
        tables: ``KernelTables`` of the patient.
        kparams: ``KernelParams``.
        inputs: ``PulseInputs`` with arrays of length P (mA, µs, mm, s).
        out: Structured array of length P, dtype ``PULSE_DTYPE``.
        wave: (P, S) array for the recorded sweeps (µV), or shape (0, S) to skip them.
        work: ``KernelWork`` scratch for this patient's sizes (:func:`new_work`).
    """
    n_s = state.templates.shape[1]
    n_fib = tables.fibre_class.size
    neural, rec, acc = work.sweeps[0], work.sweeps[1], work.class_acc
    dt_ms = 1e3 / kparams.fs_hz
    full = wave.shape[0] > 0
    for p in range(inputs.current_ma.size):
        cur, pw = inputs.current_ma[p], inputs.pw_us[p]
        if pw != state.cache[0]:
            refresh_templates(state, tables, kparams, pw)
        key = pulse_key(kparams.seed_pulse_a, kparams.seed_pulse_b, state.pulse_count[0])
        state.pulse_count[0] += 1
        n_rec = recruit(
            state, work, tables, kparams, cur, pw, inputs.csf_mm[p], inputs.interval_s[p], key
        )
        frac = n_rec / n_fib
        lo, hi, t_ref = int(state.cache[8]), int(state.cache[9]), state.cache[7]
        emg = synthesise(
            state.templates,
            state.shapes,
            tables.sample_hash,
            tables.class_delay_ms,
            kparams,
            acc,
            work.class_delay,
            t_ref,
            frac,
            cur,
            key,
            0 if full else lo,
            n_s if full else hi,
            neural,
            rec,
        )
        if full:
            row = wave[p]
            for s in range(n_s):  # a loop: slice assignment may allocate a copy
                row[s] = rec[s]
        r = out[p]
        r.ecap_n1p2_uv = n1p2(rec, lo, hi)[0]
        r.ecap_template_uv = template_estimate(
            state.mf,
            state.cache,
            rec,
            lo,
            hi,
            kparams.template_lag,
            work.scratch,
            state.lag_track,
            pw,
            inputs.interval_s[p],
        )
        r.ecap_uv = r.ecap_template_uv if kparams.use_template > 0.5 else r.ecap_n1p2_uv
        true_amp, i_min = n1p2(neural, lo, hi)
        r.ecap_true_uv = true_amp
        n_round = math.floor(n_rec + 0.5)  # pool mode: the rounded sum of fractions
        # no latency without a fibre's worth of ECAP (pool mode: a sum of q under 0.5)
        r.n1_latency_ms = n1_latency(neural, i_min, lo, hi, dt_ms) if n_round > 0 else np.nan
        r.detected = r.ecap_template_uv > kparams.detect_snr * state.cache[3]
        r.saturated = clipped(rec, lo, hi, kparams.adc_range_uv)
        r.n_recruited = n_round
        r.frac_recruited = frac
        r.charge_uc = cur * pw * 1e-3
        r.emg_uv = emg


@njit(cache=True, _nrt=False)
def run_pulses_unshared(state, tables, kparams, inputs, out, wave, work):
    """:func:`run_pulses` compiled without numba's reference counting.

    For callers that hold every array for the whole call (a Python caller, or compiled code
    that passes its own arrays): the views of a pulse then cost no atomic increment and
    decrement each. The same dynamics (``run_pulses`` is inlined here), bit for bit.
    """
    run_pulses(state, tables, kparams, inputs, out, wave, work)
