"""Search ranges of ``closedloop hpsearch``: the ranges file format and its validation.

See :mod:`closedloop.hpsearch` for the format (the ``[search]`` table of an RL agent spec).
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXTRA = "rl"
"""The ``closedloop`` extra that installs optuna."""
ALGOS: Mapping[str, str] = {"ppo": "PPO", "a2c": "A2C", "sac": "SAC", "td3": "TD3",
                            "recurrentppo": "RecurrentPPO"}
"""``--algo`` name -> algorithm name of :data:`closedloop.training.spec.ALGORITHMS`."""
ON_POLICY = ("ppo", "a2c", "recurrentppo")
RANGE_KEYS = ("low", "high", "log", "choices")
FILE_KEYS = ("name", "description", "algorithm", "policy", "n_envs", "normalize_obs",
             "normalize_reward", "clip_obs", "hyperparams", "search")
"""Keys of a ranges file: those of an RL agent spec (``agents/rl/*.toml``)."""
RESERVED = ("self", "policy", "env", "seed", "device", "verbose", "tensorboard_log",
            "_init_setup_model")
OBJECTIVE = "time_in_window_frac"
REPORTED = ("time_in_window_frac", "time_above_discomfort_frac", "time_below_perception_frac",
            "mean_rel_error", "charge_per_pulse_uc", "env_return")
"""Clinical metrics averaged over the validation episodes of each trial."""
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What a search samples and what it keeps fixed.

    Attributes:
        ranges: Hyperparameter -> ``{low, high[, log]}`` or ``{choices}``.
        fixed: Constructor arguments kept fixed (``[hyperparams.default]``).
        n_envs: Patients simulated in parallel while training.
        normalize_obs: Normalise observations with running statistics (VecNormalize).
        normalize_reward: Normalise rewards (on-policy algorithms only).
        algorithm: Algorithm named by the file (``""`` if none), checked against ``--algo``.
    """

    ranges: Mapping[str, Mapping[str, Any]]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    n_envs: int = 8
    normalize_obs: bool = True
    normalize_reward: bool = False
    algorithm: str = ""


def load_ranges(source: str | Path | Mapping[str, Any]) -> SearchSpace:
    """Parse a ranges TOML file (or an already parsed dict) into a :class:`SearchSpace`.

    Raises:
        ConfigError: On an unknown key, a malformed range or an unreadable file.
    """
    doc, where = source, "ranges"
    if not isinstance(source, Mapping):
        path, where = Path(source), str(source)
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--ranges={where!r}: cannot read a TOML file ({exc})") from None
    unknown = sorted(set(doc) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {where}; valid: "
                          f"{', '.join(FILE_KEYS)}")
    ranges = doc.get("search", {})
    if not isinstance(ranges, Mapping) or not ranges:
        raise ConfigError(f"{where}: [search] must be a non-empty table of ranges")
    for key, rng in ranges.items():
        _check_range(key, rng, where)
    fixed = doc.get("hyperparams", {}).get("default", {})
    n_envs = doc.get("n_envs", 8)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ConfigError(f"{where}: n_envs={n_envs!r} is out of range; valid range [1, inf)")
    return SearchSpace(dict(ranges), dict(fixed), n_envs, bool(doc.get("normalize_obs", True)),
                       bool(doc.get("normalize_reward", False)),
                       str(doc.get("algorithm", "")).lower())


def _check_range(key: str, rng: Any, where: str) -> None:
    """Raise ConfigError naming ``key`` unless ``rng`` is ``{low, high[, log]}`` or choices."""
    if not isinstance(rng, Mapping) or set(rng) - set(RANGE_KEYS):
        raise ConfigError(f"{where}: [search] {key} must be a table with keys "
                          f"{', '.join(RANGE_KEYS)}")
    if "choices" in rng:
        if not isinstance(rng["choices"], list) or not rng["choices"]:
            raise ConfigError(f"{where}: [search] {key}.choices must be a non-empty list")
        return
    low, high = rng.get("low"), rng.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) \
            or not low < high:
        raise ConfigError(f"{where}: [search] {key} needs numbers low < high (or choices)")
    if rng.get("log") and low <= 0:
        raise ConfigError(f"{where}: [search] {key} has log = true; needs low > 0")


def algorithm_class(algo: str) -> type:
    """The SB3 class of ``algo`` (a key of :data:`ALGOS`), imported lazily."""
    from closedloop.training.spec import algorithm_class as by_name

    if algo not in ALGOS:
        raise ConfigError(f"algo={algo!r} is unknown; valid: {', '.join(ALGOS)}")
    return by_name(ALGOS[algo])


def check_space(algo: str, space: SearchSpace) -> None:
    """Raise ConfigError naming a key that is not a constructor argument of ``algo``."""
    if space.algorithm and space.algorithm != algo:
        raise ConfigError(f"the ranges are for algorithm={space.algorithm!r}, not algo={algo!r}")
    params = inspect.signature(algorithm_class(algo).__init__).parameters
    valid = sorted(n for n in params if n not in RESERVED)
    unknown = sorted((set(space.ranges) | set(space.fixed)) - set(valid))
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s) {', '.join(unknown)} for {algo}; "
                          f"valid: {', '.join(valid)}")
    if space.normalize_reward and algo not in ON_POLICY:
        raise ConfigError(f"normalize_reward=true is only valid for {', '.join(ON_POLICY)}")
