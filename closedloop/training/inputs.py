"""Checks of :func:`~closedloop.training.train`'s arguments, made before anything runs.

:func:`check_train_args` is called first thing by :func:`~closedloop.training.train` (and so by
``closedloop train``): the env id must be a closedloop id, ``n_envs`` lie in the spec's range,
every hyperparameter have its declared type and range
(:mod:`~closedloop.training.hyperparams`), the rollout hold at least 2 steps, and the
validation episodes outlast the calibration warm-up (:func:`check_eval_episode`), which before
was found only when training had finished, and no model was written.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from closedloop._config import ConfigError, check_value, range_text
from closedloop.envs.config import load_suite, with_overrides
from closedloop.envs.step import RATE_RANGE_HZ
from closedloop.patients.calibration_cache import patient_calibration
from closedloop.patients.cohort import load_cohort
from closedloop.training.run_config import TrainOptions
from closedloop.training.spec import RLAgentSpec, algorithm_class, check_env_id

MAX_SEED = 2**32 - 1
"""Largest seed (numpy's global seed, which SB3 sets, is a 32-bit integer)."""
MAX_STEPS = 10**12
"""Most env steps a run may ask for (about four months at 100,000 steps/s)."""


def check_train_args(
    spec: RLAgentSpec,
    env_id: Any,
    n_envs: Any,
    hyperparams: Any,
    env_overrides: Any,
    options: Any,
    *,
    seed: Any = 0,
    total_steps: Any = 1,
) -> None:
    """Check the arguments of :func:`~closedloop.training.train` before anything runs.

    Raises:
        ConfigError: Naming the argument: an env id from outside closedloop, ``n_envs`` out of
            the spec's range, a seed or step count that is not an integer in its range,
            hyperparameters or overrides that are not tables, a hyperparameter of the wrong
            type or range, options of the wrong type, a rollout of fewer than 2 steps, or
            validation episodes too short for the evaluation warm-up (the message gives the
            minimum).
    """
    check_env_id(env_id)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed={seed!r} is out of range; valid: an integer in [0, {MAX_SEED}]")
    if isinstance(total_steps, int) and total_steps > MAX_STEPS:  # the rest: train's own check
        raise ConfigError(
            f"total_steps={total_steps!r} is out of range; valid: an integer in [1, {MAX_STEPS}]"
        )
    n = spec.n_envs if n_envs is None else n_envs
    meta = {f.name: f.metadata for f in dataclasses.fields(RLAgentSpec)}["n_envs"]
    if isinstance(n, bool) or not isinstance(n, int):
        raise ConfigError(f"n_envs={n!r} must be an integer in {range_text(meta)}")
    check_value("n_envs", n, meta)
    for name, table in (("hyperparams", hyperparams), ("env_overrides", env_overrides)):
        if table is not None and not isinstance(table, Mapping):
            raise ConfigError(f"{name}={table!r} must be a table (dict) of key = value")
    if options is not None and not isinstance(options, TrainOptions):
        raise ConfigError(f"options={options!r} must be a TrainOptions")
    _check_option_types(options or TrainOptions())
    hp = spec.hyperparams_for(env_id, hyperparams)
    steps = hp.get("n_steps", _default(spec.algorithm, "n_steps"))
    if spec.on_policy and steps * n < 2:
        raise ConfigError(
            f"n_steps * n_envs = {steps} * {n} is a rollout of {steps * n} "
            "step(s); valid: at least 2"
        )
    opts = options or TrainOptions()
    check_eval_episode(env_id, dict(env_overrides or {}), opts.eval_episode_s, opts.eval_patients)


def _check_option_types(options: Any) -> None:
    """Integer options must be integers (their ranges are checked by ``TrainOptions``)."""
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if type(f.default) is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(
                f"options.{f.name}={value!r} must be an integer in {range_text(f.metadata)}"
            )


def _default(algorithm: str, key: str) -> Any:
    """The default of constructor argument ``key`` of ``algorithm``."""
    return inspect.signature(algorithm_class(algorithm).__init__).parameters[key].default


def check_eval_episode(
    env_id: str,
    overrides: Mapping[str, Any],
    episode_s: float,
    n_patients: int,
    split: str = "validation",
) -> None:
    """Raise ConfigError unless evaluation episodes outlast the calibration warm-up.

    Scoring starts after the patient's warm-up (``warmup_s`` of the calibration record) and
    needs at least 2 scored steps, so an episode must last at least ``warmup_s + 2`` steps.

    Args:
        env_id: Env id of the episodes.
        overrides: ``gymnasium.make`` overrides (``episode_s``, ``rate_hz``, ...).
        episode_s: Evaluation episode length (s); 0: the env's (with ``overrides``).
        n_patients: The first N patients of ``split`` are evaluated.
        split: Cohort of the evaluation patients.
    """
    cfg = with_overrides(load_suite()[env_id], dict(overrides)).config
    rate = min(cfg.rate_hz, RATE_RANGE_HZ[0]) if cfg.control_pw_rate else cfg.rate_hz
    warmup = max(patient_calibration(p).warmup_s for p in load_cohort(split)[:n_patients])
    need = warmup + 2 * cfg.pulses_per_step / rate
    length = episode_s or cfg.episode_s
    if length < need - 1e-9:
        raise ConfigError(
            f"evaluation episodes of {length:g} s are too short: scoring starts "
            f"after the {warmup:g} s warm-up and needs 2 steps; valid: "
            f"episode_s (or eval_episode_s) >= {need:g} s"
        )
