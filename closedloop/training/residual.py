"""Residual RL: a policy that corrects a classical controller's current, and what it observes.

A residual agent (``[residual]`` in an RL spec, ``agents/rl/residual-ppo.toml``) does not choose
the current itself. At each step its base controller (by default the clinical loop) asks for a
current ``I_base``; the agent's action ``a`` in [-1, 1] adds a correction::

    I = I_base + a * scale * comfort_ma

and the env receives the action that asks for ``I`` (the base's action mapping, so the device
limits and the action mode are the env's). The base keeps integrating from the current that
was delivered, so a correction held for a few steps moves the operating point (e.g. lower in the
therapeutic window, where less charge is spent) and a single large one answers a jump at once.

The agent observes the env's observation followed by :data:`FEATURES`, computed from what the
device itself knows: its own measurements (ECAP, detection, delivered current) and the
clinician's calibration at programming (comfort current, limits, the ECAP at perception and at
discomfort in the reference posture). Never ground truth.

:class:`Residual` holds the base controller over many episodes at once (rows); training wraps
the native vector env with :class:`~closedloop.training.residual_env.ResidualVecEnv`,
evaluation plays a trained agent as :class:`ResidualPolicy`. Both call the same
:meth:`Residual.observe` and :meth:`Residual.act`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from closedloop._config import ConfigError, from_dict, param, validate
from closedloop.controllers.base import ControlContext, Controller

FEATURES = (
    "base_step_rel",  # (I_base - I_delivered) / comfort_ma: what the base asks for
    "current_rel",  # I_delivered / comfort_ma
    "ecap_rel",  # newest measured ECAP / target
    "target_over_perception",  # target / ECAP at perception (reference posture)
    "discomfort_over_target",  # ECAP at discomfort (reference posture) / target
    "max_over_comfort",  # clinician upper limit / comfort_ma
    "since_jump",  # time since the last jump of the measured ECAP / JUMP_MEMORY_S, at most 1
    "undetected",  # time since the last detected ECAP / UNDETECTED_MEMORY_S, at most 1
)
"""Features appended to the env's observation, in order (dimensionless)."""
JUMP_MEMORY_S = 10.0
"""Time since the last jump is clipped here (s)."""
UNDETECTED_MEMORY_S = 2.0
"""Time without a detected ECAP is clipped here (s; the clinical loop falls back after 1 s)."""


@dataclasses.dataclass(frozen=True)
class ResidualParams:
    """The ``[residual]`` table of an RL spec."""

    base: str = param(
        "clinical-loop", "text", "issue 22", doc="registered controller the agent corrects"
    )
    scale: float = param(
        0.1,
        "1",
        "design choice",
        0.0,
        10.0,
        lo_open=True,
        doc="correction at action ±1, as a fraction of the comfort current",
    )
    scale_up: float = param(
        0.0,
        "1",
        "design choice (issue 22: where the ECAP is detected only near discomfort, a fast "
        "rise skips the band in which the device could see it coming)",
        0.0,
        10.0,
        doc="positive correction at action +1, as a fraction of the comfort current (the base "
        "integrates from the delivered current, so this caps the agent's rise per step); "
        "0: the same as scale",
    )
    guard_rel: float = param(
        0.0,
        "1",
        "design choice (issue 22: the narrow-margin patients' overstimulation)",
        0.0,
        10.0,
        doc="no positive correction while the newest measured ECAP is at or above this "
        "fraction of the calibrated discomfort ECAP (reference posture); 0: no guard",
    )
    jump_rel: float = param(
        0.3,
        "1",
        "design choice: a posture step moves the ECAP by tens of % [M]",
        0.0,
        10.0,
        lo_open=True,
        doc="a step-to-step change of the measured ECAP above this fraction of the target "
        "counts as a jump",
    )

    def __post_init__(self) -> None:
        validate(self, "residual.")

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> ResidualParams | None:
        """The params of a spec's ``[residual]`` table (None or empty: not residual)."""
        if not table:
            return None
        if isinstance(table, ResidualParams):
            return table
        return from_dict(cls, table, "[residual]")


def _reference(cal) -> Any:
    """The calibration's record of its reference posture (else its first one)."""
    for rec in cal.postures:
        if rec.posture == cal.reference_posture:
            return rec
    return cal.postures[0]


class Residual:
    """The base controller of a residual agent over N episodes, and its features.

    Args:
        params: The ``[residual]`` table.
    """

    def __init__(self, params: ResidualParams) -> None:
        from closedloop.controllers.registry import make_controller

        self.params = params
        self.base = make_controller(params.base)
        if not getattr(self.base, "batch_ready", False):
            raise ConfigError(
                f"residual.base={params.base!r} must be a batch controller (a registered "
                "controller with numba kernels, e.g. clinical-loop or pid)"
            )
        self._want = self._previous = np.zeros(0)

    def reset_many(self, contexts: Sequence[ControlContext]) -> None:
        """Start one episode per context."""
        self.base.reset_many(contexts)
        n = len(contexts)
        self._static = np.zeros((n, 5))
        self._ecap = np.zeros(n)
        self._since, self._undetected = np.zeros(n), np.zeros(n)
        self._last = np.full(n, np.nan)
        self._want, self._previous = np.zeros(n), np.zeros(n)
        for i, ctx in enumerate(contexts):
            self._set_row(i, ctx)

    def reset_row(self, row: int, context: ControlContext) -> None:
        """Start a new episode in one row (a training sub-env that restarted)."""
        self.base.reset_row(row, context)
        self._set_row(row, context)

    def _set_row(self, i: int, ctx: ControlContext) -> None:
        cal, ref = ctx.calibration, _reference(ctx.calibration)
        comfort = max(float(cal.comfort_ma), 1e-3)
        self._static[i] = (
            comfort,
            ctx.target_uv / max(float(ref.perception_ecap_uv), 1e-3),
            float(ref.discomfort_ecap_uv) / ctx.target_uv,
            float(cal.max_ma) / comfort,
            float(ref.discomfort_ecap_uv),
        )
        self._since[i], self._last[i] = JUMP_MEMORY_S, np.nan
        self._undetected[i] = 0.0

    def observe(self, obs: Any, rows: Any = None) -> np.ndarray:
        """The agent's observations (M, D + len(FEATURES)), float32; the base steps once.

        Args:
            obs: The env's observations (M, D) of the episodes ``rows``.
            rows: Episode indices (None: all, in order).
        """
        x = np.asarray(obs, np.float64)
        r = np.arange(x.shape[0]) if rows is None else np.asarray(rows, np.int64)
        want = self.base.currents_many(x, rows)
        h = self.base.context.history
        ecap, detected, current, target = x[:, 0], x[:, h], x[:, 2 * h], x[:, 3 * h]
        self._want[r], self._previous[r], self._ecap[r] = want, current, ecap
        last = self._last[r]
        jump = (detected >= 0.5) & (np.abs(ecap - last) > self.params.jump_rel * target)
        dt = self.base.context.dt_s
        self._since[r] = np.where(jump, 0.0, np.minimum(self._since[r] + dt, JUMP_MEMORY_S))
        self._last[r] = np.where(detected >= 0.5, ecap, last)
        lost = np.minimum(self._undetected[r] + dt, UNDETECTED_MEMORY_S)
        self._undetected[r] = np.where(detected >= 0.5, 0.0, lost)
        comfort, ratio_p, ratio_d, ratio_max, _ = self._static[r].T
        feats = np.stack(
            [
                (want - current) / comfort,
                current / comfort,
                ecap / target,
                ratio_p,
                ratio_d,
                ratio_max,
                self._since[r] / JUMP_MEMORY_S,
                self._undetected[r] / UNDETECTED_MEMORY_S,
            ],
            axis=1,
        )
        return np.concatenate([x, feats], axis=1).astype(np.float32)

    def act(self, actions: Any, rows: Any = None) -> np.ndarray:
        """The env's actions (M, n_actions) for the agent's ``actions`` (M, >= 1) in [-1, 1]."""
        a = np.clip(np.asarray(actions, np.float64).reshape(len(actions), -1)[:, 0], -1.0, 1.0)
        r = np.arange(a.size) if rows is None else np.asarray(rows, np.int64)
        guard = self.params.guard_rel
        if guard > 0.0:  # near discomfort the agent may only lower the current
            a = np.where(self._ecap[r] >= guard * self._static[r, 4], np.minimum(a, 0.0), a)
        up = self.params.scale_up or self.params.scale
        want = self._want[r] + a * np.where(a > 0.0, up, self.params.scale) * self._static[r, 0]
        return self.base.actions_for(want, self._previous[r], r)


def observation_space(single_space):
    """The agent's observation space: the env's ``Box`` followed by :data:`FEATURES`."""
    import gymnasium as gym

    n = len(FEATURES)
    low = np.r_[single_space.low, np.full(n, -1e3)].astype(np.float32)
    high = np.r_[single_space.high, np.full(n, 1e3)].astype(np.float32)
    return gym.spaces.Box(low, high, dtype=np.float32)


class ResidualPolicy(Controller):
    """A trained residual agent as a controller: its base controller plus its network.

    Args:
        inner: The trained network (:class:`~closedloop.training.policy.TrainedPolicy`) that
            maps the agent's observation to its correction.
        params: The ``[residual]`` table it was trained with.
    """

    name = "residual"

    def __init__(self, inner: Any, params: ResidualParams) -> None:
        super().__init__()
        self.inner, self.residual = inner, Residual(params)
        self.name = getattr(inner, "name", "residual")
        self.card = getattr(inner, "card", {})

    @property
    def batch_ready(self) -> bool:
        """Whether it plays many episodes at once (its network's row kernel does)."""
        return bool(getattr(self.inner, "batch_ready", False))

    def reset(self, context: ControlContext) -> None:
        """Start one episode."""
        super().reset(context)
        self.residual.reset_many([context])
        self.inner.reset(context)

    def reset_many(self, contexts: Sequence[ControlContext]) -> None:
        """Start one episode per context (needs :attr:`batch_ready`)."""
        self.residual.reset_many(contexts)
        self.inner.reset_many(contexts)
        self.context = self.inner.context

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic=True):
        """The env's action for one observation, and the network's recurrent state."""
        if self.context is None:
            raise ConfigError("ResidualPolicy.predict called before reset(context)")
        x = self.residual.observe(np.asarray(obs, np.float64)[None], [0])
        a, state = self.inner.predict(x[0], state, episode_start, deterministic)
        self._tick()
        return self.residual.act(np.asarray(a)[None], [0])[0], state

    def predict_many(self, obs: Any, rows: Any = None) -> np.ndarray:
        """The env's actions (M, n_actions) for the episodes ``rows`` of :meth:`reset_many`."""
        x = self.residual.observe(obs, rows)
        return self.residual.act(self.inner.predict_many(x, rows), rows)
