"""Numba kernels of the recording chain: ECAP synthesis, artefact, noise and ADC.

A sweep sample at time t after pulse onset (ms) is::

    neural(t)   = sum_b acc_b * sfap((t - init_b - delay_b) / width)         # ECAP, µV
    emg(t)      = E * max(0, frac - motor_fraction) * u e^((1 - u²)/2),  u = (t - t_emg)/w_emg
    artefact(t) = (offset + k * I) * exp(-(t - t_end) / tau)   for t >= t_end = 2 PW + gap
    recorded(t) = ADC(neural + emg + artefact + noise)        (clip to ±range, round to LSB)

Class b's spikes start at ``init_b``, the SFAP-weighted mean initiation delay of its recruited
fibres (:func:`~closedloop.neural.latency.initiation_delay_ms`: it falls as the current rises
above a fibre's threshold), and reach the recording contact ``delay_b`` later (conduction at
:func:`~closedloop.neural.latency.conduction_velocity_m_s`). The class templates are cached at
the delay of a fibre at ``TEMPLATE_RATIO`` times threshold;
each pulse shifts a class's template by the difference, interpolating linearly between samples.

During the pulse itself (t < t_end) the amplifier is saturated. The amplitude estimators read
the window from ``t_end + blank`` to ``est_end`` (:mod:`closedloop.neural.estimators`); the
matched filter is built here with the class templates (:func:`refresh_templates`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from closedloop import _jit_cache  # noqa: F401 (before any @njit(cache=True): see it)
from closedloop.neural.estimators import artefact_orthogonal, n1p2
from closedloop.neural.latency import (
    delay_many,
    template_delay_ms,
)
from closedloop.neural.rng import fmix32, hash_normal

NOISE_SALT = np.uint64(0x5BD1E995)
ORDER_PW_US = 250.0
"""Pulse width (µs) of the strength-duration factor in the fibres' screening key."""
RECRUITED_RATIO = 1.6
"""Current / lowest fibre threshold at which the "recruited" template's reference ECAP is formed
(:func:`recruited_template`): the median ratio of the calibrated target current to the lowest
fibre threshold (250 µs, reference posture) over the validation cohort is 1.63 (1.10-2.27)."""
SUPPORT_WIDTHS = 6.0
"""Half-width (in SFAP time scales) of the samples a class's SFAP is added to; outside it the
triphasic shape is below 1e-6 of its N1 (|u| > 6: (u² - 1) exp(-u²/2) < 6e-7)."""


def recruited_template(
    shape: str,
    key_ma: np.ndarray,
    sfap_uv: np.ndarray,
    fibre_class: np.ndarray,
    n_classes: int,
    init_table: np.ndarray,
) -> np.ndarray:
    """``KernelTables.template_ref``: the reference ECAP of the "recruited" template.

    The fibres recruited first: those whose screening key (threshold at ``ORDER_PW_US``, the
    programmed width, at the reference CSF grid point) is at most ``RECRUITED_RATIO`` times
    the lowest, at the current ``I = RECRUITED_RATIO`` x that lowest key. Per diameter class:
    their summed SFAP weight (normalised to sum 1), and the SFAP-weighted means of
    ``u = key / I`` and of the regenerative initiation delay at u (ms, interpolated in
    ``init_table`` as the kernels do). :func:`recruited_reference` forms each class's
    initiation delay from them at any pulse width (``offset + pw_fraction PW u +
    regenerative``, linear in u: the weighted mean delay exactly).

    Args:
        shape: ``RecordingParams.template_shape``; zeros unless ``"recruited"``.
        key_ma: (N,) screening keys (mA).
        sfap_uv: (N,) SFAP weights at the reference CSF grid point (µV).
        fibre_class: (N,) diameter class of each fibre.
        n_classes: Diameter classes B.
        init_table: ``KernelTables.init_delay_ms``.

    Returns:
        (3, B) float64.
    """
    out = np.zeros((3, n_classes))
    if shape != "recruited":
        return out
    current = RECRUITED_RATIO * key_ma.min()
    first = np.flatnonzero(key_ma <= current)
    u = key_ma[first] / current
    w = sfap_uv[first].astype(np.float64)
    regen = np.empty(u.size)
    delay_many(u, np.ones(u.size), 0.0, 0.0, init_table, regen)
    cls = fibre_class[first]
    wsum = np.bincount(cls, weights=w, minlength=n_classes)
    seen = wsum > 0.0
    out[0] = wsum / wsum.sum()
    out[1, seen] = np.bincount(cls, weights=w * u, minlength=n_classes)[seen] / wsum[seen]
    out[2, seen] = np.bincount(cls, weights=w * regen, minlength=n_classes)[seen] / wsum[seen]
    return out


@njit(cache=True, inline="always")
def sfap_shape(u, asym):
    """Triphasic SFAP (P1-N1-P2) at normalised time ``u``; N1 = -1 at u = 0."""
    g = math.exp(-0.5 * u * u)
    return -(1.0 - u * u) * g + asym * u * g


@njit(cache=True, inline="always")
def pulse_end_ms(pw_us, kparams):
    """End of the biphasic pulse after its onset (ms): two phases and the interphase gap."""
    return (2.0 * pw_us + kparams.interphase_us) * 1e-3


@njit(cache=True, inline="always")
def window_bounds(pw_us, kparams, n_samples):
    """First and one-past-last sample of the estimator window for a pulse width."""
    lo = int(math.ceil((pulse_end_ms(pw_us, kparams) + kparams.blank_ms) * kparams.fs_hz * 1e-3))
    hi = int(math.floor(kparams.est_end_ms * kparams.fs_hz * 1e-3)) + 1
    return min(lo, n_samples - 2), max(min(hi, n_samples), min(lo, n_samples - 2) + 2)


@njit(cache=True)
def refresh_templates(state, tables, kparams, pw_us):
    """Recompute the class templates, matched filter and sweep shapes for a new pulse width.

    The reference ECAP ``e`` is the ``class_mix``-weighted sum of the class templates, or,
    with ``RecordingParams.template_shape = "recruited"``, the ECAP of the fibres recruited
    first (:func:`recruited_reference`). The filter ``mf`` is ``e`` on the estimator window
    ``lo:hi`` (zero elsewhere) made orthogonal there to a constant and to the artefact decay as
    the sliding estimate reads it (:func:`artefact_orthogonal`). It is scaled so that ``e``
    reads its own N1-P2 over the window: ``cache[1] = 1 / <e, mf> = 1 / |mf|²`` (``e - mf``
    lies in the span removed), ``cache[2] = N1-P2(e)``, and ``cache[3]`` is the
    estimate's noise sd at one lag, ``noise_uv_rms |mf| cache[1] cache[2]`` (µV).

    Allocates nothing: the kernels compiled without reference counting call it, and numba
    compiles a callee with its caller's setting.
    """
    n_cls, n_s = state.templates.shape
    dt_ms = 1e3 / kparams.fs_hz
    shift = template_delay_ms(pw_us, kparams, tables.init_delay_ms)
    for b in range(n_cls):
        c = shift + tables.class_delay_ms[b]
        for s in range(n_s):
            u = (s * dt_ms - c) / kparams.sfap_width_ms
            state.templates[b, s] = sfap_shape(u, kparams.sfap_asymmetry)
    refresh_shapes(state, kparams, pw_us)
    lo, hi = window_bounds(pw_us, kparams, n_s)
    mf = state.mf
    mf[:] = 0.0
    ref = tables.template_ref
    if ref[0].sum() > 0.0:
        recruited_reference(mf, ref, tables.class_delay_ms, kparams, pw_us)
    else:
        for b in range(n_cls):
            w, row = tables.class_mix[b], state.templates[b]
            for s in range(n_s):
                mf[s] += w * np.float64(row[s])
    amp = n1p2(mf, lo, hi)[0]
    mf[:lo] = 0.0
    mf[hi:] = 0.0
    artefact_orthogonal(mf, state.shapes[0], lo, hi, min(kparams.template_lag, hi - lo - 1))
    ss = 0.0
    for s in range(lo, hi):
        ss += mf[s] * mf[s]
    cache_pulse_constants(state.cache, tables, kparams, pw_us, lo, hi, shift)
    state.cache[0] = pw_us
    state.cache[1] = 1.0 / ss if ss > 0.0 else 0.0
    state.cache[2] = amp
    state.cache[3] = kparams.noise_uv_rms * math.sqrt(state.cache[1]) * state.cache[2]


@njit(cache=True, inline="always")
def recruited_reference(mf, ref, class_delay_ms, kparams, pw_us):
    """Add the "recruited" reference ECAP (µV per µV of summed SFAP weight) to ``mf``.

    ``ref`` is ``KernelTables.template_ref``: class b adds ``ref[0, b]`` unit-N1 SFAPs
    starting at ``offset + pw_fraction PW ref[1, b] + ref[2, b]`` (its fibres' mean initiation
    delay at this pulse width, ms) and reaching the contact ``class_delay_ms[b]`` later.
    """
    dt_ms = 1e3 / kparams.fs_hz
    for b in range(ref.shape[1]):
        w = ref[0, b]
        if w > 0.0:
            c = (
                kparams.init_offset_ms
                + kparams.init_pw_fraction * (pw_us * 1e-3) * ref[1, b]
                + ref[2, b]
            ) + class_delay_ms[b]
            for s in range(mf.size):
                mf[s] += w * sfap_shape(
                    (s * dt_ms - c) / kparams.sfap_width_ms, kparams.sfap_asymmetry
                )


CACHE_SIZE = 10
"""Length of ``KernelState.cache``: pulse width (µs), 1/sum(mf²) in the window, mf N1-P2 (µV),
estimator noise sd (µV), then :func:`cache_pulse_constants`' per-width constants."""


@njit(cache=True, inline="always")
def cache_pulse_constants(cache, tables, kparams, pw_us, lo, hi, t_ref_ms):
    """Store the per-pulse constants of a pulse width in ``cache[4:10]``.

    ``PW^-beta``, ``ORDER_PW_US^-beta`` (the strength-duration terms of the threshold and of
    the screening key, beta = ``kparams.sd_exponent``), the absolute-refractory bound
    ``exp(-t_abs / tau_rel)``, the templates' initiation delay ``t_ref_ms`` (ms) and the
    estimator window ``lo:hi`` (samples): computed once per width instead of once per pulse,
    the same values bit for bit.
    """
    cache[4] = pw_us**-kparams.sd_exponent
    cache[5] = ORDER_PW_US**-kparams.sd_exponent
    cache[6] = math.exp(-kparams.t_abs_ms / kparams.tau_rel_ms)
    cache[7] = t_ref_ms
    cache[8] = lo
    cache[9] = hi


@njit(cache=True)
def refresh_shapes(state, kparams, pw_us):
    """Artefact decay (NaN while the pulse saturates the amplifier) and EMG shape per sample."""
    dt_ms = 1e3 / kparams.fs_hz
    t_end = pulse_end_ms(pw_us, kparams)
    for s in range(state.shapes.shape[1]):
        t = s * dt_ms
        state.shapes[0, s] = (
            math.exp(-(t - t_end) / kparams.artefact_tau_ms) if t >= t_end else np.nan
        )
        u = (t - kparams.emg_latency_ms) / kparams.emg_width_ms
        state.shapes[1, s] = u * math.exp(0.5 * (1.0 - u * u))


@njit(cache=True, inline="always")
def synthesise(
    templates,
    shapes,
    sample_hash,
    class_delay_ms,
    kparams,
    acc,
    delay_acc,
    t_ref_ms,
    frac,
    current_ma,
    key,
    lo,
    hi,
    neural,
    rec,
):
    """Fill samples ``lo:hi`` of the noise-free ECAP ``neural`` and the recorded sweep ``rec``.

    ``templates``, ``shapes`` and ``sample_hash`` are the ``KernelState`` and ``KernelTables``
    fields of those names; ``acc`` and ``delay_acc`` the ``KernelWork`` fields ``class_acc``
    and ``class_delay`` (per class: summed SFAP weight, µV, and summed weight x initiation
    delay, µV ms); ``t_ref_ms`` the initiation delay the templates are cached at
    (:func:`template_delay_ms`). A class's SFAP is added only within ``SUPPORT_WIDTHS`` SFAP
    time scales of its centre (the template is below 1e-6 of its N1 outside).

    Returns:
        The peak of the late muscle response (µV).
    """
    out = neural[lo:hi]  # loops over views from 0 vectorise; the same sums, in the same order
    out[:] = 0.0
    n_s = templates.shape[1]
    per_ms = kparams.fs_hz * 1e-3
    half = SUPPORT_WIDTHS * kparams.sfap_width_ms * per_ms
    for b in range(acc.size):
        a = acc[b]
        if a != 0.0:
            x = (delay_acc[b] / a - t_ref_ms) * per_ms  # shift, samples
            k = math.floor(x)
            c = (t_ref_ms + class_delay_ms[b]) * per_ms + x  # the shifted SFAP's centre
            s0 = max(lo, int(k) + 1, int(math.ceil(c - half)))
            s1 = min(hi, n_s + int(k), int(math.floor(c + half)) + 1)
            add_shifted(neural, templates[b], a * (1.0 - (x - k)), a * (x - k), int(k), s0, s1)
    emg = kparams.emg_uv_per_fraction * max(frac - kparams.motor_fraction, 0.0)
    art = kparams.artefact_offset_uv + kparams.artefact_uv_per_ma * current_ma
    art_shape, emg_shape = shapes[0, lo:hi], shapes[1, lo:hi]
    sample_hash, sweep = sample_hash[lo:hi], rec[lo:hi]
    key2 = fmix32(key ^ NOISE_SALT)
    top, lsb, noise = kparams.adc_range_uv, kparams.adc_lsb_uv, kparams.noise_uv_rms
    inv_lsb = 1.0 / lsb
    for s in range(out.size):  # branch-free over views from 0: the loop vectorises
        x = art_shape[s]  # NaN during the pulse: the amplifier is saturated
        v = out[s] + art * x + emg * emg_shape[s]
        v = (top if current_ma > 0.0 else out[s]) if math.isnan(x) else v
        v += noise * hash_normal(fmix32(sample_hash[s] ^ key2))
        v = min(max(v, -top), top)
        sweep[s] = round(v * inv_lsb) * lsb
    return emg


@njit(cache=True, inline="always")
def add_shifted(neural, row, a0, a1, k, s0, s1):
    """``neural[s] += a0 row[s - k] + a1 row[s - k - 1]`` for s in ``s0:s1`` (none if empty).

    The template ``row`` delayed by ``k + a1 / (a0 + a1)`` samples (linear interpolation);
    the caller keeps ``s - k - 1`` and ``s - k`` inside ``row`` (samples that would read
    outside it are left out).
    """
    if s1 <= s0:
        return
    o, r = neural[s0:s1], row[s0 - k - 1 : s1 - k]  # two views, not three: less set-up per class
    for s in range(o.size):
        o[s] += a0 * np.float64(r[s + 1]) + a1 * np.float64(r[s])
