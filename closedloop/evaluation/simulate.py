"""Open-loop simulation: a fixed current through a disturbance scenario.

This is the standard of care that closed loop exists to improve on: the clinician programs the
comfort current in the programming posture, and the device delivers it whatever the cord does.

Example:
    >>> from closedloop.patients.cohort import get_patient
    >>> from closedloop.evaluation.simulate import open_loop
    >>> run = open_loop(get_patient("default"), "clinic", seed=0)   # doctest: +SKIP
    >>> run.metrics()["time_in_window_frac"]                        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from closedloop._config import ConfigError, check_value, short_repr
from closedloop._io import check_memory
from closedloop.controllers.base import ControlContext
from closedloop.controllers.open_loop import OpenLoop, OpenLoopParams
from closedloop.disturbances import Scenario, load_scenario
from closedloop.envs.ecap_env import ECAPTrackingEnv
from closedloop.evaluation.episode_inputs import check_seed
from closedloop.evaluation.episode_runner import play, to_trajectory
from closedloop.evaluation.trajectory import BYTES_PER_PULSE, Trajectory
from closedloop.patients.calibration import CalibrationRecord, calibrate, window_table
from closedloop.patients.patient import Patient

MAX_FRACTION = OpenLoopParams.__dataclass_fields__["comfort_fraction"].metadata["hi"]
"""Largest ``comfort_fraction`` of the open-loop controller (:class:`OpenLoopParams`)."""
WINDOW_GRID_POINTS = 9
"""CSF thicknesses at which the ECAP window is measured for a trajectory (interpolated between)."""


OPEN_LOOP_ENV = "closedloop/ECAPTracking-v0"
"""The env an open-loop run is an episode of, with one pulse per step and absolute currents at
the calibration's pulse width and rate (its other settings do not change a fixed current)."""


def open_loop(
    patient: Patient,
    scenario,
    current_ma: float | None = None,
    calibration: CalibrationRecord | None = None,
    seed: int = 0,
    duration_s: float | None = None,
    model=None,
    with_window: bool = True,
) -> Trajectory:
    """Deliver a fixed current through a scenario: one episode of the open-loop controller.

    The run is an episode like any other (:func:`~closedloop.evaluation.episode_runner.play`):
    :class:`~closedloop.controllers.OpenLoop` drives :data:`OPEN_LOOP_ENV` for ``patient``
    through ``scenario``, one pulse per step, and the device model's limits apply to every
    pulse (a current above the clinician maximum is delivered at that maximum).

    Args:
        patient: The patient.
        scenario: A :class:`~closedloop.disturbances.Scenario` or a library scenario id.
        current_ma: Fixed current (mA), in [0, 4 x comfort] (the open-loop controller's
            range) and at most 25.5; the calibrated comfort current if None.
        calibration: The patient's calibration; made with :func:`calibrate` if None.
        seed: Seed of the episode's ``reset`` (scenario draws and recording noise, with the
            patient's id: patients live different days), as for any env episode.
        duration_s: Override of the scenario's duration (s).
        model: The patient's neural model, for the window sweeps (built if None).
        with_window: Measure the ECAP window along the trajectory's CSF range (for plots).

    Returns:
        The :class:`Trajectory` (one entry per pulse; ``frac_recruited`` is NaN, as for every
        env episode).

    Raises:
        ConfigError: If an argument is invalid, or the run would not fit in the available
            memory (:data:`BYTES_PER_PULSE` per pulse).
    """
    seed = check_seed(seed)
    scenario = _scenario(scenario, duration_s)
    cal = calibrate(patient, model=model) if calibration is None else calibration
    fraction = _comfort_fraction(current_ma, cal.comfort_ma)
    check_run_memory(scenario.duration_s, cal.rate_hz)
    env = ECAPTrackingEnv(
        OPEN_LOOP_ENV,
        rate_hz=cal.rate_hz,
        pw_us=cal.pw_us,
        pulses_per_step=1,
        action_mode="absolute",
        episode_s=scenario.duration_s,
    )
    options = {"patient": patient, "scenario": scenario, "calibration": cal}
    try:
        obs, info = env.reset(seed=seed, options=options)
        context = ControlContext.from_env(env.spec_.config, env.calibration, info["target_uv"])
        log = play(OpenLoop(OpenLoopParams(comfort_fraction=fraction)), context, env, obs)
    finally:
        env.close()
    traj = dataclasses.replace(to_trajectory(env, info["target_uv"], log), scenario=scenario.name)
    if not with_window:
        return traj
    lo, hi = window_along(patient, model or env.model, traj.csf_mm, cal.pw_us, cal.rate_hz)
    return dataclasses.replace(traj, window_lo_uv=lo, window_hi_uv=hi)


def _scenario(scenario, duration_s: float | None) -> Scenario:
    """``scenario`` (a Scenario or a library id) with ``duration_s`` if given."""
    if not isinstance(scenario, str | Scenario):
        raise ConfigError(
            f"scenario={short_repr(scenario)} must be a library scenario id, "
            "the path of a .toml file, or a Scenario"
        )
    if isinstance(scenario, str):
        if duration_s is None:
            return load_scenario(scenario)
        return load_scenario(scenario, duration_s=duration_s)
    return scenario if duration_s is None else scenario.replace(duration_s=duration_s)


def _comfort_fraction(current_ma: float | None, comfort_ma: float) -> float:
    """The open-loop controller's ``comfort_fraction`` for a fixed ``current_ma`` (mA)."""
    if current_ma is None:
        return 1.0
    hi = min(MAX_FRACTION * comfort_ma, 25.5)
    check_value("current_ma", current_ma, {"lo": 0.0, "hi": hi, "unit": "mA"})
    return float(current_ma) / comfort_ma if comfort_ma > 0.0 else 0.0


def check_run_memory(duration_s: float, rate_hz: float) -> None:
    """Refuse a run of ``duration_s`` at ``rate_hz`` whose arrays would not fit in memory.

    A non-finite or non-positive product is left to the range checks of the scenario.

    Raises:
        ConfigError: Saying how much memory the run would need (:data:`BYTES_PER_PULSE` per
            pulse) and how much is available.
    """
    n = float(duration_s) * float(rate_hz)
    if not 0.0 < n < math.inf:
        return
    check_memory(
        f"duration_s={duration_s:g} at rate_hz={rate_hz:g} ({n:.3g} pulses)",
        n * BYTES_PER_PULSE,
        "shorten duration_s",
    )


def window_along(
    patient: Patient, model, csf_mm: np.ndarray, pw_us: float, rate_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """The ECAP window at each pulse's CSF, interpolated from a few programming sweeps (µV)."""
    lo_mm, hi_mm = float(np.min(csf_mm)), float(np.max(csf_mm))
    grid = np.linspace(lo_mm, hi_mm, WINDOW_GRID_POINTS if hi_mm > lo_mm + 1e-6 else 1)
    w_lo, w_hi = window_table(patient, model, grid, pw_us, rate_hz)
    model.reset()
    if grid.size == 1:
        return np.full(csf_mm.shape, w_lo[0]), np.full(csf_mm.shape, w_hi[0])
    return np.interp(csf_mm, grid, w_lo), np.interp(csf_mm, grid, w_hi)
