"""The ECAP-tracking environment: hold a patient's ECAP at its target through a scenario."""

from __future__ import annotations

import collections
import functools
from typing import Any

import gymnasium as gym
import numpy as np

from closedloop._config import ConfigError, check_value
from closedloop.envs.config import TaskSpec, load_suite, with_overrides
from closedloop.envs.draw import ModelSlot, draw_episode
from closedloop.envs.episode import new_episode, scalar_batch
from closedloop.envs.inputs import ECAP_BOUND_UV, check_action, reset_options
from closedloop.envs.render import draw
from closedloop.envs.step import control_step_one
from closedloop.envs.step_info import EVENT_NAMES, POSTURE_NAMES, EpisodeInfo
from closedloop.neural.params import RecordingParams
from closedloop.neural.pulse_runner import entry_point

DEFAULT_ID = "closedloop/ECAPTracking-v0"


@functools.lru_cache(maxsize=1)
def _suite() -> dict[str, TaskSpec]:
    return load_suite()


def suite_spec(env_id: str, overrides: dict) -> TaskSpec:
    """The spec of a registered id with ``gymnasium.make``'s keyword ``overrides`` applied.

    Raises:
        ConfigError: For an unknown id, or an override that is unknown or out of range.
    """
    suite = _suite()
    if not isinstance(env_id, str) or env_id not in suite:
        raise ConfigError(f"env_id={env_id!r} is unknown; valid: {', '.join(suite)}")
    return with_overrides(suite[env_id], overrides)


def spaces(cfg) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """The action and observation spaces of an env configuration (see :class:`ECAPTrackingEnv`)."""
    n_act = 3 if cfg.control_pw_rate else 1
    h, extra = cfg.history, 0
    if cfg.observe_waveform:
        rec = RecordingParams()
        extra = int(round(rec.window_ms * rec.fs_hz * 1e-3))
    low = np.r_[np.full(h, -ECAP_BOUND_UV), np.zeros(2 * h), 0.0, np.full(extra, -1e4)]
    high = np.r_[
        np.full(h, ECAP_BOUND_UV), np.ones(h), np.full(h, 25.5), ECAP_BOUND_UV, np.full(extra, 1e4)
    ]
    return (
        gym.spaces.Box(-1.0, 1.0, (n_act,), np.float32),
        gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32),
    )


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
    ``csf_mm``, ``posture`` (name), ``posture_code`` (its index in :attr:`posture_names`),
    ``event`` (code: index in :attr:`event_names`, 0 = none), ``device_flags`` (bitmask of the
    device limits that changed this step's request, OR over its pulses,
    :data:`closedloop.device.LIMIT_FLAGS`), ``impedance_ohm`` (electrode impedance the last
    pulse saw, Ω), ``csf_clipped`` (True if a pulse's CSF thickness lay outside the model's
    0.5-12 mm range and was clamped into it, e.g. by chronic drift), the episode's
    ``patient_id``, ``target_uv``, ``comfort_ma``, ``min_ma`` and ``max_ma``, and
    ``device_limits`` (the pulses each limit acted on so far in the episode, per limit name).
    With several pulses per step also ``pulse_current_ma``, ``pulse_impedance_ohm`` and
    ``pulse_flags`` (arrays, one entry per pulse: the device ramps pulse by pulse, each change
    at most ``max_step_ma``); with ``control_pw_rate`` also ``pw_us`` and ``rate_hz``. The
    reset's ``info`` has the same keys and types (:mod:`closedloop.envs.step_info`: NaN for
    what no pulse has measured yet), so Minari's ``DataCollector(record_infos=True)`` records
    it.

    ## Rewards
    Per step, with weights from the spec's ``[reward]``::

        r = - tracking * mean|ECAP_true - target| / target
            - discomfort * (fraction of the step's pulses above discomfort)
            - charge * charge_per_pulse / comfort_charge_per_pulse
            + window * (fraction of the step's pulses in the window, 1 <= sensation < discomfort)

    ``window`` is 0 in the registered specs: pass ``reward={"window": 1.0}`` to reward the
    benchmark's primary metric, time in window, directly (issue 22).

    ## Starting State
    The device delivers the calibrated comfort current; the fibres are at rest; the ECAP
    history is zero (not detected). The patient's calibration record sets target and limits.
    The scenario trace and the recording noise are drawn from the reset's seed and the
    patient together (:func:`closedloop.patients.patient.episode_seeds`), so patients reset with one
    seed live different days.

    ## Episode End
    Truncation when the episode's simulated time (``episode_s``) is used up. There is no
    termination.

    ## Arguments
    ``gymnasium.make(id, render_mode=None, **overrides)``: any field of
    :class:`~closedloop.envs.config.EnvConfig`, plus ``reward={...}`` and ``device={...}``.
    ``reset(options=...)`` accepts ``patient``, ``split``, ``scenario``, ``target_uv`` and
    ``calibration``; ``patient`` may be a :class:`~closedloop.patients.patient.Patient` and
    ``scenario`` a :class:`~closedloop.disturbances.Scenario` (objects made in Python), and
    ``calibration`` is the patient's :class:`~closedloop.patients.calibration.CalibrationRecord`
    at the env's pulse width and rate (its calibration otherwise).

    ## Version History
    * v0: initial version. Issue 20 (same id): reset options may be objects (above), which
      :func:`closedloop.evaluation.simulate.open_loop` uses; every variant steps through the one
      control step (:mod:`closedloop.envs.step`); trajectories are unchanged, bit for bit. The info
      keys are one list (:data:`closedloop.envs.step_info.STEP_KEYS`); the vector env's info has
      every per-step key, as arrays (its ``limit_flags`` is now ``device_flags``). Issue 19 (same
      id): the reset's ``info`` has the step's keys, and every step's has the reset's;
      ``posture_code``; ``device_limits`` at every step (the counts so far). Issue 18 (same id): the
      scenario trace and the recording noise are seeded by the reset seed and the patient together,
      and the daily-living scenarios start in the long-run posture mix; daily living is an hour of a
      waking day with sway (the Test id plays the whole hour); the cohorts carry targets below
      perception, migrated leads (the trace uses ``Patient.posture_csf_now_mm``) and per-patient
      recording noise; the clinic ids score prone separately (``unscored_postures``). Issue 16 (same
      id): with several pulses per step the device ramps pulse by pulse (at most ``max_step_ma``
      from one pulse to the next, each pulse at its own impedance) instead of moving the whole
      step's change on its first pulse; the device settings can only tighten the hard limits;
      ``info`` gained ``impedance_ohm``, ``csf_clipped`` and the per-pulse arrays, and
      ``device_limits`` counts pulses.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    posture_names = POSTURE_NAMES
    """Posture names; ``info["posture_code"]`` indexes them."""
    event_names = EVENT_NAMES
    """Event names; ``info["event"]`` indexes them (0 is ``"none"``)."""
    prefetch_next_patient = True
    """After a reset that drew a cohort patient, build the model of the patient the next unseeded
    reset will draw, in the background (:mod:`closedloop.envs.model_store`)."""

    def __init__(
        self, env_id: str = DEFAULT_ID, render_mode: str | None = None, **overrides: Any
    ) -> None:
        self.spec_ = suite_spec(env_id, overrides)
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode={render_mode!r} is invalid; valid: None, 'rgb_array'")
        self.render_mode = render_mode
        cfg = self.spec_.config
        self.action_space, self.observation_space = spaces(cfg)
        self._pw_rate, self._several = cfg.control_pw_rate, cfg.pulses_per_step > 1
        self._waves = cfg.observe_waveform
        self._models = ModelSlot()
        self._render_buf: collections.deque = collections.deque(maxlen=500)

    # -- reset ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Draw a patient and a scenario trace; see the class docstring."""
        opts = reset_options(options)
        if seed is not None:
            check_value("seed", seed, {"lo": 0, "unit": "1"}, "int")
        super().reset(seed=None if seed is None else int(seed))
        cfg = self.spec_.config
        self.patient, self.model, self.calibration, self.target_uv, self.trace = draw_episode(
            self.spec_, self.np_random, opts, self._models, self.prefetch_next_patient
        )
        self._init_state()
        self._info = EpisodeInfo(
            self.patient.patient_id, self.target_uv, self.calibration, self._discomfort
        )
        return self._ep.obs[0].copy(), self._info.reset(
            self.trace,
            self.patient.impedance_ohm,
            cfg.pulses_per_step,
            (cfg.pw_us, cfg.rate_hz) if cfg.control_pw_rate else None,
        )

    def _init_state(self) -> None:
        """The episode's arrays and the compiled step's batch of one (:mod:`.episode`)."""
        cfg = self.spec_.config
        self._ep = new_episode(
            self.spec_,
            self.patient,
            self.calibration,
            self.trace,
            self.target_uv,
            self.observation_space.shape[0],
        )
        self._wave = None
        self._render_buf.clear()
        self._discomfort = self.patient.perception.discomfort_level
        self._batch, self._waves_buf = scalar_batch(self._ep, self.model, cfg.observe_waveform)
        self._step_fn = None
        self._obs_row = self._ep.obs[0]  # a view, copied at each step

    @property
    def _t_s(self) -> float:
        """The episode's simulated time (s)."""
        return float(self._ep.state["t_s"][0])

    @property
    def _current(self) -> float:
        """Current of the last pulse delivered (mA)."""
        return float(self._ep.state["current_ma"][0])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_batch": None, "_step_fn": None}  # compiled: no pickle

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if getattr(self, "_ep", None) is not None:
            self._batch, self._waves_buf = scalar_batch(
                self._ep, self.model, self.spec_.config.observe_waveform
            )
            self._obs_row = self._ep.obs[0]

    # -- step -------------------------------------------------------------------------------
    def step(self, action):
        """Deliver one control period of pulses; see the class docstring.

        One compiled call, :func:`~closedloop.envs.step.control_step_one` (the one copy of the
        step, :func:`~closedloop.envs.step.control_step`, for a batch of one patient).
        """
        a = action.item() if type(action) is np.ndarray and action.shape == (1,) else None
        if type(a) is float and -1.0 <= a <= 1.0:  # the usual case
            a1 = a2 = 0.0
        else:
            a, a1, a2 = (*check_action(action, self.action_space.shape), 0.0, 0.0)[:3]
        return self._conclude((self._step_fn or self._bind())(a, a1, a2, self._batch))

    def _bind(self):
        """The compiled step's entry point for this batch's types."""
        self._step_fn = entry_point(control_step_one, (0.0, 0.0, 0.0, self._batch))
        return self._step_fn

    def _conclude(self, r: tuple):
        """Info and device-limit counts from the step's result ``r`` (a tuple); the step's tuple."""
        (reward, ecap, true, feel, above, charge, current, impedance, csf, posture, event,
         flags, clipped, _, _, truncated, pw, rate) = r  # fmt: skip
        if flags:
            add, pf = self._info.counter.add, self._ep.pulse_flags[0]
            for f in [flags] if pf.size == 1 else pf[pf != 0].tolist():
                add(f)
        info = self._info.step(
            true, feel, above, current, charge, csf, posture, event, flags, impedance, clipped
        )
        if self._several:
            ep = self._ep
            info.update(
                pulse_current_ma=ep.pulse_current[0].copy(),
                pulse_impedance_ohm=ep.pulse_impedance[0].copy(),
                pulse_flags=ep.pulse_flags[0].copy(),
            )
        if self._pw_rate:
            info["pw_us"], info["rate_hz"] = pw, rate
        if self._waves:
            self._wave = self._waves_buf[0, -1].copy()
        if self.render_mode == "rgb_array":
            self._render_buf.append((self._t_s, ecap, true, current))
        return self._obs_row.copy(), reward, False, truncated, info

    def render(self):
        """An RGB array: the recent ECAP trace with the target, and the last current."""
        if self.render_mode != "rgb_array":
            return None

        return draw(self)
