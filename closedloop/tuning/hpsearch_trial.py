"""One trial's hyperparameters: drawn from the search space, made into SB3 keyword arguments."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from closedloop.tuning.hpsearch_space import algorithm_class, rule_kind


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


def rollout_size(algo: str, hp: Mapping[str, Any], n_envs: int) -> int | None:
    """An on-policy ``algo``'s rollout size ``n_steps * n_envs``, the cap of its ``batch_size``.

    ``n_steps`` is the algorithm's default if ``hp`` sets none; None off-policy (no cap).
    """
    if algo not in ("ppo", "recurrentppo"):
        return None
    n_steps = inspect.signature(algorithm_class(algo).__init__).parameters["n_steps"].default
    return int(hp.get("n_steps", n_steps)) * n_envs
