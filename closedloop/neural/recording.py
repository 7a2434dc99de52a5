"""Numba kernels of the recording chain: ECAP synthesis, artefact, noise, ADC and estimators.

A sweep sample at time t after pulse onset (ms) is::

    neural(t)   = sum_b acc_b * sfap((t - onset - PW - delay_b) / width)     # ECAP, µV
    emg(t)      = E * max(0, frac - motor_fraction) * u e^((1 - u²)/2),  u = (t - t_emg)/w_emg
    artefact(t) = (offset + k * I) * exp(-(t - t_end) / tau)   for t >= t_end = 2 PW + gap
    recorded(t) = ADC(neural + emg + artefact + noise)        (clip to ±range, round to LSB)

During the pulse itself (t < t_end) the amplifier is saturated. Amplitudes are estimated in the
window from ``t_end + blank`` to ``est_end``: N1-P2 (the minimum, then the maximum after it) and
a matched-filter (template) estimate scaled to the template's N1-P2.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from closedloop.neural.rng import fmix32, hash_normal

NOISE_SALT = np.uint64(0x5BD1E995)

@njit(cache=True, inline="always")
def sfap_shape(u, asym):
    """Triphasic SFAP (P1-N1-P2) at normalised time ``u``; N1 = -1 at u = 0."""
    g = math.exp(-0.5 * u * u)
    return -(1.0 - u * u) * g + asym * u * g


@njit(cache=True, inline="always")
def pulse_end_ms(pw_us, kp):
    """End of the biphasic pulse after its onset (ms): two phases and the interphase gap."""
    return (2.0 * pw_us + kp.interphase_us) * 1e-3


@njit(cache=True, inline="always")
def window_bounds(pw_us, kp, n_samples):
    """First and one-past-last sample of the estimator window for a pulse width."""
    lo = int(math.ceil((pulse_end_ms(pw_us, kp) + kp.blank_ms) * kp.fs_hz * 1e-3))
    hi = int(math.floor(kp.est_end_ms * kp.fs_hz * 1e-3)) + 1
    return min(lo, n_samples - 2), max(min(hi, n_samples), min(lo, n_samples - 2) + 2)


@njit(cache=True)
def refresh_templates(state, tables, kp, pw_us):
    """Recompute the class templates, matched filter and sweep shapes for a new pulse width.

    Allocates nothing: the kernels compiled without reference counting call it, and numba
    compiles a callee with its caller's setting.
    """
    n_cls, n_s = state.templates.shape
    dt_ms = 1e3 / kp.fs_hz
    shift = kp.onset_ms + pw_us * 1e-3
    for b in range(n_cls):
        c = shift + tables.class_delay_ms[b]
        for s in range(n_s):
            u = (s * dt_ms - c) / kp.sfap_width_ms
            state.templates[b, s] = sfap_shape(u, kp.sfap_asymmetry)
    lo, hi = window_bounds(pw_us, kp, n_s)
    mf = state.mf
    mf[:] = 0.0
    for b in range(n_cls):
        w, row = tables.class_mix[b], state.templates[b]
        for s in range(n_s):
            mf[s] += w * np.float64(row[s])
    mean = mf[lo:hi].mean()
    mf[:lo] = 0.0
    for s in range(lo, hi):     # a loop: ``mf[lo:hi] -= mean`` allocates a temporary
        mf[s] -= mean
    mf[hi:] = 0.0
    ss = 0.0
    for s in range(lo, hi):
        ss += mf[s] * mf[s]
    refresh_shapes(state, kp, pw_us)
    state.cache[0] = pw_us
    state.cache[1] = 1.0 / ss if ss > 0.0 else 0.0
    state.cache[2] = n1p2(mf, lo, hi)[0]
    state.cache[3] = kp.noise_uv_rms * math.sqrt(state.cache[1]) * state.cache[2]


@njit(cache=True)
def refresh_shapes(state, kp, pw_us):
    """Artefact decay (NaN while the pulse saturates the amplifier) and EMG shape per sample."""
    dt_ms = 1e3 / kp.fs_hz
    t_end = pulse_end_ms(pw_us, kp)
    for s in range(state.shapes.shape[1]):
        t = s * dt_ms
        state.shapes[0, s] = math.exp(-(t - t_end) / kp.artefact_tau_ms) if t >= t_end else np.nan
        u = (t - kp.emg_latency_ms) / kp.emg_width_ms
        state.shapes[1, s] = u * math.exp(0.5 * (1.0 - u * u))


@njit(cache=True, inline="always")
def synthesise(templates, shapes, sample_hash, kp, acc, frac, current_ma, key, lo, hi, neural,
               rec):
    """Fill samples ``lo:hi`` of the noise-free ECAP ``neural`` and the recorded sweep ``rec``.

    ``templates``, ``shapes`` and ``sample_hash`` are the ``KernelState`` and ``KernelTables``
    fields of those names.

    Returns:
        The peak of the late muscle response (µV).
    """
    out = neural[lo:hi]  # loops over views from 0 vectorise; the same sums, in the same order
    out[:] = 0.0
    for b in range(acc.size):
        a = acc[b]
        if a != 0.0:
            row = templates[b, lo:hi]
            for s in range(out.size):
                out[s] += a * row[s]
    emg = kp.emg_uv_per_fraction * max(frac - kp.motor_fraction, 0.0)
    art = kp.artefact_offset_uv + kp.artefact_uv_per_ma * current_ma
    art_shape, emg_shape = shapes[0, lo:hi], shapes[1, lo:hi]
    sample_hash, sweep = sample_hash[lo:hi], rec[lo:hi]
    key2 = fmix32(key ^ NOISE_SALT)
    top, lsb, noise = kp.adc_range_uv, kp.adc_lsb_uv, kp.noise_uv_rms
    inv_lsb = 1.0 / lsb
    for s in range(out.size):  # branch-free over views from 0: the loop vectorises
        x = art_shape[s]        # NaN during the pulse: the amplifier is saturated
        v = out[s] + art * x + emg * emg_shape[s]
        v = (top if current_ma > 0.0 else out[s]) if math.isnan(x) else v
        v += noise * hash_normal(fmix32(sample_hash[s] ^ key2))
        v = min(max(v, -top), top)
        sweep[s] = round(v * inv_lsb) * lsb
    return emg


@njit(cache=True, inline="always")
def clipped(x, lo, hi, top):
    """Whether any sample of ``x[lo:hi]`` sits at the ADC rails ``±top``."""
    for s in range(lo, hi):  # noqa: SIM110 (a loop numba compiles)
        if x[s] >= top or x[s] <= -top:
            return True
    return False


@njit(cache=True, inline="always")
def n1p2(x, lo, hi):
    """N1-P2 amplitude in ``x[lo:hi]`` and the index of N1 (the minimum)."""
    i_min, mn = lo, x[lo]
    for s in range(lo + 1, hi):
        if x[s] < mn:
            mn, i_min = x[s], s
    mx = mn
    for s in range(i_min, hi):
        if x[s] > mx:
            mx = x[s]
    return mx - mn, i_min


@njit(cache=True, inline="always")
def template_estimate(mf, cache, x, lo, hi, max_lag, scratch):
    """Sliding matched-filter amplitude of ``x`` in µV (the template's N1-P2 scale).

    ``mf`` and ``cache`` are the ``KernelState`` fields of those names; ``scratch`` is
    ``KernelWork.scratch`` (at least ``hi - lo + 4 max_lag + 16`` long).

    The zero-mean template over ``lo:hi`` is slid by up to ``max_lag`` samples either way (the
    ECAP arrives later as smaller fibres join) and the largest projection is kept. Only
    samples inside ``lo:hi`` are read, so the sweep outside the window does not matter.

    The window is copied between zeros, so that every sample adds to every lag (a whole number
    of vectors of them, a fixed-length loop that vectorises): a sample outside the window adds
    an exact zero, which leaves each lag's left-to-right sum bit for bit as it was.
    """
    n_lag = 2 * max_lag + 1
    n = hi - lo
    width = (n_lag + 7) // 8 * 8
    if scratch.size < n + 2 * width:    # the kernels run without bounds checks
        raise ValueError("KernelWork.scratch is too short for this window and template lag; "
                         "make the KernelWork with new_work(..., max_lag)")
    scratch = scratch[:n + 2 * width]
    scratch[:] = 0.0
    padded, dots = scratch[:n + width], scratch[n + width:]
    for s in range(n):      # a loop: slice assignment may allocate a copy
        padded[max_lag + s] = x[lo + s]
    mf = mf[lo:hi]
    for s in range(n):
        w = mf[s]
        xs = padded[s:s + width]
        for q in range(width):
            dots[q] += xs[q] * w
    best = dots[0]
    for q in range(1, n_lag):
        if dots[q] > best:
            best = dots[q]
    return best * cache[1] * cache[2]


@njit(cache=True, inline="always")
def n1_latency(neural, i_min, lo, hi, dt_ms):
    """N1 time (ms) by parabolic refinement around sample ``i_min`` inside ``lo:hi``."""
    if i_min <= lo or i_min >= hi - 1:
        return i_min * dt_ms
    a, b, c = neural[i_min - 1], neural[i_min], neural[i_min + 1]
    den = a - 2.0 * b + c
    off = 0.5 * (a - c) / den if den > 0.0 else 0.0
    return (i_min + off) * dt_ms
