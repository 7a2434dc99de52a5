"""What a reset draws for one patient slot: patient, model, calibration, target and scenario trace.

The scalar env (:class:`~closedloop.envs.ecap_env.ECAPTrackingEnv`) has one patient slot; the
vector env (:class:`~closedloop.envs.vector.ECAPVectorEnv`) has ``num_envs`` of them, each a
:class:`PatientSlot` with its own random stream and model, and no scalar env behind it. Both
reset through :func:`draw_episode`, so slot ``i`` of a vector env reset with ``seed + i`` draws
what a scalar env reset with ``seed + i`` draws, bit for bit.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, NamedTuple

import numpy as np
from gymnasium.utils import seeding

from closedloop._config import ConfigError
from closedloop.disturbances import Scenario, load_scenario
from closedloop.envs import model_store
from closedloop.patients.calibration import calibrate
from closedloop.patients.calibration_cache import patient_calibration
from closedloop.patients.cohort import get_patient, load_cohort
from closedloop.patients.patient import Patient, episode_seeds


class Draw(NamedTuple):
    """What one reset drew for a patient slot."""

    patient: Patient
    """The episode's virtual patient."""
    model: Any
    """The slot's neural model of the patient (reset with the episode's noise seed)."""
    calibration: Any
    """The patient's calibration record at the env's pulse width and rate."""
    target_uv: float
    """The episode's target ECAP (µV)."""
    trace: Any
    """The episode's scenario trace (:class:`~closedloop.disturbances.ScenarioTrace`)."""


class ModelSlot:
    """A slot's neural model: a clone sharing the process-wide cached tables, kept per patient."""

    __slots__ = ("_model", "_of")

    def __init__(self) -> None:
        self._of = self._model = None

    def of(self, patient: Patient):
        """The slot's model of ``patient`` (a new clone when the patient changes)."""
        if self._of is not patient:
            self._of, self._model = patient, model_store.get(patient).clone()
        return self._model


def choose_patient(patient_id: str | Patient, split: str, rng: np.random.Generator) -> Patient:
    """The patient given, the named patient, or a draw from the split's cohort with ``rng``."""
    if isinstance(patient_id, Patient):
        return patient_id
    if patient_id:
        return get_patient(patient_id)
    cohort = load_cohort(split)
    return cohort[int(rng.integers(len(cohort)))]


def draw_episode(
    spec, rng: np.random.Generator, opts: dict, models: ModelSlot, prefetch: bool
) -> Draw:
    """Draw an episode for a slot, advancing ``rng`` (see the module docstring).

    Args:
        spec: The env's :class:`~closedloop.envs.config.TaskSpec`.
        rng: The slot's random stream (the scalar env's ``np_random``).
        opts: Checked reset options (:func:`~closedloop.envs.inputs.reset_options`).
        models: The slot's :class:`ModelSlot`.
        prefetch: After drawing a cohort patient, build the model of the patient the next
            unseeded reset will draw, in the background (:mod:`closedloop.envs.model_store`).
    """
    cfg = spec.config
    patient = choose_patient(opts.get("patient", cfg.patient), opts.get("split", cfg.split), rng)
    model = models.of(patient)
    calibration = opts.get("calibration")
    if calibration is None:
        calibration = _calibration(patient, cfg.pw_us, cfg.rate_hz)
    else:
        _check_calibration(calibration, patient, cfg)
    target_uv = float(opts.get("target_uv", calibration.target_uv))
    scenario = opts.get("scenario", cfg.scenario)
    if isinstance(scenario, Scenario):
        scenario = scenario.replace(duration_s=cfg.episode_s)
    else:
        scenario = load_scenario(scenario, duration_s=cfg.episode_s)
    trace_ss, noise_ss = episode_seeds(int(rng.integers(2**63)), patient)
    trace = scenario.sample(patient.posture_csf_now_mm, cfg.rate_hz, trace_ss)
    model.reset(noise_ss)
    if prefetch and not cfg.patient and "patient" not in opts:  # what a reset draws next
        model_store.prefetch(choose_patient("", cfg.split, copy.deepcopy(rng)))
    return Draw(patient, model, calibration, target_uv, trace)


def _check_calibration(cal, patient: Patient, cfg) -> None:
    """ConfigError unless a given calibration is the patient's, at the env's pulse width/rate."""
    got = (cal.patient_id, float(cal.pw_us), float(cal.rate_hz))
    want = (patient.patient_id, float(cfg.pw_us), float(cfg.rate_hz))
    if got != want:
        raise ConfigError(
            f"options['calibration'] is of patient {got[0]!r} at {got[1]:g} µs, {got[2]:g} Hz; "
            f"the episode's patient is {want[0]!r} at {want[1]:g} µs, {want[2]:g} Hz"
        )


class PatientSlot:
    """One patient of a vector env: its random stream, its model and its episode's draw.

    Attributes:
        np_random: The slot's random stream (seeded as a Gymnasium env's ``reset(seed=...)``).
        draw: What its last reset drew (:class:`Draw`; the trace is dropped once stacked
            unless the env keeps traces).
    """

    __slots__ = ("draw", "models", "np_random")

    def __init__(self) -> None:
        self.np_random: np.random.Generator | None = None
        self.models = ModelSlot()
        self.draw: Draw | None = None

    def reset(self, spec, seed: int | None, opts: dict, prefetch: bool) -> Draw:
        """Reseed (if ``seed`` is given, or on the first reset) and draw the next episode."""
        if seed is not None or self.np_random is None:
            self.np_random, _ = seeding.np_random(seed)
        self.draw = draw_episode(spec, self.np_random, opts, self.models, prefetch)
        return self.draw


@functools.lru_cache(maxsize=256)
def _calibration(patient: Patient, pw_us: float, rate_hz: float):
    """The patient's calibration at the env's pulse width and rate (shipped if default)."""
    if (pw_us, rate_hz) == (250.0, 50.0):
        return patient_calibration(patient)
    return calibrate(patient, pw_us=pw_us, rate_hz=rate_hz)
