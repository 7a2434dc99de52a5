"""Stable-Baselines3 adapter: SB3 trains on the native vector env without Dummy/SubprocVecEnv.

SB3's ``VecEnv`` resets a finished sub-environment within the same step and returns the final
observation in ``info["terminal_observation"]``; the native env resets on the next step
(Gymnasium 1.x). :class:`SB3VecEnv` converts between the two.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from closedloop._config import ConfigError
from closedloop.envs.step_info import step_columns
from closedloop.envs.vector import INFO_KEYS, ECAPVectorEnv


def dict_rows(keys: tuple):
    """A function ``result -> [dict, ...]``: one dict of the info ``keys`` per sub-env.

    Its argument is a step's result records (:meth:`ECAPVectorEnv.step_records
    <closedloop.envs.vector.ECAPVectorEnv.step_records>`), ``keys`` some of
    :data:`~closedloop.envs.step_info.STEP_KEYS`: one ``tolist`` per key, then a dict per
    sub-env.
    """
    keys = tuple(keys)

    def rows(result: np.ndarray) -> list[dict]:
        if not keys:
            return [{} for _ in range(result.shape[0])]
        columns = [c.tolist() for c in step_columns(result, keys).values()]
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]

    return rows


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over an :class:`~closedloop.envs.vector.ECAPVectorEnv`.

    Args:
        venv: The native vector env.
        info_keywords: Per-step info keys (of :data:`~closedloop.envs.vector.INFO_KEYS`;
            others raise :class:`~closedloop.ConfigError`) copied into each sub-env's info dict
            (for ``VecMonitor(info_keywords=...)``).
    """

    def __init__(
        self,
        venv: ECAPVectorEnv,
        info_keywords=("ecap_true_uv", "in_window", "overstim", "current_ma"),
    ) -> None:
        self.venv = venv
        self.info_keywords = tuple(info_keywords)
        for key in self.info_keywords:
            if key not in INFO_KEYS:
                raise ConfigError(
                    f"info_keywords entry {key!r} is not an info key of the "
                    f"vector env; valid keys: {', '.join(INFO_KEYS)}"
                )
        self._dicts = dict_rows(self.info_keywords)  # maker of the per-env info dicts
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions = None
        self._seed = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dicts": None}  # a closure does not pickle

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._dicts = dict_rows(self.info_keywords)

    def reset(self) -> np.ndarray:
        """Reset every sub-env (seeded by :meth:`seed` if called before)."""
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions for :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self):
        """Step, and reset finished sub-envs at once (SB3 semantics; no env terminates)."""
        venv = self.venv
        result = venv.step_records(self._actions)
        infos = self._dicts(result)
        obs = venv.observations()
        reward, done = result["reward"].astype(np.float32), result["truncated"].copy()
        if any(done.tolist()):  # a sixth of the time of done.any() for a few envs
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = True
                venv.reset_one(int(i))
            obs = venv.observations()
        return obs, reward, done, infos

    def close(self) -> None:
        """Close the native env."""
        self.venv.close()

    def seed(self, seed: int | None = None):
        """Seed the next :meth:`reset` (sub-env ``i`` gets ``seed + i``)."""
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def get_attr(self, attr_name, indices=None):
        """An attribute of each sub-env in ``indices``.

        It is an attribute of what the sub-env's last reset drew (``patient``, ``calibration``,
        ``target_uv``, ``model``: :class:`~closedloop.envs.draw.Draw`) or of its slot
        (``np_random``), else the native env's, which every sub-env shares (``spec_``,
        ``render_mode``, ``metadata``...).
        """
        return [self._owner(i, attr_name)[1] for i in self._get_indices(indices)]

    def _owner(self, i: int, attr_name: str) -> tuple:
        """``(object, value)``: where sub-env ``i``'s attribute ``attr_name`` lives, and it."""
        slot = self.venv.slots[i]
        for obj in (slot.draw, slot):
            if obj is not None and attr_name in getattr(type(obj), "_fields", ()) + ("np_random",):
                return obj, getattr(obj, attr_name)
        return self.venv, getattr(self.venv, attr_name)

    def set_attr(self, attr_name, value, indices=None) -> None:
        """Set a slot's ``np_random``, or an attribute of the native env, for all sub-envs.

        A native env's attribute is shared by every sub-env, so ``indices`` must be all of them.

        Raises:
            ConfigError: For an attribute of an episode's draw (fixed until the next reset), or
                a shared attribute set on some sub-envs only.
        """
        indices = list(self._get_indices(indices))
        if attr_name == "np_random":
            for i in indices:
                self.venv.slots[i].np_random = value
            return
        if self.venv.slots[0].draw is not None and attr_name in self.venv.slots[0].draw._fields:
            raise ConfigError(f"{attr_name!r} is drawn at reset; pass it in reset options")
        if sorted(indices) != list(range(self.num_envs)):
            raise ConfigError(
                f"{attr_name!r} is shared by every sub-env of the native vector env; "
                "set it with indices=None"
            )
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name, *args, indices=None, **kwargs):
        """Call a method of the native env once, and return its result for each sub-env."""
        result = getattr(self.venv, method_name)(*args, **kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None):
        """The sub-environments are never wrapped."""
        return [False for _ in self._get_indices(indices)]
