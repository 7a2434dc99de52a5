"""The control step's data, named: episode parameters, state, result records, and the batch.

* :data:`PARAMS_DTYPE`: what an episode fixes (limits, target, weights, action scales), one
  record per patient, made at reset by :func:`closedloop.envs.episode.episode_params`;
* :data:`STATE_DTYPE`: what a step changes (clock, delivered current, filtered drive);
* :data:`RESULT_DTYPE`: what a step reports (the values behind the env's ``info``);
* :class:`BatchArrays` and :class:`StepBatch`: everything :func:`closedloop.envs.step.
  control_step` reads and writes for ``N`` patients, in one object numba unboxes once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numba.core import types
from numba.experimental import structref

PARAMS_DTYPE = np.dtype(
    [
        ("action_mode", np.int64),  # index in closedloop.envs.config.ACTION_MODES
        ("max_delta_ma", np.float64),  # incremental mode: change at a = ±1 (mA)
        ("max_log_step", np.float64),  # multiplicative mode: log-current change at a = ±1
        ("control_pw_rate", np.bool_),  # actions 1 and 2 set the pulse width and rate
        ("rate_hz", np.float64),  # the spec's pulse rate, and the trace's sample rate (Hz)
        ("pw_us", np.float64),  # the spec's pulse width (µs)
        ("impedance_ohm", np.float64),  # electrode impedance before the trace's scale (Ω)
        ("min_ma", np.float64),  # clinician limits (mA)
        ("max_ma", np.float64),
        ("max_current_ma", np.float64),  # hardware maximum (mA)
        ("max_change_ma", np.float64),  # largest change from one pulse to the next (mA)
        ("max_charge_uc", np.float64),  # charge limit per phase (µC)
        ("compliance_v", np.float64),  # compliance voltage (V)
        ("factor", np.float64),  # sensation drive's rate factor at rate_hz
        ("keep", np.float64),  # sensation filter's memory over 1 / rate_hz
        ("reference_rate_hz", np.float64),  # perception model (for other rates)
        ("rate_exponent", np.float64),
        ("tau_s", np.float64),
        ("perception_fraction", np.float64),  # recruited fraction at perception
        ("discomfort_level", np.float64),  # sensation at discomfort (x perception)
        ("target_uv", np.float64),  # target ECAP (µV)
        ("w_tracking", np.float64),  # reward weights
        ("w_discomfort", np.float64),
        ("w_charge", np.float64),
        ("w_window", np.float64),
        ("comfort_charge_uc", np.float64),  # charge per phase at the comfort current (µC)
        ("bound_uv", np.float64),  # bound of the observed ECAP (µV)
        ("last", np.int64),  # last index of the patient's scenario trace
        ("history", np.int64),  # steps of observation history H
    ]
)
"""An episode's fixed numbers, one record per patient (units in the comments)."""


STATE_DTYPE = np.dtype(
    [
        ("t_s", np.float64),  # simulated time (s)
        ("current_ma", np.float64),  # current of the last pulse delivered (mA)
        ("level", np.float64),  # sensation filter's drive (NaN before the first pulse)
    ]
)
"""What a step changes besides the observation and the neural state, one record per patient."""


RESULT_DTYPE = np.dtype(
    [
        ("reward", np.float64),
        ("ecap_uv", np.float64),  # estimated ECAP, mean over the step's pulses (µV)
        ("ecap_true_uv", np.float64),  # true ECAP, mean over the pulses (µV)
        ("sensation", np.float64),  # after the last pulse (x perception)
        ("above_frac", np.float64),  # fraction of the pulses at or above discomfort
        ("charge_uc", np.float64),  # charge per phase, mean over the pulses (µC)
        ("current_ma", np.float64),  # current of the last pulse (mA)
        ("impedance_ohm", np.float64),  # impedance the last pulse saw (Ω)
        ("csf_mm", np.float64),  # the trace's CSF thickness at the last pulse (mm)
        ("posture", np.int64),  # posture code at the last pulse
        ("event", np.int64),  # event code at the last pulse (0: none)
        ("device_flags", np.int64),  # OR of the pulses' device-limit bitmasks
        ("csf_clipped", np.bool_),  # a pulse's CSF thickness was clamped into range
        ("in_window", np.bool_),  # perception <= sensation < discomfort, last pulse
        ("overstim", np.bool_),  # a pulse at or above discomfort
        ("truncated", np.bool_),  # the episode's time is used up
        ("pw_us", np.float64),  # the step's pulse width (µs)
        ("rate_hz", np.float64),  # the step's pulse rate (Hz)
    ]
)
"""What one step reports, one record per patient (units in the comments)."""


class BatchArrays(NamedTuple):
    """Everything :func:`control_step` reads and writes for ``N`` patients (references).

    Each with a leading patient axis: ``params`` (:data:`PARAMS_DTYPE`), ``state``
    (:data:`STATE_DTYPE`), ``obs`` (float32, ``3 H + 1`` (+ sweep samples); the first ``3 H``
    are the history rows ECAP, detection, current, newest first; then the target), ``result``
    (:data:`RESULT_DTYPE`); the scenario traces ``csf`` (mm), ``scale`` (impedance scale),
    ``clip`` (CSF clip code), ``posture`` and ``event`` (codes), (N, T); the step's per-pulse
    ``pulse_current`` (mA), ``pulse_impedance`` (Ω) and ``pulse_flags``, (N, P); and the neural
    kernel's ``kstate``, ``tables``, ``table_index``, ``cache_index``, ``kparams``, ``inputs``,
    ``out`` and ``wave`` (:func:`closedloop.neural.batch.run_pulses_batch_indexed`; a batch of
    one may hold its model's own, unstacked ``kstate``, ``tables`` and ``kparams``). A tuple
    of arrays needs no reference counting, so the patient loop is compiled without it (see
    :func:`closedloop.neural.batch._chunk`).
    """

    params: object
    state: object
    obs: object
    result: object
    csf: object
    scale: object
    clip: object
    posture: object
    event: object
    pulse_current: object
    pulse_impedance: object
    pulse_flags: object
    kstate: object
    tables: object
    table_index: object
    cache_index: object
    kparams: object
    inputs: object
    out: object
    wave: object


@structref.register
class StepBatchType(types.StructRef):
    """Numba type of :class:`StepBatch`."""

    def preprocess_fields(self, fields):
        """Fields typed without literal values (one compiled step serves every batch)."""
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class StepBatch(structref.StructRefProxy):
    """A :class:`BatchArrays` (``arrays``) and the kernel's scratch for a serial loop (``work``).

    One object: numba unboxes it once per call, where the arrays it holds (some seventy, the
    neural model's included) would each cost a fraction of a µs.
    """


structref.define_proxy(StepBatch, StepBatchType, ["arrays", "work"])


@njit(cache=True)
def step_batch(arrays, work):
    """A :class:`StepBatch` (compiled once and cached, unlike the proxy's own maker)."""
    return StepBatch(arrays, work)
