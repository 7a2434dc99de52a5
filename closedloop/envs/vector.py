"""A native vector environment: N patients stepped in one numba call of the same kernel.

:class:`ECAPVectorEnv` is a :class:`gymnasium.vector.VectorEnv` whose sub-environments are
:class:`~closedloop.envs.ecap_env.ECAPTrackingEnv` instances used only for their resets (patient
draw, calibration, scenario trace). Their fibre states, tables and kernel parameters are copied into
stacked arrays, and every step delivers all patients' pulses with the batch kernel of
:mod:`closedloop.neural.batch`, which wraps the scalar kernel; sub-environments with the same
patient share one copy of its tables and recording cache. With one pulse per step (the default) the
whole step is one compiled call (:func:`closedloop.envs.batch_step.checked_step`: the action check,
then the scalar env's action mapping, device limits, sensation, reward and observation, patient by
patient); with several, NumPy around :func:`~closedloop.neural.batch.run_pulses_batch_indexed`
applies the same formulas (the device's pulse-by-pulse ramp :func:`closedloop.device.ramp_many`,
a loop over the scalar env's :func:`closedloop.device.ramp`; the sensation filter). Either way
sub-environment ``i`` reproduces a scalar env reset with ``seed + i``, bit for bit.

Autoreset follows Gymnasium 1.x's default ``NEXT_STEP`` mode: the step after an episode ends
resets that sub-environment, ignores its action and returns its first observation with reward 0.
"""

from __future__ import annotations

from typing import NoReturn

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from closedloop._config import ConfigError, as_real_array, check_value, is_integer, short_repr
from closedloop.device import ramp_many
from closedloop.envs import model_store
from closedloop.envs import step_kernels as sk
from closedloop.envs.batch_step import BatchArgs, batch_args, checked_step
from closedloop.envs.config import ACTION_MODES
from closedloop.envs.ecap_env import DEFAULT_ID, ECAP_BOUND_UV, ECAPTrackingEnv
from closedloop.envs.step_kernels import checked_actions
from closedloop.neural.batch import (
    RECORDING_CACHE,
    batch_threads,
    run_pulses_batch_indexed,
    stack,
)
from closedloop.neural.kernels import PULSE_DTYPE, KernelState, PulseInputs
from closedloop.neural.recording import refresh_templates
from closedloop.perception import smooth_many

PREFETCH_MAX_ENVS = model_store.CAPACITY // 4
"""Up to this many sub-environments, each one's next patient's model is built ahead in the
background (:mod:`closedloop.envs.model_store`); with more, the store could not hold them."""


INFO_KEYS = (
    "ecap_true_uv",
    "sensation",
    "in_window",
    "overstim",
    "current_ma",
    "charge_uc",
    "impedance_ohm",
    "csf_clipped",
    "limit_flags",
)
"""Keys of the ``info`` dict of :meth:`ECAPVectorEnv.step`, each an array over the patients:
as in the scalar env (``current_ma`` and ``impedance_ohm`` of the step's last pulse,
``csf_clipped`` if a pulse's CSF thickness was clamped into the model's range), and
``limit_flags``, the device flags (OR over the step's pulses)."""

PULSE_INFO_KEYS = ("pulse_current_ma", "pulse_impedance_ohm", "pulse_flags")
"""Further keys with several pulses per step, arrays (num_envs, pulses_per_step): each pulse's
delivered current (mA), electrode impedance (Ω) and device flags."""

INFO_ROWS = {
    key: ("values", sk.STEP_VALUES.index(key))
    if key in sk.STEP_VALUES
    else ("flags", sk.STEP_FLAGS.index(key))
    if key in sk.STEP_FLAGS
    else ("limits", None)
    for key in INFO_KEYS
}
"""Where each info key is in a step's raw arrays (:meth:`ECAPVectorEnv._step_raw`): a row of
``values`` or ``flags``, or the ``limits`` array itself."""


def info_dict(values, flags, limits) -> dict:
    """The ``info`` dict of a step from its raw arrays (see :data:`INFO_ROWS`)."""
    arrays = {"values": values, "flags": flags, "limits": limits}
    return {
        key: arrays[name] if row is None else arrays[name][row]
        for key, (name, row) in INFO_ROWS.items()
    }


_FROM_STEP_ARRAY = (
    ("target", sk.S_TARGET),
    ("min", sk.S_MIN),
    ("max", sk.S_MAX),
    ("current", sk.S_CURRENT),
    ("level", sk.S_LEVEL),
    ("t", sk.S_T),
    ("imp", sk.S_IMP),
    ("comfort", sk.S_COMFORT_CHARGE),
    ("perc", sk.S_PERC),
    ("disc", sk.S_DISC),
    ("keep", sk.S_KEEP),
    ("qmax", sk.S_QMAX),
    ("factor", sk.S_FACTOR),
)
"""Per-env vectors and the fields of the scalar env's step array they are loaded from."""


class ECAPVectorEnv(VectorEnv):
    """``num_envs`` ECAP-tracking environments stepped together (see the module docstring).

    Args:
        num_envs: Number of patients simulated in parallel.
        env_id: A registered suite id (its spec sets the configuration).
        **overrides: As for ``gymnasium.make(env_id, ...)``; ``control_pw_rate`` and
            ``observe_waveform`` variants are not supported here.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int, env_id: str = DEFAULT_ID, **overrides) -> None:
        check_value("num_envs", num_envs, {"lo": 1, "unit": "1"}, "int")
        num_envs = int(num_envs)
        self.envs = [ECAPTrackingEnv(env_id, **overrides) for _ in range(num_envs)]
        for env in self.envs:  # a thousand sub-envs' next patients would flood the store
            env.prefetch_next_patient = num_envs <= PREFETCH_MAX_ENVS
        cfg = self.envs[0].spec_.config
        if cfg.control_pw_rate or cfg.observe_waveform:
            raise ConfigError(
                f"{env_id}: the native vector env does not support "
                "control_pw_rate or observe_waveform; use gymnasium.vector"
            )
        self.cfg = cfg
        self.num_envs = num_envs
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._autoreset = np.zeros(num_envs, bool)

    # -- reset ------------------------------------------------------------------------------
    def reset(self, *, seed: int | list | None = None, options: dict | list | None = None):
        """Reset every sub-environment (sub-env ``i`` gets ``seed + i``).

        Args:
            seed: None, an int (sub-env ``i`` gets ``seed + i``) or a list of ``num_envs`` seeds.
            options: The scalar env's reset options: one dict for every sub-environment, or a
                list of ``num_envs`` dicts (or None), one per sub-environment, e.g.
                ``[{"patient": "test-001"}, {"patient": "test-002"}]``.
        """
        seeds = _seeds(seed, self.num_envs)
        per_env = _options(options, self.num_envs)
        for i, env in enumerate(self.envs):
            if per_env is None:
                env.reset(seed=seeds[i], options=options)
                continue
            try:
                env.reset(seed=seeds[i], options=per_env[i])
            except ConfigError as exc:
                if type(exc) is not ConfigError:  # a documented subclass (HeldOutError)
                    raise
                raise ConfigError(f"options[{i}]: {exc}") from None
        self._stack_all()
        self._autoreset[:] = False
        return self._obs(), {"patient_id": np.array([e.patient.patient_id for e in self.envs])}

    def _stack_all(self) -> None:
        """Build the stacked kernel arrays and per-env vectors from the sub-environments."""
        models = [e.model for e in self.envs]
        self._fibres = stack(
            [
                KernelState(
                    *(
                        a[:0] if f in RECORDING_CACHE else a
                        for f, a in zip(KernelState._fields, m.state, strict=True)
                    )
                )
                for m in models
            ]
        )  # the recording cache is kept per slot
        self._kp = stack([m.kp for m in models])
        self._slots: dict = {}
        self._tables = self._rec = self._args = None
        self._table_index = np.zeros(self.num_envs, np.int64)
        n, p = self.num_envs, self.cfg.pulses_per_step
        self._inputs = PulseInputs(*(np.zeros((n, p)) for _ in range(4)))
        self._out = np.empty((n, p), PULSE_DTYPE)
        self._wave = np.empty((n, 0, models[0].n_samples))
        self._vec = {
            k: np.zeros(n)
            for k in (
                "target",
                "min",
                "max",
                "current",
                "level",
                "t",
                "imp",
                "comfort",
                "perc",
                "disc",
                "keep",
                "factor",
                "qmax",
            )
        }
        dev = self.envs[0].spec_.device
        self._pw = np.full(n, self.cfg.pw_us)
        self._max_change = np.full(n, dev.max_step_ma)  # per pulse, whatever p is
        self._hist = np.zeros((n, 3, self.cfg.history))
        size = max(e.trace.t_s.size for e in self.envs)
        self._csf, self._scale = np.zeros((n, size)), np.ones((n, size))
        self._clip = np.zeros((n, size), np.int8)
        self._last = np.zeros(n, np.int64)
        v = self._vec
        self._before_vec = (v["current"], v["imp"], v["min"], v["max"], v["qmax"])
        self._after_vec = (
            v["level"],
            v["factor"],
            v["keep"],
            v["perc"],
            v["disc"],
            v["current"],
            v["target"],
            v["comfort"],
        )
        rw = self.envs[0].spec_.reward
        self._weights = np.array([rw.tracking, rw.discomfort, rw.charge])
        for i in range(n):
            self._load_vectors(i)

    def _slot(self, model) -> int:
        """Slot of ``model``'s patient, adding its tables and recording cache if new.

        The recording cache (class templates, matched filter and sweep shapes at the spec's
        pulse width) depends only on the patient, so the patient's sub-environments share it;
        it is filled here, so the kernel only reads it.
        """
        key = id(model.tables)
        if key not in self._slots:
            rec = model.initial_state()
            refresh_templates(rec, model.tables, model.kp, self.cfg.pw_us)
            n_slots = len(self._slots)
            for name, one in (("_tables", stack([model.tables])), ("_rec", stack([rec]))):
                stacked = getattr(self, name)
                if stacked is None or n_slots == stacked[0].shape[0]:  # full: double it
                    grown = type(one)(
                        *(np.zeros((max(4, 2 * n_slots), *b.shape[1:]), b.dtype) for b in one)
                    )
                    for a, b in zip(grown, stacked or (), strict=False):
                        a[:n_slots] = b
                    setattr(self, name, stacked := grown)
                for a, b in zip(stacked, one, strict=True):
                    a[n_slots] = b[0]
            self._slots[key] = (n_slots, model.tables)  # keep the tables alive
            self._state = KernelState(
                *(
                    getattr(self._rec if f in RECORDING_CACHE else self._fibres, f)
                    for f in KernelState._fields
                )
            )
            self._args = None  # made again from the new arrays at the next step
        return self._slots[key][0]

    def _load_vectors(self, i: int) -> None:
        """Per-env scalars (limits, target, current, history) of sub-environment ``i``."""
        e, v = self.envs[i], self._vec
        for key, field in _FROM_STEP_ARRAY:  # as the scalar env computed them
            v[key][i] = e._s[field]
        self._hist[i] = e._hist
        self._table_index[i] = self._slot(e.model)
        m = e.trace.t_s.size
        self._csf[i, :m], self._scale[i, :m], self._last[i] = (
            e.trace.csf_mm,
            e.trace.impedance_scale,
            m - 1,
        )
        self._clip[i, :m] = e.trace.csf_clipped
        e.trace = None  # the stacked copy is the one used; saves ~1 MB per patient

    def _reset_one(self, i: int) -> None:
        """Reset sub-environment ``i`` (continuing its own random stream) into the stack."""
        env = self.envs[i]
        env.reset()
        for stacked, mine in ((self._fibres, env.model.state), (self._kp, env.model.kp)):
            for f, dst, src in zip(stacked._fields, stacked, mine, strict=True):
                if f not in RECORDING_CACHE:
                    dst[i] = src
        self._load_vectors(i)

    # -- step -------------------------------------------------------------------------------
    def step(self, actions):
        """Step every sub-environment; see the module docstring for autoreset."""
        obs, reward, truncated, info = self._step_arrays(actions)
        if self._autoreset.any():
            reward[self._autoreset] = 0.0
            for i in np.flatnonzero(self._autoreset):
                self._reset_one(int(i))
                truncated[i] = False
            obs = None
        self._autoreset = truncated.copy()
        return (
            (self._obs() if obs is None else obs),
            reward,
            np.zeros(self.num_envs, bool),
            truncated,
            info,
        )

    def _step_arrays(self, actions) -> tuple:
        """:meth:`_step_raw` with the info dict: ``(obs, reward, truncated, info)``."""
        obs, values, flags, limits = self._step_raw(actions)
        info = info_dict(values, flags, limits)
        if self.cfg.pulses_per_step > 1:
            info.update(self._pulse_info)
        return obs, values[0], flags[0], info

    def _step_raw(self, actions) -> tuple:
        """One control period for every patient, without autoreset bookkeeping.

        For adapters with their own reset rule (:class:`~closedloop.envs.sb3.SB3VecEnv` resets
        a finished patient at once, with :meth:`_reset_one`); :meth:`step` is this plus
        Gymnasium's next-step autoreset.

        Args:
            actions: (num_envs, 1) actions, or num_envs of them flat (a float array is used
                as it is, anything else converted); NaN or infinite values and other shapes raise
                :class:`~closedloop.ConfigError`, others are clipped to [-1, 1].

        Returns:
            ``(obs, values, flags, limit_flags)``: ``obs`` is None with several pulses per step
            (read it with :meth:`_obs`); the rows of ``values`` are
            :data:`~closedloop.envs.step_kernels.STEP_VALUES`, those of ``flags``
            :data:`~closedloop.envs.step_kernels.STEP_FLAGS` (see :data:`INFO_ROWS`);
            ``limit_flags`` holds the device's limit bitmasks.
        """
        n = self.num_envs
        if type(actions) is not np.ndarray or actions.ndim != 2 or actions.dtype.char not in "fd":
            actions = as_real_array("actions", actions)  # ConfigError unless real numbers
            if actions.ndim != 2:  # one action per sub-environment, as a flat list
                if actions.size != n:
                    self._bad_actions(actions, sk.SHAPE_MISMATCH)
                actions = actions.reshape(n, 1)
        if self.cfg.pulses_per_step == 1:  # one compiled call (:mod:`.batch_step`)
            bad, obs, values, flags, limits = checked_step(
                actions, self._args or self._make_args(), batch_threads()
            )
        else:
            a0, obs = np.empty(n), None
            bad = checked_actions(actions, a0)
            if bad == -1:
                values, flags, limits = self._step_pulses(a0)
        if bad != -1:
            self._bad_actions(actions, bad)
        return obs, values, flags, limits

    def _bad_actions(self, actions, bad: int) -> NoReturn:
        """Raise the :class:`~closedloop.ConfigError` for the check's result ``bad``."""
        if bad == sk.SHAPE_MISMATCH:
            raise ConfigError(
                f"actions has shape {actions.shape}; expected ({self.num_envs}, 1):"
                " one row per sub-environment"
            )
        raise ConfigError(
            f"actions[{bad}]={actions[bad].tolist()} must be finite; valid range [-1, 1]"
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_args": None}  # compiled objects do not pickle

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)  # slots are keyed by id(tables): ids of this process
        if "_slots" in state:
            self._slots = {id(tables): (slot, tables) for slot, tables in state["_slots"].values()}

    def _make_args(self) -> BatchArgs:
        """The :class:`~.batch_step.BatchArgs` of the current stacked arrays."""
        cfg, dev = self.cfg, self.envs[0].spec_.device
        consts = np.array(
            [
                ACTION_MODES.index(cfg.action_mode),
                cfg.max_delta_ma,
                cfg.max_log_step,
                cfg.rate_hz,
                cfg.pw_us,
                dev.max_current_ma,
                dev.compliance_v,
                ECAP_BOUND_UV,
            ]
        )
        self._args = batch_args(
            self._state,
            self._tables,
            self._table_index,
            self._kp,
            self._inputs,
            self._out,
            self._wave,
            self._vec["t"],
            self._last,
            self._csf,
            self._scale,
            self._clip,
            self._max_change,
            self._before_vec,
            self._after_vec,
            self._hist,
            self._weights,
            consts,
        )
        return self._args

    def _step_pulses(self, a) -> tuple:
        """Several pulses per step: NumPy around the kernel; returns as :meth:`_step_raw`.

        The device ramps each patient's pulses toward its request (:meth:`_ramp`); the step's
        per-pulse ground truth is kept in ``self._pulse_info`` (:data:`PULSE_INFO_KEYS`).
        """
        v, cfg, n_p = self._vec, self.cfg, self.cfg.pulses_per_step
        rate = cfg.rate_hz
        k = np.minimum(
            (v["t"][:, None] + np.arange(n_p) / rate) * rate + 1e-9, self._last[:, None]
        ).astype(np.int64)
        rows = np.arange(self.num_envs)[:, None]
        imp = v["imp"][:, None] * self._scale[rows, k]
        requested = cfg.requested_ma(a, v["current"], v["min"], v["max"])
        delivered, pulse_flags, limits = self._ramp(requested, imp)
        inp = self._inputs
        inp.current_ma[:] = delivered
        inp.pw_us[:] = cfg.pw_us
        inp.csf_mm[:] = self._csf[rows, k]
        inp.interval_s[:] = 1.0 / rate
        run_pulses_batch_indexed(
            self._state,
            self._tables,
            self._table_index,
            self._kp,
            inp,
            self._out,
            self._wave,
            self._table_index,
        )
        v["current"][:] = delivered[:, -1]
        self._pulse_info = dict(zip(PULSE_INFO_KEYS, (delivered, imp, pulse_flags), strict=True))
        return self._advance(limits, imp[:, -1], (self._clip[rows, k] != 0).any(axis=1))

    def _ramp(self, requested, imp):
        """The device's pulse-by-pulse ramp of every patient (:func:`closedloop.device.ramp_many`).

        Returns:
            ``(delivered, pulse_flags, step_flags)``: each pulse's current (mA) and device flags,
            (num_envs, pulses_per_step), and each step's flags (OR over its pulses).
        """
        v, dev = self._vec, self.envs[0].spec_.device
        delivered, pulse_flags = np.empty(imp.shape), np.empty(imp.shape, np.int64)
        flags = np.empty(self.num_envs, np.int64)
        ramp_many(
            requested,
            v["current"].copy(),
            self._pw,
            imp,
            v["min"],
            v["max"],
            float(dev.max_current_ma),
            float(dev.max_step_ma),
            v["qmax"],
            float(dev.compliance_v),
            delivered,
            pulse_flags,
            flags,
        )
        return delivered, pulse_flags, flags

    def _advance(self, limits, impedance, clipped) -> tuple:
        """Sensation, history, clock, reward and flags after the kernel call.

        Args:
            limits: The step's device flags, (num_envs,).
            impedance: Impedance the last pulse saw (Ω), (num_envs,).
            clipped: Whether a pulse's CSF thickness was clamped into range, (num_envs,).

        Returns:
            ``(values, flags, limit_flags)`` as :meth:`_step_raw` returns them.
        """
        v, cfg, out = self._vec, self.cfg, self._out
        feel_hits = np.zeros(self.num_envs)
        for j in range(cfg.pulses_per_step):
            d = out["frac_recruited"][:, j] * v["factor"]
            smooth_many(v["level"].copy(), d, v["keep"], v["level"])
            feel = v["level"] / v["perc"]
            feel_hits += feel >= v["disc"]
        v["t"] += cfg.pulses_per_step / cfg.rate_hz
        h = self._hist
        h[:, :, 1:] = h[:, :, :-1]
        h[:, 0, 0] = np.clip(out["ecap_uv"].mean(axis=1), -ECAP_BOUND_UV, ECAP_BOUND_UV)
        h[:, 1, 0] = out["detected"].mean(axis=1)
        h[:, 2, 0] = v["current"]
        true = out["ecap_true_uv"]
        err = np.abs(true - v["target"][:, None]).mean(axis=1)
        above = feel_hits / cfg.pulses_per_step
        charge = out["charge_uc"].mean(axis=1)
        reward = self.envs[0].spec_.reward.reward(err, v["target"], above, charge, v["comfort"])
        values = np.stack((reward, feel, true.mean(axis=1), charge, v["current"], impedance))
        flags = np.stack(
            (
                v["t"] * cfg.rate_hz >= self._last + 0.5,
                (feel >= 1.0) & (feel < v["disc"]),
                above > 0,
                clipped,
            )
        )
        return values, flags, limits

    def _obs(self) -> np.ndarray:
        n, h = self.num_envs, self.cfg.history
        obs = np.empty((n, 3 * h + 1), np.float32)
        obs[:, : 3 * h] = self._hist.reshape(n, 3 * h)
        obs[:, 3 * h] = self._vec["target"]
        return obs

    def close_extras(self, **kwargs) -> None:
        """Nothing to release (no processes or files)."""


def _seeds(seed, n: int) -> list:
    """Per-sub-environment seeds: None, ``seed + i`` for an int, or a list of ``n`` seeds."""
    if seed is None:
        return [None] * n
    if is_integer(seed):
        seed = [int(seed) + i for i in range(n)]
    if not isinstance(seed, (list, tuple)) or len(seed) != n:
        raise ConfigError(
            f"seed={short_repr(seed)} must be None, a non-negative int or a list of {n} of them"
        )
    for i, s in enumerate(seed):
        if s is not None:
            check_value(f"seed[{i}]", s, {"lo": 0, "unit": "1"}, "int")
    return list(seed)


def _options(options, n: int) -> list | None:
    """Per-sub-environment reset options of a list, None for one dict (or None) for all."""
    if not isinstance(options, (list, tuple)):
        return None  # one dict for all (checked by each sub-environment's reset)
    if len(options) != n:
        raise ConfigError(
            f"options is a list of {len(options)} entries; expected None, one "
            f"dict for every sub-environment, or a list of {n} dicts (or None)"
        )
    return list(options)


def make_vector_env(
    env_id: str = DEFAULT_ID, num_envs: int = 8, **overrides
) -> gym.vector.VectorEnv:
    """Build the native vector env for a suite id (same overrides as ``gymnasium.make``)."""
    return ECAPVectorEnv(num_envs, env_id, **overrides)
