"""The training side of residual RL: an SB3 ``VecEnvWrapper`` (see :mod:`.residual`)."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper

from closedloop.controllers.base import ControlContext
from closedloop.training.residual import Residual, ResidualParams, observation_space


class ResidualVecEnv(VecEnvWrapper):
    """Residual actions on an :class:`~closedloop.envs.sb3.SB3VecEnv`.

    Its observations are :meth:`Residual.observe <closedloop.training.residual.Residual.observe>`'s
    (the terminal observation of a finished sub-env too), its actions the agent's corrections
    of the base controller's current. Picklable, so that a checkpoint holds it.

    Args:
        venv: The SB3 adapter of the native vector env.
        params: The ``[residual]`` table of the agent's spec.
    """

    def __init__(self, venv, params: ResidualParams) -> None:
        super().__init__(venv, observation_space(venv.observation_space))
        self.residual = Residual(params)
        self._cfg = venv.venv.cfg

    def _context(self, i: int) -> ControlContext:
        cal = self.venv.get_attr("calibration", [i])[0]
        target = self.venv.get_attr("target_uv", [i])[0]
        return ControlContext.from_env(self._cfg, cal, target)

    def reset(self) -> np.ndarray:
        """Reset every sub-env and the base controller's episodes."""
        obs = self.venv.reset()
        self.residual.reset_many([self._context(i) for i in range(self.num_envs)])
        return self.residual.observe(obs)

    def step_async(self, actions: np.ndarray) -> None:
        """Send the actions asking for the base's currents plus the agent's corrections."""
        self.venv.step_async(self.residual.act(actions))

    def step_wait(self):
        """Step; a finished sub-env's base episode restarts with the sub-env's next patient."""
        obs, reward, done, infos = self.venv.step_wait()
        for i in np.flatnonzero(done):
            end = infos[i]["terminal_observation"][None]
            infos[i]["terminal_observation"] = self.residual.observe(end, [int(i)])[0]
            self.residual.reset_row(int(i), self._context(int(i)))
        return self.residual.observe(obs), reward, done, infos
