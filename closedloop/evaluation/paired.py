"""Paired comparisons of controllers on the same episodes, for the ranking.

Differences and probabilities of improvement with bootstrap confidence intervals, and the
checks that two controllers were played on the same episodes
(:mod:`closedloop.evaluation.ranking` ranks with them).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from closedloop._config import ConfigError
from closedloop.evaluation.episode_runner import DIRECTION
from closedloop.evaluation.stats import (
    DEFAULT_RESAMPLES,
    STATISTICS,
    _indexed,
    _indices,
    _matrix,
    _percentiles,
    row_statistic,
)
from closedloop.evaluation.summary import groups, score_matrix


def check_primary(metric: Any, where: str = "primary") -> str:
    """``metric`` if it can rank controllers (known, with a direction); ConfigError otherwise."""
    if not isinstance(metric, str) or not DIRECTION.get(metric):
        known = isinstance(metric, str) and metric in DIRECTION
        why = "has no better direction and cannot rank" if known else "is unknown"
        raise ConfigError(
            f"{where}={metric!r} {why}; valid: {', '.join(m for m, d in DIRECTION.items() if d)}"
        )
    return metric


def _episodes(group: Sequence[Mapping]) -> set[tuple[str, int]]:
    return {(r["patient"], int(r["seed"])) for r in group}


def check_same_episodes(by: Mapping, a: str, b: str, env_id: str) -> None:
    """Raise ConfigError unless controllers ``a`` and ``b`` played the same episodes on env."""
    for c in (a, b):
        if (c, env_id) not in by:
            names = sorted({k for k, e in by if e == env_id})
            raise ConfigError(
                f"controller {c!r} has no rows on {env_id}; valid: {', '.join(names)}"
            )
    ea, eb = _episodes(by[(a, env_id)]), _episodes(by[(b, env_id)])
    if ea != eb:
        only_a, only_b = sorted(ea - eb), sorted(eb - ea)
        raise ConfigError(
            f"controllers {a!r} and {b!r} were not played on the same episodes of {env_id}: "
            f"{len(only_a)} (patient, seed) only for {a!r} {only_a[:3]}, {len(only_b)} only "
            f"for {b!r} {only_b[:3]}; paired statistics need the same patients and seeds"
        )


def _nanmean(a: np.ndarray, axis: tuple[int, ...] | int) -> np.ndarray:
    """Mean over ``axis`` leaving NaN out (NaN where nothing is left), without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def _comparisons(a: np.ndarray, b: np.ndarray, direction: int) -> np.ndarray:
    """``[p, i, j]``: 1 if a's seed i beats b's seed j on patient p, 0.5 if equal, else 0."""
    x, y = direction * a[:, :, None], direction * b[:, None, :]
    out = np.where(x > y, 1.0, np.where(x == y, 0.5, 0.0))
    return np.where(np.isnan(x) | np.isnan(y), np.nan, out)


def _poi(
    cmp: np.ndarray, idx: tuple[np.ndarray, np.ndarray], other_seeds: np.ndarray, mode: str
) -> tuple[float, np.ndarray]:
    """Probability of improvement and its bootstrap replicates from :func:`_comparisons`.

    ``hierarchical`` resamples patients only: a patient's probability already averages over
    every pair of its seeds, drawing the same seeds for both controllers would over-weight
    same-episode pairs, and drawing them independently would set different scenario draws
    of two identical controllers against each other. ``stratified`` keeps the patients and
    draws each controller's seeds independently, as rliable's stratified bootstrap does.
    """
    per_patient = _nanmean(cmp, (1, 2))
    value = float(_nanmean(per_patient, 0))
    pi, si = idx
    if mode == "hierarchical":
        return value, _nanmean(per_patient[pi[:, :, 0]], 1)
    boot = cmp[pi[..., None], si[:, :, :, None], other_seeds[:, :, None, :]]  # (B, P, S, S)
    return value, _nanmean(_nanmean(boot, (2, 3)), 1)


def _diff(
    a: np.ndarray, b: np.ndarray, stat: str, idx: tuple[np.ndarray, np.ndarray], confidence: float
) -> tuple[float, float, float, int]:
    """``stat(a - b)`` over episodes where both are finite, its CI and the episode count."""
    d = a - b
    value = float(row_statistic(d.reshape(1, -1), stat)[0])
    lo, hi = _percentiles(row_statistic(_indexed(d, idx), stat), confidence)
    return value, lo, hi, int(np.count_nonzero(np.isfinite(d)))


def probability_of_improvement(
    values: Any,
    baseline: Any,
    direction: int = 1,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str = "hierarchical",
) -> dict[str, float]:
    """Probability that ``values`` improve on ``baseline`` (rliable's), with a bootstrap CI.

    Args:
        values: Scores of X, shape ``(patients, seeds)``; NaN for missing episodes.
        baseline: Scores of Y on the same patients and seeds.
        direction: +1 if higher is better, -1 if lower is better.
        n_resamples: Bootstrap resamples.
        confidence: CI coverage.
        seed: Bootstrap seed.
        mode: ``hierarchical`` or ``stratified`` (:mod:`closedloop.evaluation.stats`).

    Returns:
        ``poi``, ``poi_lo``, ``poi_hi`` (probabilities in [0, 1]).
    """
    a, b = _pair(values, baseline)
    if direction not in (1, -1):
        raise ConfigError(f"direction={direction!r} is invalid; valid: 1 or -1")
    idx = _indices(a.shape, n_resamples, seed, mode)
    value, boot = _poi(
        _comparisons(a, b, direction), idx, _indices(a.shape, n_resamples, seed + 1, mode)[1], mode
    )
    lo, hi = _percentiles(boot, confidence)
    return {"poi": value, "poi_lo": lo, "poi_hi": hi}


def _pair(values: Any, baseline: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two ``(patients, seeds)`` matrices of one shape, NaN where either is missing."""
    a, b = _matrix(values), _matrix(baseline)
    if a.shape != b.shape:
        raise ConfigError(
            f"values shape {a.shape} and baseline shape {b.shape} differ; paired "
            "statistics need the same patients and seeds"
        )
    both = np.isnan(a) | np.isnan(b)
    return np.where(both, np.nan, a), np.where(both, np.nan, b)


class PairedEnv:
    """One env's score matrices of every controller on a shared patient/seed grid."""

    def __init__(
        self,
        by: Mapping,
        env_id: str,
        metric: str,
        stat: str,
        n_resamples: int,
        seed: int,
        mode: str,
    ):
        self.env_id, self.metric, self.stat, self.mode = env_id, metric, stat, mode
        self.direction = DIRECTION[metric]
        self.names = [c for c, e in by if e == env_id]
        if not self.names:
            envs = sorted({e for _, e in by})
            raise ConfigError(f"env_id={env_id!r} has no rows; valid: {', '.join(envs)}")
        for c in self.names[1:]:
            check_same_episodes(by, self.names[0], c, env_id)
        first = by[(self.names[0], env_id)]
        self.scenario = first[0].get("scenario", "")
        self.patients = list(dict.fromkeys(r["patient"] for r in first))
        self.seeds = sorted({int(r["seed"]) for r in first})
        self.m = {
            c: score_matrix(by[(c, env_id)], metric, self.patients, self.seeds)[0]
            for c in self.names
        }
        shape = (len(self.patients), len(self.seeds))
        self.idx = _indices(shape, n_resamples, seed, mode)
        self.other_seeds = _indices(shape, n_resamples, seed + 1, mode)[1]

    def value(self, c: str, confidence: float) -> tuple[float, float, float]:
        """Controller ``c``'s statistic over the grid and its bootstrap interval."""
        m = self.m[c]
        v = float(row_statistic(m.reshape(1, -1), self.stat)[0])
        return (v, *_percentiles(row_statistic(_indexed(m, self.idx), self.stat), confidence))

    def diff(self, c: str, other: str, confidence: float) -> tuple[float, float, float, int]:
        """Paired difference ``c - other`` of the statistic, its interval, and the pairs used."""
        return _diff(*_pair(self.m[c], self.m[other]), self.stat, self.idx, confidence)

    def poi(self, c: str, other: str, confidence: float) -> tuple[float, float, float]:
        """Probability that ``c`` does better than ``other`` on an episode, and its interval."""
        value, boot = _poi(
            _comparisons(*_pair(self.m[c], self.m[other]), self.direction),
            self.idx,
            self.other_seeds,
            self.mode,
        )
        return (value, *_percentiles(boot, confidence))


def verdict(gain: float, lo: float, mcid: float) -> bool:
    """Whether a paired gain (positive = better) is clear and important (the ranking rule)."""
    return bool(lo > 0 and gain >= (mcid if math.isfinite(mcid) else 0.0))


def sorted_by_value(
    env: PairedEnv, confidence: float
) -> list[tuple[str, tuple[float, float, float]]]:
    """The env's controllers, best statistic first (non-finite last), with their values."""
    values = {c: env.value(c, confidence) for c in env.names}

    def key(c: str) -> tuple:
        v = values[c][0]
        return (0, -env.direction * v, c) if math.isfinite(v) else (1, 0.0, c)

    return [(c, values[c]) for c in sorted(env.names, key=key)]


def paired_env(rows, env_id, metric, stat, n_resamples, seed, mode) -> PairedEnv:
    """The :class:`PairedEnv` of ``env_id``'s rows, after checking ``metric`` and ``stat``."""
    check_primary(metric, "metric")
    if stat not in STATISTICS:
        raise ConfigError(f"stat={stat!r} is unknown; valid: {', '.join(STATISTICS)}")
    return PairedEnv(groups(rows), env_id, metric, stat, n_resamples, seed, mode)
