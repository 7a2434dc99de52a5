"""The ECAP-tracking environment: hold a patient's ECAP at its target through a scenario."""

from __future__ import annotations

import collections
import functools
import math
from typing import Any

import gymnasium as gym
import numpy as np

from closedloop._config import ConfigError
from closedloop.device import InterventionCounter, apply_limits_scalar
from closedloop.envs.config import EnvSpec, load_suite, with_overrides
from closedloop.neural.runner import PulseRunner
from closedloop.perception import sensation_update
from closedloop.postures import POSTURES

DEFAULT_ID = "closedloop/ECAPTracking-v0"
PW_RANGE_US = (60.0, 500.0)
"""Pulse widths reachable by the pulse-shape variant (µs)."""
RATE_RANGE_HZ = (20.0, 200.0)
"""Pulse rates reachable by the pulse-shape variant (Hz)."""
ECAP_BOUND_UV = 2000.0
RESET_OPTIONS = ("patient", "split", "scenario", "target_uv")
MODEL_CACHE = 128
"""Patients whose models (about 2.6 MB of tables each) stay cached per process."""


@functools.lru_cache(maxsize=1)
def _suite() -> dict[str, EnvSpec]:
    return load_suite()


class ECAPTrackingEnv(gym.Env):
    """Closed-loop SCS: choose each pulse's current so the patient's ECAP stays at target.

    ## Description
    A virtual patient (a cohort patient drawn at each reset, or a fixed one) is stimulated
    through a disturbance scenario (posture changes, breathing, heartbeat, coughs, drift) that
    moves the spinal cord relative to the lead. The agent sees what an implanted device sees
    (the estimated ECAP and whether it was detected, the target and the current) and sets the
    next current. Every requested current passes through the device safety model
    (:mod:`closedloop.device`) before it reaches the tissue.

    ## Action Space
    ``Box(-1, 1, (1,))`` (``(3,)`` with ``control_pw_rate``), float32. ``a[0]`` sets the
    current: ``absolute``: ``I = min_ma + (a+1)/2 (max_ma - min_ma)`` over the clinician limits;
    ``incremental`` (default): ``I = I_prev + a max_delta_ma``; ``multiplicative``:
    ``I = max(I_prev, 0.1 mA) exp(a max_log_step)``. With ``control_pw_rate``, ``a[1]`` and
    ``a[2]`` map linearly to 60-500 µs and 20-200 Hz. NaN or infinite actions raise
    :class:`~closedloop.ConfigError`.

    ## Observation Space
    ``Box`` float32 of length ``3 H + 1`` (+ the sweep's samples with ``observe_waveform``):
    the estimated ECAP (µV, mean over the step's pulses) of the last ``H = history`` steps,
    newest first; the detection flags (fraction of the step's pulses detected); the delivered
    current (mA); the target ECAP (µV). Ground truth (true ECAP, sensation, CSF thickness,
    posture, events) is only in ``info``: per step ``ecap_true_uv``, ``sensation``,
    ``in_window``, ``overstim``, ``understim``, ``current_ma`` (delivered), ``charge_uc``,
    ``csf_mm``, ``posture``, ``event`` and ``device_flags`` (bitmask of the device limits that
    changed this step's request, :data:`closedloop.device.LIMIT_FLAGS`); at the episode's end
    also ``device_limits``, the interventions counted per limit. The info is kept flat and
    small because SB3's ``DummyVecEnv`` deep-copies it every step.

    ## Rewards
    Per step, with weights from the spec's ``[reward]``::

        r = - tracking * mean|ECAP_true - target| / target
            - discomfort * (fraction of the step's pulses above discomfort)
            - charge * charge_per_pulse / comfort_charge_per_pulse

    ## Starting State
    The device delivers the calibrated comfort current; the fibres are at rest; the ECAP
    history is zero (not detected). The patient's calibration record sets target and limits.

    ## Episode End
    Truncation when the episode's simulated time (``episode_s``) is used up. There is no
    termination.

    ## Arguments
    ``gymnasium.make(id, render_mode=None, **overrides)``: any field of
    :class:`~closedloop.envs.config.EnvConfig`, plus ``reward={...}`` and ``device={...}``.
    ``reset(options=...)`` accepts ``patient``, ``split``, ``scenario`` and ``target_uv``.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, env_id: str = DEFAULT_ID, render_mode: str | None = None,
                 **overrides: Any) -> None:
        suite = _suite()
        if env_id not in suite:
            raise ConfigError(f"env_id={env_id!r} is unknown; valid: {', '.join(suite)}")
        self.spec_ = with_overrides(suite[env_id], overrides)
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode={render_mode!r} is invalid; valid: None, 'rgb_array'")
        self.render_mode = render_mode
        cfg = self.spec_.config
        n_act = 3 if cfg.control_pw_rate else 1
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n_act,), np.float32)
        h, extra = cfg.history, 0
        if cfg.observe_waveform:
            from closedloop.neural.params import RecordingParams

            rec = RecordingParams()
            extra = int(round(rec.window_ms * rec.fs_hz * 1e-3))
        low = np.r_[np.full(h, -ECAP_BOUND_UV), np.zeros(2 * h), 0.0, np.full(extra, -1e4)]
        high = np.r_[np.full(h, ECAP_BOUND_UV), np.ones(h), np.full(h, 25.5), ECAP_BOUND_UV,
                     np.full(extra, 1e4)]
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                                dtype=np.float32)
        self._model_of = self._model_obj = None
        self._render_buf: collections.deque = collections.deque(maxlen=500)
        self._runners: dict = {}

    # -- reset ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Draw a patient and a scenario trace; see the class docstring."""
        super().reset(seed=seed)
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(RESET_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown reset option(s) {', '.join(unknown)}; valid: "
                              f"{', '.join(RESET_OPTIONS)}")
        cfg = self.spec_.config
        self.patient = self._choose_patient(opts.get("patient", cfg.patient),
                                            opts.get("split", cfg.split))
        self.model = self._model(self.patient)
        self.calibration = _calibration(self.patient, cfg.pw_us, cfg.rate_hz)
        self.target_uv = float(opts.get("target_uv", self.calibration.target_uv))
        if not 0.0 < self.target_uv <= ECAP_BOUND_UV:
            raise ConfigError(f"target_uv={self.target_uv!r} is out of range; valid range "
                              f"(0, {ECAP_BOUND_UV:g}] µV")
        from closedloop.disturbances import load_scenario

        scenario = load_scenario(opts.get("scenario", cfg.scenario), duration_s=cfg.episode_s)
        trace_ss, noise_ss = np.random.SeedSequence(
            int(self.np_random.integers(2**63))).spawn(2)
        self.trace = scenario.sample(self.patient.posture_csf_mm, cfg.rate_hz, trace_ss)
        self.model.reset(noise_ss)
        self._init_state()
        return self._obs(), self._reset_info()

    def _choose_patient(self, patient_id: str, split: str):
        from closedloop.cohort import load_cohort
        from closedloop.patients import get_patient

        if patient_id:
            return get_patient(patient_id)
        cohort = load_cohort(split)
        return cohort[int(self.np_random.integers(len(cohort)))]

    def _model(self, patient):
        """This env's model of ``patient``: a clone sharing the process-wide cached tables."""
        if self._model_of is not patient:
            self._model_of, self._model_obj = patient, _base_model(patient).clone()
        return self._model_obj

    def _init_state(self) -> None:
        cfg = self.spec_.config
        self._t_s = 0.0
        self._current = float(self.calibration.comfort_ma)
        self._hist = np.zeros((3, cfg.history))
        self._hist[2] = self._current
        self._obs_buf = np.zeros(self.observation_space.shape, np.float32)
        self._wave = None
        self._level = float("nan")
        self._limits = InterventionCounter()
        self._render_buf.clear()
        self._runner = self._runners.get(id(self.model))
        if self._runner is None or self._runner.model is not self.model:
            self._runner = PulseRunner(self.model, cfg.pulses_per_step, cfg.observe_waveform)
            self._runners = {id(self.model): self._runner}
        self._impedance = self.patient.impedance_ohm
        self._contact_mm = self.patient.params.lead.contact_length_mm
        self._comfort_charge = max(self.calibration.comfort_ma * self.calibration.pw_us * 1e-3,
                                   1e-6)

    def _reset_info(self) -> dict:
        return {"patient_id": self.patient.patient_id, "target_uv": self.target_uv,
                "comfort_ma": self.calibration.comfort_ma, "min_ma": self.calibration.min_ma,
                "max_ma": self.calibration.max_ma}

    # -- step -------------------------------------------------------------------------------
    def step(self, action):
        """Deliver one control period of pulses; see the class docstring."""
        cfg, cal = self.spec_.config, self.calibration
        a = _check_action(action, self.action_space.shape)
        pw, rate = cfg.pw_us, cfg.rate_hz
        if cfg.control_pw_rate:
            pw = _lerp(a[1], PW_RANGE_US)
            rate = _lerp(a[2], RATE_RANGE_HZ)
        n, last = cfg.pulses_per_step, self.trace.t_s.size - 1
        if n == 1:
            k = min(int(self._t_s * cfg.rate_hz + 1e-9), last)
            k0 = k_end = k
            csf = self.trace.csf_mm[k]
        else:
            k = np.minimum(((self._t_s + np.arange(n) / rate) * cfg.rate_hz + 1e-9)
                           .astype(np.int64), last)
            k0, k_end = int(k[0]), int(k[-1])
            csf = self.trace.csf_mm[k]
        imp = self._impedance * float(self.trace.impedance_scale[k0])
        requested = cfg.requested_ma(a[0], self._current, cal.min_ma, cal.max_ma)
        self._current, flags = apply_limits_scalar(requested, self._current, pw, imp,
                                                   cal.min_ma, cal.max_ma, self.spec_.device,
                                                   self._contact_mm, n)
        rec = self._runner.run(self._current, pw, csf, 1.0 / rate)
        feel, self._level = sensation_update(self._level, rec["frac_recruited"], 1.0 / rate,
                                             rate, self.patient.perception)
        self._t_s += n / rate
        self._push(rec)
        if flags:
            self._limits.update(flags)
        reward, info = self._reward_info(rec, feel, k_end, pw, rate, flags)
        truncated = self._t_s * cfg.rate_hz >= last + 0.5
        if truncated:
            info["device_limits"] = self._limits.counts.copy()
        if self.render_mode == "rgb_array":
            self._render_buf.append((self._t_s, float(rec["ecap_uv"].mean()),
                                     info["ecap_true_uv"], self._current))
        return self._obs(), reward, False, bool(truncated), info

    def _push(self, rec) -> None:
        h = self._hist
        h[:, 1:] = h[:, :-1]
        one = rec.size == 1
        ecap = float(rec["ecap_uv"][0]) if one else float(rec["ecap_uv"].mean())
        h[0, 0] = min(max(ecap, -ECAP_BOUND_UV), ECAP_BOUND_UV)
        h[1, 0] = float(rec["detected"][0]) if one else float(rec["detected"].mean())
        h[2, 0] = self._current
        if self._runner.wave.shape[0]:
            self._wave = self._runner.wave[-1].copy()

    def _reward_info(self, rec, feel, k, pw, rate, flags) -> tuple[float, dict]:
        w = self.spec_.reward
        true = rec["ecap_true_uv"]
        level = self.patient.perception.discomfort_level
        last_feel = float(feel[-1])
        if true.size == 1:
            mean_true = float(true[0])
            err, above = abs(mean_true - self.target_uv), float(last_feel >= level)
            charge = float(rec["charge_uc"][0])
        else:
            mean_true = float(true.mean())
            err = float(np.mean(np.abs(true - self.target_uv)))
            above, charge = float(np.mean(feel >= level)), float(rec["charge_uc"].mean())
        reward = float(w.reward(err, self.target_uv, above, charge, self._comfort_charge))
        info = {
            "ecap_true_uv": mean_true, "sensation": last_feel,
            "in_window": 1.0 <= last_feel < level, "overstim": above > 0,
            "understim": last_feel < 1.0, "current_ma": self._current, "charge_uc": charge,
            "csf_mm": float(self.trace.csf_mm[k]), "posture": POSTURES[self.trace.posture[k]],
            "event": int(self.trace.event[k]), "device_flags": flags,
        }
        if self.spec_.config.control_pw_rate:
            info["pw_us"], info["rate_hz"] = pw, rate
        return reward, info

    def _obs(self) -> np.ndarray:
        obs, h = self._obs_buf, self._hist.shape[1]
        obs[: 3 * h] = self._hist.ravel()
        obs[3 * h] = self.target_uv
        if self._wave is not None:
            obs[3 * h + 1:] = np.clip(self._wave, -1e4, 1e4)
        return obs.copy()

    def render(self):
        """An RGB array: the recent ECAP trace with the target, and the last current."""
        if self.render_mode != "rgb_array":
            return None
        from closedloop.envs.render import draw

        return draw(self)


def _check_action(action, shape) -> np.ndarray:
    """The action as float64 of ``shape``, clipped to [-1, 1]; ConfigError if malformed."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != shape:
        if a.size != shape[0]:
            raise ConfigError(f"action has shape {np.shape(action)}; expected {shape}")
        a = a.reshape(shape)
    lo, hi = a.min(), a.max()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"action={a.tolist()} must be finite; valid range [-1, 1]")
    return a if (lo >= -1.0 and hi <= 1.0) else np.clip(a, -1.0, 1.0)


def _lerp(a: float, bounds: tuple[float, float]) -> float:
    """Map ``a`` in [-1, 1] linearly onto ``bounds``."""
    return float(bounds[0] + 0.5 * (a + 1.0) * (bounds[1] - bounds[0]))


@functools.lru_cache(maxsize=MODEL_CACHE)
def _base_model(patient):
    """The patient's neural model, built once per process (tables are read-only)."""
    return patient.model()


@functools.lru_cache(maxsize=256)
def _calibration(patient, pw_us: float, rate_hz: float):
    """The patient's calibration at the env's pulse width and rate (shipped if default)."""
    from closedloop.calibration import calibrate
    from closedloop.calibration_cache import patient_calibration

    if (pw_us, rate_hz) == (250.0, 50.0):
        return patient_calibration(patient)
    return calibrate(patient, pw_us=pw_us, rate_hz=rate_hz)
