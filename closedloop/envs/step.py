"""One control step of one patient, the only copy of it: the task as a function.

A step maps the action to a requested current (and, with ``control_pw_rate``, a pulse width
and rate), ramps the device toward it pulse by pulse through the safety limits
(:func:`closedloop.device_limits.limit_one`), delivers the pulses with the neural kernel
(:func:`closedloop.neural.kernels.run_pulses`), filters the sensation
(:func:`closedloop.patients.perception.smooth_step`), pushes the observation history, and computes
the reward (:func:`closedloop.envs.config.reward_formula`) and the truncation. Its data are
explicit and named (:mod:`closedloop.envs.step_data`: the episode's parameters, the state,
the result records, and the :class:`~closedloop.envs.step_data.StepBatch` of ``N`` patients).

:func:`control_step` is the body (compiled inline, allocation-free), for one patient ``p`` of a
batch; :func:`control_step_many` loops over the patients (in parallel chunks, as
:mod:`closedloop.neural.batch` loops over the pulse kernel), and the scalar env is a batch of
one. :mod:`closedloop.envs.step_reference` is the slow NumPy reference the tests hold it to.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from closedloop.device_limits import limit_one
from closedloop.envs.config import requested_current, reward_formula
from closedloop.envs.pairwise import pairwise_sum
from closedloop.neural.batch import (
    _inputs_at,
    _params_at,
    _state_at,
    _tables_at,
    _work_for,
)
from closedloop.neural.kernels import run_pulses
from closedloop.patients.perception import smooth_step

PW_RANGE_US = (60.0, 500.0)
"""Pulse widths reachable with ``control_pw_rate`` (µs)."""
RATE_RANGE_HZ = (20.0, 200.0)
"""Pulse rates reachable with ``control_pw_rate`` (Hz)."""
_reward = njit(cache=True)(reward_formula)


@njit(cache=True, inline="always")
def lerp(a, lo, hi):
    """Map ``a`` in [-1, 1] linearly onto [lo, hi]."""
    return lo + 0.5 * (a + 1.0) * (hi - lo)


@njit(cache=True, inline="always")
def _deliver(p, a0, pw, rate, b):
    """Ramp the device over the step's pulses and fill the kernel's inputs; see the module.

    Returns:
        ``(k, flags, clipped)``: the trace index of the last pulse, the OR of the pulses'
        device flags and whether a pulse's CSF thickness was clamped into range.
    """
    prm, st = b.params[p], b.state[p]
    requested = requested_current(
        prm.action_mode,
        a0,
        st.current_ma,
        prm.min_ma,
        prm.max_ma,
        prm.max_delta_ma,
        prm.max_log_step,
    )
    cur, flags, clipped, k = st.current_ma, 0, False, 0
    inputs = b.inputs
    for j in range(inputs.current_ma.shape[1]):
        k = min(int((st.t_s + j / rate) * prm.rate_hz + 1e-9), prm.last)
        z = prm.impedance_ohm * b.scale[p, k]
        cur, f = limit_one(
            requested,
            cur,
            pw,
            z,
            prm.min_ma,
            prm.max_ma,
            prm.max_current_ma,
            prm.max_change_ma,
            prm.max_charge_uc,
            prm.compliance_v,
        )
        inputs.current_ma[p, j], inputs.pw_us[p, j] = cur, pw
        inputs.csf_mm[p, j], inputs.interval_s[p, j] = b.csf[p, k], 1.0 / rate
        b.pulse_current[p, j], b.pulse_impedance[p, j], b.pulse_flags[p, j] = cur, z, f
        flags |= f
        clipped |= b.clip[p, k] != 0
    st.current_ma = cur
    return k, flags, clipped


@njit(cache=True, inline="always")
def _observe(p, b, ecap, detected, n):
    """Shift patient ``p``'s history one step, newest first; the sweep of the last pulse."""
    prm, row = b.params[p], b.obs[p]
    h = prm.history
    for r in range(3):
        for c in range(h - 1, 0, -1):
            row[r * h + c] = row[r * h + c - 1]
    row[0] = min(max(ecap, -prm.bound_uv), prm.bound_uv)
    row[h] = detected
    row[2 * h] = b.state[p].current_ma
    if b.wave.shape[1] > 0:
        w = b.wave[p, n - 1]
        for s in range(w.size):
            row[3 * h + 1 + s] = min(max(w[s], -1e4), 1e4)


@njit(cache=True, inline="always")
def control_step(p, a0, a1, a2, b, kernel, work):
    """One step of patient ``p`` of the batch ``b``: pulses, sensation, observation, reward.

    Args:
        p: Patient index in the batch.
        a0: Action component 0 (current), in [-1, 1].
        a1: Action component 1 (pulse width), in [-1, 1]; read with ``control_pw_rate``.
        a2: Action component 2 (pulse rate), in [-1, 1]; read with ``control_pw_rate``.
        b: The :class:`~closedloop.envs.step_data.BatchArrays` of a batch; patient ``p``'s state,
            observation, result and per-pulse arrays are updated.
        kernel: Patient ``p``'s ``(KernelState, KernelTables, KernelParams)`` (its state is
            updated).
        work: The neural kernel's scratch for this patient's sizes.
    """
    prm, st, res = b.params[p], b.state[p], b.result[p]
    pw, rate, factor, keep = prm.pw_us, prm.rate_hz, prm.factor, prm.keep
    if prm.control_pw_rate:
        pw = lerp(a1, PW_RANGE_US[0], PW_RANGE_US[1])
        rate = lerp(a2, RATE_RANGE_HZ[0], RATE_RANGE_HZ[1])
        factor = (rate / prm.reference_rate_hz) ** prm.rate_exponent
        keep = 0.0 if prm.tau_s == 0.0 else math.exp(-(1.0 / rate) / prm.tau_s)
    k, flags, clipped = _deliver(p, a0, pw, rate, b)
    run_pulses(
        kernel[0],
        kernel[1],
        kernel[2],
        _inputs_at(b.inputs, p),
        b.out[p],
        b.wave[p],
        work,
    )
    out, n = b.out[p], b.out.shape[1]
    level, hits, inside, detected, feel = st.level, 0, 0, 0, 0.0
    for j in range(n):
        level = smooth_step(level, out[j].frac_recruited * factor, keep)
        feel = level / prm.perception_fraction
        hits += feel >= prm.discomfort_level
        inside += feel >= 1.0 and feel < prm.discomfort_level
        detected += out[j].detected
    st.level = level
    st.t_s += n / rate
    res.ecap_uv = pairwise_sum(out.ecap_uv, n) / n
    _observe(p, b, res.ecap_uv, detected / n, n)
    res.above_frac, res.charge_uc = hits / n, pairwise_sum(out.charge_uc, n) / n
    err = pairwise_sum(out.ecap_true_uv, n, prm.target_uv, True) / n
    res.reward = _reward(
        prm.w_tracking,
        prm.w_discomfort,
        prm.w_charge,
        err,
        prm.target_uv,
        res.above_frac,
        res.charge_uc,
        prm.comfort_charge_uc,
        prm.w_window,
        inside / n,
    )
    res.ecap_true_uv = pairwise_sum(out.ecap_true_uv, n) / n
    res.sensation, res.current_ma = feel, st.current_ma
    res.impedance_ohm, res.csf_mm = b.pulse_impedance[p, n - 1], b.csf[p, k]
    res.posture, res.event = b.posture[p, k], b.event[p, k]
    res.device_flags, res.csf_clipped = flags, clipped
    res.in_window = feel >= 1.0 and feel < prm.discomfort_level
    res.overstim = hits > 0
    res.truncated = st.t_s * prm.rate_hz >= prm.last + 0.5
    res.pw_us, res.rate_hz = pw, rate


@njit(cache=True)
def control_step_one(a0, a1, a2, b):
    """:func:`control_step` of the only patient of ``b`` (the scalar env's step).

    Returns:
        The patient's result record as a tuple (the fields of
        :data:`~closedloop.envs.step_data.RESULT_DTYPE`, in order).
    """
    _first(a0, a1, a2, b.arrays, b.work)
    r = b.arrays.result[0]
    return (
        r.reward,
        r.ecap_uv,
        r.ecap_true_uv,
        r.sensation,
        r.above_frac,
        r.charge_uc,
        r.current_ma,
        r.impedance_ohm,
        r.csf_mm,
        r.posture,
        r.event,
        r.device_flags,
        r.csf_clipped,
        r.in_window,
        r.overstim,
        r.truncated,
        r.pw_us,
        r.rate_hz,
    )


@njit(cache=True, _nrt=False)
def _first(a0, a1, a2, arrays, work):
    """:func:`control_step` of patient 0, compiled without reference counting (as ``_chunk``).

    The batch of one holds its model's own (unstacked) neural state, tables and parameters.
    """
    control_step(0, a0, a1, a2, arrays, (arrays.kstate, arrays.tables, arrays.kparams), work)


@njit(cache=True, _nrt=False)
def _chunk(actions, b, lo, hi, work):
    """Patients ``lo:hi`` of :func:`control_step_many`, one after another."""
    for p in range(lo, hi):
        kernel = (
            _state_at(b.kstate, p, b.cache_index[p]),
            _tables_at(b.tables, b.table_index[p]),
            _params_at(b.kparams, p),
        )
        control_step(p, actions[p, 0], actions[p, 1], actions[p, 2], b, kernel, work)


@njit(cache=True, parallel=True)
def _parallel(actions, b, n_threads):
    """:func:`control_step_many` in ``min(N, n_threads)`` chunks (``b`` the StructRef)."""
    n = actions.shape[0]
    n_chunks = min(n, n_threads)
    for c in prange(n_chunks):
        arrays = b.arrays
        work = _work_for(arrays.kstate, arrays.tables, arrays.kparams)
        _chunk(actions, arrays, c * n // n_chunks, (c + 1) * n // n_chunks, work)


@njit(cache=True)
def control_step_many(actions, b, n_threads):
    """:func:`control_step` for every patient of ``b`` (a loop over it, in parallel chunks).

    Args:
        actions: (N, 3) actions in [-1, 1]: current, pulse width, rate (the last two are read
            with ``control_pw_rate``).
        b: The :class:`~closedloop.envs.step_data.StepBatch`.
        n_threads: Threads (:func:`closedloop.neural.batch.batch_threads`); with 1 (or one
            patient) the patients run in the calling thread, with no parallel region.
    """
    n = actions.shape[0]
    if n_threads > 1 and n > 1:
        _parallel(actions, b, n_threads)
    elif n > 0:
        _chunk(actions, b.arrays, 0, n, b.work)


SHAPE_MISMATCH = -2
"""What :func:`checked_step_many` returns for actions of the wrong shape."""


@njit(cache=True)
def checked_step_many(actions, n_act, clipped, b, n_threads):
    """:func:`control_step_many` after checking and clipping the raw actions.

    Compiled for each dtype and layout of ``actions``; the step itself once, for all of them.

    Args:
        actions: (N, n_act) actions, clipped to [-1, 1] into ``clipped``.
        n_act: Action components of the env (1, or 3 with ``control_pw_rate``).
        clipped: (N, 3) float64; the first ``n_act`` columns are overwritten.
        b: The :class:`~closedloop.envs.step_data.StepBatch`.
        n_threads: Threads of :func:`control_step_many`.

    Returns:
        -1 after a step; otherwise nothing was stepped and the result is the first row holding
        a NaN or infinite value, or :data:`SHAPE_MISMATCH` if ``actions`` is not (N, n_act).
    """
    if actions.shape[0] != clipped.shape[0] or actions.shape[1] != n_act:
        return SHAPE_MISMATCH
    for i in range(clipped.shape[0]):
        for j in range(n_act):
            if not np.isfinite(actions[i, j]):
                return i
            clipped[i, j] = min(max(actions[i, j], -1.0), 1.0)
    control_step_many(clipped, b, n_threads)
    return -1
