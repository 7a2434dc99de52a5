"""SB3 callbacks of a training run: clinical metrics, periodic actions, progress, time budget.

* :class:`ClinicalMetricsCallback` aggregates the per-step ground truth of the training patients
  into ``clinical/*`` logger keys (TensorBoard and CSV).
* :class:`PeriodicCallback` calls a function every ``every`` env steps, at the start of a
  rollout: after the previous rollout's update, when the model, the normalisation and (for
  on-policy algorithms) the step count are consistent. Checkpoints and validation use it.
* :func:`progress_callback` is SB3's rich progress bar, or a plain tqdm bar without rich.
* :class:`WallClockBudget` stops training after a wall-clock budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

CLINICAL_KEYS = {
    "clinical/time_in_window": "fraction of steps with 1 <= sensation < discomfort (1)",
    "clinical/overstim_rate": "fraction of steps with a pulse above discomfort (1)",
    "clinical/mean_rel_error": "mean |ECAP_true - target| / target (1)",
    "clinical/charge_per_pulse_uc": "mean charge per phase per pulse (µC)",
    "clinical/current_ma": "mean delivered current (mA)",
}
"""Logger key -> meaning with unit, over the training patients' steps since the last record."""


class ClinicalMetricsCallback(BaseCallback):
    """Log the clinical metrics of the training rollouts (``clinical/*``, :data:`CLINICAL_KEYS`).

    The infos carry ``ecap_true_uv``, ``in_window``, ``overstim``, ``charge_uc`` and
    ``current_ma`` (:data:`closedloop.training.env.INFO_KEYS`); the target (µV) is entry
    ``target_index`` (``3 * history``) of the raw observation the step's action was taken on.

    On-policy algorithms record the means over each rollout at its end, into the row SB3 dumps
    after it. Off-policy algorithms dump rarely (every few episodes), so the callback records and
    dumps itself every ``log_every`` env steps, with ``time/fps`` and ``rollout/ep_rew_mean``.

    Args:
        log_every: Off-policy: env steps (summed over the parallel patients) between dumps.
        target_index: Index of the target in the observation.
    """

    def __init__(self, log_every: int = 10_000, target_index: int = -1) -> None:
        super().__init__()
        self.log_every = int(log_every)
        self.target_index = int(target_index)
        self._sums = np.zeros(len(CLINICAL_KEYS))
        self._count = 0
        self._target: np.ndarray | None = None
        self._next = self._last_steps = 0
        self._last_time = 0.0
        self._dump = False

    def _on_training_start(self) -> None:
        from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

        self._dump = not isinstance(self.model, OnPolicyAlgorithm)
        self._target = self._raw_obs()[:, self.target_index].copy()
        self._next = self.num_timesteps + self.log_every
        self._last_steps, self._last_time = self.num_timesteps, time.perf_counter()

    def _raw_obs(self) -> np.ndarray:
        env = self.training_env
        return env.get_original_obs() if hasattr(env, "get_original_obs") else self.model._last_obs

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        rows = np.array(
            [
                (i["in_window"], i["overstim"], i["ecap_true_uv"], i["charge_uc"], i["current_ma"])
                for i in infos
            ],
            dtype=np.float64,
        )
        rows[:, 2] = np.abs(rows[:, 2] - self._target) / self._target
        self._sums += rows.sum(axis=0)
        self._count += len(infos)
        self._target = self._raw_obs()[:, self.target_index].copy()
        if self._dump and self.num_timesteps >= self._next:
            self._dump_now()
        return True

    def _dump_now(self) -> None:
        """Off-policy: record clinical metrics, speed and episode returns, and dump."""
        now = time.perf_counter()
        self._record()
        log = self.logger
        log.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        log.record(
            "time/fps",
            int((self.num_timesteps - self._last_steps) / max(now - self._last_time, 1e-9)),
        )
        episodes = self.model.ep_info_buffer
        if episodes:
            log.record("rollout/ep_rew_mean", float(np.mean([e["r"] for e in episodes])))
        log.dump(self.num_timesteps)
        self._last_steps, self._last_time = self.num_timesteps, now
        self._next = self.num_timesteps + self.log_every

    def _on_rollout_end(self) -> None:
        if not self._dump:
            self._record()

    def _record(self) -> None:
        if self._count:
            for key, value in zip(CLINICAL_KEYS, self._sums / self._count, strict=True):
                self.logger.record(key, float(value))
        self._sums[:] = 0.0
        self._count = 0


class PeriodicCallback(BaseCallback):
    """Call ``fn(num_timesteps)`` at the first rollout start at or after every ``every`` steps.

    Args:
        every: Period in env steps (summed over the parallel patients); 0 disables it.
        fn: The function to call.
    """

    def __init__(self, every: int, fn: Callable[[int], None]) -> None:
        super().__init__()
        self.every = int(every)
        self.fn = fn
        self._next = 0

    def _on_training_start(self) -> None:
        if self.every:
            self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        if self.every and self.num_timesteps >= self._next:
            self.fn(self.num_timesteps)
            self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        return True


class WallClockBudget(BaseCallback):
    """Stop training once ``budget_s`` seconds of wall-clock time have passed (0: never)."""

    def __init__(self, budget_s: float) -> None:
        super().__init__()
        self.budget_s = float(budget_s)
        self.stopped = False
        self._start = time.perf_counter()

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()

    def _on_step(self) -> bool:
        if self.budget_s and time.perf_counter() - self._start >= self.budget_s:
            self.stopped = True
            return False
        return True


class TqdmProgressCallback(BaseCallback):
    """A plain tqdm progress bar in env steps (when rich is not installed)."""

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.pbar = tqdm(
            total=self.locals["total_timesteps"] - self.model.num_timesteps,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
        )

    def _on_step(self) -> bool:
        self.pbar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.pbar.close()


def progress_callback() -> BaseCallback:
    """SB3's progress bar (needs tqdm and rich), else :class:`TqdmProgressCallback`."""
    from stable_baselines3.common.callbacks import ProgressBarCallback

    try:
        return ProgressBarCallback()
    except ImportError:
        return TqdmProgressCallback()
