"""Paired ranking of controllers: differences over the same episodes, rank groups, MCIDs.

Pure functions of result rows (:func:`closedloop.evaluation.run_grid`). Every comparison is
*paired*: two controllers are compared on the same ``(patient, seed)`` episodes, which share
the patient and the scenario draws, so the patient-to-patient spread cancels. Conventions:

* A difference is ``controller - other`` in the metric's own unit (raw, not sign-adjusted);
  ``direction`` (+1 higher is better, -1 lower is better) says which sign is better. The
  *gain* ``direction x difference`` is positive when the controller is better.
* The statistic of a difference (``mean`` by default, or ``median``/``iqm``) is taken over
  all episodes where both controllers have a finite value. With ``mean``, the difference of
  the means equals the mean of the paired differences, so the order by value and the order
  by difference to any common reference agree.
* CIs are percentile intervals of the hierarchical bootstrap of
  :mod:`closedloop.evaluation.stats` (fixed seed; patients resampled, then seeds within
  each drawn patient). Both controllers get the same draws: pairs stay together. One set of
  draws serves every comparison of an env.
* The probability of improvement is rliable's (Agarwal et al. 2021, "Deep RL at the edge of
  the statistical precipice", ``rliable.metrics.probability_of_improvement``): per task
  (here: patient), ``P(X > Y)`` over all pairs of X's and Y's runs (here: seeds), ties
  counting 0.5 (the normalised Mann-Whitney U), averaged over tasks. Its hierarchical CI
  resamples patients only (see :func:`_poi`).

Ranking rule (:func:`rank_groups`), deterministic and without chaining ("tied with the group
leader"):

1. Sort the controllers best first by the statistic of the primary metric (NaN last, equal
   values by label).
2. The first controller leads group 1. Each next controller ``C`` is compared with the
   leader ``L`` of the current group: the paired gain ``g = direction x stat(L - C)`` with
   its CI ``[lo, hi]``.
3. ``C`` joins ``L``'s group (a tie) if ``lo <= 0`` (the CI includes 0, or lies below it) or
   ``g < MCID`` (a difference smaller than the minimal clinically important difference).
   Otherwise ``C`` leads a new group; so does a controller without a finite value.
4. A group's rank is its leader's position in the sorted list (competition ranking:
   1=, 1=, 3, ...). A controller in a worse group is therefore clearly and importantly worse
   than that group's leader; it may still be tied with a member of the group above (the
   relation is not transitive), which the table shows through ``vs_leader``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from closedloop._config import ConfigError
from closedloop.evaluation.paired import (
    PairedEnv,
    paired_env,
    sorted_by_value,
    verdict,
)
from closedloop.evaluation.schema import PAIRED_SCHEMA
from closedloop.evaluation.stats import (
    DEFAULT_RESAMPLES,
)
from closedloop.evaluation.summary import groups

DEFAULT_PRIMARY = "time_in_window_frac"
"""Primary metric of an env that names none."""

MCID: dict[str, float] = {
    # No MCID has been published for any ECAP-controlled SCS device metric (searched: EVOKE,
    # ECHO-MAC, Saluda's dose accuracy; none states one). Values below are borrowed or assumed.
    # Source (by analogy): International Consensus on Time in Range, Battelino et al., Diabetes
    # Care 2019;42(8):1593 -- a 5 % change in CGM time in range (~1 h/day) is clinically
    # meaningful. Time in the therapeutic window is the same kind of outcome (fraction of time
    # inside a band); EVOKE's closed- vs open-loop gap is ~47 points, ten times this.
    "time_in_window_frac": 0.05,
    # Same analogy and value for the dose-accuracy bands (time within ±10 % / ±20 % of target).
    "time_within_10pct_frac": 0.05,
    "time_within_20pct_frac": 0.05,
    # Assumption: the complement side of the window, same analogy and value (sub-perception
    # stimulation is ineffective rather than harmful, so no stricter threshold).
    "time_below_perception_frac": 0.05,
    "understim_frac": 0.05,
    # Assumption by analogy with the same consensus, which treats the harmful tail stricter
    # (time < 54 mg/dL: target < 1 %): 1 point of time above discomfort, ~15 min/day.
    "time_above_discomfort_frac": 0.01,
    "overstim_frac": 0.01,
    # Assumption: 2 µV, about 10 % of a typical target (the model's window spans ~6-37 µV) and
    # below EVOKE's closed-loop residual deviation of 3.0 µV (JAMA Neurol 2022 Fig. 4A), so
    # loops that all hold the ECAP within the recording noise are not ranked by sub-noise
    # differences. ECHO-MAC's open/closed ECAP SDs (19.95 vs 8.72 µV) differ by 11 µV.
    "mad_uv": 2.0,
    "rmse_uv": 2.0,
    # Assumption: 10 % of the target, the same 2 µV on a ~20 µV target.
    "mean_rel_error": 0.1,
    # Assumption: one more overstimulation event per hour (~16 per waking day) is a change a
    # patient notices; ECHO-MAC measured overstimulation on a Likert scale, not as a rate.
    "overstim_events_per_hour": 1.0,
    # Assumption: 0.1 µC/pulse, ~8 % of a typical 1.2 µC/pulse and ~16 % of the pulse energy
    # (charge^2); EVOKE's closed loop moved charge 0.5-1.4 µC/pulse across postures (RAPM 2024).
    "charge_per_pulse_uc": 0.1,
    # Assumption: half a year of primary-cell life is a difference a clinician would weigh
    # (replacement surgery interval).
    "battery_life_years": 0.5,
}
"""Metric -> minimal clinically important difference (metric's unit); sources in comments."""


def _mcid(metric: str, mcid: Mapping[str, float] | None) -> float:
    value = (MCID if mcid is None else mcid).get(metric)
    return math.nan if value is None else float(value)


def rank_groups(
    rows: Sequence[Mapping[str, Any]],
    env_id: str,
    metric: str,
    *,
    stat: str = "mean",
    mcid: Mapping[str, float] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str = "hierarchical",
) -> list[dict[str, Any]]:
    """Controllers of one env in rank groups by the module's ranking rule (best first).

    Args:
        rows: Result rows; every controller on ``env_id`` must have played the same episodes.
        env_id: The env to rank.
        metric: Primary metric (a key of :data:`DIRECTION` with a direction).
        stat: ``mean`` (default), ``median`` or ``iqm``, of values and of paired differences.
        mcid: Metric -> MCID; :data:`MCID` if None. A metric without one ties on the CI only.
        n_resamples: Bootstrap resamples.
        confidence: CI coverage.
        seed: Bootstrap seed.
        mode: Bootstrap mode.

    Returns:
        One dict per controller with the ranking columns of :data:`PAIRED_SCHEMA` (``env_id``
        to ``vs_leader_hi``, and ``n_patients``), in order.

    Raises:
        ConfigError: On an unknown metric or statistic, or controllers that played different
            episodes.
    """
    env = paired_env(rows, env_id, metric, stat, n_resamples, seed, mode)
    limit = _mcid(metric, mcid)
    out: list[dict[str, Any]] = []
    leader, rank, group = "", 0, 0
    for pos, (c, (v, v_lo, v_hi)) in enumerate(sorted_by_value(env, confidence), 1):
        d, d_lo, d_hi, _ = env.diff(c, leader, confidence) if leader else (0.0, 0.0, 0.0, 0)
        gain, gain_lo = (-env.direction * d, -env.direction * (d_hi if env.direction > 0 else d_lo))
        if not leader or not math.isfinite(v) or verdict(gain, gain_lo, limit):
            leader, rank, group = c, pos, group + 1
            d = d_lo = d_hi = 0.0
        out.append(
            {
                "env_id": env_id,
                "scenario": env.scenario,
                "metric": metric,
                "stat": stat,
                "direction": env.direction,
                "mcid": limit,
                "controller": c,
                "position": pos,
                "rank": rank,
                "group": group,
                "leader": leader,
                "value": v,
                "value_lo": v_lo,
                "value_hi": v_hi,
                "vs_leader": d,
                "vs_leader_lo": d_lo,
                "vs_leader_hi": d_hi,
                "n_patients": len(env.patients),
            }
        )
    sizes = {g: sum(r["group"] == g for r in out) for g in {r["group"] for r in out}}
    for r in out:
        r["rank_label"] = f"{r['rank']}=" if sizes[r["group"]] > 1 else str(r["rank"])
    return out


def paired_differences(
    rows: Sequence[Mapping[str, Any]],
    env_id: str,
    metric: str,
    baseline: str,
    *,
    stat: str = "mean",
    mcid: Mapping[str, float] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str = "hierarchical",
) -> list[dict[str, Any]]:
    """Each controller against ``baseline`` on one env: paired difference and P(improvement).

    The difference is raw, ``stat(controller - baseline)`` in the metric's unit over the
    episodes where both are finite; ``direction`` says which sign is better. The baseline's
    own row has difference 0 and probability 0.5.

    Args:
        rows: Result rows of both controllers on ``env_id``.
        env_id: The env.
        metric: Metric compared (with a direction).
        baseline: Controller label of the reference.
        stat: ``mean``, ``median`` or ``iqm``.
        mcid: Metric -> MCID for ``vs_baseline``; :data:`MCID` if None.
        n_resamples: Bootstrap resamples.
        confidence: CI coverage.
        seed: Bootstrap seed.
        mode: Bootstrap mode.

    Returns:
        One dict per controller (order of first appearance) with ``controller``, ``baseline``,
        ``env_id``, ``metric``, ``stat``, ``direction``, ``mcid``, ``diff``/``_lo``/``_hi``,
        ``poi``/``_lo``/``_hi``, ``vs_baseline`` (better, worse or tied by the ranking rule),
        ``n_patients`` and ``n_episodes``.

    Raises:
        ConfigError: If ``baseline`` did not play the same episodes as another controller.
    """
    env = paired_env(rows, env_id, metric, stat, n_resamples, seed, mode)
    if baseline not in env.names:
        raise ConfigError(
            f"baseline={baseline!r} has no rows on {env_id}; valid: {', '.join(env.names)}"
        )
    return [_vs_baseline(env, c, baseline, _mcid(metric, mcid), confidence) for c in env.names]


def _vs_baseline(
    env: PairedEnv, c: str, baseline: str, limit: float, confidence: float
) -> dict[str, Any]:
    d, lo, hi, n = env.diff(c, baseline, confidence)
    p, p_lo, p_hi = env.poi(c, baseline, confidence)
    better = verdict(env.direction * d, min(env.direction * lo, env.direction * hi), limit)
    worse = verdict(-env.direction * d, min(-env.direction * lo, -env.direction * hi), limit)
    return {
        "controller": c,
        "baseline": baseline,
        "env_id": env.env_id,
        "metric": env.metric,
        "stat": env.stat,
        "direction": env.direction,
        "mcid": limit,
        "diff": d,
        "diff_lo": lo,
        "diff_hi": hi,
        "poi": p,
        "poi_lo": p_lo,
        "poi_hi": p_hi,
        "vs_baseline": "better" if better else "worse" if worse else "tied",
        "n_patients": len(env.patients),
        "n_episodes": n,
    }


def primary_of(primary: str | Mapping[str, str] | None, env_id: str) -> str:
    """The primary metric of ``env_id``: a single name, a per-env mapping, or the default."""
    if isinstance(primary, str):
        return primary
    return (primary or {}).get(env_id, DEFAULT_PRIMARY)


def rank_controllers(
    rows: Sequence[Mapping[str, Any]],
    primary: str | Mapping[str, str] | None = None,
    baseline: str | None = None,
    *,
    stat: str = "mean",
    mcid: Mapping[str, float] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str = "hierarchical",
) -> list[dict[str, Any]]:
    """Rank groups and baseline comparisons of every env: rows of :data:`PAIRED_SCHEMA`.

    Args:
        rows: Result rows.
        primary: Primary metric: one name for every env, a mapping ``env_id -> metric``
            (envs not in it use :data:`DEFAULT_PRIMARY`), or None (the default everywhere).
        baseline: Controller to compare against; the ``diff``/``poi`` columns are NaN and
            ``baseline`` empty if None.
        stat: ``mean``, ``median`` or ``iqm``.
        mcid: Metric -> MCID; :data:`MCID` if None.
        n_resamples: Bootstrap resamples.
        confidence: CI coverage.
        seed: Bootstrap seed.
        mode: Bootstrap mode.

    Returns:
        Per env (order of first appearance), its controllers in ranked order.
    """
    kw = {
        "stat": stat,
        "mcid": mcid,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
        "mode": mode,
    }
    out = []
    for env_id in dict.fromkeys(e for _, e in groups(rows)):
        metric = primary_of(primary, env_id)
        ranked = rank_groups(rows, env_id, metric, **kw)
        versus = (
            {}
            if baseline is None
            else {
                r["controller"]: r for r in paired_differences(rows, env_id, metric, baseline, **kw)
            }
        )
        empty = dict.fromkeys(("diff", "diff_lo", "diff_hi", "poi", "poi_lo", "poi_hi"), math.nan)
        for r in ranked:
            v = versus.get(
                r["controller"], {**empty, "vs_baseline": "", "n_episodes": 0, "baseline": ""}
            )
            merged = {**v, **r}
            out.append({k: merged[k] for k in PAIRED_SCHEMA})
    return out
