"""A native vector environment: N patients stepped in one numba call of the one control step.

:class:`ECAPVectorEnv` is a :class:`gymnasium.vector.VectorEnv` for every registered id. It
stacks N patients' episode arrays (:mod:`closedloop.envs.episode`) and neural states, and each
step is one compiled call, :func:`closedloop.envs.step.checked_step_many`: the action check,
then :func:`~closedloop.envs.step.control_step` for every patient, the same body the scalar
env runs. Sub-environment ``i`` reproduces a scalar env reset with ``seed + i``, bit for bit.
Patients share one copy of their tables and, at a fixed pulse width, of their recording cache;
with ``control_pw_rate`` each sub-environment keeps its own recording cache. There are no
scalar envs behind it: each sub-environment is a :class:`~closedloop.envs.draw.PatientSlot`
(its random stream, its neural model and what its last reset drew) that resets through
:func:`~closedloop.envs.draw.draw_episode`, as the scalar env does.

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
from closedloop.envs import model_store
from closedloop.envs.draw import PatientSlot
from closedloop.envs.ecap_env import DEFAULT_ID, spaces, suite_spec
from closedloop.envs.episode import Episode, new_episode
from closedloop.envs.inputs import reset_options
from closedloop.envs.step import SHAPE_MISMATCH, checked_step_many
from closedloop.envs.step_data import (
    PARAMS_DTYPE,
    RESULT_DTYPE,
    STATE_DTYPE,
    BatchArrays,
    StepBatch,
    step_batch,
)
from closedloop.envs.step_info import (
    PULSE_INFO_KEYS,
    STEP_KEYS,
    step_columns,
)
from closedloop.neural.batch import RECORDING_CACHE, _work_for, batch_threads, stack
from closedloop.neural.kernels import PULSE_DTYPE, KernelState, PulseInputs
from closedloop.neural.recording import refresh_templates

PREFETCH_MAX_ENVS = model_store.CAPACITY // 4
"""Up to this many sub-environments, each one's next patient's model is built ahead in the
background (:mod:`closedloop.envs.model_store`); with more, the store could not hold them."""


INFO_KEYS = STEP_KEYS
"""Keys of the ``info`` dict of :meth:`ECAPVectorEnv.step`: the scalar env's per-step keys
(:data:`~closedloop.envs.step_info.STEP_KEYS`), each an array over the patients, plus
:data:`~closedloop.envs.step_info.PULSE_INFO_KEYS` with several pulses per step and
:data:`~closedloop.envs.step_info.PW_RATE_INFO_KEYS` with ``control_pw_rate``. The episode's
constants (:data:`~closedloop.envs.step_info.EPISODE_KEYS`) are the scalar env's only; the
reset's info holds ``patient_id``."""


def info_dict(result: np.ndarray) -> dict:
    """The per-step part of the ``info`` dict from a step's result records (copies)."""
    return step_columns(result)


class ECAPVectorEnv(VectorEnv):
    """``num_envs`` ECAP-tracking environments stepped together (see the module docstring).

    Args:
        num_envs: Number of patients simulated in parallel.
        env_id: A registered suite id (its spec sets the configuration).
        **overrides: As for ``gymnasium.make(env_id, ...)``.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
    keep_traces = False
    """Keep each slot's scenario trace in its :attr:`PatientSlot.draw
    <closedloop.envs.draw.PatientSlot.draw>` after stacking it (the evaluation runner reads
    them); off by default, since the stack holds a copy."""

    def __init__(self, num_envs: int, env_id: str = DEFAULT_ID, **overrides) -> None:
        check_value("num_envs", num_envs, {"lo": 1, "unit": "1"}, "int")
        num_envs = int(num_envs)
        self.spec_ = suite_spec(env_id, overrides)
        self.cfg = cfg = self.spec_.config
        self.num_envs = num_envs
        self.slots = [PatientSlot() for _ in range(num_envs)]
        self.prefetch_next_patient = num_envs <= PREFETCH_MAX_ENVS
        self.single_action_space, self.single_observation_space = spaces(cfg)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._n_act = self.single_action_space.shape[0]
        self._actions = np.zeros((num_envs, 3))
        self._autoreset = np.zeros(num_envs, bool)
        self._batch = None
        self._own_cache = cfg.control_pw_rate  # each patient's width: a cache each

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
        if per_env is None:
            shared = reset_options(options)
            episodes = [self._draw(i, seeds[i], shared) for i in range(self.num_envs)]
        else:
            episodes = [self._draw_named(i, seeds[i], o) for i, o in enumerate(per_env)]
        self._stack_all(episodes)
        self._autoreset[:] = False
        return self.observations(), {
            "patient_id": np.array([s.draw.patient.patient_id for s in self.slots])
        }

    def _draw_named(self, i: int, seed: int | None, options) -> Episode:
        """:meth:`_draw` with slot ``i``'s own reset options; a ConfigError names the slot."""
        try:
            return self._draw(i, seed, reset_options(options))
        except ConfigError as exc:
            if type(exc) is not ConfigError:  # a documented subclass (HeldOutError)
                raise
            raise ConfigError(f"options[{i}]: {exc}") from None

    def _draw(self, i: int, seed: int | None, opts: dict) -> Episode:
        """Slot ``i``'s next episode (:class:`~closedloop.envs.draw.PatientSlot`), as arrays."""
        slot = self.slots[i]
        d = slot.reset(self.spec_, seed, opts, self.prefetch_next_patient)
        ep = new_episode(self.spec_, d.patient, d.calibration, d.trace, d.target_uv, self._obs_size)
        if not self.keep_traces:
            slot.draw = d._replace(trace=None)  # the stacked copy is the one used
        return ep

    @property
    def _obs_size(self) -> int:
        return self.single_observation_space.shape[0]

    def _stack_all(self, episodes: list[Episode]) -> None:
        """Stack the slots' episode arrays and neural states."""
        models = [s.draw.model for s in self.slots]
        n, p, e0 = self.num_envs, self.cfg.pulses_per_step, episodes[0]
        size = max(ep.csf.shape[1] for ep in episodes)
        self._ep = Episode(
            np.zeros(n, PARAMS_DTYPE),
            np.zeros(n, STATE_DTYPE),
            np.zeros((n, e0.obs.shape[1]), np.float32),
            np.zeros(n, RESULT_DTYPE),
            np.zeros((n, size)),
            np.ones((n, size)),
            *(np.zeros((n, size), a.dtype) for a in (e0.clip, e0.posture, e0.event)),
            np.zeros((n, p)),
            np.zeros((n, p)),
            np.zeros((n, p), np.int64),
        )
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
        self._kparams = stack([m.kparams for m in models])
        self._slots: dict = {"tables": {}, "cache": {}}
        self._keep: dict = {}  # id(tables) -> tables: slots are keyed by id, keep them alive
        self._tables = self._rec = self._state = self._batch = None
        self._table_index = np.zeros(n, np.int64)
        self._cache_index = np.zeros(n, np.int64)
        self._inputs = PulseInputs(*(np.zeros((n, p)) for _ in range(4)))
        self._out = np.empty((n, p), PULSE_DTYPE)
        self._wave = np.empty((n, p if self.cfg.observe_waveform else 0, models[0].n_samples))
        for i, ep in enumerate(episodes):
            self._load(i, ep)

    def _slot(self, kind: str, key, one) -> int:
        """Slot of ``key`` in the stacked ``_tables`` or ``_rec`` (``kind``), added if new.

        Args:
            kind: ``"tables"`` (one slot per patient) or ``"cache"`` (the recording cache: one
                per patient, or per sub-environment with ``control_pw_rate``).
            key: What the slot is of.
            one: A zero-argument function making the slot's contents (a NamedTuple).
        """
        slots = self._slots[kind]
        if key not in slots:
            name, item = ("_tables", "_rec")[kind == "cache"], stack([one()])
            stacked, n_slots = getattr(self, name), len(slots)
            if stacked is None or n_slots == stacked[0].shape[0]:  # full: double it
                grown = type(item)(
                    *(np.zeros((max(4, 2 * n_slots), *b.shape[1:]), b.dtype) for b in item)
                )
                for a, b in zip(grown, stacked or (), strict=False):
                    a[:n_slots] = b
                setattr(self, name, stacked := grown)
            for a, b in zip(stacked, item, strict=True):
                a[n_slots] = b[0]
            slots[key] = n_slots
            self._batch = None  # made again from the new arrays at the next step
        return slots[key]

    def _load(self, i: int, ep: Episode) -> None:
        """Slot ``i``'s episode arrays ``ep`` (a batch of one) and table slots into the stack."""
        m = self.slots[i].draw.model
        for name in ("params", "state", "obs", "result"):
            getattr(self._ep, name)[i] = getattr(ep, name)[0]
        size = ep.csf.shape[1]
        if size > self._ep.csf.shape[1]:
            raise RuntimeError(f"sub-env {i}'s trace is longer than the stack's; reset all")
        for name in ("csf", "scale", "clip", "posture", "event"):
            getattr(self._ep, name)[i, :size] = getattr(ep, name)[0]
        self._table_index[i] = self._slot("tables", id(m.tables), lambda: m.tables)
        self._cache_index[i] = self._slot(
            "cache", i if self._own_cache else id(m.tables), lambda: self._cache_of(m)
        )
        self._keep[id(m.tables)] = m.tables

    def _cache_of(self, model) -> KernelState:
        """A recording cache of ``model`` at the spec's pulse width (the kernel only reads it)."""
        rec = model.initial_state()
        refresh_templates(rec, model.tables, model.kparams, self.cfg.pw_us)
        return rec

    def reset_one(self, i: int) -> None:
        """Reset sub-environment ``i`` now (continuing its own random stream).

        For adapters with their own reset rule (:class:`~closedloop.envs.sb3.SB3VecEnv`).

        Raises:
            ConfigError: If ``i`` is not an integer in [0, num_envs - 1].
        """
        if not is_integer(i) or not 0 <= i < self.num_envs:
            raise ConfigError(
                f"i={short_repr(i)} is out of range; valid: an integer in [0, {self.num_envs - 1}]"
            )
        i = int(i)
        ep = self._draw(i, None, reset_options(None))
        m = self.slots[i].draw.model
        for stacked, mine in ((self._fibres, m.state), (self._kparams, m.kparams)):
            for f, dst, src in zip(stacked._fields, stacked, mine, strict=True):
                if f not in RECORDING_CACHE:
                    dst[i] = src
        self._load(i, ep)

    # -- step -------------------------------------------------------------------------------
    def step(self, actions):
        """Step every sub-environment; see the module docstring for autoreset."""
        result = self.step_records(actions)
        info = step_columns(result)
        ep = self._ep
        if self.cfg.pulses_per_step > 1:
            info.update(
                zip(
                    PULSE_INFO_KEYS,
                    (ep.pulse_current.copy(), ep.pulse_impedance.copy(), ep.pulse_flags.copy()),
                    strict=True,
                )
            )
        if self.cfg.control_pw_rate:
            info.update(pw_us=result["pw_us"].copy(), rate_hz=result["rate_hz"].copy())
        reward, truncated = result["reward"].copy(), result["truncated"].copy()
        if self._autoreset.any():
            reward[self._autoreset] = 0.0
            for i in np.flatnonzero(self._autoreset):
                self.reset_one(int(i))
                truncated[i] = False
        self._autoreset = truncated.copy()
        return self.observations(), reward, np.zeros(self.num_envs, bool), truncated, info

    def step_records(self, actions) -> np.ndarray:
        """One control period for every patient, without autoreset bookkeeping (public).

        For adapters with their own reset rule (:class:`~closedloop.envs.sb3.SB3VecEnv` resets
        a finished patient at once, with :meth:`reset_one`); :meth:`step` is this plus
        Gymnasium's next-step autoreset.

        Args:
            actions: (num_envs, A) actions (A is 1, or 3 with ``control_pw_rate``), or num_envs
                of them flat when A is 1 (a float array is used as it is, anything else
                converted); NaN or infinite values and other shapes raise
                :class:`~closedloop.ConfigError`, others are clipped to [-1, 1].

        Returns:
            The step's result records (:data:`~closedloop.envs.step_data.RESULT_DTYPE`),
            (num_envs,), a view reused by the next step; the observations are :meth:`observations`.
        """
        n = self.num_envs
        if type(actions) is not np.ndarray or actions.ndim != 2 or actions.dtype.char not in "fd":
            actions = as_real_array("actions", actions)  # ConfigError unless real numbers
            if actions.ndim != 2:  # one action per sub-environment, as a flat list
                if actions.size != n or self._n_act != 1:
                    self._bad_actions(actions, SHAPE_MISMATCH)
                actions = actions.reshape(n, 1)
        bad = checked_step_many(
            actions, self._n_act, self._actions, self._batch or self._make_batch(), batch_threads()
        )
        if bad != -1:
            self._bad_actions(actions, bad)
        return self._ep.result

    def _bad_actions(self, actions, bad: int) -> NoReturn:
        """Raise the :class:`~closedloop.ConfigError` for the check's result ``bad``."""
        if bad == SHAPE_MISMATCH:
            raise ConfigError(
                f"actions has shape {actions.shape}; expected ({self.num_envs}, {self._n_act}):"
                " one row per sub-environment"
            )
        raise ConfigError(
            f"actions[{bad}]={actions[bad].tolist()} must be finite; valid range [-1, 1]"
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_batch": None}  # compiled objects do not pickle

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_keep" in state:  # slots are keyed by id(tables): renew the ids in this process
            new_id = {old: id(tables) for old, tables in self._keep.items()}
            for kind, slots in self._slots.items():
                if kind == "tables" or not self._own_cache:  # own caches: keyed by index
                    self._slots[kind] = {new_id[k]: slot for k, slot in slots.items()}
            self._keep = {id(t): t for t in self._keep.values()}

    def _make_batch(self) -> StepBatch:
        """The :class:`~closedloop.envs.step_data.StepBatch` of the current stacked arrays."""
        self._state = KernelState(
            *(
                getattr(self._rec if f in RECORDING_CACHE else self._fibres, f)
                for f in KernelState._fields
            )
        )
        work = _work_for(self._state, self._tables, self._kparams)
        arrays = BatchArrays(
            *self._ep,
            self._state,
            self._tables,
            self._table_index,
            self._cache_index,
            self._kparams,
            self._inputs,
            self._out,
            self._wave,
        )
        self._batch = step_batch(arrays, work)
        return self._batch

    def observations(self) -> np.ndarray:
        """The current observations (a copy)."""
        return self._ep.obs.copy()

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
        return None  # one dict for all
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
