"""Statistics of result rows: per controller, env and metric; ratios to a baseline controller.

Result rows are those of :func:`closedloop.evaluation.run_grid` (one per episode). Rows of one
controller and env form a ``(patients, seeds)`` matrix per metric (:func:`score_matrix`), which
:mod:`closedloop.evaluation.stats` describes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from closedloop._config import ConfigError, short_repr
from closedloop.evaluation.episode_runner import DIRECTION, EPISODE_METRICS
from closedloop.evaluation.stats import (
    DEFAULT_ALPHA,
    DEFAULT_RESAMPLES,
    STATISTICS,
    describe,
    paired_ratio,
)

RATIO_METRICS = ("mad_uv", "time_in_window_frac")
"""Metrics of the acceptance criterion: closed loop against open loop."""


ROW_KEYS = ("controller", "env_id", "patient", "seed")
"""Identity columns every result row must have."""


def check_metrics(metrics: Iterable[str] | str | None) -> list[str]:
    """The metric keys (all of :data:`EPISODE_METRICS` if None); ConfigError naming unknowns."""
    if metrics is None:
        return list(EPISODE_METRICS)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in EPISODE_METRICS]
    if unknown or not metrics:
        raise ConfigError(
            f"metric(s) {', '.join(map(repr, unknown)) or '(none)'} unknown; "
            f"valid: {', '.join(EPISODE_METRICS)}"
        )
    return metrics


def groups(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping]]:
    """Rows by ``(controller, env_id)``, in order of first appearance.

    Raises:
        ConfigError: If ``rows`` is not a list of result rows (mappings with at least
            :data:`ROW_KEYS`).
    """
    if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
        raise ConfigError(f"rows={short_repr(rows)} must be a list of result rows (run_grid's)")
    out: dict[tuple[str, str], list[Mapping]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or not set(ROW_KEYS) <= set(row):
            raise ConfigError(
                f"rows[{i}]={short_repr(row)} is not a result row; valid: a dict "
                f"with {', '.join(ROW_KEYS)} and the metrics (run_grid's rows)"
            )
        out.setdefault((row["controller"], row["env_id"]), []).append(row)
    return out


def score_matrix(
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    patients: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> tuple[np.ndarray, list[str], list[int]]:
    """One metric of one group's rows as a ``(patients, seeds)`` matrix (NaN where missing).

    Args:
        rows: Rows of one controller on one env.
        metric: Column to read.
        patients: Row order; the patients of ``rows`` in order of appearance if None.
        seeds: Column order; the sorted seeds of ``rows`` if None.

    Returns:
        The matrix, the patient ids and the seeds.
    """
    patients = (
        list(dict.fromkeys(r["patient"] for r in rows)) if patients is None else list(patients)
    )
    seeds = sorted({int(r["seed"]) for r in rows}) if seeds is None else list(seeds)
    p_at = {p: i for i, p in enumerate(patients)}
    s_at = {s: j for j, s in enumerate(seeds)}
    m = np.full((len(patients), len(seeds)), np.nan)
    for r in rows:
        i, j = p_at.get(r["patient"]), s_at.get(int(r["seed"]))
        if i is not None and j is not None:
            value = r.get(metric)
            m[i, j] = np.nan if value is None else float(value)
    return m, patients, seeds


def summarize(
    rows: Sequence[Mapping[str, Any]],
    metrics: Iterable[str] | None = None,
    *,
    alpha: float = DEFAULT_ALPHA,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str = "hierarchical",
) -> list[dict[str, Any]]:
    """Statistics per controller, env and metric across patients and seeds.

    Args:
        rows: Result rows.
        metrics: Keys of :data:`EPISODE_METRICS`; all if None.
        alpha: CVaR fraction of patients.
        n_resamples: Bootstrap resamples.
        confidence: CI coverage.
        seed: Bootstrap seed (fixed: the same rows give the same summary).
        mode: ``hierarchical`` (patients and seeds resampled) or ``stratified`` (seeds only).

    Returns:
        One dict per (controller, env, metric) with the columns of
        :data:`closedloop.evaluation.report.SUMMARY_SCHEMA`.
    """
    metrics = check_metrics(metrics)
    if not rows:
        raise ConfigError("rows is empty; valid: the result rows of run_grid")
    out = []
    for (controller, env_id), group in groups(rows).items():
        for metric in metrics:
            m, patients, _ = score_matrix(group, metric)
            d = describe(m, DIRECTION[metric], alpha, n_resamples, confidence, seed, mode)
            index = int(d.pop("worst_index"))
            out.append(
                {
                    "controller": controller,
                    "env_id": env_id,
                    "scenario": group[0]["scenario"],
                    "metric": metric,
                    "direction": DIRECTION[metric],
                    "n_patients": len(patients),
                    "n_episodes": d.pop("n"),
                    **d,
                    "worst_patient": patients[index] if index >= 0 else "",
                    "alpha": alpha,
                }
            )
    return out


def compare(
    rows: Sequence[Mapping[str, Any]],
    baseline: str,
    metrics: Iterable[str] | str = RATIO_METRICS,
    stat: str = "mean",
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str = "hierarchical",
) -> list[dict[str, Any]]:
    """Ratio of each controller's statistic to the baseline's, per env, with paired CIs.

    Args:
        rows: Result rows including the baseline's on the same patients and seeds.
        baseline: Controller label of the baseline (e.g. open loop).
        metrics: Keys of :data:`EPISODE_METRICS`.
        stat: ``mean``, ``median`` or ``iqm``.
        n_resamples: Bootstrap resamples.
        confidence: CI coverage.
        seed: Bootstrap seed.
        mode: Bootstrap mode.

    Returns:
        One dict per (controller, env, metric): ``controller``, ``baseline``, ``env_id``,
        ``scenario``, ``metric``, ``stat``, ``direction``, ``value``, ``baseline_value``,
        ``ratio``, ``ratio_lo``, ``ratio_hi`` and ``better`` (the statistic beats the
        baseline's in the metric's direction).
    """
    metrics = check_metrics(metrics)
    if stat not in STATISTICS:
        raise ConfigError(f"stat={stat!r} is unknown; valid: {', '.join(STATISTICS)}")
    by = groups(rows)
    names = list(dict.fromkeys(c for c, _ in by))
    if baseline not in names:
        raise ConfigError(
            f"baseline={baseline!r} is not among the controllers; valid: {', '.join(names)}"
        )
    out = []
    for (controller, env_id), group in by.items():
        base = by.get((baseline, env_id))
        if controller == baseline or base is None:
            continue
        patients = list(dict.fromkeys(r["patient"] for r in [*base, *group]))
        seeds = sorted({int(r["seed"]) for r in [*base, *group]})
        for metric in metrics:
            a, _, _ = score_matrix(group, metric, patients, seeds)
            b, _, _ = score_matrix(base, metric, patients, seeds)
            r = paired_ratio(a, b, stat, n_resamples, confidence, seed, mode)
            direction = DIRECTION[metric]
            out.append(
                {
                    "controller": controller,
                    "baseline": baseline,
                    "env_id": env_id,
                    "scenario": group[0]["scenario"],
                    "metric": metric,
                    "stat": stat,
                    "direction": direction,
                    "value": r["value"],
                    "baseline_value": r["baseline"],
                    "ratio": r["ratio"],
                    "ratio_lo": r["ratio_lo"],
                    "ratio_hi": r["ratio_hi"],
                    "better": bool(direction * (r["value"] - r["baseline"]) > 0),
                }
            )
    return out
