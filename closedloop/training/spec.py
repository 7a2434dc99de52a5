"""RL agent specs from ``agents/rl/*.toml``: algorithm, policy and hyperparameters per env id.

A spec is one TOML file (kept in ``agents/rl/``, apart from the controller specs of
``agents/*.toml``)::

    name = "ppo"                         # unique; by convention the file's stem
    description = "PPO with an MLP policy"
    algorithm = "PPO"                    # PPO, SAC, TD3 (stable-baselines3), RecurrentPPO
    policy = "MlpPolicy"                 # a policy alias of the algorithm
    n_envs = 8                           # patients simulated in parallel
    normalize_obs = true                 # VecNormalize on observations
    normalize_reward = true              # VecNormalize on rewards (on-policy only)

    [hyperparams.default]                # keyword arguments of the algorithm's constructor
    learning_rate = 3e-4                 # a float, or "lin_3e-4" for a linear decay to 0
    policy_kwargs = { net_arch = [64, 64], activation_fn = "tanh" }

    [hyperparams."closedloop/ECAPHighRate-v0"]   # per-env values, merged over the default
    n_steps = 128

    [search]                             # ranges for a hyperparameter search
    learning_rate = { low = 1e-5, high = 1e-3, log = true }
    n_steps = { choices = [128, 256, 512] }
    "policy_kwargs.log_std_init" = { low = -3.0, high = 0.0 }

    [residual]                           # optional: the agent corrects a base controller
    base = "clinical-loop"               # (closedloop.training.residual)
    scale = 0.1

A search key is a hyperparameter or ``policy_kwargs.<key>``; :func:`with_values` applies a set of
searched values to the hyperparameters (``train(..., hyperparams=...)`` takes the result).

Off-policy algorithms also take ``action_noise_sigma`` (Gaussian exploration noise on the
normalised action, std per action dimension). Every value, and every search range, is checked
against the key's declared type and range (:mod:`~closedloop.training.hyperparams`): an
integer where SB3 wants one, a finite number, a schedule ``lin_<number>``. Every error is a
:class:`~closedloop.ConfigError` naming the offending key and its valid values.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError, check_table, param, validate
from closedloop._specdirs import spec_dir
from closedloop.training import hyperparams as rules
from closedloop.training.hyperparams import ACTIVATIONS  # noqa: F401  (re-exported)
from closedloop.training.search_ranges import check_search_range

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ALGORITHMS: Mapping[str, tuple[str, str]] = {
    "PPO": ("stable_baselines3", "stable-baselines3"),
    "SAC": ("stable_baselines3", "stable-baselines3"),
    "TD3": ("stable_baselines3", "stable-baselines3"),
    "RecurrentPPO": ("sb3_contrib", "sb3-contrib"),
    "A2C": ("stable_baselines3", "stable-baselines3"),
}
"""Algorithm name -> (module it is imported from, distribution that provides it)."""
ON_POLICY = ("PPO", "A2C", "RecurrentPPO")
SPEC_KEYS = (
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
    "residual",
)
RESERVED = (
    "self",
    "policy",
    "env",
    "seed",
    "device",
    "verbose",
    "tensorboard_log",
    "_init_setup_model",
    "rollout_buffer_class",
    "replay_buffer_class",
    "action_noise",
)
"""Constructor arguments that training sets itself (not allowed in a spec)."""
POLICY_RESERVED = (
    "self",
    "observation_space",
    "action_space",
    "lr_schedule",
    "features_extractor_class",
    "optimizer_class",
    "normalize_images",
)
DEFAULT_SECTION = "default"


@dataclasses.dataclass(frozen=True)
class RLAgentSpec:
    """One RL agent configuration (see the module docstring for the file format).

    Attributes:
        name: Unique name (``closedloop train --agent NAME``).
        description: One paragraph for cards and reports.
        algorithm: Key of :data:`ALGORITHMS`.
        policy: Policy alias of the algorithm, e.g. ``MlpPolicy`` or ``MlpLstmPolicy``.
        n_envs: Patients simulated in parallel by the native vector env.
        normalize_obs: Normalise observations with running statistics (VecNormalize).
        normalize_reward: Scale rewards by the running std of the discounted return.
        clip_obs: Clip normalised observations to ``[-clip_obs, clip_obs]``.
        hyperparams: Section (``default`` or an env id) -> constructor keyword arguments.
        search: Hyperparameter -> search range (``low``/``high``/``log`` or ``choices``).
        residual: The ``[residual]`` table (fields of
            :class:`~closedloop.training.residual.ResidualParams`); empty: the agent sets the
            current itself.
    """

    name: str = param("", "text", "spec file", doc="agent name")
    description: str = param("", "text", "spec file", doc="one paragraph")
    algorithm: str = param(
        "PPO", "1", "spec file", choices=tuple(ALGORITHMS), doc="training algorithm"
    )
    policy: str = param("MlpPolicy", "text", "spec file", doc="policy alias")
    n_envs: int = param(8, "1", "design choice", 1, 4096, doc="parallel patients")
    normalize_obs: bool = param(
        True,
        "1",
        "design choice",
        choices=(True, False),
        doc="normalise observations (VecNormalize)",
    )
    normalize_reward: bool = param(
        False,
        "1",
        "design choice",
        choices=(True, False),
        doc="normalise rewards (VecNormalize, on-policy only)",
    )
    clip_obs: float = param(
        10.0, "1", "SB3 default", 0.0, 1e6, lo_open=True, doc="clip of normalised observations"
    )
    hyperparams: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    search: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    residual: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"{self.name or 'spec'}: "
        for key in ("n_envs", "normalize_obs", "normalize_reward"):
            value, kind = getattr(self, key), int if key == "n_envs" else bool
            if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
                raise ConfigError(
                    f"{where}{key}={value!r} must be "
                    + ("an integer" if kind is int else "true or false")
                )
        validate(self, where)
        if not self.name:
            raise ConfigError("spec: name must be a non-empty string")
        if self.normalize_reward and self.algorithm not in ON_POLICY:
            raise ConfigError(
                f"{self.name}: normalize_reward=true is only valid for "
                f"{', '.join(ON_POLICY)} (algorithm={self.algorithm})"
            )
        _sections(self.hyperparams, self.name)  # values: when a run or search uses them
        if not isinstance(self.search, Mapping):
            raise ConfigError(f"{where}search={self.search!r} must be a table of ranges")
        self.residual_params()  # checks the table

    def residual_params(self):
        """The :class:`~closedloop.training.residual.ResidualParams`, or None if not residual."""
        from closedloop.training.residual import ResidualParams

        if not isinstance(self.residual, Mapping):
            raise ConfigError(f"{self.name}: [residual] must be a table, not {self.residual!r}")
        return ResidualParams.from_table(self.residual)

    @property
    def on_policy(self) -> bool:
        """Whether the algorithm learns from fresh rollouts only (no replay buffer)."""
        return self.algorithm in ON_POLICY

    def hyperparams_for(
        self, env_id: str, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The default section, then ``env_id``'s section, then ``overrides``, validated."""
        merged = {
            **self.hyperparams.get(DEFAULT_SECTION, {}),
            **self.hyperparams.get(env_id, {}),
            **(overrides or {}),
        }
        check_hyperparams(self.algorithm, self.policy, merged, f"{self.name} hyperparams")
        return merged


def closedloop_ids() -> list[str]:
    """The registered ``closedloop/`` env ids, sorted."""
    import gymnasium as gym

    return sorted(k for k in gym.registry if k.startswith("closedloop/"))


def check_env_id(env_id: Any) -> str:
    """``env_id``; ConfigError listing the valid ids unless it is a closedloop id."""
    valid = closedloop_ids()
    if not isinstance(env_id, str) or env_id not in valid:
        raise ConfigError(
            f"env_id={env_id!r} is not a closedloop env id; valid: {', '.join(valid)}"
        )
    return env_id


def algorithm_class(algorithm: str) -> type:
    """The SB3 class of ``algorithm``, imported lazily.

    Raises:
        ConfigError: If the algorithm is unknown, or its package is not installed (naming the
            ``rl`` extra that provides it).
    """
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm={algorithm!r} is unknown; valid: {', '.join(ALGORITHMS)}")
    module, dist = ALGORITHMS[algorithm]
    try:
        return getattr(importlib.import_module(module), algorithm)
    except ImportError:
        raise ConfigError(
            f"algorithm={algorithm!r} needs the {dist} package; install it with "
            "pip install 'closedloop[rl]'"
        ) from None


def valid_hyperparams(algorithm: str) -> list[str]:
    """Keys a spec may set for ``algorithm``: its declared constructor arguments.

    Those of :data:`~closedloop.training.hyperparams.HYPERPARAMS` that the constructor takes
    (minus the reserved ones), plus ``action_noise_sigma`` off-policy.
    """
    names = inspect.signature(algorithm_class(algorithm).__init__).parameters
    extra = [] if algorithm in ON_POLICY else ["action_noise_sigma"]
    return sorted([n for n in names if n not in RESERVED and n in rules.HYPERPARAMS] + extra)


def valid_policy_kwargs(algorithm: str, policy: str) -> list[str]:
    """Keys of ``policy_kwargs`` for the algorithm's ``policy`` alias (declared ones only)."""
    aliases = algorithm_class(algorithm).policy_aliases
    if not isinstance(policy, str) or policy not in aliases:
        raise ConfigError(
            f"policy={policy!r} is unknown for {algorithm}; valid: {', '.join(aliases)}"
        )
    names = inspect.signature(aliases[policy].__init__).parameters
    return sorted(n for n in names if n not in POLICY_RESERVED and n in rules.POLICY_KWARGS)


def check_hyperparams(algorithm: str, policy: str, hp: Mapping[str, Any], where: str) -> None:
    """Raise ConfigError naming the key if ``hp`` has an unknown or malformed entry.

    Every value is checked against its declared type and range
    (:mod:`~closedloop.training.hyperparams`), ``policy_kwargs`` key by key.
    """
    if not isinstance(hp, Mapping):
        raise ConfigError(f"{where}: hyperparameters must be a table, not {hp!r}")
    valid = valid_hyperparams(algorithm)
    unknown = sorted(set(hp) - set(valid), key=str)
    if unknown:
        raise ConfigError(
            f"unknown hyperparameter(s) {', '.join(map(str, unknown))} in {where} "
            f"for {algorithm}; valid: {', '.join(valid)}"
        )
    on_policy = algorithm in ON_POLICY
    for key, value in hp.items():
        rules.check(f"{where}: {key}", value, rules.rule_for(key, on_policy))
    rules.check_policy_kwargs(
        hp.get("policy_kwargs", {}), valid_policy_kwargs(algorithm, policy), on_policy, where
    )
    rules.check_combination(hp, where)


def parse_rl_spec(doc: Mapping[str, Any], where: str = "spec") -> RLAgentSpec:
    """Validate a parsed spec document (see the module docstring).

    Raises:
        ConfigError: On an unknown key, a value out of range, an unknown algorithm, policy,
            hyperparameter or env section, or a malformed search range.
    """
    check_table(doc, SPEC_KEYS, where)
    fields = {k: v for k, v in doc.items() if k not in ("hyperparams", "search")}
    fields["description"] = str(fields.get("description", "")).strip()
    if not isinstance(fields.get("name"), str):
        raise ConfigError(f"{where}: name must be a non-empty string")
    search = doc.get("search", {})
    if not isinstance(search, Mapping):
        raise ConfigError(f"{where}: [search] must be a table of ranges, not {search!r}")
    spec = RLAgentSpec(
        **fields, hyperparams=_sections(doc.get("hyperparams", {}), where), search=dict(search)
    )
    algorithm_class(spec.algorithm)
    for section, hp in spec.hyperparams.items():
        check_hyperparams(spec.algorithm, spec.policy, hp, f"{where} [hyperparams.{section}]")
    _check_search(spec, where)
    return spec


def _sections(hyperparams: Any, where: str) -> dict[str, dict[str, Any]]:
    """The ``[hyperparams.*]`` tables; sections must be ``default`` or registered env ids."""
    if not isinstance(hyperparams, Mapping):
        raise ConfigError(f"{where}: hyperparams must be a table of sections")
    valid = [DEFAULT_SECTION, *closedloop_ids()]
    for section, table in hyperparams.items():
        if section not in valid:
            raise ConfigError(
                f"{where}: [hyperparams.{section!r}] is unknown; valid sections: {', '.join(valid)}"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [hyperparams.{section}] must be a table")
    return {k: dict(v) for k, v in hyperparams.items()}


def _check_search(spec: RLAgentSpec, where: str) -> None:
    """Each search entry names a hyperparameter and gives low/high (and log) or choices."""
    if not isinstance(spec.search, Mapping):
        raise ConfigError(f"{where}: [search] must be a table of ranges")
    valid = valid_hyperparams(spec.algorithm) + [
        f"policy_kwargs.{k}" for k in valid_policy_kwargs(spec.algorithm, spec.policy)
    ]
    for key, rng in spec.search.items():
        if key not in valid:
            raise ConfigError(
                f"{where}: [search] key {key!r} is not a hyperparameter of "
                f"{spec.algorithm}; valid: {', '.join(valid)}"
            )
        check_search_range(key, rng, rules.rule_for(key, spec.on_policy), where)


RANGES_PREFIX = "search-ranges-"
"""File-name prefix of the hyperparameter search ranges in ``agents/rl/`` (``closedloop
hpsearch --ranges``): valid specs, but not agents, so not listed or loaded by name."""


def _spec_files(folder: Path | None = None) -> dict[str, Path]:
    """RL agent specs in ``agents/rl/`` (or ``folder``) by file stem; search ranges left out."""
    folder = spec_dir("agents") / "rl" if folder is None else folder
    return {
        p.stem: p for p in sorted(folder.glob("*.toml")) if not p.stem.startswith(RANGES_PREFIX)
    }


def list_rl_agents(folder: Path | None = None) -> list[str]:
    """Names of the RL agent specs in ``agents/rl/`` (or ``folder``), sorted."""
    return sorted(_spec_files(folder))


def load_rl_spec(name_or_path: str | Path, folder: Path | None = None) -> RLAgentSpec:
    """The spec called ``name`` in ``agents/rl/`` (or ``folder``), or a spec file's path.

    Raises:
        ConfigError: If no spec has that name (the message lists the valid names), or the spec
            is malformed.
    """
    files = _spec_files(folder)
    if not isinstance(name_or_path, (str, Path)):
        raise ConfigError(
            f"agent={name_or_path!r} must be a spec name ({', '.join(files)}), a "
            "spec file path or an RLAgentSpec"
        )
    path = Path(name_or_path)
    if str(name_or_path) in files:
        path = files[str(name_or_path)]
    elif path.suffix != ".toml" or not path.is_file():
        raise ConfigError(
            f"agent={str(name_or_path)!r} is unknown; valid: "
            f"{', '.join(sorted(files))} or a path to a spec .toml file"
        )
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: malformed TOML: {exc}") from exc
    return parse_rl_spec(doc, path.name)
