"""The checks of an episode's inputs: env id, seed, patient and env overrides.

Every entry point that plays episodes (:func:`closedloop.evaluation.run_episode`,
:func:`~closedloop.evaluation.run_episodes`, the grid and the CLI) checks its inputs here, so a
bad one is refused with the same :class:`~closedloop.ConfigError` everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from closedloop._config import ConfigError, is_integer, short_repr
from closedloop._io import check_memory
from closedloop.disturbances import load_scenario
from closedloop.envs.config import load_suite, with_overrides
from closedloop.evaluation.trajectory import BYTES_PER_PULSE
from closedloop.patients.cohort import get_patient

FIXED_KEYS = ("patient",)
"""Env keyword arguments the runner sets itself (not allowed in ``env_overrides``)."""


MAX_SEED = 2**63 - 1
"""Largest episode seed (a signed 64-bit integer)."""


def check_env_id(env_id: Any, name: str = "env_id") -> str:
    """``env_id`` if it is one of the closedloop ids; ConfigError listing them otherwise.

    Ids registered by other packages (``CartPole-v1``) are refused too: the runner plays
    closedloop envs only.
    """
    valid = sorted(load_suite())
    if not isinstance(env_id, str) or env_id not in valid:
        raise ConfigError(f"{name}={short_repr(env_id)} is unknown; valid: {', '.join(valid)}")
    return env_id


def check_seed(seed: Any, name: str = "seed") -> int:
    """The seed as an int in [0, :data:`MAX_SEED`]; ConfigError naming ``name`` otherwise."""
    if not is_integer(seed) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(
            f"{name}={short_repr(seed)} is invalid; valid: an integer >= 0 (at most 2**63 - 1)"
        )
    return int(seed)


def check_patient(patient_id: Any, name: str = "patient") -> str:
    """``patient_id`` if it names a patient; ConfigError prefixed ``name`` otherwise.

    A documented subclass (:class:`~closedloop.patients.cohort.HeldOutError`) propagates as it is.
    """
    try:
        get_patient(patient_id)
    except ConfigError as exc:
        if type(exc) is not ConfigError:
            raise
        raise ConfigError(f"{name}: {exc}") from None
    return patient_id


def check_env_overrides(env_id: str, overrides: Any) -> dict[str, Any]:
    """``overrides`` as a dict if ``gymnasium.make(env_id, **overrides)`` accepts them.

    Checks everything a make would (every key and value, the ``reward`` and ``device``
    tables, the scenario id) without building the env, so that a grid is refused before any
    episode runs or any file is written.

    Raises:
        ConfigError: Naming the bad key or value and what is valid.
    """
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f"env_overrides={short_repr(overrides)} must be a table of "
            "gymnasium.make keywords, e.g. {episode_s = 20}"
        )
    bad = sorted(repr(k) for k in overrides if not isinstance(k, str))
    fixed = sorted(set(overrides) & set(FIXED_KEYS))
    if bad or fixed:
        raise ConfigError(
            f"env_overrides key(s) {', '.join(bad + fixed)} are invalid: keys "
            "must be strings, and the runner sets the patient itself"
        )
    spec = load_suite()[check_env_id(env_id)]
    try:
        cfg = with_overrides(spec, overrides).config
    except ConfigError as exc:
        raise ConfigError(f"env_overrides: {exc}") from None
    load_scenario(cfg.scenario, duration_s=cfg.episode_s)
    n_pulses = cfg.episode_s * cfg.rate_hz
    check_memory(
        f"{env_id} with episode_s={cfg.episode_s:g} at rate_hz={cfg.rate_hz:g} "
        f"({n_pulses:.3g} pulses)",
        n_pulses * BYTES_PER_PULSE,
        "shorten episode_s",
    )
    return dict(overrides)
