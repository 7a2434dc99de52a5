"""Declared type and valid range of every RL hyperparameter a spec, ``--set`` or a search may set.

stable-baselines3 and torch check few of their arguments, and late: ``learning_rate=-1`` fails
inside torch's optimiser, ``n_steps=0`` as an ``AssertionError``, ``batch_size="abc"`` as a
``TypeError`` at the first update, and some values (``gradient_steps=0``, ``n_epochs=2.5``) are
accepted and silently wrong. Every key an RL spec may set is therefore declared here with a
:class:`Rule`, and :func:`check` raises :class:`~closedloop.ConfigError` naming the key and its
valid type and range before anything is built.

The keys a spec may set for an algorithm are the declared keys that are also arguments of the
algorithm's constructor (:data:`HYPERPARAMS`, plus ``action_noise_sigma`` off-policy) or of its
policy (:data:`POLICY_KWARGS`). Undeclared constructor arguments (buffer classes and their
kwargs, ``optimize_memory_usage``, feature-extractor and optimiser classes) are not offered.
Ranges are the values for which SB3 runs and the value means what its name says; the upper
bounds refuse sizes that would not fit in memory or time (e.g. ``buffer_size`` at most 10
million transitions).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

from closedloop._config import ConfigError, range_text

ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu")
"""Names of ``policy_kwargs.activation_fn`` (torch.nn modules)."""
TRAIN_FREQ_UNITS = ("step", "episode")


@dataclasses.dataclass(frozen=True)
class Rule:
    """Type and valid range of one hyperparameter.

    Attributes:
        kind: ``int``, ``float``, ``bool``, ``choice`` (one of ``words``), ``schedule`` (a float
            or ``"lin_<float>"``, a linear decay to 0), ``freq`` (an int or ``[int, "step" |
            "episode"]``) or ``net_arch`` (a list of layer widths, or a table of such lists).
        lo: Lowest valid number (inclusive unless ``lo_open``), or None.
        hi: Highest valid number (inclusive), or None.
        lo_open: Whether ``lo`` itself is excluded.
        words: Strings also accepted (``"auto"``; ``"auto_<float>"`` too for ``ent_coef``).
        also: Numbers accepted outside the range (``gradient_steps = -1``).
    """

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    words: tuple[str, ...] = ()
    also: tuple[int, ...] = ()

    def text(self) -> str:
        """The valid values, e.g. ``an integer in [1, 1e+06]``."""
        rng = range_text({"lo": self.lo, "hi": self.hi, "lo_open": self.lo_open})
        kinds = {
            "int": f"an integer in {rng}",
            "float": f"a finite number in {rng}",
            "bool": "true or false",
            "table": "a table of key = value",
            "choice": "one of " + ", ".join(self.words),
            "schedule": f"a number in {rng} or 'lin_<number>'",
            "freq": f"an integer in {rng} or [integer, 'step' | 'episode']",
            "net_arch": f"a list of integers in {rng} (at most 16), or a table of such lists",
        }
        extra = [str(a) for a in self.also] + [repr(w) for w in self.words if self.kind != "choice"]
        return kinds[self.kind] + "".join(f" or {e}" for e in extra)


def _int(lo: float, hi: float, **kw) -> Rule:
    return Rule("int", lo, hi, **kw)


def _float(lo: float, hi: float, **kw) -> Rule:
    return Rule("float", lo, hi, **kw)


BOOL = Rule("bool")
HYPERPARAMS: Mapping[str, Rule] = {
    "learning_rate": Rule("schedule", 0.0, 1.0, lo_open=True),
    "n_steps": _int(1, 1_000_000),
    "batch_size": _int(2, 1_000_000),
    "n_epochs": _int(1, 1000),
    "gamma": _float(0.0, 1.0),
    "gae_lambda": _float(0.0, 1.0),
    "clip_range": Rule("schedule", 0.0, 1.0, lo_open=True),
    "clip_range_vf": Rule("schedule", 0.0, 1e6, lo_open=True),
    "normalize_advantage": BOOL,
    "ent_coef": _float(0.0, 10.0),
    "vf_coef": _float(0.0, 100.0),
    "max_grad_norm": _float(0.0, 1e6, lo_open=True),
    "use_sde": BOOL,
    "sde_sample_freq": _int(-1, 1_000_000),
    "target_kl": _float(0.0, 10.0, lo_open=True),
    "stats_window_size": _int(1, 1_000_000),
    "rms_prop_eps": _float(0.0, 1.0, lo_open=True),
    "use_rms_prop": BOOL,
    "buffer_size": _int(1, 10_000_000),
    "learning_starts": _int(0, 1_000_000_000),
    "tau": _float(0.0, 1.0, lo_open=True),
    "train_freq": Rule("freq", 1, 1_000_000),
    "gradient_steps": _int(1, 1000, also=(-1,)),
    "target_update_interval": _int(1, 1_000_000),
    "target_entropy": _float(-1000.0, 1000.0, words=("auto",)),
    "use_sde_at_warmup": BOOL,
    "policy_delay": _int(1, 1000),
    "target_policy_noise": _float(0.0, 10.0),
    "target_noise_clip": _float(0.0, 10.0),
    "action_noise_sigma": _float(0.0, 10.0),
    "policy_kwargs": Rule("table"),
}
"""Constructor arguments of PPO, A2C, SAC, TD3 and RecurrentPPO that a spec may set."""
OFF_POLICY_RULES: Mapping[str, Rule] = {
    "ent_coef": _float(0.0, 10.0, words=("auto",)),
    "n_steps": _int(1, 1000),
}
"""Off-policy meanings that differ: SAC's ``ent_coef`` may be learnt, ``n_steps`` is n-step."""
POLICY_KWARGS: Mapping[str, Rule] = {
    "net_arch": Rule("net_arch", 1, 4096),
    "activation_fn": Rule("choice", words=ACTIVATIONS),
    "ortho_init": BOOL,
    "log_std_init": _float(-20.0, 5.0),
    "full_std": BOOL,
    "use_expln": BOOL,
    "squash_output": BOOL,
    "share_features_extractor": BOOL,
    "clip_mean": _float(0.0, 100.0, lo_open=True),
    "n_critics": _int(1, 10),
    "lstm_hidden_size": _int(1, 4096),
    "n_lstm_layers": _int(1, 16),
    "shared_lstm": BOOL,
    "enable_critic_lstm": BOOL,
}
"""Policy keyword arguments a spec may set (those the algorithm's policy accepts)."""
MAX_LAYERS = 16


def rule_for(key: str, on_policy: bool) -> Rule:
    """The rule of hyperparameter ``key`` (``policy_kwargs.<k>`` for a policy argument)."""
    head, _, sub = key.partition(".")
    if head == "policy_kwargs" and sub:
        return POLICY_KWARGS[sub]
    if not on_policy and key in OFF_POLICY_RULES:
        return OFF_POLICY_RULES[key]
    return HYPERPARAMS[key]


def check(name: str, value: Any, rule: Rule) -> Any:
    """Raise ConfigError naming ``name`` unless ``value`` satisfies ``rule``; the value."""
    if not _ok(value, rule):
        raise ConfigError(f"{name}={value!r} is invalid; valid: {rule.text()}")
    return value


def _ok(value: Any, rule: Rule) -> bool:
    """Whether ``value`` satisfies ``rule``."""
    if isinstance(value, str):
        return _word_ok(value, rule)
    if rule.kind in ("bool", "table"):
        return isinstance(value, bool if rule.kind == "bool" else Mapping)
    if rule.kind == "choice":
        return False
    if rule.kind == "freq" and isinstance(value, (list, tuple)):
        return (
            len(value) == 2
            and _number_ok(value[0], rule, integer=True)
            and value[1] in TRAIN_FREQ_UNITS
        )
    if rule.kind == "net_arch":
        return _net_arch_ok(value, rule)
    return _number_ok(value, rule, integer=rule.kind in ("int", "freq"))


def _word_ok(value: str, rule: Rule) -> bool:
    """A string value: one of the rule's words, ``auto_<x>``, or ``lin_<x>`` for a schedule."""
    if rule.kind == "choice" or value in rule.words:
        return value in rule.words
    prefix = "lin_" if rule.kind == "schedule" else "auto_" if "auto" in rule.words else None
    if prefix is None or not value.startswith(prefix):
        return False
    try:
        start = float(value.removeprefix(prefix))
    except ValueError:
        return False
    return _number_ok(start, rule, integer=False)


def _number_ok(value: Any, rule: Rule, integer: bool) -> bool:
    """A number of the rule's type inside its range (or one of ``also``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if integer and not isinstance(value, numbers.Integral):
        return False
    if not math.isfinite(value):
        return False
    if value in rule.also:
        return True
    low_ok = rule.lo is None or value > rule.lo or (value == rule.lo and not rule.lo_open)
    return low_ok and (rule.hi is None or value <= rule.hi)


def _net_arch_ok(value: Any, rule: Rule) -> bool:
    """A list of layer widths, or a table of such lists (``{pi = [...], vf = [...]}``)."""
    if isinstance(value, Mapping):
        return bool(value) and all(
            isinstance(k, str) and _net_arch_ok(v, rule) and not isinstance(v, Mapping)
            for k, v in value.items()
        )
    return (
        isinstance(value, (list, tuple))
        and len(value) <= MAX_LAYERS
        and all(_number_ok(w, rule, integer=True) for w in value)
    )


def net_arch_keys(on_policy: bool) -> tuple[str, ...]:
    """Keys of a ``net_arch`` table: actor and value net (on-policy) or Q nets (off-policy)."""
    return ("pi", "vf") if on_policy else ("pi", "qf")


def check_policy_kwargs(
    pk: Mapping[str, Any], valid: list[str], on_policy: bool, where: str
) -> None:
    """Raise ConfigError naming the key of ``pk`` that is unknown or malformed.

    Args:
        pk: The ``policy_kwargs`` table.
        valid: Keys the algorithm's policy accepts.
        on_policy: Whether the algorithm is on-policy (``net_arch`` table keys).
        where: Context for the messages (spec file and section).
    """
    known = sorted(k for k in valid if k in POLICY_KWARGS)
    unknown = sorted(set(pk) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown policy_kwargs key(s) {', '.join(unknown)} in {where}; "
            f"valid: {', '.join(known)}"
        )
    for key, value in pk.items():
        check(f"{where}: policy_kwargs.{key}", value, POLICY_KWARGS[key])
    arch = pk.get("net_arch")
    keys = net_arch_keys(on_policy)
    if isinstance(arch, Mapping) and set(arch) - set(keys):
        raise ConfigError(
            f"{where}: policy_kwargs.net_arch={dict(arch)!r} has unknown key(s) "
            f"{', '.join(sorted(set(arch) - set(keys)))}; valid: "
            f"{', '.join(keys)}"
        )
    if pk.get("shared_lstm") and pk.get("enable_critic_lstm", True):
        raise ConfigError(
            f"{where}: policy_kwargs.shared_lstm=true needs "
            "enable_critic_lstm=false (the critic shares the actor's LSTM)"
        )


def check_combination(hp: Mapping[str, Any], where: str) -> None:
    """Raise ConfigError for values that are valid alone but not together."""
    pk = hp.get("policy_kwargs", {})
    if pk.get("squash_output") and not hp.get("use_sde"):
        raise ConfigError(f"{where}: policy_kwargs.squash_output=true needs use_sde=true")
