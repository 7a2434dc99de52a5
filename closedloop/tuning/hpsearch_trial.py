"""One trial's hyperparameters: drawn from the search space, made into SB3 keyword arguments."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

from closedloop._config import ConfigError
from closedloop.tuning.hpsearch_space import ACTIVATIONS, algorithm_class, rule_kind


def sample(
    trial: Any, ranges: Mapping[str, Mapping[str, Any]], algo: str | None = None
) -> dict[str, Any]:
    """Draw one value per range with an optuna ``trial``.

    An integer hyperparameter of ``algo`` is drawn as an integer, any other as a float
    (without ``algo``: an integer if both bounds are integers).
    """
    out = {}
    for key, rng in ranges.items():
        ints = isinstance(rng.get("low"), int) and isinstance(rng.get("high"), int)
        if "choices" in rng:
            out[key] = trial.suggest_categorical(key, list(rng["choices"]))
        elif rule_kind(algo, key) == "int" if algo else ints:
            out[key] = trial.suggest_int(key, rng["low"], rng["high"], log=bool(rng.get("log")))
        else:
            out[key] = trial.suggest_float(
                key, float(rng["low"]), float(rng["high"]), log=bool(rng.get("log"))
            )
    return out


def sb3_kwargs(algo: str, hp: Mapping[str, Any], n_envs: int, n_actions: int = 1) -> dict[str, Any]:
    """Constructor keyword arguments from plain values.

    ``"lin_<x>"`` learning rates and clip ranges become linear decays (as in rl-baselines3-zoo),
    ``policy_kwargs.activation_fn`` names become torch modules, ``action_noise_sigma`` a
    Gaussian action noise over ``n_actions`` dimensions, and a PPO ``batch_size`` is capped at
    the rollout size ``n_steps * n_envs``.
    """
    import torch.nn as nn

    kw = dict(hp)
    sigma = kw.pop("action_noise_sigma", None)
    if sigma:
        import numpy as np
        from stable_baselines3.common.noise import NormalActionNoise

        kw["action_noise"] = NormalActionNoise(np.zeros(n_actions), np.full(n_actions, sigma))
    if isinstance(kw.get("train_freq"), list):
        kw["train_freq"] = tuple(kw["train_freq"])
    for key in ("learning_rate", "clip_range"):
        if isinstance(kw.get(key), str):
            kw[key] = _linear(kw[key], key)
    pk = dict(kw.get("policy_kwargs", {}))
    if "activation_fn" in pk:
        if pk["activation_fn"] not in ACTIVATIONS:
            raise ConfigError(
                f"policy_kwargs.activation_fn={pk['activation_fn']!r} is invalid; "
                f"valid: {', '.join(ACTIVATIONS)}"
            )
        pk["activation_fn"] = {
            "tanh": nn.Tanh,
            "relu": nn.ReLU,
            "elu": nn.ELU,
            "leaky_relu": nn.LeakyReLU,
            "gelu": nn.GELU,
        }[pk["activation_fn"]]
        kw["policy_kwargs"] = pk
    if "batch_size" in kw and algo in ("ppo", "recurrentppo"):
        n_steps = inspect.signature(algorithm_class(algo).__init__).parameters["n_steps"].default
        kw["batch_size"] = min(int(kw["batch_size"]), int(kw.get("n_steps", n_steps)) * n_envs)
    return kw


def _linear(text: str, key: str):
    """``"lin_<x>"``: a schedule decaying linearly from ``x`` to 0 over training."""
    try:
        start = float(text.removeprefix("lin_")) if text.startswith("lin_") else math.nan
    except ValueError:
        start = math.nan
    if not math.isfinite(start):
        raise ConfigError(f"{key}={text!r} is invalid; valid: a number or 'lin_<number>'")
    return lambda progress_remaining: progress_remaining * start
