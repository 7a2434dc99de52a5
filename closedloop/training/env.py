"""The training environment: the native vector env behind SB3's wrappers.

``VecNormalize(VecMonitor(SB3VecEnv(ECAPVectorEnv(n_envs, env_id, **overrides))))``:

* :class:`~closedloop.envs.vector.ECAPVectorEnv` steps every patient in one numba call;
* :class:`~closedloop.envs.sb3.SB3VecEnv` gives it SB3's same-step autoreset, and copies the
  per-step ground truth (``ecap_true_uv``, ``in_window``, ``overstim``, ``charge_uc``) into the
  infos for :class:`~closedloop.training.callbacks.ClinicalMetricsCallback`;
* ``VecMonitor`` records episode returns and lengths (``rollout/ep_rew_mean``);
* ``VecNormalize`` normalises observations and (on-policy) rewards with running statistics. It
  is always present, so that every run saves the same files; with both switches off it only
  passes data through.

Seeds: ``SB3VecEnv.seed(s)`` makes the next reset give sub-env ``i`` the seed ``s + i``; SB3's
``set_random_seed`` calls it, so the algorithm's seed reaches every patient and scenario draw.

Every registered id trains this way (the native vector env serves them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from closedloop._config import ConfigError
from closedloop.envs.config import load_suite, with_overrides
from closedloop.envs.vector import ECAPVectorEnv
from closedloop.evaluation.episode_inputs import check_env_id as check

INFO_KEYS = ("ecap_true_uv", "in_window", "overstim", "current_ma", "charge_uc")
"""Per-step info keys copied into SB3's infos."""


def check_env_id(env_id: str) -> None:
    """Raise ConfigError naming the valid ids unless ``env_id`` is a registered closedloop id."""
    check(env_id)


def make_training_env(
    env_id: str,
    n_envs: int,
    *,
    normalize_obs: bool = True,
    normalize_reward: bool = False,
    gamma: float = 0.99,
    clip_obs: float = 10.0,
    overrides: Mapping[str, Any] | None = None,
    residual: Any = None,
):
    """The wrapped vector env SB3 trains on (see the module docstring).

    Args:
        env_id: A registered closedloop id.
        n_envs: Patients simulated in parallel.
        normalize_obs: Normalise observations.
        normalize_reward: Scale rewards by the running std of the discounted return.
        gamma: Discount of that return (the algorithm's ``gamma``).
        clip_obs: Clip of the normalised observations.
        overrides: ``gymnasium.make`` keyword overrides, e.g. ``{"episode_s": 10.0}`` (s).
        residual: A :class:`~closedloop.training.residual.ResidualParams`: the agent corrects
            that base controller (:class:`~closedloop.training.residual_env.ResidualVecEnv`
            inside the monitor). None: the agent sets the current.

    Returns:
        A ``VecNormalize`` in training mode.
    """
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from closedloop.envs.sb3 import SB3VecEnv

    check_env_id(env_id)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ConfigError(f"n_envs={n_envs!r} is out of range; valid range [1, inf)")
    venv = SB3VecEnv(ECAPVectorEnv(n_envs, env_id, **dict(overrides or {})), INFO_KEYS)
    if residual is not None:
        from closedloop.training.residual_env import ResidualVecEnv

        venv = ResidualVecEnv(venv, residual)
    return VecNormalize(
        VecMonitor(venv),
        norm_obs=normalize_obs,
        norm_reward=normalize_reward,
        clip_obs=clip_obs,
        gamma=gamma,
    )


def env_config(env_id: str, overrides: Mapping[str, Any]):
    """The :class:`~closedloop.envs.config.EnvConfig` of ``env_id`` with ``overrides``."""
    return with_overrides(load_suite()[env_id], dict(overrides)).config


def restore_stats(norm, path) -> None:
    """Copy a saved ``VecNormalize``'s running statistics into ``norm`` (keeping its switches).

    Args:
        norm: The ``VecNormalize`` of the new training env.
        path: A saved ``vecnormalize.pkl``.
    """
    import pickle

    with open(path, "rb") as fh:
        saved = pickle.load(fh)
    norm.obs_rms, norm.ret_rms = saved.obs_rms, saved.ret_rms
