"""Validation of a policy during training: clinical metrics on validation-cohort patients.

The current policy is wrapped with a frozen copy of the observation normalisation
(:class:`~closedloop.training.policy.TrainedPolicy`) and played deterministically through
:func:`closedloop.evaluation.run_episode` on the first ``n`` patients of the validation cohort
with fixed seeds, so that successive evaluations of a run (and of different runs) see the same
episodes. Models are ranked by mean time in the therapeutic window, ties broken by the lower
mean absolute ECAP error (:func:`is_better`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from closedloop._config import ConfigError
from closedloop.evaluation.episode_runner import run_episode
from closedloop.patients.cohort import load_cohort
from closedloop.training.policy import ObsNormalizer, TrainedPolicy

SPLIT = "validation"
PRIMARY = "time_in_window_frac"
"""Default selection metric (higher is better)."""
TIE_BREAK = "mad_uv"
"""Tie-break metric (lower is better)."""
SELECT_BY = (PRIMARY, "env_return")
"""Selection metrics (higher is better); :data:`TIE_BREAK` breaks ties of either."""


def validation_patients(n: int) -> list[str]:
    """Ids of the first ``n`` validation-cohort patients."""
    cohort = load_cohort(SPLIT)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(cohort):
        raise ConfigError(f"eval_patients={n!r} is out of range; valid range [1, {len(cohort)}]")
    return [p.patient_id for p in cohort[:n]]


def evaluate(
    model: Any,
    norm: Any,
    name: str,
    env_id: str,
    patients: Sequence[str],
    seeds: Sequence[int],
    overrides: Mapping[str, Any],
    residual: Any = None,
) -> list[dict[str, Any]]:
    """Play the model (deterministic actions) on every patient x seed; the result rows.

    Args:
        model: The SB3 model being trained.
        norm: Its ``VecNormalize`` (statistics copied, not updated by the evaluation).
        name: Controller label of the rows.
        env_id: Env id of the episodes (each with a fixed validation patient).
        patients: Patient ids.
        seeds: Episode seeds.
        overrides: ``gymnasium.make`` overrides, e.g. ``{"episode_s": 60.0}`` (s).
        residual: The :class:`~closedloop.training.residual.ResidualParams` of a residual
            agent (None: the model sets the current).
    """
    controller = TrainedPolicy(model, ObsNormalizer.from_vecnormalize(norm), name=name)
    if residual is not None:
        from closedloop.training.residual import ResidualPolicy

        controller = ResidualPolicy(controller, residual)
    return [
        run_episode(controller, env_id, patient, seed, dict(overrides)).row()
        for patient in patients
        for seed in seeds
    ]


def _key(metrics: Mapping[str, float], select_by: str) -> tuple[float, float]:
    """Sort key, larger is better; NaN ranks last."""
    main, mad = metrics.get(select_by, math.nan), metrics.get(TIE_BREAK, math.nan)
    return (main if math.isfinite(main) else -math.inf, -mad if math.isfinite(mad) else -math.inf)


def is_better(
    candidate: Mapping[str, float], best: Mapping[str, float] | None, select_by: str = PRIMARY
) -> bool:
    """Whether validation metrics ``candidate`` beat ``best`` (None: nothing yet).

    Args:
        candidate: Mean validation metrics of a model.
        best: Those of the best model so far, or None.
        select_by: A metric of :data:`SELECT_BY` (higher is better; ties: lower mad_uv).
    """
    if select_by not in SELECT_BY:
        raise ConfigError(f"select_by={select_by!r} is unknown; valid: {', '.join(SELECT_BY)}")
    return best is None or _key(candidate, select_by) > _key(best, select_by)
