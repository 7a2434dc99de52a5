"""Compiled per-step loops of the native vector env for one pulse per step (the default).

:class:`~closedloop.envs.vector.ECAPVectorEnv` calls :func:`before_pulse` and
:func:`after_pulse` around the batch kernel when ``pulses_per_step == 1``: one pass over the
patients each instead of a few dozen NumPy calls. They apply the scalar env's formulas
(:meth:`closedloop.envs.ecap_env.ECAPTrackingEnv._step_pulse`) element by element, through the
same compiled device limits (:func:`closedloop.device.limit_one`) and sensation filter
(:func:`closedloop.perception.smooth_step`); tests check the vector env against scalar envs
bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from closedloop.device import limit_one
from closedloop.perception import smooth_step


@njit(cache=True)
def before_pulse(requested, t_s, rate_hz, last, csf_trace, scale_trace, v, pw_us, max_current_ma,
                 compliance_v, max_change, inputs, flags):
    """Trace lookup, device limits and kernel inputs of every patient's next pulse.

    Args:
        requested: Requested currents (mA), (N,).
        t_s: Simulated time of each patient (s), (N,).
        rate_hz: Pulse rate (Hz).
        last: Last trace index of each patient, (N,).
        csf_trace: CSF thickness traces (mm), (N, T).
        scale_trace: Impedance scale traces, (N, T).
        v: ``(current, imp, min, max, qmax)`` arrays (N,): delivered current (mA, updated),
            impedance (Ω), clinician limits (mA), charge limit (µC).
        pw_us: Pulse width (µs).
        max_current_ma: Hardware maximum (mA).
        compliance_v: Compliance voltage (V).
        max_change: Largest change of current per step (mA), (N,).
        inputs: The batch kernel's ``PulseInputs``, arrays (N, 1), filled here.
        flags: Output, device limit bitmasks, (N,).
    """
    current, imp, min_ma, max_ma, qmax = v
    for i in range(requested.size):
        k = min(int(t_s[i] * rate_hz + 1e-9), last[i])
        current[i], flags[i] = limit_one(
            requested[i], current[i], pw_us, imp[i] * scale_trace[i, k], min_ma[i], max_ma[i],
            max_current_ma, max_change[i], qmax[i], compliance_v)
        inputs.current_ma[i, 0] = current[i]
        inputs.pw_us[i, 0] = pw_us
        inputs.csf_mm[i, 0] = csf_trace[i, k]
        inputs.interval_s[i, 0] = 1.0 / rate_hz


@njit(cache=True)
def after_pulse(out, v, hist, t_s, dt_s, ecap_bound_uv, res):
    """Sensation, clock and observation history after the pulse; the reward's terms.

    Args:
        out: The batch kernel's records, (N, 1).
        v: ``(level, factor, keep, perc, disc, current, target)`` arrays (N,); ``level`` (the
            filtered drive) is updated.
        hist: Observation history (N, 3, H), newest first; shifted and filled here.
        t_s: Simulated time of each patient (s), advanced by ``dt_s``.
        dt_s: Control period (s).
        ecap_bound_uv: Bound of the observed ECAP (µV).
        res: Output ``(feel, above, err, charge, true)`` arrays (N,): sensation, 1.0 above
            discomfort, |true ECAP - target| (µV), charge per phase (µC), true ECAP (µV).
    """
    level, factor, keep, perc, disc, current, target = v
    feel, above, err, charge, true = res
    n_hist = hist.shape[2]
    for i in range(level.size):
        r = out[i, 0]
        level[i] = smooth_step(level[i], r.frac_recruited * factor[i], keep[i])
        feel[i] = level[i] / perc[i]
        above[i] = 1.0 if feel[i] >= disc[i] else 0.0
        t_s[i] += dt_s
        for row in range(3):
            for c in range(n_hist - 1, 0, -1):
                hist[i, row, c] = hist[i, row, c - 1]
        hist[i, 0, 0] = min(max(r.ecap_uv, -ecap_bound_uv), ecap_bound_uv)
        hist[i, 1, 0] = 1.0 if r.detected else 0.0
        hist[i, 2, 0] = current[i]
        true[i] = r.ecap_true_uv
        err[i] = np.abs(true[i] - target[i])
        charge[i] = r.charge_uc
