"""``train``: one reproducible, observable, resumable RL training run.

Example::

    from closedloop.training import train

    result = train("ppo", "closedloop/ECAPTracking-v0", 1_000_000, "runs/train-ppo", seed=0)
    result.model_dir                     # runs/train-ppo/best (model.zip, card.json, ...)

A run folder holds::

    run.json            what the run is (agent, env, seed, n_envs, hyperparameters, overrides)
    checkpoints/step-N/ model, VecNormalize statistics, replay buffer (off-policy), resume.pkl
                        (random states and the training env), state.json
    best/               the model with the best validation time in window (ties: lower mad_uv)
    final/              the model at the end of training
    evaluations.json    every validation (step, wall-clock, mean clinical metrics)
    logs/               progress-<start step>.csv per segment, TensorBoard events

**Resuming.** By default (``resume=None``, no ``--resume``/``--fresh`` flag) a run whose folder
has a checkpoint continues from the newest one until ``total_steps`` (which may be raised); the
agent, env, seed, n_envs, hyperparameters and env overrides must be those of the checkpoint.
``resume=True`` requires a checkpoint; ``resume=False`` (``--fresh``) deletes the run's files
(:data:`~closedloop.training.run_config.RUN_PARTS`, nothing else) and starts again, as does a
folder without a checkpoint. A finished run asked for no more steps returns at once. A resumed
run reaches the requested total (on-policy runs in whole rollouts, as uninterrupted ones) and
ends with the same weights, bit for bit, as the same command run without interruption, even
after a ``SIGKILL``: a checkpoint holds everything the continuation depends on
(:mod:`closedloop.training.resume`: the random states, the training env in mid-episode,
``VecNormalize``, the replay buffer, the algorithm's counters and last observations), and
validation draws nothing from the training's random streams. Not exact: runs stopped by
``max_wall_s``, and runs resumed from a checkpoint of an earlier version without ``resume.pkl``
(its episodes restart, reseeded with ``seed + steps``). The card lists the steps a run was
resumed at. Training time after the last checkpoint is lost on interruption, and is not counted
in the wall-clock; a best model saved in that time is kept (the resumed run replaces it only
with a better one). A lock file (``.lock``) keeps two processes from training in one folder.

Training and model selection run inside :func:`closedloop.patients.cohort.tuning_session`: the
held-out test cohort cannot be touched (training on a ``*-Test-v0`` env raises
:class:`~closedloop.patients.cohort.HeldOutError`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError
from closedloop.envs.config import load_suite, with_overrides
from closedloop.evaluation.episode_inputs import check_seed
from closedloop.patients.cohort import tuning_session
from closedloop.training.checkpoints import RunLock
from closedloop.training.env import check_env_id
from closedloop.training.inputs import check_train_args
from closedloop.training.run import Run
from closedloop.training.run_config import (
    RunConfig,
    TrainOptions,
    TrainResult,
)
from closedloop.training.spec import RLAgentSpec, load_rl_spec


def train(
    agent: str | Path | RLAgentSpec,
    env_id: str,
    total_steps: int,
    out_dir: str | Path,
    seed: int = 0,
    *,
    n_envs: int | None = None,
    resume: bool | None = None,
    hyperparams: Mapping[str, Any] | None = None,
    env_overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
    options: TrainOptions | None = None,
    callbacks: Sequence[Any] = (),
    host_gone: Callable[[str], bool] | None = None,
) -> TrainResult:
    """Train an RL agent on the native vector env, checkpointing and validating as it goes.

    Args:
        agent: A spec name in ``agents/rl/`` (``ppo``, ``sac``, ``td3``, ``recurrent-ppo``),
            a spec file path, or an :class:`~closedloop.training.spec.RLAgentSpec` (the card's
            command then names it by ``spec.name``: save it as a file to reproduce the run).
        env_id: A registered training env id, e.g. ``closedloop/ECAPTracking-v0``.
        total_steps: Env steps to train for, summed over the parallel patients (> 0).
        out_dir: The run folder (see the module docstring).
        seed: Seed of every random draw (SB3, torch, env resets), >= 0.
        n_envs: Parallel patients (default: the spec's).
        resume: None: continue from a checkpoint if there is one; True: require one;
            False: delete the run's files and start again.
        hyperparams: Hyperparameters overriding the spec's (validated the same way).
        env_overrides: ``gymnasium.make`` overrides for training and validation.
        name: Controller label of the trained models (default: the agent's name).
        options: Logging, checkpoint and validation settings (:class:`TrainOptions`).
        callbacks: Extra SB3 callbacks.
        host_gone: Host name -> whether that machine is gone, to take over a lock of another
            host on a shared filesystem (:class:`~closedloop.training.checkpoints.RunLock`).

    Returns:
        The :class:`TrainResult`.

    Raises:
        ConfigError: On an unknown agent, env id, hyperparameter or override, steps <= 0, a
            negative seed, a resume that does not match the checkpointed run, or a run folder
            in use by another live process.
    """
    cfg = _config(
        agent, env_id, total_steps, out_dir, seed, n_envs, hyperparams, env_overrides, name, options
    )
    with RunLock(cfg.out_dir, host_gone), tuning_session(f"training {cfg.spec.name} on {env_id}"):
        return Run(cfg).execute(resume, list(callbacks))


def train_config(
    agent: str | Path | RLAgentSpec,
    env_id: str,
    total_steps: int,
    out_dir: str | Path,
    seed: int = 0,
    *,
    n_envs: int | None = None,
    hyperparams: Mapping[str, Any] | None = None,
    env_overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
    options: TrainOptions | None = None,
) -> RunConfig:
    """Check the arguments of :func:`train` (the same names) without training; the config."""
    return _config(
        agent, env_id, total_steps, out_dir, seed, n_envs, hyperparams, env_overrides, name, options
    )


def _config(
    agent, env_id, total_steps, out_dir, seed, n_envs, hyperparams, env_overrides, name, options
) -> RunConfig:
    """Validate the arguments of :func:`train` into a :class:`RunConfig`."""
    spec = agent if isinstance(agent, RLAgentSpec) else load_rl_spec(agent)
    agent_arg = spec.name if isinstance(agent, RLAgentSpec) else str(agent)
    check_train_args(
        spec,
        env_id,
        n_envs,
        hyperparams,
        env_overrides,
        options,
        seed=seed,
        total_steps=total_steps,
    )
    check_env_id(env_id)
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
        raise ConfigError(f"total_steps={total_steps!r} is out of range; valid range [1, inf)")
    n = spec.n_envs if n_envs is None else n_envs
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n_envs={n!r} is out of range; valid range [1, inf)")
    overrides = dict(env_overrides or {})
    _check_env_overrides(env_id, overrides)
    hp_over = dict(hyperparams or {})
    return RunConfig(
        spec,
        agent_arg,
        env_id,
        total_steps,
        Path(out_dir),
        check_seed(seed),
        n,
        hp_over,
        spec.hyperparams_for(env_id, hp_over),
        overrides,
        name or spec.name,
        options or TrainOptions(),
    )


def _check_env_overrides(env_id: str, overrides: Mapping[str, Any]) -> None:
    """Raise ConfigError naming a bad override (the env's own validation), or ``patient``."""
    if "patient" in overrides:
        raise ConfigError(
            "env_overrides key 'patient' is not allowed: training draws cohort "
            "patients and validation sets its own"
        )
    with_overrides(load_suite()[env_id], overrides)
