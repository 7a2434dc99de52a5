"""Play one controller spec on many episodes at once through the native vector env.

:func:`run_episodes` is :func:`~closedloop.evaluation.episode_runner.run_episode` for a list of
``(patient, seed)`` episodes of one env id: one :class:`~closedloop.envs.vector.ECAPVectorEnv`
holds every episode as a sub-environment (reset with its own patient and seed), and each step
delivers every episode's pulses in one compiled call. The controllers are played in one of two ways:

* a controller that is ``batch_ready`` is made once and plays every episode with
  ``reset_many`` and ``predict_many``: one compiled call per step for all episodes, each
  episode's state in its own row of the controller's arrays. These are the
  :class:`~closedloop.controllers.batch.BatchController` s (open loop, P/PI/PID, the clinical
  loop, the ceiling, the adaptive inverse, MPC) and trained SB3 MLP policies
  (:class:`~closedloop.training.policy.TrainedPolicy`, a numba row kernel of the network);
* any other controller (a recurrent or CNN policy, a subclass overriding ``predict``, your own
  class) has one instance per episode (from the factory), reset with its own
  :class:`~closedloop.controllers.ControlContext` and called on its own observation row.

Either way each episode's state evolves exactly as in the one-episode path.

The step log is the runner's (:func:`~closedloop.evaluation.episode_runner.play`): the
observed ECAP and detection from the observation, the true ECAP, sensation, current, charge,
device flags and reward from the vector env's step arrays, and CSF thickness, posture and event
read from each episode's scenario trace at the trace index the env used (that of the step's last
pulse). Trajectories and scores are then made by the runner's own
:func:`~closedloop.evaluation.episode_runner.to_trajectory` and
:func:`~closedloop.evaluation.episode_runner.score`, so every metric and trajectory array equals
the one-episode path's bit for bit (``tests/test_batch_runner.py``). Only ``wall_s`` differs: each
episode gets an equal share of the batch's wall-clock time.

Episodes of an env whose action has several components (``control_pw_rate``: the runner's
batch holds one action per episode) are played one by one with :func:`run_episode`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

from closedloop._config import ConfigError, check_value, short_repr
from closedloop.controllers.base import ControlContext
from closedloop.envs.config import load_suite, with_overrides
from closedloop.envs.vector import ECAPVectorEnv
from closedloop.evaluation.episode_inputs import check_env_overrides, check_patient, check_seed
from closedloop.evaluation.episode_runner import (
    EpisodeResult,
    controller_name,
    reset_controller,
    run_episode,
    score,
    to_trajectory,
)

_VALUES = ("reward", "sensation", "ecap_true_uv", "charge_uc", "current_ma")
"""The step result fields (:data:`~closedloop.envs.step_data.RESULT_DTYPE`) the runner logs."""


class _TracedVectorEnv(ECAPVectorEnv):
    """The native vector env keeping each slot's scenario trace after reset.

    The runner reads each step's posture and event (and the trajectory's impedance) from them.
    """

    keep_traces = True

    @property
    def traces(self) -> list:
        """Each slot's scenario trace."""
        return [s.draw.trace for s in self.slots]

    def clock_s(self) -> np.ndarray:
        """Every sub-environment's simulated time before its next step (s), a copy."""
        return self._ep.state["t_s"].copy()


def check_episodes(episodes: Any) -> list[tuple[str, int]]:
    """``episodes`` as ``(patient_id, seed)`` pairs; ConfigError naming the bad entry.

    Every patient id is looked up here (so the held-out guard applies, as in ``run_episode``).
    """
    if isinstance(episodes, (str, bytes)) or not isinstance(episodes, Sequence) or not episodes:
        raise ConfigError(
            f"episodes={short_repr(episodes)} must be a non-empty list of (patient_id, seed) pairs"
        )
    out = []
    for i, ep in enumerate(episodes):
        if isinstance(ep, (str, bytes)) or not isinstance(ep, Sequence) or len(ep) != 2:
            raise ConfigError(f"episodes[{i}]={short_repr(ep)} must be a (patient_id, seed) pair")
        patient, seed = ep
        if not isinstance(patient, str):
            raise ConfigError(
                f"episodes[{i}] patient={short_repr(patient)} must be a patient "
                "id string, e.g. 'test-003'"
            )
        check_patient(patient, f"episodes[{i}]")
        out.append((patient, check_seed(seed, f"episodes[{i}] seed")))
    return out


def run_episodes(
    controller_factory: Callable[[], Any],
    env_id: str,
    episodes: Sequence[tuple[str, int]],
    env_overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
    threads: int = 1,
) -> list[EpisodeResult]:
    """Play a fresh controller from ``controller_factory`` on every episode, all at once.

    Args:
        controller_factory: Zero-argument callable returning a new controller (anything
            :func:`~closedloop.evaluation.episode_runner.run_episode` accepts); called once per
            episode, or once in all if it returns a ``batch_ready`` controller (that instance
            then plays every episode, see the module docstring).
        env_id: Registered id, e.g. ``closedloop/ECAPClinic-Test-v0``.
        episodes: ``(patient_id, seed)`` pairs, e.g. ``[("test-001", 0), ("test-001", 1)]``.
        env_overrides: ``gymnasium.make`` keyword overrides, e.g. ``{"episode_s": 20}``.
        name: Row label; :func:`~closedloop.evaluation.episode_runner.controller_name` by default.
        threads: Numba threads of the batched step, >= 1 (restored afterwards). One by
            default: the controllers run in Python between steps, and on a shared machine a
            parallel region per step (tens of patients, a few µs each) costs more than it saves.

    Returns:
        One :class:`EpisodeResult` per episode, in order, each equal to ``run_episode``'s (its
        ``wall_s`` is the batch's wall-clock time divided by the number of episodes).

    Raises:
        ConfigError: Naming the bad episode, seed, env id or override.
    """
    if not callable(controller_factory):
        raise ConfigError(
            f"controller_factory={short_repr(controller_factory)} must be a "
            "zero-argument callable returning a controller"
        )
    overrides = check_env_overrides(env_id, {} if env_overrides is None else env_overrides)
    episodes = check_episodes(episodes)
    check_value("threads", threads, {"lo": 1, "unit": "1"}, "int")
    if not _vector_supported(env_id, overrides):
        return [
            run_episode(controller_factory(), env_id, p, s, overrides, name) for p, s in episodes
        ]
    start = time.perf_counter()
    venv = _TracedVectorEnv(len(episodes), env_id, **overrides)
    venv.prefetch_next_patient = False  # patients are named: nothing to build ahead
    obs, _ = venv.reset(
        seed=[s for _, s in episodes], options=[{"patient": p} for p, _ in episodes]
    )
    first = controller_factory()
    batched = getattr(first, "batch_ready", False) is True
    controllers = (
        [first] * len(episodes)
        if batched
        else [first] + [controller_factory() for _ in episodes[1:]]
    )
    before = numba.get_num_threads()
    numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
    try:
        play = _play_batched if batched else _play_many
        logs, n_steps = play(controllers, venv, obs)
    finally:
        numba.set_num_threads(before)
    results = []
    wall_s = (time.perf_counter() - start) / len(episodes)
    for i, ((_, seed), ctrl) in enumerate(zip(episodes, controllers, strict=True)):
        log = {k: v[: n_steps[i], i] for k, v in logs.items()}
        d = venv.slots[i].draw
        base = SimpleNamespace(
            spec_=venv.spec_, calibration=d.calibration, patient=d.patient, trace=d.trace
        )
        traj = to_trajectory(base, d.target_uv, log)
        results.append(
            EpisodeResult(
                name or controller_name(ctrl),
                env_id,
                traj.scenario,
                traj.patient_id,
                seed,
                traj.target_uv,
                int(n_steps[i]),
                score(traj, log, base.spec_.config),
                wall_s,
                traj,
            )
        )
    return results


def _vector_supported(env_id: str, overrides: Mapping[str, Any]) -> bool:
    """Whether the batched path plays ``env_id`` with ``overrides`` (one action component)."""
    return not with_overrides(load_suite()[env_id], overrides).config.control_pw_rate


def _play_many(
    controllers: list, venv: _TracedVectorEnv, obs: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Step every controller's episode until all are truncated (none is stepped past its end).

    Returns:
        ``(log, n_steps)``: the step log of :func:`~closedloop.evaluation.episode_runner.play`, each
        key an array (steps, episodes), and each episode's number of steps.
    """
    for ctrl, ctx in zip(controllers, _contexts(venv), strict=True):
        reset_controller(ctrl, ctx)
    n = venv.num_envs
    states, first = [None] * n, np.array([True])
    predicts = [ctrl.predict for ctrl in controllers]

    def act(obs: np.ndarray, active: list[int], column: np.ndarray) -> None:
        nonlocal first
        for i in active:
            a, states[i] = predicts[i](obs[i], states[i], first, deterministic=True)
            column[i] = a[0] if type(a) is np.ndarray and a.shape == (1,) else _one_action(a)
        first = np.array([False])

    return _play(venv, obs, act)


def _play_batched(
    controllers: list, venv: _TracedVectorEnv, obs: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`_play_many` with one ``batch_ready`` controller playing every episode."""
    ctrl = controllers[0]
    ctrl.reset_many(_contexts(venv))

    def act(obs: np.ndarray, active: list[int], column: np.ndarray) -> None:
        if len(active) == column.size:
            column[:] = ctrl.predict_many(obs)[:, 0]
        else:
            rows = np.asarray(active, np.int64)
            column[rows] = ctrl.predict_many(obs[rows], rows)[:, 0]

    return _play(venv, obs, act)


def _contexts(venv: _TracedVectorEnv) -> list:
    """Each sub-environment's :class:`~closedloop.controllers.ControlContext`."""
    return [
        ControlContext.from_env(venv.cfg, s.draw.calibration, s.draw.target_uv) for s in venv.slots
    ]


def _play(
    venv: _TracedVectorEnv, obs: np.ndarray, act: Callable
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Step until every episode is truncated; ``act(obs, active, column)`` sets the actions.

    ``act`` writes the action of every episode in ``active`` (its indices, increasing) into
    ``column``; the others keep their last action (their steps are not logged).
    """
    n, cfg = venv.num_envs, venv.cfg
    size = max(t.t_s.size for t in venv.traces)
    buf = _Buffers(size // cfg.pulses_per_step + 2, n)
    actions = np.zeros((n, 1))
    active, done, n_steps = list(range(n)), np.zeros(n, bool), np.zeros(n, np.int64)
    step = 0
    while active:
        act(obs, active, actions[:, 0])
        t_s = venv.clock_s()
        result = venv.step_records(actions)
        obs = venv.observations()
        buf.add(step, obs, result, t_s, cfg.history)
        step += 1
        ended = result["truncated"] & ~done
        if ended.any():
            n_steps[ended] = step
            done |= ended
            active = np.flatnonzero(~done).tolist()
    return buf.log(venv, step), n_steps


def _one_action(action: Any) -> float:
    """A controller's action as the float the scalar env would read (checked by the env)."""
    a = np.asarray(action, dtype=np.float64)
    if a.size != 1:
        raise ConfigError(f"action has shape {a.shape}; expected (1,)")
    return float(a.reshape(()))


class _Buffers:
    """Preallocated per-step arrays (steps, episodes) of :func:`_play_many`."""

    def __init__(self, max_steps: int, n: int) -> None:
        self.ecap, self.detected, self.t_s = (np.empty((max_steps, n)) for _ in range(3))
        self.values = {k: np.empty((max_steps, n)) for k in _VALUES}
        self.limits = np.empty((max_steps, n), np.int64)

    def add(self, step: int, obs, result, t_s, history: int) -> None:
        """Record step ``step``: ``obs`` after it, its result records, clocks before it."""
        if step >= self.t_s.shape[0]:
            raise RuntimeError(f"episode ran past its trace ({step} steps)")
        self.ecap[step] = obs[:, 0]
        self.detected[step] = obs[:, history]
        for k, column in self.values.items():
            column[step] = result[k]
        self.limits[step] = result["device_flags"]
        self.t_s[step] = t_s

    def log(self, venv: _TracedVectorEnv, steps: int) -> dict[str, np.ndarray]:
        """The runner's step log (:class:`~closedloop.evaluation.episode_runner._StepLog` keys)."""
        cfg, v = venv.cfg, {k: column[:steps] for k, column in self.values.items()}
        p, rate = cfg.pulses_per_step, cfg.rate_hz
        last = np.array([t.t_s.size - 1 for t in venv.traces])
        k = ((self.t_s[:steps] + (p - 1) / rate) * rate + 1e-9).astype(np.int64)
        k = np.minimum(k, last)  # the trace index of the last pulse
        trace_col = {
            name: np.stack(
                [np.asarray(getattr(t, name))[k[:, i]] for i, t in enumerate(venv.traces)], axis=1
            )
            for name in ("csf_mm", "posture", "event")
        }
        nan = np.full((steps, venv.num_envs), np.nan)
        return {
            "reward": v["reward"],
            "ecap_uv": self.ecap[:steps],
            "detected": self.detected[:steps],
            "ecap_true_uv": v["ecap_true_uv"],
            "sensation": v["sensation"],
            "current_ma": v["current_ma"],
            "charge_uc": v["charge_uc"],
            "csf_mm": trace_col["csf_mm"].astype(np.float64),
            "posture": trace_col["posture"].astype(np.int64),
            "event": trace_col["event"].astype(np.int64),
            "device_flags": self.limits[:steps],
            "pw_us": nan,
            "rate_hz": nan.copy(),
        }
