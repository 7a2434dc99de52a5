"""Compiled per-step code of the environments for one pulse per step (the default).

One copy of the per-patient step, in two compiled pieces: :func:`limit_pulse` (trace lookup and
device limits before the pulse, through :func:`closedloop.device.limit_one`) and
:func:`sense_and_observe` (sensation filter, through :func:`closedloop.perception.smooth_step`,
clock and observation history after it). :func:`pulse_step` runs them around the pulse kernel
for the scalar :class:`~closedloop.envs.ecap_env.ECAPTrackingEnv`, in one call from Python;
:func:`before_pulse` and :func:`after_pulse` loop them over the patients around the batch
kernel for :class:`~closedloop.envs.vector.ECAPVectorEnv`, all three in one call
(:func:`closedloop.envs.batch_step.vector_step`). Tests check the compiled steps
against the env's NumPy path (several pulses per step) and the vector env against scalar envs,
bit for bit.

The scalar env keeps its per-episode numbers in one float64 array indexed by the ``S_*``
constants below, and passes everything :func:`pulse_step` reads and writes in one
:class:`StepArgs` (a numba StructRef, made once per episode by :func:`step_args`): numba
unboxes it as one object, where the separate arrays and named tuples took about 2 µs per call
(over 5 µs with the caches cold, as they are after a policy's forward pass).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.core import types
from numba.experimental import structref

from closedloop.device import limit_one
from closedloop.envs.config import requested_current, reward_formula
from closedloop.neural.kernels import run_pulses_unshared
from closedloop.perception import smooth_step

STEP_FIELDS = (
    "t_s",
    "current_ma",
    "level",
    "rate_hz",
    "last",
    "pw_us",
    "impedance_ohm",
    "min_ma",
    "max_ma",
    "max_current_ma",
    "max_change_ma",
    "max_charge_uc",
    "compliance_v",
    "factor",
    "keep",
    "perception_fraction",
    "bound_uv",
    "discomfort_level",
    "target_uv",
    "w_tracking",
    "w_discomfort",
    "w_charge",
    "comfort_charge_uc",
    "action_mode",
    "max_delta_ma",
    "max_log_step",
)
"""The scalar env's step array, in order: simulated time (s), delivered current (mA), filtered
drive, pulse rate (Hz), last trace index, pulse width (µs), impedance (Ω), clinician limits
(mA), hardware maximum (mA), largest change per pulse (mA), charge limit per phase (µC),
compliance (V), sensation rate factor, filter keep factor, perception fraction, ECAP bound (µV),
discomfort level (x perception), target ECAP (µV), reward weights, comfort charge (µC), action
mode (index in :data:`~closedloop.envs.config.ACTION_MODES`) and its scales (mA; log-current)."""
(
    S_T,
    S_CURRENT,
    S_LEVEL,
    S_RATE,
    S_LAST,
    S_PW,
    S_IMP,
    S_MIN,
    S_MAX,
    S_HW_MAX,
    S_MAX_CHANGE,
    S_QMAX,
    S_COMPLIANCE,
    S_FACTOR,
    S_KEEP,
    S_PERC,
    S_BOUND,
    S_DISC,
    S_TARGET,
    S_W_TRACKING,
    S_W_DISCOMFORT,
    S_W_CHARGE,
    S_COMFORT_CHARGE,
    S_MODE,
    S_DELTA,
    S_LOG_STEP,
) = range(len(STEP_FIELDS))


def step_array(**values: float) -> np.ndarray:
    """A step array (:data:`STEP_FIELDS`) holding ``values``; every field must be given."""
    if sorted(values) != sorted(STEP_FIELDS):
        raise ValueError(
            f"step_array needs exactly the fields {', '.join(STEP_FIELDS)}; got "
            f"{', '.join(sorted(values))}"
        )
    return np.array([float(values[name]) for name in STEP_FIELDS])


@njit(cache=True, inline="always")
def limit_pulse(
    requested,
    t_s,
    rate_hz,
    last,
    csf_trace,
    scale_trace,
    current,
    pw_us,
    imp,
    min_ma,
    max_ma,
    max_current_ma,
    max_change,
    qmax,
    compliance_v,
):
    """Trace index, delivered current, device flags and impedance of one patient's next pulse.

    Args:
        requested: Requested current (mA).
        t_s: The patient's simulated time (s).
        rate_hz: Pulse rate (Hz).
        last: Last index of the patient's traces.
        csf_trace: CSF thickness trace (mm), (T,).
        scale_trace: Impedance scale trace, (T,).
        current: Current delivered at the previous step (mA).
        pw_us: Pulse width (µs).
        imp: Electrode impedance before scaling (Ω).
        min_ma: Clinician lower limit (mA).
        max_ma: Clinician upper limit (mA).
        max_current_ma: Hardware maximum (mA).
        max_change: Largest change of current per pulse (mA).
        qmax: Charge limit per phase (µC).
        compliance_v: Compliance voltage (V).

    Returns:
        ``(k, delivered_ma, flags, csf_mm, impedance_ohm)``: the impedance is the one the pulse
        sees (``imp`` times the trace's scale at ``k``).
    """
    k = min(int(t_s * rate_hz + 1e-9), last)
    z = imp * scale_trace[k]
    delivered, flags = limit_one(
        requested, current, pw_us, z, min_ma, max_ma, max_current_ma, max_change, qmax, compliance_v
    )
    return k, delivered, flags, csf_trace[k], z


@njit(cache=True, inline="always")
def sense_and_observe(r, level, factor, keep, perc, current, bound_uv, hist):
    """Sensation after the pulse whose record is ``r``; pushes the observation history.

    Args:
        r: The pulse's record (:data:`closedloop.neural.kernels.PULSE_DTYPE`).
        level: Filtered drive before the pulse (NaN at an episode's start).
        factor: Rate factor of the sensation's drive.
        keep: Filter keep factor for one interval.
        perc: Recruited fraction at perception.
        current: The delivered current (mA).
        bound_uv: Bound of the observed ECAP (µV).
        hist: Observation history (3, H), rows ECAP, detection, current, newest first; shifted
            and filled here (any float dtype).

    Returns:
        ``(level, feel)``: the updated filtered drive and the sensation (x perception).
    """
    level = smooth_step(level, r.frac_recruited * factor, keep)
    push_history(hist, r.ecap_uv, 1.0 if r.detected else 0.0, current, bound_uv)
    return level, level / perc


@njit(cache=True, inline="always")
def push_history(hist, ecap_uv, detected, current_ma, bound_uv):
    """Shift the observation history (3, H) one step and put the newest values first.

    Args:
        hist: Rows estimated ECAP (µV, clipped to ``±bound_uv``), detection (fraction of the
            step's pulses) and delivered current (mA), newest first; any float dtype.
        ecap_uv: The step's estimated ECAP (µV).
        detected: Fraction of the step's pulses detected.
        current_ma: The delivered current (mA).
        bound_uv: Bound of the observed ECAP (µV).
    """
    for row in range(3):
        for c in range(hist.shape[1] - 1, 0, -1):
            hist[row, c] = hist[row, c - 1]
    hist[0, 0] = min(max(ecap_uv, -bound_uv), bound_uv)
    hist[1, 0] = detected
    hist[2, 0] = current_ma


@structref.register
class StepArgsType(types.StructRef):
    """Numba type of :class:`StepArgs`."""

    def preprocess_fields(self, fields):
        """Fields typed without literal values (so one compiled step serves every episode)."""
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class StepArgs(structref.StructRefProxy):
    """The arguments of :func:`pulse_step` after the requested current, as one object.

    Fields: ``s`` (the step array), ``csf_trace`` (mm), ``scale_trace`` (impedance scale),
    ``posture_trace``, ``event_trace`` and ``clip_trace`` (codes; the last is the trace's
    ``csf_clipped``), ``hist`` (observation history (3, H), a view
    of the observation), ``state``, ``tables`` and ``kp`` (the patient's kernel state, tables
    and parameters), ``inputs``, ``out`` and ``wave`` (a one-pulse
    :class:`~closedloop.neural.runner.PulseRunner`'s inputs, records and sweeps) and ``work``
    (the model's kernel scratch). It holds references, not copies.
    """


STEP_ARGS = (
    "s",
    "csf_trace",
    "scale_trace",
    "posture_trace",
    "event_trace",
    "clip_trace",
    "hist",
    "state",
    "tables",
    "kp",
    "inputs",
    "out",
    "wave",
    "work",
)
structref.define_proxy(StepArgs, StepArgsType, list(STEP_ARGS))


@njit(cache=True)
def step_args(
    s,
    csf_trace,
    scale_trace,
    posture_trace,
    event_trace,
    clip_trace,
    hist,
    state,
    tables,
    kp,
    inputs,
    out,
    wave,
    work,
):
    """A :class:`StepArgs` of these (compiled once and cached, unlike the proxy's own maker)."""
    return StepArgs(
        s,
        csf_trace,
        scale_trace,
        posture_trace,
        event_trace,
        clip_trace,
        hist,
        state,
        tables,
        kp,
        inputs,
        out,
        wave,
        work,
    )


_reward = njit(cache=True)(reward_formula)


@njit(cache=True)
def pulse_step(action, a):
    """One step of the scalar env with one pulse: action mapping, limits, pulse kernel, reward.

    Args:
        action: Action component 0, in [-1, 1].
        a: The :class:`StepArgs`; the step array's time, current and level, the patient's
            state, the history and the runner's records are updated.

    Returns:
        ``(ecap_uv, ecap_true_uv, feel, charge_uc, current_ma, flags, csf_mm, posture, event,
        reward, truncated, impedance_ohm, csf_clipped)``: the pulse's estimated and true ECAP
        (µV), the sensation (x perception), the charge (µC) and delivered current (mA), the
        device flags, the trace's CSF thickness (mm), posture and event codes, the reward,
        whether the episode's time is used up, the impedance the pulse saw (Ω) and whether its
        CSF thickness was clamped into the model's range.
    """
    s = a.s
    requested = requested_current(
        int(s[S_MODE]), action, s[S_CURRENT], s[S_MIN], s[S_MAX], s[S_DELTA], s[S_LOG_STEP]
    )
    k, cur, flags, csf, z = limit_pulse(
        requested,
        s[S_T],
        s[S_RATE],
        int(s[S_LAST]),
        a.csf_trace,
        a.scale_trace,
        s[S_CURRENT],
        s[S_PW],
        s[S_IMP],
        s[S_MIN],
        s[S_MAX],
        s[S_HW_MAX],
        s[S_MAX_CHANGE],
        s[S_QMAX],
        s[S_COMPLIANCE],
    )
    s[S_CURRENT] = cur
    inputs = a.inputs
    inputs.current_ma[0] = cur
    inputs.pw_us[0] = s[S_PW]
    inputs.csf_mm[0] = csf
    inputs.interval_s[0] = 1.0 / s[S_RATE]
    run_pulses_unshared(a.state, a.tables, a.kp, inputs, a.out, a.wave, a.work)
    r = a.out[0]
    s[S_LEVEL], feel = sense_and_observe(
        r, s[S_LEVEL], s[S_FACTOR], s[S_KEEP], s[S_PERC], cur, s[S_BOUND], a.hist
    )
    s[S_T] += 1.0 / s[S_RATE]
    true = r.ecap_true_uv
    reward = _reward(
        s[S_W_TRACKING],
        s[S_W_DISCOMFORT],
        s[S_W_CHARGE],
        abs(true - s[S_TARGET]),
        s[S_TARGET],
        1.0 if feel >= s[S_DISC] else 0.0,
        r.charge_uc,
        s[S_COMFORT_CHARGE],
    )
    truncated = s[S_T] * s[S_RATE] >= s[S_LAST] + 0.5
    return (
        r.ecap_uv,
        true,
        feel,
        r.charge_uc,
        cur,
        flags,
        csf,
        int(a.posture_trace[k]),
        int(a.event_trace[k]),
        reward,
        truncated,
        z,
        a.clip_trace[k] != 0,
    )


@njit(cache=True, inline="always")
def before_pulse(
    actions,
    mode,
    scales,
    t_s,
    rate_hz,
    last,
    traces,
    v,
    pw_us,
    max_current_ma,
    compliance_v,
    max_change,
    inputs,
    flags,
    seen,
):
    """Action mapping and :func:`limit_pulse` for every patient; fills the kernel's inputs.

    Args:
        actions: Action component 0 of each patient, in [-1, 1], (N,).
        mode: Index of the action mode in :data:`~closedloop.envs.config.ACTION_MODES`.
        scales: ``(max_delta_ma, max_log_step)`` of the action mapping.
        t_s: Simulated time of each patient (s), (N,).
        rate_hz: Pulse rate (Hz).
        last: Last trace index of each patient, (N,).
        traces: ``(csf, scale, clip)``: CSF thickness (mm), impedance scale and CSF clip code
            (the trace's ``csf_clipped``) traces, each (N, T).
        v: ``(current, imp, min, max, qmax)`` arrays (N,): delivered current (mA, updated),
            impedance (Ω), clinician limits (mA), charge limit (µC).
        pw_us: Pulse width (µs).
        max_current_ma: Hardware maximum (mA).
        compliance_v: Compliance voltage (V).
        max_change: Largest change of current per pulse (mA), (N,).
        inputs: The batch kernel's ``PulseInputs``, arrays (N, 1), filled here.
        flags: Output, device limit bitmasks, (N,).
        seen: Output, (2, N): the impedance each pulse saw (Ω) and its CSF clip code.
    """
    current, imp, min_ma, max_ma, qmax = v
    csf_trace, scale_trace, clip_trace = traces
    for i in range(actions.size):
        requested = requested_current(
            mode, actions[i], current[i], min_ma[i], max_ma[i], scales[0], scales[1]
        )
        k, current[i], flags[i], csf, seen[0, i] = limit_pulse(
            requested,
            t_s[i],
            rate_hz,
            last[i],
            csf_trace[i],
            scale_trace[i],
            current[i],
            pw_us,
            imp[i],
            min_ma[i],
            max_ma[i],
            max_current_ma,
            max_change[i],
            qmax[i],
            compliance_v,
        )
        seen[1, i] = clip_trace[i, k]
        inputs.current_ma[i, 0] = current[i]
        inputs.pw_us[i, 0] = pw_us
        inputs.csf_mm[i, 0] = csf
        inputs.interval_s[i, 0] = 1.0 / rate_hz


STEP_VALUES = ("reward", "sensation", "ecap_true_uv", "charge_uc", "current_ma", "impedance_ohm")
"""Rows of the values :func:`after_pulse` returns: reward, sensation (1: perception), true ECAP
(µV), charge per phase (µC), delivered current (mA), electrode impedance of the (last) pulse (Ω)."""
STEP_FLAGS = ("truncated", "in_window", "overstim", "csf_clipped")
"""Rows of the flags :func:`after_pulse` returns."""


@njit(cache=True, inline="always")
def after_pulse(out, v, weights, hist, t_s, dt_s, rate_hz, last, ecap_bound_uv, seen):
    """:func:`sense_and_observe` for every patient, the clock, reward, truncation, observation.

    Args:
        out: The batch kernel's records, (N, 1).
        v: ``(level, factor, keep, perc, disc, current, target, comfort)`` arrays (N,):
            filtered drive (updated), sensation factors, discomfort level, delivered current
            (mA), target ECAP (µV), comfort charge (µC).
        weights: Reward weights ``(tracking, discomfort, charge)``.
        hist: Observation history (N, 3, H), newest first; shifted and filled here.
        t_s: Simulated time of each patient (s), advanced by ``dt_s``.
        dt_s: Control period (s).
        rate_hz: Pulse rate of the traces (Hz).
        last: Last trace index of each patient, (N,).
        ecap_bound_uv: Bound of the observed ECAP (µV).
        seen: (2, N) from :func:`before_pulse`: impedance (Ω) and CSF clip code of each pulse.

    Returns:
        New arrays ``(obs, values, flags)``: the observations (N, 3 H + 1) float32, the rows
        of :data:`STEP_VALUES` (6, N) and of :data:`STEP_FLAGS` (4, N) bool (three arrays
        instead of nine: each array a compiled function returns costs about 0.3 µs).
    """
    level, factor, keep, perc, disc, current, target, comfort = v
    n, h = level.size, hist.shape[2]
    obs = np.empty((n, 3 * h + 1), np.float32)
    values = np.empty((len(STEP_VALUES), n))
    flags = np.empty((len(STEP_FLAGS), n), np.bool_)
    reward, feel, true, charge, delivered, impedance = values
    truncated, in_window, overstim, clipped = flags
    for i in range(n):
        r = out[i, 0]
        level[i], feel[i] = sense_and_observe(
            r, level[i], factor[i], keep[i], perc[i], current[i], ecap_bound_uv, hist[i]
        )
        above = 1.0 if feel[i] >= disc[i] else 0.0
        t_s[i] += dt_s
        true[i], charge[i] = r.ecap_true_uv, r.charge_uc
        reward[i] = _reward(
            weights[0],
            weights[1],
            weights[2],
            np.abs(true[i] - target[i]),
            target[i],
            above,
            charge[i],
            comfort[i],
        )
        truncated[i] = t_s[i] * rate_hz >= last[i] + 0.5
        in_window[i] = feel[i] >= 1.0 and feel[i] < disc[i]
        overstim[i] = above > 0
        for row in range(3):
            for c in range(h):
                obs[i, row * h + c] = hist[i, row, c]
        obs[i, 3 * h] = target[i]
        delivered[i] = current[i]
        impedance[i] = seen[0, i]
        clipped[i] = seen[1, i] != 0
    return obs, values, flags


SHAPE_MISMATCH = -2
"""What :func:`checked_actions` returns for actions that are not (N, 1)."""


@njit(cache=True)
def checked_actions(actions, out):
    """Clip the (N, 1) ``actions`` to [-1, 1] into ``out`` (N,).

    Returns:
        -1; or the first row holding a NaN or infinite value; or :data:`SHAPE_MISMATCH` if
        ``actions`` is not ``(out.size, 1)`` (nothing is written then).
    """
    if actions.shape[0] != out.size or actions.shape[1] != 1:
        return SHAPE_MISMATCH
    for i in range(out.size):
        if not np.isfinite(actions[i, 0]):
            return i
        out[i] = min(max(actions[i, 0], -1.0), 1.0)
    return -1
