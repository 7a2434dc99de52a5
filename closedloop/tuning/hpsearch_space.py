"""Inputs of ``closedloop hpsearch``, all checked before any trial runs.

The ranges file format and its validation, and the checks of the search's other arguments
(counts, seeds, env ids, overrides, storage URL, output folder).

See :mod:`closedloop.tuning.hpsearch` for the format (the ``[search]`` table of an RL agent spec).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError, check_table, check_value, range_text
from closedloop.envs.config import load_suite, with_overrides
from closedloop.patients.cohort import load_cohort
from closedloop.training import hyperparams as rules
from closedloop.training.hyperparams import ACTIVATIONS  # noqa: F401  (re-exported)
from closedloop.training.inputs import check_eval_episode
from closedloop.training.search_ranges import SEARCH_KEYS, check_search_range
from closedloop.training.spec import (
    RLAgentSpec,
    check_env_id,
    check_hyperparams,
    valid_hyperparams,
    valid_policy_kwargs,
)
from closedloop.training.spec import algorithm_class as by_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXTRA = "rl"
"""The ``closedloop`` extra that installs optuna."""
ALGOS: Mapping[str, str] = {
    "ppo": "PPO",
    "a2c": "A2C",
    "sac": "SAC",
    "td3": "TD3",
    "recurrentppo": "RecurrentPPO",
}
"""``--algo`` name -> algorithm name of :data:`closedloop.training.spec.ALGORITHMS`."""
ON_POLICY = ("ppo", "a2c", "recurrentppo")
POLICIES: Mapping[str, str] = {"recurrentppo": "MlpLstmPolicy"}
"""Policy alias per ``--algo`` (MlpPolicy for the others)."""
RANGE_KEYS = ("low", "high", "log", "choices")
FILE_KEYS = (
    "name",
    "description",
    "algorithm",
    "policy",
    "n_envs",
    "normalize_obs",
    "normalize_reward",
    "clip_obs",
    "hyperparams",
    "search",
)
"""Keys of a ranges file: those of an RL agent spec (``agents/rl/*.toml``)."""
RESERVED = (
    "self",
    "policy",
    "env",
    "seed",
    "device",
    "verbose",
    "tensorboard_log",
    "_init_setup_model",
)
"""Constructor arguments a search sets itself."""
OBJECTIVE = "time_in_window_frac"
REPORTED = (
    "time_in_window_frac",
    "time_above_discomfort_frac",
    "time_below_perception_frac",
    "mean_rel_error",
    "charge_per_pulse_uc",
    "env_return",
)
"""Clinical metrics averaged over the validation episodes of each trial."""


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
    if isinstance(source, (str, Path)):
        path, where = Path(source), str(source)
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--ranges={where!r}: cannot read a TOML file ({exc})") from None
    check_table(doc, FILE_KEYS, where)
    ranges = doc.get("search", {})
    if not isinstance(ranges, Mapping) or not ranges:
        raise ConfigError(f"{where}: [search] must be a non-empty table of ranges")
    for key, rng in ranges.items():
        _check_range(key, rng, where)
    sections = doc.get("hyperparams", {})
    if not isinstance(sections, Mapping) or not all(
        isinstance(v, Mapping) for v in sections.values()
    ):
        raise ConfigError(f"{where}: hyperparams must be a table of tables ([hyperparams.default])")
    _check_fields(doc, where)
    return SearchSpace(
        dict(ranges),
        dict(sections.get("default", {})),
        doc.get("n_envs", 8),
        doc.get("normalize_obs", True),
        doc.get("normalize_reward", False),
        doc.get("algorithm", "").lower(),
    )


def _check_fields(doc: Mapping[str, Any], where: str) -> None:
    """``n_envs``, the normalisation switches and ``algorithm``: same types as an RL spec."""
    meta = {f.name: f.metadata for f in dataclasses.fields(RLAgentSpec)}
    n_envs = doc.get("n_envs", 8)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int):
        raise ConfigError(
            f"{where}: n_envs={n_envs!r} must be an integer in {range_text(meta['n_envs'])}"
        )
    check_value(f"{where}: n_envs", n_envs, meta["n_envs"])
    for key in ("normalize_obs", "normalize_reward"):
        if not isinstance(doc.get(key, False), bool):
            raise ConfigError(f"{where}: {key}={doc[key]!r} must be true or false")
    if not isinstance(doc.get("algorithm", ""), str):
        raise ConfigError(
            f"{where}: algorithm={doc['algorithm']!r} must be one of {', '.join(ALGOS.values())}"
        )


def _check_range(key: str, rng: Any, where: str) -> None:
    """Raise ConfigError naming ``key`` unless ``rng`` is ``{low, high[, log]}`` or choices."""
    if not isinstance(rng, Mapping) or not rng or set(rng) - set(SEARCH_KEYS):
        raise ConfigError(
            f"{where}: [search] {key} must be a table with keys {', '.join(SEARCH_KEYS)}"
        )


def algorithm_class(algo: str) -> type:
    """The SB3 class of ``algo`` (a key of :data:`ALGOS`), imported lazily."""
    if algo not in ALGOS:
        raise ConfigError(f"algo={algo!r} is unknown; valid: {', '.join(ALGOS)}")
    return by_name(ALGOS[algo])


def check_space(algo: str, space: SearchSpace) -> None:
    """Raise ConfigError naming a fixed value or range that ``algo`` cannot take.

    Fixed values are checked like an RL spec's hyperparameters, and every range against the
    declared type and range of its hyperparameter (:mod:`closedloop.training.hyperparams`).
    """
    cls = algorithm_class(algo)
    if space.algorithm and space.algorithm != algo:
        raise ConfigError(f"the ranges are for algorithm={space.algorithm!r}, not algo={algo!r}")
    name, policy = cls.__name__, POLICIES.get(algo, "MlpPolicy")
    check_hyperparams(name, policy, space.fixed, "ranges [hyperparams.default]")
    valid = valid_hyperparams(name) + [
        f"policy_kwargs.{k}" for k in valid_policy_kwargs(name, policy)
    ]
    for key, rng in space.ranges.items():
        if key not in valid:
            raise ConfigError(
                f"unknown hyperparameter {key!r} in the ranges for {algo}; "
                f"valid: {', '.join(valid)}"
            )
        check_search_range(key, rng, rules.rule_for(key, algo in ON_POLICY), "ranges")
    if space.normalize_reward and algo not in ON_POLICY:
        raise ConfigError(f"normalize_reward=true is only valid for {', '.join(ON_POLICY)}")


def rule_kind(algo: str, key: str) -> str:
    """Declared kind (``int``, ``float``, ...) of hyperparameter ``key`` of ``algo``."""
    return rules.rule_for(key, algo in ON_POLICY).kind


LIMITS: Mapping[str, tuple[int, int]] = {
    "n_trials": (1, 10_000),
    "steps_per_trial": (1, 100_000_000),
    "eval_patients": (1, 1000),
    "seed": (0, 2**32 - 1 - 10_000),
}
"""Valid ranges of the search's counts (a trial's seed is ``seed + trial number``)."""
SPLITS = ("validation", "train")
STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql")


def check_counts(**values: Any) -> None:
    """Raise ConfigError naming the first value that is not an integer in its range."""
    for name, value in values.items():
        lo, hi = LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(
                f"{name}={value!r} is out of range; valid: an integer in [{lo}, {hi}]"
            )


def check_seeds(seeds: Any) -> tuple[int, ...]:
    """The episode seeds as a non-empty tuple of distinct integers >= 0.

    A repeated seed would score the same episode twice (as the benchmark, ``run_grid``, ``train``
    and ``tune`` also refuse).
    """
    ok = (
        isinstance(seeds, (list, tuple))
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in seeds)
    )
    if not ok or len(set(seeds)) != len(seeds):
        raise ConfigError(
            f"eval_seeds={seeds!r} is invalid; valid: a non-empty list of "
            "distinct integers in [0, 2**32)"
        )
    return tuple(seeds)


def check_envs(
    env_id: Any, env_overrides: Any, eval_overrides: Any, eval_split: Any, eval_patients: int
) -> None:
    """The env id, the overrides of training and scoring, the split and the scoring episodes."""
    check_env_id(env_id)
    if eval_split not in (*SPLITS, "test"):
        raise ConfigError(
            f"eval_split={eval_split!r} is invalid; valid: {', '.join(SPLITS)} "
            "(the test cohort is held out)"
        )
    n = len(load_cohort(eval_split))  # the test cohort: HeldOutError
    if eval_patients > n:
        raise ConfigError(
            f"eval_patients={eval_patients} is out of range; valid range [1, {n}] "
            f"(the {eval_split} cohort)"
        )
    for name, table in (("env_overrides", env_overrides), ("eval_overrides", eval_overrides)):
        if table is not None and not isinstance(table, Mapping):
            raise ConfigError(f"{name}={table!r} must be a table (dict) of key = value")
        try:
            cfg = with_overrides(load_suite()[env_id], dict(table or {})).config
        except ConfigError as exc:
            raise type(exc)(f"{name}: {exc}") from None
        load_cohort(cfg.split)
    check_eval_episode(env_id, dict(eval_overrides or {}), 0.0, eval_patients, eval_split)


def study_name_for(name: Any, algo: str, env_id: str) -> str:
    """The study name: ``name``, or ``hpsearch-<algo>-<env id>``."""
    if name is None:
        return f"hpsearch-{algo}-{env_id}"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"study_name={name!r} must be a non-empty string")
    return name


def open_storage(url: Any) -> Any:
    """The optuna storage at ``url`` (None: in memory), opened before any trial runs.

    Raises:
        ConfigError: If ``url`` is not a database URL optuna can open (naming the schemes).
    """
    import optuna

    if url is None:
        return None
    scheme = url.partition("://")[0].partition("+")[0] if isinstance(url, str) else ""
    form = (
        f"storage={url!r} is invalid; valid: None (in memory) or a database URL "
        f"{', '.join(s + '://...' for s in STORAGE_SCHEMES)} (e.g. sqlite:///hpsearch.db)"
    )
    if scheme not in STORAGE_SCHEMES or "://" not in url:
        raise ConfigError(form)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001  (sqlalchemy's errors vary by driver)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(f"{form}; opening it failed: {type(exc).__name__}: {first}") from None


def make_out_dir(out_dir: Any) -> None:
    """Create the output folder before the search (an unwritable one fails now, not after)."""
    if not isinstance(out_dir, (str, Path)):
        raise ConfigError(f"out_dir={out_dir!r} must be a folder path")
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"out_dir={str(out_dir)!r} cannot be created: {exc}") from None
