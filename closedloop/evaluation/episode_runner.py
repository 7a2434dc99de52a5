"""Play one controller through one episode and score the recorded run.

The runner stands apart from controllers and environments (house style, practice 8): it builds
the env, hands the controller a :class:`~closedloop.controllers.ControlContext` (never the env),
plays ``predict``/``step`` until the episode is truncated, records every step into a
:class:`~closedloop.evaluation.trajectory.Trajectory`, and only then computes the clinical metrics,
as pure functions of the recorded arrays (:meth:`Trajectory.metrics`).

What is recorded, one entry per env step:

* ``t_s``: time of the step's first pulse (s), accumulated from ``pulses_per_step / rate``;
* ``ecap_uv`` and ``detected``: what the device measured (the newest observation entries);
* ``ecap_true_uv``, ``sensation``, ``current_ma``, ``charge_uc``, ``csf_mm``, ``posture``,
  ``event``: from the step's ``info``;
* ``impedance_ohm``: the patient's impedance times the scenario's impedance scale.

With ``pulses_per_step == 1`` an entry is exactly one pulse. With more pulses per step, an entry
summarises the step: ``ecap_true_uv``, ``ecap_uv``, ``charge_uc`` and ``detected`` are step
means, ``sensation`` is that of the step's last pulse (what the env reports), and each entry is
weighted by the step's duration. ``frac_recruited`` is not reported by the env and is NaN;
``window_lo_uv``/``window_hi_uv`` are NaN (:func:`closedloop.evaluation.figures.with_window`
measures them for plots).

Scoring starts after the calibration's warm-up (``calibration.warmup_s``): the clinical metrics,
the env return and the device-intervention counts all exclude the warm-up. The clinical metrics
also leave out the env's unscored postures (``EnvConfig.unscored_postures`` and
``unscored_after_s``; prone in the clinic envs), which they score separately as ``unscored_*``:
:func:`score` derives that per-step mask from the trajectory and the env's config, for the
one-episode and the batch path alike.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from closedloop.controllers.base import ControlContext
from closedloop.device import LIMIT_FLAGS, limit_report
from closedloop.evaluation.episode_inputs import (
    check_env_overrides,
    check_seed,
)
from closedloop.evaluation.trajectory import Trajectory
from closedloop.metrics import METRIC_DIRECTION, METRIC_DOCS, clinical_metrics, unscored_mask
from closedloop.patients.postures import posture_code

EXTRA_DOCS: dict[str, str] = {
    "env_return": "sum of the env's step rewards over the scored steps (1)",
    "device_interventions": "scored steps on which a device limit changed the requested "
    "current (count)",
    **{
        f"device_{name}": f"scored steps on which the {name} limit acted (count)"
        for name in LIMIT_FLAGS
    },
}
"""Key -> meaning with unit of the per-episode scores the runner adds to the clinical metrics."""

EPISODE_METRICS: dict[str, str] = {**METRIC_DOCS, **EXTRA_DOCS}
"""Every score of an episode (clinical metrics, then the runner's own), key -> meaning."""

DIRECTION: dict[str, int] = {
    **METRIC_DIRECTION,
    "env_return": 1,
    **dict.fromkeys(list(EXTRA_DOCS)[1:], -1),
}
"""Score key -> +1 (higher is better), -1 (lower is better) or 0 (neutral)."""


@dataclasses.dataclass(frozen=True)
class EpisodeResult:
    """One scored episode.

    Attributes:
        controller: Row label of the controller.
        env_id: Registered Gymnasium id.
        scenario: The env's disturbance scenario.
        patient: Patient id.
        seed: Seed given to ``env.reset``.
        target_uv: Target ECAP of the episode (µV).
        n_steps: Env steps played (including the warm-up).
        metrics: Every key of :data:`EPISODE_METRICS`.
        wall_s: Wall-clock time of the episode, env construction included (s).
        trajectory: The recorded run (not part of :meth:`row`).
    """

    controller: str
    env_id: str
    scenario: str
    patient: str
    seed: int
    target_uv: float
    n_steps: int
    metrics: dict[str, float]
    wall_s: float
    trajectory: Trajectory | None = dataclasses.field(default=None, repr=False, compare=False)

    def row(self) -> dict[str, Any]:
        """The flat result row: identity columns, then the scores, then ``wall_s``."""
        return {
            "controller": self.controller,
            "env_id": self.env_id,
            "scenario": self.scenario,
            "patient": self.patient,
            "seed": self.seed,
            "target_uv": self.target_uv,
            "n_steps": self.n_steps,
            **self.metrics,
            "wall_s": self.wall_s,
        }


def controller_name(controller: Any) -> str:
    """A controller's label: its ``name`` attribute, else its class name."""
    name = getattr(controller, "name", None)
    return name if isinstance(name, str) and name else type(controller).__name__


def run_episode(
    controller: Any,
    env_id: str,
    patient_id: str,
    seed: int,
    env_overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> EpisodeResult:
    """Play ``controller`` through one episode of ``env_id`` and score it.

    Args:
        controller: Anything with ``predict(obs, state, episode_start, deterministic)`` and,
            optionally, ``reset(context)`` (:class:`~closedloop.controllers.Controller`). It
            receives the :class:`~closedloop.controllers.ControlContext` and observations,
            never the env.
        env_id: Registered id, e.g. ``closedloop/ECAPClinic-Test-v0``.
        patient_id: Patient, e.g. ``test-003`` (held-out ids need no tuning session).
        seed: Seed of ``env.reset`` (scenario draws and recording noise), >= 0.
        env_overrides: ``gymnasium.make`` keyword overrides, e.g. ``{"episode_s": 20}``.
        name: Row label; :func:`controller_name` by default.

    Returns:
        The :class:`EpisodeResult`, with its trajectory.
    """
    import gymnasium as gym

    seed = check_seed(seed)
    overrides = check_env_overrides(env_id, {} if env_overrides is None else env_overrides)
    start = time.perf_counter()
    env = gym.make(env_id, patient=patient_id, **overrides)
    try:
        obs, info = env.reset(seed=seed)
        base = env.unwrapped
        context = ControlContext.from_env(base.spec_.config, base.calibration, info["target_uv"])
        log = play(controller, context, env, obs)
        traj = to_trajectory(base, float(info["target_uv"]), log)
    finally:
        env.close()
    metrics = score(traj, log, base.spec_.config)
    return EpisodeResult(
        name or controller_name(controller),
        env_id,
        traj.scenario,
        traj.patient_id,
        seed,
        traj.target_uv,
        int(log["reward"].size),
        metrics,
        time.perf_counter() - start,
        traj,
    )


def reset_controller(controller: Any, context: Any) -> None:
    """Call ``controller.reset(context)`` if it has one (an SB3 model, say, has no ``reset``)."""
    reset = getattr(controller, "reset", None)
    if callable(reset):
        reset(context)


def play(controller: Any, context: Any, env: Any, obs: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``controller`` on a reset ``env`` until the episode ends; the step log as arrays.

    The controller is reset with ``context`` (if it has ``reset``) and then only sees
    observations (SB3's ``predict`` protocol, ``episode_start`` True on the first step only).
    """
    reset_controller(controller, context)
    log = _StepLog(context.history)
    state, first = None, True
    while True:
        action, state = controller.predict(obs, state, np.array([first]), deterministic=True)
        first = False
        obs, reward, terminated, truncated, info = env.step(action)
        log.add(obs, reward, info)
        if terminated or truncated:
            return log.arrays()


class _StepLog:
    """Per-step values of one episode, appended by :func:`play`."""

    KEYS = (
        "reward",
        "ecap_uv",
        "detected",
        "ecap_true_uv",
        "sensation",
        "current_ma",
        "charge_uc",
        "csf_mm",
        "posture",
        "event",
        "device_flags",
        "pw_us",
        "rate_hz",
    )

    def __init__(self, history: int) -> None:
        self.history = history
        self.rows: list[tuple] = []

    def add(self, obs: np.ndarray, reward: float, info: Mapping[str, Any]) -> None:
        """Append one step."""
        self.rows.append(
            (
                float(reward),
                float(obs[0]),
                float(obs[self.history]),
                info["ecap_true_uv"],
                info["sensation"],
                info["current_ma"],
                info["charge_uc"],
                info["csf_mm"],
                posture_code(info["posture"]),
                info["event"],
                info["device_flags"],
                info.get("pw_us", math.nan),
                info.get("rate_hz", math.nan),
            )
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The log as one array per key."""
        cols = zip(*self.rows, strict=True) if self.rows else [()] * len(self.KEYS)
        out = {k: np.asarray(c, dtype=np.float64) for k, c in zip(self.KEYS, cols, strict=True)}
        for k in ("posture", "event", "device_flags"):
            out[k] = out[k].astype(np.int64)
        return out


def to_trajectory(base_env: Any, target_uv: float, log: Mapping[str, np.ndarray]) -> Trajectory:
    """Assemble the :class:`Trajectory` of a played episode (see the module docstring).

    Args:
        base_env: The unwrapped env after the episode (its config, patient, calibration, trace).
        target_uv: The episode's target (µV).
        log: The step log of :func:`play`.
    """
    cfg, cal, patient, trace = (
        base_env.spec_.config,
        base_env.calibration,
        base_env.patient,
        base_env.trace,
    )
    t_s = step_times(log["rate_hz"], cfg.pulses_per_step, cfg.rate_hz)
    k = np.minimum((t_s * cfg.rate_hz + 1e-9).astype(np.int64), trace.t_s.size - 1)
    nan = np.full(t_s.size, np.nan)
    return Trajectory(
        patient_id=patient.patient_id,
        scenario=cfg.scenario,
        rate_hz=cfg.rate_hz,
        pw_us=cfg.pw_us,
        target_uv=target_uv,
        discomfort_level=patient.perception.discomfort_level,
        warmup_s=cal.warmup_s,
        t_s=t_s,
        posture=log["posture"],
        csf_mm=log["csf_mm"],
        event=log["event"],
        impedance_ohm=patient.impedance_ohm * np.asarray(trace.impedance_scale)[k],
        current_ma=log["current_ma"],
        ecap_uv=log["ecap_uv"],
        ecap_true_uv=log["ecap_true_uv"],
        detected=log["detected"],
        frac_recruited=nan,
        sensation=log["sensation"],
        charge_uc=log["charge_uc"],
        window_lo_uv=nan,
        window_hi_uv=nan.copy(),
    )


def step_times(rate_hz: np.ndarray, pulses_per_step: int, default_rate_hz: float) -> np.ndarray:
    """Time of each step's first pulse (s).

    At a fixed rate ``k n / rate`` (exactly the env's trace times); when the rate varies, the
    running sum of ``n / rate_k`` (a NaN rate means the default rate).
    """
    rate = np.where(np.isnan(rate_hz), default_rate_hz, rate_hz)
    if np.all(rate == default_rate_hz):
        return np.arange(rate.size) * pulses_per_step / default_rate_hz
    return np.concatenate(([0.0], np.cumsum(pulses_per_step / rate[:-1])))


def score(traj: Trajectory, log: Mapping[str, np.ndarray], config: Any = None) -> dict[str, float]:
    """Every key of :data:`EPISODE_METRICS` for a recorded episode (pure function).

    Args:
        traj: The trajectory (clinical metrics after its warm-up).
        log: The step log (rewards, device flags, and per-step pulse width if it varied).
        config: The env's :class:`~closedloop.envs.config.EnvConfig`; its unscored postures
            (:func:`~closedloop.metrics.unscored_mask`) are left out of the clinical metrics.
            None: every step is scored.
    """
    pw = log["pw_us"]
    scored = (
        None
        if config is None
        else ~unscored_mask(
            traj.t_s, traj.posture, config.unscored_posture_names, config.unscored_after_s
        )
    )
    if np.all(np.isnan(pw)):
        metrics = traj.metrics(scored=scored)
    else:  # the pulse-shape variant: per-step pulse width
        metrics = clinical_metrics(
            traj.t_s,
            traj.ecap_true_uv,
            traj.target_uv,
            traj.sensation,
            traj.discomfort_level,
            traj.charge_uc,
            traj.current_ma,
            pw,
            traj.impedance_ohm,
            posture=traj.posture,
            warmup_s=traj.warmup_s,
            scored=scored,
        )
    keep = traj.t_s >= traj.t_s[0] + traj.warmup_s
    flags = log["device_flags"][keep]
    metrics["env_return"] = float(np.sum(log["reward"][keep]))
    metrics["device_interventions"] = int(np.count_nonzero(flags))
    metrics.update({f"device_{k}": v for k, v in limit_report(flags).items()})
    return metrics
