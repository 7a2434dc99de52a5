"""SB3 constructor keyword arguments from plain hyperparameter values (specs and search trials).

One conversion for both a training spec (:mod:`closedloop.training.spec`) and a hyperparameter
search trial (:mod:`closedloop.tuning.hpsearch_trial`): the values are plain TOML/optuna values,
the result goes straight into an SB3 algorithm's constructor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from closedloop._config import ConfigError
from closedloop.training.hyperparams import ACTIVATIONS

SCHEDULED = ("learning_rate", "clip_range")
"""Hyperparameters that may be ``"lin_<x>"``, a linear decay."""


def parse_schedule(value: float | str, name: str) -> Any:
    """A float, or ``"lin_<float>"`` (rl-baselines3-zoo): a linear decay to 0 over training.

    Raises:
        ConfigError: If ``value`` is a string other than ``"lin_<finite number>"``.
    """
    if not isinstance(value, str):
        return value
    try:
        start = float(value.removeprefix("lin_")) if value.startswith("lin_") else None
    except ValueError:
        start = None
    if start is None or not np.isfinite(start):
        raise ConfigError(f"{name}={value!r} is invalid; valid: a number or 'lin_<number>'")
    from stable_baselines3.common.utils import LinearSchedule

    return LinearSchedule(start, 0.0, 1.0)


def activation(name: str) -> type:
    """The torch module class of an ``activation_fn`` name (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ConfigError(
            f"policy_kwargs.activation_fn={name!r} is invalid; valid: {', '.join(ACTIVATIONS)}"
        )
    import torch.nn as nn

    return {
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "elu": nn.ELU,
        "leaky_relu": nn.LeakyReLU,
        "gelu": nn.GELU,
    }[name]


def sb3_kwargs(
    hp: Mapping[str, Any], n_actions: int = 1, rollout_size: int | None = None
) -> dict[str, Any]:
    """Constructor keyword arguments for SB3 from plain hyperparameter values.

    Args:
        hp: Hyperparameters (validated by the caller's rules): ``"lin_<x>"`` learning rates and
            clip ranges become linear decays (as in rl-baselines3-zoo), ``train_freq`` lists
            tuples, ``policy_kwargs.activation_fn`` names torch modules, and
            ``action_noise_sigma`` a Gaussian action noise.
        n_actions: Dimensions of the action (for the action noise).
        rollout_size: If given, ``batch_size`` is capped at it (an on-policy rollout's
            ``n_steps * n_envs``).

    Raises:
        ConfigError: If a schedule string or an activation name is invalid.
    """
    kw = {k: v for k, v in hp.items() if k != "action_noise_sigma"}
    for key in SCHEDULED:
        if key in kw:
            kw[key] = parse_schedule(kw[key], key)
    if isinstance(kw.get("train_freq"), list):
        kw["train_freq"] = tuple(kw["train_freq"])
    pk = dict(kw.pop("policy_kwargs", {}))
    if "activation_fn" in pk:
        pk["activation_fn"] = activation(pk["activation_fn"])
    if pk:
        kw["policy_kwargs"] = pk
    if rollout_size is not None and "batch_size" in kw:
        kw["batch_size"] = min(int(kw["batch_size"]), int(rollout_size))
    sigma = hp.get("action_noise_sigma")
    if sigma:
        from stable_baselines3.common.noise import NormalActionNoise

        kw["action_noise"] = NormalActionNoise(np.zeros(n_actions), np.full(n_actions, sigma))
    return kw
