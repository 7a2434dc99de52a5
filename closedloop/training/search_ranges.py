"""Search ranges of an RL agent spec's ``[search]`` table, and a trial's values applied.

A range is ``{choices = [...]}`` or ``{low, high[, log]}``, checked against the
hyperparameter's rule (:mod:`closedloop.training.hyperparams`); :func:`with_values` puts a
trial's values into the hyperparameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from closedloop._config import ConfigError
from closedloop.training import hyperparams as rules

SEARCH_KEYS = ("low", "high", "log", "choices")


def with_values(hyperparams: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``hyperparams`` updated with searched ``values``.

    A ``policy_kwargs.<key>`` entry of ``values`` goes into ``policy_kwargs``.
    """
    out = dict(hyperparams)
    for key, value in values.items():
        head, _, sub = key.partition(".")
        if head == "policy_kwargs" and sub:
            out["policy_kwargs"] = {**out.get("policy_kwargs", {}), sub: value}
        else:
            out[key] = value
    return out


def check_search_range(key: str, rng: Any, rule: rules.Rule, where: str) -> None:
    """Raise ConfigError naming ``key`` unless ``rng`` is a valid range of its values.

    A range is ``{choices = [...]}`` (every choice valid for the hyperparameter) or
    ``{low, high[, log]}`` with valid numbers ``low < high`` (integers for an integer
    hyperparameter; ``low > 0`` with ``log = true``).
    """
    name = f"{where}: [search] {key}"
    if not isinstance(rng, Mapping) or not rng or set(rng) - set(SEARCH_KEYS):
        raise ConfigError(f"{name} must be a table with keys {', '.join(SEARCH_KEYS)}")
    if "choices" in rng:
        if not isinstance(rng["choices"], list) or not rng["choices"] or set(rng) != {"choices"}:
            raise ConfigError(f"{name}.choices must be a non-empty list (and nothing else)")
        for i, value in enumerate(rng["choices"]):
            rules.check(f"{name}.choices[{i}]", value, rule)
            if not isinstance(value, (bool, int, float, str)):  # what optuna can store
                raise ConfigError(
                    f"{name}.choices[{i}]={value!r} is invalid; valid: a number, "
                    "true/false or a string (optuna cannot search list values)"
                )
        return
    if rule.kind not in ("int", "float", "schedule") or not {"low", "high"} <= set(rng):
        raise ConfigError(f"{name} needs low and high (or choices); valid values: {rule.text()}")
    num = rules.Rule("int" if rule.kind == "int" else "float", rule.lo, rule.hi, rule.lo_open)
    low, high = (rules.check(f"{name}.{k}", rng[k], num) for k in ("low", "high"))
    log = rng.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{name}.log={log!r} must be true or false")
    if not low < high or (log and low <= 0):
        raise ConfigError(
            f"{name} needs low < high (and low > 0 with log = true); got low={low!r}, high={high!r}"
        )
