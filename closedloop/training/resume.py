"""What a checkpoint holds beyond SB3's files, so that a resumed run continues bit for bit.

SB3's ``model.zip`` holds the weights, the optimizers, the counters (``num_timesteps``,
``_n_updates``, ``_episode_num``, the schedules' progress) and ``_last_obs`` /
``_last_episode_starts`` / ``_last_original_obs``; ``replay_buffer.pkl`` holds an off-policy
algorithm's transitions. What the continuation also depends on is written to
``resume.pkl`` (:data:`RESUME_FILE`) by :func:`capture` and put back by :func:`restore`:

* the global random states of Python's ``random``, NumPy and torch (minibatch order, replay
  sampling, action noise, the policy's sampled actions);
* the model's action and observation spaces with their generators (SAC and TD3 sample the
  action space before ``learning_starts``);
* the whole training env stack: ``VecNormalize`` (statistics, the discounted ``returns`` of
  reward normalisation, its ``training`` flag), ``VecMonitor`` (the running episodes), and the
  vector env itself (every patient's fibre state, trace, clock, history, autoreset flags and
  random generators), pickled with the wrappers' own attributes;
* RecurrentPPO's LSTM states (``_last_lstm_states``, which SB3 does not save);
* with gSDE exploration (``use_sde``), the exploration matrices: SB3 draws them at the start of
  a rollout, before the checkpoint, so the resumed run takes the saved ones instead of drawing
  again (:func:`restore`).

A checkpoint is taken at the start of a rollout (after the previous update), so no rollout
buffer is pending.
"""

from __future__ import annotations

import contextlib
import inspect
import pickle
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

RESUME_FILE = "resume.pkl"
_NOT_PICKLED = ("venv", "class_attributes")
"""Wrapper attributes rebuilt on restore (the wrapped env; a dict of class members)."""


def rng_state() -> dict[str, Any]:
    """The global random states of Python, NumPy and torch."""
    import torch

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back global random states saved by :func:`rng_state`."""
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


@contextlib.contextmanager
def isolated_rng() -> Iterator[None]:
    """Run a block (e.g. a validation) without consuming the training's global random draws."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


def env_stack_state(env: Any) -> dict[str, Any]:
    """A picklable copy of a VecEnv wrapper stack: each wrapper's attributes and the base env.

    Args:
        env: The outermost wrapper (``VecNormalize`` of the training env).
    """
    from stable_baselines3.common.vec_env import VecEnvWrapper

    wrappers = []
    while isinstance(env, VecEnvWrapper):
        attrs = {k: v for k, v in vars(env).items() if k not in _NOT_PICKLED}
        wrappers.append((type(env), attrs))
        env = env.venv
    return {"wrappers": wrappers, "base": env}


def rebuild_env_stack(state: dict[str, Any]) -> Any:
    """The wrapper stack saved by :func:`env_stack_state`, in the state it was saved in."""
    env = state["base"]
    for cls, attrs in reversed(state["wrappers"]):
        wrapper = cls.__new__(cls)
        wrapper.__dict__.update(attrs)
        wrapper.venv = env
        wrapper.class_attributes = dict(inspect.getmembers(cls))
        env = wrapper
    return env


def capture(model: Any, norm: Any) -> bytes:
    """Pickle what a continuation needs besides SB3's files (see the module docstring).

    One pickle, so that objects shared between the model and the env (the action space)
    stay shared.

    Args:
        model: The SB3 model, between rollouts.
        norm: Its training env (``VecNormalize``).
    """
    state = {
        "rng": rng_state(),
        "env": env_stack_state(norm),
        "action_space": model.action_space,
        "observation_space": model.observation_space,
        "lstm_states": getattr(model, "_last_lstm_states", None),
        "sde": _sde_noise(model),
    }
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def load_env(path: Path) -> tuple[Any, dict[str, Any]]:
    """The training env saved in ``path`` (a ``resume.pkl``) and the rest of its state."""
    with open(path, "rb") as fh:
        state = pickle.load(fh)
    return rebuild_env_stack(state.pop("env")), state


def restore(model: Any, state: dict[str, Any]) -> None:
    """Put the model's spaces, LSTM states and the global random states back.

    Call after ``load`` and ``set_env`` (SB3 reseeds the globals and spaces while loading).

    Args:
        model: The loaded SB3 model, with the env of :func:`load_env` set.
        state: The rest of the state :func:`load_env` returned.
    """
    model.action_space = state["action_space"]
    model.observation_space = state["observation_space"]
    if state["lstm_states"] is not None:
        model._last_lstm_states = state["lstm_states"]
    if state.get("sde") is not None:
        _set_sde_noise(model, state["sde"])
    set_rng_state(state["rng"])


def _sde_holder(model: Any) -> Any:
    """The module whose ``reset_noise`` SB3 calls at a rollout's start (gSDE), or None."""
    if not getattr(model, "use_sde", False):
        return None
    return getattr(model, "actor", None) or model.policy  # off-policy: the actor


def _sde_noise(model: Any) -> dict[str, Any] | None:
    """The current gSDE exploration matrices and their distribution (detached), or None."""
    holder = _sde_holder(model)
    if holder is None:
        return None
    dist = holder.action_dist
    return {
        "loc": dist.weights_dist.loc.detach(),
        "scale": dist.weights_dist.scale.detach(),
        "exploration_mat": dist.exploration_mat.detach(),
        "exploration_matrices": dist.exploration_matrices.detach(),
    }


def _set_sde_noise(model: Any, noise: dict[str, Any]) -> None:
    """Put saved gSDE matrices back; the rollout's first ``reset_noise`` keeps them.

    In the checkpointed run that call came before the checkpoint (its draws are already in the
    saved torch state), so the resumed run must not draw again.
    """
    from torch.distributions import Normal

    holder = _sde_holder(model)
    dist = holder.action_dist
    dist.weights_dist = Normal(noise["loc"], noise["scale"])
    dist.exploration_mat = noise["exploration_mat"]
    dist.exploration_matrices = noise["exploration_matrices"]

    def keep_once(*args: Any, **kwargs: Any) -> None:
        del holder.reset_noise  # later calls draw again (the class's method)

    holder.reset_noise = keep_once
