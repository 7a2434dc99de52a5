"""The numba kernels of the neural response model: the one copy of the dynamics.

``run_pulses`` advances one patient through a sequence of pulses. Per pulse and fibre it
decays the refractory and adaptation state over the inter-pulse interval, interpolates the
rheobase threshold at the current CSF thickness, applies strength-duration, refractoriness,
adaptation and a jittered draw, and decides recruitment. Recruited fibres add their SFAP weight
to their diameter class; the recorded sweep is synthesised from the class templates, the late
muscle response, the stimulus artefact, amplifier noise and the ADC, and the ECAP amplitude is
estimated from it.

Layout (see :mod:`closedloop.neural.model` for the Python side that builds these):
    state:   ``KernelState``  (mutable fibre state, pulse counter, template cache)
    tables:  ``KernelTables`` (immutable per-patient arrays)
    kp:      ``KernelParams`` (immutable scalars, a NamedTuple of floats)
    inputs:  ``PulseInputs``  (per-pulse current, pulse width, CSF thickness, interval)
    out:     structured array of ``PULSE_DTYPE``, one record per pulse
    wave:    (P, S) array for the recorded sweeps, or (0, S) to skip them
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from closedloop.neural.recording import (
    clipped,
    n1_latency,
    n1p2,
    refresh_templates,
    synthesise,
    template_estimate,
    window_bounds,
)
from closedloop.neural.rng import Z_MAX, fmix32, hash_normal, pulse_key

PULSE_DTYPE = np.dtype([
    ("ecap_uv", "f8"),           # amplitude the loop sees (the configured estimator), µV
    ("ecap_n1p2_uv", "f8"),      # N1-P2 of the recorded sweep in the estimator window, µV
    ("ecap_template_uv", "f8"),  # matched-filter estimate, µV
    ("ecap_true_uv", "f8"),      # N1-P2 of the noise- and artefact-free neural response, µV
    ("detected", "?"),           # template estimate above detect_snr noise sd
    ("saturated", "?"),          # ADC clipped inside the estimator window
    ("n_recruited", "i8"),       # modelled fibres that fired
    ("frac_recruited", "f8"),    # n_recruited / n_fibres
    ("n1_latency_ms", "f8"),     # N1 time after pulse onset (noise-free), NaN without ECAP
    ("charge_uc", "f8"),         # charge per phase, µC
    ("emg_uv", "f8"),            # peak of the late muscle response, µV
])


class KernelParams(NamedTuple):
    """Scalar parameters of the kernel (units in the names)."""

    csf0_mm: float
    dcsf_mm: float
    jitter_rel: float
    t_abs_ms: float
    rel_amplitude: float
    tau_rel_ms: float
    sn_amplitude: float
    tau_sn_ms: float
    adapt_tau0_s: float
    adapt_tau1_s: float
    adapt_tau2_s: float
    adapt_inc0: float
    adapt_inc1: float
    adapt_inc2: float
    adapt_gain0: float
    adapt_gain1: float
    adapt_gain2: float
    onset_ms: float
    sfap_width_ms: float
    sfap_asymmetry: float
    motor_fraction: float
    emg_uv_per_fraction: float
    emg_latency_ms: float
    emg_width_ms: float
    fs_hz: float
    interphase_us: float
    blank_ms: float
    est_end_ms: float
    noise_uv_rms: float
    artefact_uv_per_ma: float
    artefact_offset_uv: float
    artefact_tau_ms: float
    adc_range_uv: float
    adc_lsb_uv: float
    use_template: float
    template_lag: int
    detect_snr: float
    seed_pulse_a: np.uint64
    seed_pulse_b: np.uint64


class KernelTables(NamedTuple):
    """Immutable per-patient arrays."""

    rheo_ma: np.ndarray       # (G, N) rheobase threshold on the CSF grid, mA
    sfap_uv: np.ndarray       # (G, N) SFAP N1 depth on the CSF grid, µV
    chronaxie_us: np.ndarray  # (N,) strength-duration chronaxie, µs
    fibre_class: np.ndarray   # (N,) int64 diameter class
    fibre_hash: np.ndarray    # (N,) uint64 per-fibre hash base
    class_delay_ms: np.ndarray  # (B,) conduction time to the recording contact, ms
    class_mix: np.ndarray     # (B,) class weights of the matched-filter template
    sample_hash: np.ndarray   # (S,) uint64 per-sample hash base of the amplifier noise


class KernelState(NamedTuple):
    """Mutable per-patient state."""

    t_since_ms: np.ndarray    # (N,) time since the fibre last fired, ms
    x_rel: np.ndarray         # (N,) relative-refractory variable, exp(-t/tau_rel)
    x_sn: np.ndarray          # (N,) supernormal variable, exp(-t/tau_sn)
    adapt: np.ndarray         # (3, N) slow adaptation processes in [0, 1)
    pulse_count: np.ndarray   # (1,) int64 pulses delivered so far
    templates: np.ndarray     # (B, S) class SFAP templates at the cached pulse width, µV
    mf: np.ndarray            # (S,) matched-filter template at the cached pulse width
    shapes: np.ndarray        # (2, S) artefact decay (NaN during the pulse) and EMG shape
    cache: np.ndarray         # (4,) cached pw_us, 1/sum(mf²) in window, mf N1-P2, noise sd


class PulseInputs(NamedTuple):
    """Per-pulse stimulation and anatomy (arrays of length P)."""

    current_ma: np.ndarray
    pw_us: np.ndarray
    csf_mm: np.ndarray
    interval_s: np.ndarray   # time since the previous pulse, s


@njit(cache=True)
def decay_and_threshold(state, tables, kp, pw_us, interval_s, j, f, th0):
    """Pass 1, branch-free: decay every fibre's state over the interval, write its threshold.

    ``th0[i]`` is fibre i's threshold (mA) at this pulse before jitter: rheobase interpolated
    at grid cell ``j`` + fraction ``f``, times strength-duration, refractory and adaptation
    factors.
    """
    dt_ms = interval_s * 1e3
    d_rel = math.exp(-dt_ms / kp.tau_rel_ms)
    d_sn = math.exp(-dt_ms / kp.tau_sn_ms)
    d0 = math.exp(-interval_s / kp.adapt_tau0_s)
    d1 = math.exp(-interval_s / kp.adapt_tau1_s)
    d2 = math.exp(-interval_s / kp.adapt_tau2_s)
    inv_pw = 1.0 / pw_us
    r0, r1, chron = tables.rheo_ma[j], tables.rheo_ma[j + 1], tables.chronaxie_us
    ts, x_rel, x_sn = state.t_since_ms, state.x_rel, state.x_sn
    a0, a1, a2 = state.adapt[0], state.adapt[1], state.adapt[2]
    for i in range(r0.size):
        ts[i] += dt_ms
        xr = x_rel[i] * d_rel
        xs = x_sn[i] * d_sn
        b0, b1, b2 = a0[i] * d0, a1[i] * d1, a2[i] * d2
        x_rel[i], x_sn[i], a0[i], a1[i], a2[i] = xr, xs, b0, b1, b2
        m = 1.0 + kp.rel_amplitude * xr - kp.sn_amplitude * xs
        m = m + kp.adapt_gain0 * b0 + kp.adapt_gain1 * b1 + kp.adapt_gain2 * b2
        th0[i] = (r0[i] + f * (r1[i] - r0[i])) * (1.0 + chron[i] * inv_pw) * m


@njit(cache=True)
def recruit(state, tables, kp, current_ma, pw_us, csf_mm, interval_s, key, acc, th0):
    """Advance fibre state over one interval and fire one pulse; return the recruited count.

    Fibre i fires if it is out of its absolute refractory period and
    ``current >= th0[i] * (1 + jitter_rel * z_i)`` with z_i the pulse's jitter draw. Fibres
    whose threshold exceeds the current even at the most negative possible draw are skipped
    without drawing (the result is the same). Adds each recruited fibre's SFAP weight (µV)
    into ``acc[class]``; ``th0`` is scratch space of length N.
    """
    n_grid = tables.rheo_ma.shape[0]
    g = min(max((csf_mm - kp.csf0_mm) / kp.dcsf_mm, 0.0), n_grid - 1.000001)
    j = int(g)
    f = g - j
    decay_and_threshold(state, tables, kp, pw_us, interval_s, j, f, th0)
    low = (1.0 - kp.jitter_rel * Z_MAX) * (1.0 - 1e-12)
    a0, a1, a2 = state.adapt[0], state.adapt[1], state.adapt[2]
    n_rec = 0
    for i in range(th0.size):
        if th0[i] * low > current_ma or state.t_since_ms[i] < kp.t_abs_ms:
            continue
        z = hash_normal(fmix32(tables.fibre_hash[i] ^ key))
        if current_ma >= th0[i] * (1.0 + kp.jitter_rel * z):
            state.t_since_ms[i], state.x_rel[i], state.x_sn[i] = 0.0, 1.0, 1.0
            a0[i] += kp.adapt_inc0 * (1.0 - a0[i])
            a1[i] += kp.adapt_inc1 * (1.0 - a1[i])
            a2[i] += kp.adapt_inc2 * (1.0 - a2[i])
            w0, w1 = tables.sfap_uv[j, i], tables.sfap_uv[j + 1, i]
            acc[tables.fibre_class[i]] += w0 + f * (w1 - w0)
            n_rec += 1
    return n_rec


@njit(cache=True)
def run_pulses(state, tables, kp, inputs, out, wave):
    """Deliver ``P`` pulses to one patient, writing one ``PULSE_DTYPE`` record per pulse.

    Args:
        state: ``KernelState``, updated in place.
        tables: ``KernelTables`` of the patient.
        kp: ``KernelParams``.
        inputs: ``PulseInputs`` with arrays of length P (mA, µs, mm, s).
        out: Structured array of length P, dtype ``PULSE_DTYPE``.
        wave: (P, S) array for the recorded sweeps (µV), or shape (0, S) to skip them.
    """
    n_cls, n_s = state.templates.shape
    n_fib = tables.chronaxie_us.size
    acc = np.zeros(n_cls)
    neural = np.zeros(n_s)
    rec = np.zeros(n_s)
    th0 = np.empty(n_fib)
    dt_ms = 1e3 / kp.fs_hz
    full = wave.shape[0] > 0
    for p in range(inputs.current_ma.size):
        cur, pw = inputs.current_ma[p], inputs.pw_us[p]
        if pw != state.cache[0]:
            refresh_templates(state, tables, kp, pw)
        key = pulse_key(kp.seed_pulse_a, kp.seed_pulse_b, state.pulse_count[0])
        state.pulse_count[0] += 1
        acc[:] = 0.0
        n_rec = recruit(state, tables, kp, cur, pw, inputs.csf_mm[p], inputs.interval_s[p], key,
                        acc, th0)
        frac = n_rec / n_fib
        lo, hi = window_bounds(pw, kp, n_s)
        emg = synthesise(state, tables, kp, acc, frac, cur, key, 0 if full else lo,
                         n_s if full else hi, neural, rec)
        if full:
            wave[p, :] = rec
        r = out[p]
        r.ecap_n1p2_uv = n1p2(rec, lo, hi)[0]
        r.ecap_template_uv = template_estimate(state, rec, lo, hi, kp.template_lag)
        r.ecap_uv = r.ecap_template_uv if kp.use_template > 0.5 else r.ecap_n1p2_uv
        true_amp, i_min = n1p2(neural, lo, hi)
        r.ecap_true_uv = true_amp
        r.n1_latency_ms = n1_latency(neural, i_min, lo, hi, dt_ms) if n_rec > 0 else np.nan
        r.detected = r.ecap_template_uv > kp.detect_snr * state.cache[3]
        r.saturated = clipped(rec, lo, hi, kp.adc_range_uv)
        r.n_recruited = n_rec
        r.frac_recruited = frac
        r.charge_uc = cur * pw * 1e-3
        r.emg_uv = emg
