"""An episode's arrays for the control step: what a reset makes, for one patient.

:func:`new_episode` turns what a reset drew (patient, calibration, scenario trace, target) into
the named arrays of :mod:`closedloop.envs.step`: the fixed :data:`~closedloop.envs.step.
PARAMS_DTYPE` record, the starting :data:`~closedloop.envs.step_data.STATE_DTYPE`, the first
observation and the traces, each with a leading patient axis of length 1.
:func:`scalar_batch` adds the patient's neural model (views of its own arrays, so the model
advances in place) and makes the :class:`~closedloop.envs.step_data.StepBatch` of one patient that
the scalar env steps; the vector env stacks the rows of many (:mod:`closedloop.envs.vector`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from closedloop.envs.config import ACTION_MODES
from closedloop.envs.inputs import ECAP_BOUND_UV
from closedloop.envs.step_data import (
    PARAMS_DTYPE,
    RESULT_DTYPE,
    STATE_DTYPE,
    BatchArrays,
    step_batch,
)
from closedloop.neural.kernels import PULSE_DTYPE, PulseInputs
from closedloop.patients.perception import drive_factors


class Episode(NamedTuple):
    """The per-patient arrays of a :class:`~closedloop.envs.step_data.StepBatch` (its fields)."""

    params: np.ndarray
    state: np.ndarray
    obs: np.ndarray
    result: np.ndarray
    csf: np.ndarray
    scale: np.ndarray
    clip: np.ndarray
    posture: np.ndarray
    event: np.ndarray
    pulse_current: np.ndarray
    pulse_impedance: np.ndarray
    pulse_flags: np.ndarray


def episode_params(spec, patient, calibration, target_uv: float, last: int) -> np.ndarray:
    """The (1,) :data:`~closedloop.envs.step_data.PARAMS_DTYPE` record of an episode.

    Args:
        spec: The env's :class:`~closedloop.envs.config.TaskSpec` (config, device, reward).
        patient: The episode's :class:`~closedloop.patients.patient.Patient`.
        calibration: Its calibration record (limits, comfort current) at the spec's settings.
        target_uv: The episode's target ECAP (µV).
        last: Last index of the episode's scenario trace.
    """
    cfg, dev, rw, per = spec.config, spec.device, spec.reward, patient.perception
    factor, keep = drive_factors(1.0 / cfg.rate_hz, cfg.rate_hz, per)
    values = {
        "action_mode": ACTION_MODES.index(cfg.action_mode),
        "max_delta_ma": cfg.max_delta_ma,
        "max_log_step": cfg.max_log_step,
        "control_pw_rate": cfg.control_pw_rate,
        "rate_hz": cfg.rate_hz,
        "pw_us": cfg.pw_us,
        "impedance_ohm": patient.impedance_ohm,
        "min_ma": calibration.min_ma,
        "max_ma": calibration.max_ma,
        "max_current_ma": dev.max_current_ma,
        "max_change_ma": dev.max_step_ma,
        "max_charge_uc": dev.max_charge_uc(patient.params.lead.contact_length_mm),
        "compliance_v": dev.compliance_v,
        "factor": factor,
        "keep": keep,
        "reference_rate_hz": per.reference_rate_hz,
        "rate_exponent": per.rate_exponent,
        "tau_s": per.tau_s,
        "perception_fraction": per.perception_fraction,
        "discomfort_level": per.discomfort_level,
        "target_uv": target_uv,
        "w_tracking": rw.tracking,
        "w_discomfort": rw.discomfort,
        "w_charge": rw.charge,
        "w_window": rw.window,
        "comfort_charge_uc": max(calibration.comfort_ma * calibration.pw_us * 1e-3, 1e-6),
        "bound_uv": ECAP_BOUND_UV,
        "last": last,
        "history": cfg.history,
    }
    out = np.zeros(1, PARAMS_DTYPE)
    for name in PARAMS_DTYPE.names:
        out[name] = values[name]
    return out


def new_episode(spec, patient, calibration, trace, target_uv: float, obs_size: int) -> Episode:
    """An :class:`Episode` of one patient at its start (see the module docstring).

    Args:
        spec: The env's :class:`~closedloop.envs.config.TaskSpec`.
        patient: The episode's patient.
        calibration: Its calibration record.
        trace: The episode's scenario trace.
        target_uv: The target ECAP (µV).
        obs_size: Length of an observation (``3 H + 1`` plus any sweep samples).
    """
    cfg, h, n_p = spec.config, spec.config.history, spec.config.pulses_per_step
    state = np.zeros(1, STATE_DTYPE)
    state["current_ma"], state["level"] = calibration.comfort_ma, np.nan
    obs = np.zeros((1, obs_size), np.float32)
    obs[0, 2 * h : 3 * h] = calibration.comfort_ma
    obs[0, 3 * h] = target_uv
    result = np.zeros(1, RESULT_DTYPE)
    result["pw_us"], result["rate_hz"] = cfg.pw_us, cfg.rate_hz
    return Episode(
        episode_params(spec, patient, calibration, target_uv, trace.t_s.size - 1),
        state,
        obs,
        result,
        trace.csf_mm[None],
        trace.impedance_scale[None],
        trace.csf_clipped[None],
        trace.posture[None],
        trace.event[None],
        np.zeros((1, n_p)),
        np.zeros((1, n_p)),
        np.zeros((1, n_p), np.int64),
    )


def scalar_batch(ep: Episode, model, waveforms: bool):
    """The :class:`~closedloop.envs.step_data.StepBatch` of one patient, stepping ``model``.

    It holds the model's own neural state, tables and parameters (not stacked).

    Returns:
        ``(batch, wave)``: the batch and its sweep array (1, P, S) (P is 0 without
        ``waveforms``).
    """
    n_p = ep.pulse_current.shape[1]
    inputs = PulseInputs(*(np.zeros((1, n_p)) for _ in range(4)))
    out = np.empty((1, n_p), PULSE_DTYPE)
    wave = np.empty((1, n_p if waveforms else 0, model.n_samples))
    zero = np.zeros(1, np.int64)
    arrays = BatchArrays(
        *ep, model.state, model.tables, zero, zero, model.kparams, inputs, out, wave
    )
    batch = step_batch(arrays, model.work)
    return batch, wave
