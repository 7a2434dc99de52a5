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

import math

import numpy as np

from closedloop._config import ConfigError, check_value, short_repr
from closedloop._io import check_memory
from closedloop.disturbances import Scenario, load_scenario
from closedloop.evaluation.episode_inputs import check_seed
from closedloop.evaluation.trajectory import BYTES_PER_PULSE, Trajectory
from closedloop.patients.calibration import CalibrationRecord, calibrate, window_table
from closedloop.patients.patient import Patient, episode_seeds
from closedloop.patients.perception import sensation

WINDOW_GRID_POINTS = 9
"""CSF thicknesses at which the ECAP window is measured for a trajectory (interpolated between)."""


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
    """Deliver a fixed current through a scenario and record every pulse.

    Args:
        patient: The patient.
        scenario: A :class:`~closedloop.disturbances.Scenario` or a library scenario id.
        current_ma: Fixed current (mA), in [0, 25.5]; the calibrated comfort current if None.
        calibration: The patient's calibration; made with :func:`calibrate` if None.
        seed: Seed of the scenario draws and of the recording noise, with the patient's id
            (:func:`~closedloop.patients.patient.episode_seeds`: patients live different days).
        duration_s: Override of the scenario's duration (s).
        model: The patient's neural model, to avoid rebuilding it.
        with_window: Measure the ECAP window along the trajectory's CSF range (for plots).

    Returns:
        The :class:`Trajectory`.

    Raises:
        ConfigError: If an argument is invalid, or the run would not fit in the available
            memory (:data:`BYTES_PER_PULSE` per pulse).
    """
    seed = check_seed(seed)
    if not isinstance(scenario, str | Scenario):
        raise ConfigError(
            f"scenario={short_repr(scenario)} must be a library scenario id, "
            "the path of a .toml file, or a Scenario"
        )
    if isinstance(scenario, str):
        scenario = (
            load_scenario(scenario)
            if duration_s is None
            else load_scenario(scenario, duration_s=duration_s)
        )
    elif duration_s is not None:
        scenario = scenario.replace(duration_s=duration_s)
    model = patient.model() if model is None else model
    cal = calibrate(patient, model=model) if calibration is None else calibration
    current = cal.comfort_ma if current_ma is None else current_ma
    check_value("current_ma", current, {"lo": 0.0, "hi": 25.5, "unit": "mA"})
    check_run_memory(scenario.duration_s, cal.rate_hz)
    scenario_ss, noise_ss = episode_seeds(seed, patient)
    trace = scenario.sample(patient.posture_csf_now_mm, cal.rate_hz, scenario_ss)
    model.reset(noise_ss)
    n = trace.t_s.size
    cur = np.full(n, float(current))
    rec = model.stimulate(cur, cal.pw_us, trace.csf_mm, 1.0 / cal.rate_hz)
    return make_trajectory(patient, scenario.name, cal, trace, cur, rec, model, with_window)


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


def make_trajectory(
    patient: Patient,
    scenario_name: str,
    cal: CalibrationRecord,
    trace,
    current_ma: np.ndarray,
    rec: np.ndarray,
    model=None,
    with_window: bool = True,
) -> Trajectory:
    """Assemble a :class:`Trajectory` from a disturbance trace and the pulse records.

    Args:
        patient: The patient.
        scenario_name: Scenario id.
        cal: The calibration record (target, pulse width, rate, warm-up).
        trace: The :class:`~closedloop.disturbances.DisturbanceTrace`.
        current_ma: Delivered current per pulse (mA).
        rec: Pulse records (``PULSE_DTYPE``) of the neural model.
        model: The patient's model, needed if ``with_window``.
        with_window: Measure the ECAP window across the trace's CSF range.
    """
    feel = sensation(rec["frac_recruited"], trace.t_s, cal.rate_hz, patient.perception)
    lo = hi = np.full(trace.t_s.size, np.nan)
    if with_window and model is not None:
        lo, hi = window_along(patient, model, trace.csf_mm, cal.pw_us, cal.rate_hz)
    return Trajectory(
        patient_id=patient.patient_id,
        scenario=scenario_name,
        rate_hz=cal.rate_hz,
        pw_us=cal.pw_us,
        target_uv=cal.target_uv,
        discomfort_level=patient.perception.discomfort_level,
        warmup_s=cal.warmup_s,
        t_s=trace.t_s,
        posture=trace.posture,
        csf_mm=trace.csf_mm,
        event=trace.event,
        impedance_ohm=patient.impedance_ohm * trace.impedance_scale,
        current_ma=current_ma,
        ecap_uv=rec["ecap_uv"],
        ecap_true_uv=rec["ecap_true_uv"],
        detected=rec["detected"],
        frac_recruited=rec["frac_recruited"],
        sensation=feel,
        charge_uc=rec["charge_uc"],
        window_lo_uv=lo,
        window_hi_uv=hi,
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
