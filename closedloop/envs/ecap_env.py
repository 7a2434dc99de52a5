"""The ECAP-tracking environment: hold a patient's ECAP at its target through a scenario."""

from __future__ import annotations

import collections
import copy
import functools
from typing import Any

import gymnasium as gym
import numpy as np

from closedloop._config import ConfigError, check_value
from closedloop.device import ramp
from closedloop.envs import model_store
from closedloop.envs import step_kernels as sk
from closedloop.envs.config import ACTION_MODES, EnvSpec, load_suite, with_overrides
from closedloop.envs.inputs import ECAP_BOUND_UV, check_action, reset_options
from closedloop.envs.step_info import EVENT_NAMES, POSTURE_NAMES, EpisodeInfo
from closedloop.neural.runner import PulseRunner, entry_point
from closedloop.patients import episode_seeds
from closedloop.perception import drive_factors, sensation_update

DEFAULT_ID = "closedloop/ECAPTracking-v0"
PW_RANGE_US = (60.0, 500.0)
"""Pulse widths reachable by the pulse-shape variant (µs)."""
RATE_RANGE_HZ = (20.0, 200.0)
"""Pulse rates reachable by the pulse-shape variant (Hz)."""


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

    ## Starting State
    The device delivers the calibrated comfort current; the fibres are at rest; the ECAP
    history is zero (not detected). The patient's calibration record sets target and limits.
    The scenario trace and the recording noise are drawn from the reset's seed and the
    patient together (:func:`closedloop.patients.episode_seeds`), so patients reset with one
    seed live different days.

    ## Episode End
    Truncation when the episode's simulated time (``episode_s``) is used up. There is no
    termination.

    ## Arguments
    ``gymnasium.make(id, render_mode=None, **overrides)``: any field of
    :class:`~closedloop.envs.config.EnvConfig`, plus ``reward={...}`` and ``device={...}``.
    ``reset(options=...)`` accepts ``patient``, ``split``, ``scenario`` and ``target_uv``.

    ## Version History
    * v0: initial version. Issue 19 (same id): the reset's ``info`` has the step's keys, and
      every step's has the reset's; ``posture_code``; ``device_limits`` at every step (the
      counts so far). Issue 18 (same id): the scenario trace and the recording noise are
      seeded by the reset seed and the patient together, and the daily-living scenarios start
      in the long-run posture mix; daily living is an hour of a waking day with sway (the
      Test id plays the whole hour); the cohorts carry targets below perception, migrated
      leads (the trace uses ``Patient.posture_csf_now_mm``) and per-patient recording noise;
      the clinic ids score prone separately (``unscored_postures``). Issue 16 (same id): with
      several pulses per step the device ramps pulse by pulse (at most ``max_step_ma`` from
      one pulse to the next, each pulse at its own impedance) instead of moving the whole
      step's change on its first pulse; the device settings can only tighten the hard
      limits; ``info`` gained ``impedance_ohm``, ``csf_clipped`` and the per-pulse arrays,
      and ``device_limits`` counts pulses.
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
        suite = _suite()
        if not isinstance(env_id, str) or env_id not in suite:
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
        high = np.r_[
            np.full(h, ECAP_BOUND_UV),
            np.ones(h),
            np.full(h, 25.5),
            ECAP_BOUND_UV,
            np.full(extra, 1e4),
        ]
        self.observation_space = gym.spaces.Box(
            low.astype(np.float32), high.astype(np.float32), dtype=np.float32
        )
        self._one_pulse = cfg.pulses_per_step == 1 and not cfg.control_pw_rate
        self._pw_rate, self._dt = cfg.control_pw_rate, 1.0 / cfg.rate_hz
        self._history, self._waves = h, cfg.observe_waveform
        self._model_of = self._model_obj = None
        self._render_buf: collections.deque = collections.deque(maxlen=500)
        self._runners: dict = {}

    # -- reset ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Draw a patient and a scenario trace; see the class docstring."""
        opts = reset_options(options)
        if seed is not None:
            check_value("seed", seed, {"lo": 0, "unit": "1"}, "int")
        super().reset(seed=None if seed is None else int(seed))
        cfg = self.spec_.config
        self.patient = self._choose_patient(
            opts.get("patient", cfg.patient), opts.get("split", cfg.split)
        )
        self.model = self._model(self.patient)
        self.calibration = _calibration(self.patient, cfg.pw_us, cfg.rate_hz)
        self.target_uv = float(opts.get("target_uv", self.calibration.target_uv))
        from closedloop.disturbances import load_scenario

        scenario = load_scenario(opts.get("scenario", cfg.scenario), duration_s=cfg.episode_s)
        trace_ss, noise_ss = episode_seeds(int(self.np_random.integers(2**63)), self.patient)
        self.trace = scenario.sample(self.patient.posture_csf_now_mm, cfg.rate_hz, trace_ss)
        self.model.reset(noise_ss)
        if self.prefetch_next_patient and not cfg.patient:  # what an unseeded reset draws
            model_store.prefetch(self._choose_patient("", cfg.split, copy.deepcopy(self.np_random)))
        self._init_state()
        self._obs_buf[3 * self.spec_.config.history] = self._s[sk.S_TARGET] = self.target_uv
        self._info = EpisodeInfo(
            self.patient.patient_id, self.target_uv, self.calibration, self._discomfort
        )
        return self._obs_buf.copy(), self._info.reset(
            self.trace,
            self._impedance,
            cfg.pulses_per_step,
            (cfg.pw_us, cfg.rate_hz) if cfg.control_pw_rate else None,
        )

    def _choose_patient(self, patient_id: str, split: str, rng=None):
        """The named patient, or a draw from the split's cohort with ``rng`` (the env's)."""
        from closedloop.cohort import get_patient, load_cohort

        if patient_id:
            return get_patient(patient_id)
        cohort = load_cohort(split)
        return cohort[int((rng or self.np_random).integers(len(cohort)))]

    def _model(self, patient):
        """This env's model of ``patient``: a clone sharing the process-wide cached tables."""
        if self._model_of is not patient:
            self._model_of, self._model_obj = patient, model_store.get(patient).clone()
        return self._model_obj

    def _init_state(self) -> None:
        cfg, cal, dev, rw = (
            self.spec_.config,
            self.calibration,
            self.spec_.device,
            self.spec_.reward,
        )
        per = self.patient.perception
        self._obs_buf = np.zeros(self.observation_space.shape, np.float32)
        self._obs_buf[2 * cfg.history : 3 * cfg.history] = cal.comfort_ma
        self._wave = None
        self._last = self.trace.t_s.size - 1
        self._fast = None
        self._render_buf.clear()
        self._runner = self._runners.get(id(self.model))
        if self._runner is None or self._runner.model is not self.model:
            self._runner = PulseRunner(self.model, cfg.pulses_per_step, cfg.observe_waveform)
            self._runners = {id(self.model): self._runner}
        self._impedance = self.patient.impedance_ohm
        self._contact_mm = self.patient.params.lead.contact_length_mm
        self._comfort_charge = max(cal.comfort_ma * cal.pw_us * 1e-3, 1e-6)
        factor, keep = drive_factors(self._dt, cfg.rate_hz, per)
        self._discomfort = per.discomfort_level
        self._s = sk.step_array(  # the compiled step's numbers
            action_mode=ACTION_MODES.index(cfg.action_mode),
            max_delta_ma=cfg.max_delta_ma,
            max_log_step=cfg.max_log_step,
            t_s=0.0,
            current_ma=cal.comfort_ma,
            level=np.nan,
            rate_hz=cfg.rate_hz,
            last=self._last,
            pw_us=cfg.pw_us,
            impedance_ohm=self._impedance,
            min_ma=cal.min_ma,
            max_ma=cal.max_ma,
            max_current_ma=dev.max_current_ma,
            max_change_ma=dev.max_step_ma,
            max_charge_uc=dev.max_charge_uc(self._contact_mm),
            compliance_v=dev.compliance_v,
            factor=factor,
            keep=keep,
            perception_fraction=per.perception_fraction,
            bound_uv=ECAP_BOUND_UV,
            discomfort_level=self._discomfort,
            target_uv=np.nan,
            w_tracking=rw.tracking,
            w_discomfort=rw.discomfort,
            w_charge=rw.charge,
            comfort_charge_uc=self._comfort_charge,
        )

    # The episode's time (s), delivered current (mA) and filtered drive live in ``_s``.
    _t_s = property(
        lambda self: self._s[sk.S_T].item(), lambda self, v: self._s.__setitem__(sk.S_T, v)
    )
    _current = property(
        lambda self: self._s[sk.S_CURRENT].item(),
        lambda self, v: self._s.__setitem__(sk.S_CURRENT, v),
    )
    _level = property(
        lambda self: self._s[sk.S_LEVEL].item(), lambda self, v: self._s.__setitem__(sk.S_LEVEL, v)
    )

    @property
    def _hist(self) -> np.ndarray:
        """The observed history (rows ECAP, detection, current; newest first), float64 copy."""
        h = self._history
        return self._obs_buf[: 3 * h].reshape(3, h).astype(np.float64)

    def _make_fast(self) -> tuple:
        """The one-pulse step's compiled objects (they do not pickle).

        The :class:`~closedloop.envs.step_kernels.StepArgs` and the compiled entry point of
        :func:`~closedloop.envs.step_kernels.pulse_step`. Made at the episode's first step:
        they would keep alive the trace that :class:`~closedloop.envs.vector.ECAPVectorEnv`
        drops after reset.
        """
        trace, runner, m, h = self.trace, self._runner, self.model, self._history
        args = sk.step_args(
            self._s,
            trace.csf_mm,
            trace.impedance_scale,
            trace.posture,
            trace.event,
            trace.csf_clipped,
            self._obs_buf[: 3 * h].reshape(3, h),
            m.state,
            m.tables,
            m.kp,
            runner.inputs,
            runner.out,
            runner.wave,
            m.work,
        )
        self._fast = (args, entry_point(sk.pulse_step, (1.0, args)))
        return self._fast

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fast": None}

    # -- step -------------------------------------------------------------------------------
    def step(self, action):
        """Deliver one control period of pulses; see the class docstring.

        With one pulse per step at the spec's width and rate (the default), the step is one
        compiled call (:func:`~closedloop.envs.step_kernels.pulse_step`), the same computation
        as :meth:`_step_pulses` (tests check both agree bit for bit): the per-step cost an RL
        loop pays.
        """
        if not self._one_pulse:
            return self._step_pulses(check_action(action, self.action_space.shape))
        args, compiled_step = self._fast or self._make_fast()
        a = action.item() if type(action) is np.ndarray and action.shape == (1,) else None
        if type(a) is not float or not -1.0 <= a <= 1.0:  # not the usual case: checked
            a = check_action(action, (1,))[0]
        if self._waves:
            out = compiled_step(a, args)
            self._observe_wave()
            return self._conclude(*out)
        return self._conclude(*compiled_step(a, args))

    def _step_pulses(self, a: list[float]):
        """:meth:`step` in general: several pulses per step, or pulse width and rate set.

        The device ramps pulse by pulse toward the step's request (:meth:`_ramp`); each pulse
        is delivered at its own current.
        """
        cfg = self.spec_.config
        pw, rate = cfg.pw_us, cfg.rate_hz
        if cfg.control_pw_rate:
            pw = _lerp(a[1], PW_RANGE_US)
            rate = _lerp(a[2], RATE_RANGE_HZ)
        n = cfg.pulses_per_step
        k = np.minimum(
            ((self._t_s + np.arange(n) / rate) * cfg.rate_hz + 1e-9).astype(np.int64), self._last
        )
        k_end, trace = int(k[-1]), self.trace
        currents, pulse_flags, imp, flags = self._ramp(a[0], pw, k)
        rec = self._runner.run(currents, pw, trace.csf_mm[k], 1.0 / rate)
        feel, self._level = sensation_update(
            self._level, rec["frac_recruited"], 1.0 / rate, rate, self.patient.perception
        )
        self._t_s += n / rate
        true = rec["ecap_true_uv"]
        ecap = float(rec["ecap_uv"].mean())
        self._push_history(ecap, rec["detected"].mean())
        above, charge = float(np.mean(feel >= self._discomfort)), float(rec["charge_uc"].mean())
        reward = float(
            self.spec_.reward.reward(
                float(np.mean(np.abs(true - self.target_uv))),
                self.target_uv,
                above,
                charge,
                self._comfort_charge,
            )
        )
        out = self._conclude(
            ecap,
            float(true.mean()),
            float(feel[-1]),
            charge,
            self._current,
            flags,
            float(trace.csf_mm[k_end]),
            int(trace.posture[k_end]),
            int(trace.event[k_end]),
            reward,
            self._t_s * cfg.rate_hz >= self._last + 0.5,
            float(imp[-1]),
            bool(trace.csf_clipped[k].any()),
            above,
            pulse_flags if n > 1 else None,
        )
        if n > 1:
            out[4].update(
                pulse_current_ma=currents, pulse_impedance_ohm=imp, pulse_flags=pulse_flags
            )
        if self._pw_rate:
            out[4]["pw_us"], out[4]["rate_hz"] = pw, rate
        return out

    def _ramp(self, a0: float, pw_us: float, k: np.ndarray) -> tuple:
        """The device's ramp over the step's pulses at trace indices ``k``.

        Every pulse passes through :func:`closedloop.device.ramp` (:func:`~closedloop.device.
        limit_one` with the per-pulse slew) at the impedance the trace gives it at that pulse.

        Returns:
            ``(currents, pulse_flags, impedance, flags)``: each pulse's delivered current (mA)
            and device flags, the impedance it saw (Ω), and the step's flags (OR over pulses).
            ``self._current`` becomes the last pulse's current.
        """
        cal, dev = self.calibration, self.spec_.device
        imp = self._impedance * self.trace.impedance_scale[k]
        requested = self.spec_.config.requested_ma(a0, self._current, cal.min_ma, cal.max_ma)
        currents, pulse_flags = np.empty(k.size), np.empty(k.size, np.int64)
        flags = ramp(
            float(requested),
            self._current,
            float(pw_us),
            imp,
            float(cal.min_ma),
            float(cal.max_ma),
            float(dev.max_current_ma),
            float(dev.max_step_ma),
            float(dev.max_charge_uc(self._contact_mm)),
            float(dev.compliance_v),
            currents,
            pulse_flags,
        )
        self._current = float(currents[-1])
        return currents, pulse_flags, imp, int(flags)

    def _push_history(self, ecap: float, detected: float) -> None:
        """Shift the observed history and add the step's ECAP, detection and current."""
        h = self._history
        sk.push_history(
            self._obs_buf[: 3 * h].reshape(3, h),
            ecap,
            float(detected),
            self._current,
            ECAP_BOUND_UV,
        )
        if self._waves:
            self._observe_wave()

    def _observe_wave(self) -> None:
        self._wave = self._runner.wave[-1].copy()
        self._obs_buf[3 * self._history + 1 :] = np.clip(self._wave, -1e4, 1e4)

    def _conclude(
        self,
        ecap,
        mean_true,
        feel,
        charge,
        current,
        flags,
        csf,
        posture,
        event,
        reward,
        truncated,
        impedance,
        clipped,
        above=None,
        pulse_flags=None,
    ):
        """Info and device-limit counts after the pulses and the history; the step's result.

        Args are the step's mean estimated and true ECAP (µV), last sensation, mean charge per
        pulse (µC), delivered current (mA), device flags, the trace's CSF thickness (mm),
        posture and event codes at the last pulse, reward, truncation, the impedance the last
        pulse saw (Ω), whether a pulse's CSF thickness was clamped into the model's range, the
        fraction of pulses above discomfort (None: the one pulse's sensation decides) and, for
        several pulses, each pulse's device flags (every pulse a limit acted on is counted).
        """
        if flags:
            add = self._info.counter.add
            for f in [flags] if pulse_flags is None else pulse_flags[pulse_flags != 0].tolist():
                add(f)
        info = self._info.step(
            mean_true, feel, above, current, charge, csf, posture, event, flags, impedance, clipped
        )
        if self.render_mode == "rgb_array":
            self._render_buf.append((self._t_s, ecap, mean_true, current))
        return self._obs_buf.copy(), reward, False, truncated, info

    def render(self):
        """An RGB array: the recent ECAP trace with the target, and the last current."""
        if self.render_mode != "rgb_array":
            return None
        from closedloop.envs.render import draw

        return draw(self)


def _lerp(a: float, bounds: tuple[float, float]) -> float:
    """Map ``a`` in [-1, 1] linearly onto ``bounds``."""
    return float(bounds[0] + 0.5 * (a + 1.0) * (bounds[1] - bounds[0]))


@functools.lru_cache(maxsize=256)
def _calibration(patient, pw_us: float, rate_hz: float):
    """The patient's calibration at the env's pulse width and rate (shipped if default)."""
    from closedloop.calibration import calibrate
    from closedloop.calibration_cache import patient_calibration

    if (pw_us, rate_hz) == (250.0, 50.0):
        return patient_calibration(patient)
    return calibrate(patient, pw_us=pw_us, rate_hz=rate_hz)
