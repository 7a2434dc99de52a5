"""Compare two finished benchmark runs: which cells changed, and by how much.

:func:`compare_runs` reads both run folders (:mod:`closedloop.evaluation.reopen`) and lists
what changed between them::

    from closedloop.evaluation import compare_runs
    print(compare_runs("runs/old", "runs/new")["cells"][0])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from closedloop.evaluation.episode_runner import DIRECTION
from closedloop.evaluation.reopen import primary_metrics, rows_from_folder, suite_of
from closedloop.evaluation.summary import check_metrics, groups


def _suite_doc(run_dir: str | Path) -> dict[str, Any]:
    suite = suite_of(run_dir)
    return {} if suite is None else suite.to_dict()


def compare_runs(run_a: str | Path, run_b: str | Path, metric: str | None = None) -> dict[str, Any]:
    """What changed from run folder A to run folder B.

    Args:
        run_a: The earlier run folder.
        run_b: The later run folder.
        metric: Metric compared on every env; each env's primary metric if None (B's suite,
            else A's, else the defaults).

    Returns:
        ``run_a``, ``run_b``; ``suite`` (field -> ``[A, B]`` for the suite fields that
        differ); ``controllers``, ``envs``, ``patients``, ``seeds`` (each ``added`` and
        ``removed``); ``metric`` (env -> metric); ``cells``, one per (controller, env) in
        both runs: ``mean_a``, ``mean_b`` (over each run's finite episodes), ``diff`` (mean
        of B - A over the (patient, seed) episodes both have, finite), ``n_paired`` and
        ``change`` (better, worse or same in the metric's direction); ``only_a`` and
        ``only_b``: the (controller, env) pairs of one run only.
    """
    rows_a, rows_b = rows_from_folder(run_a), rows_from_folder(run_b)
    if metric is not None:
        check_metrics([metric])
    out: dict[str, Any] = {"run_a": str(run_a), "run_b": str(run_b)}
    sa, sb = _suite_doc(run_a), _suite_doc(run_b)
    out["suite"] = {
        k: [sa.get(k), sb.get(k)] for k in dict.fromkeys([*sa, *sb]) if sa.get(k) != sb.get(k)
    }
    for key, label in (
        ("controller", "controllers"),
        ("env_id", "envs"),
        ("patient", "patients"),
        ("seed", "seeds"),
    ):
        a, b = {r[key] for r in rows_a}, {r[key] for r in rows_b}
        out[label] = {"added": sorted(b - a), "removed": sorted(a - b)}
    ga, gb = groups(rows_a), groups(rows_b)
    envs = list(dict.fromkeys([*(e for _, e in gb), *(e for _, e in ga)]))
    out["metric"] = (
        dict.fromkeys(envs, metric)
        if metric is not None
        else {**primary_metrics(run_a, envs), **primary_metrics(run_b, envs)}
    )
    out["cells"] = [
        _change(c, e, ga[(c, e)], gb[(c, e)], out["metric"][e])
        for e in envs
        for c, e2 in gb
        if e2 == e and (c, e) in ga
    ]
    out["only_a"] = [list(k) for k in ga if k not in gb]
    out["only_b"] = [list(k) for k in gb if k not in ga]
    return out


def _change(
    controller: str,
    env_id: str,
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    metric: str,
) -> dict[str, Any]:
    """One (controller, env) of both runs: the metric's means and their paired difference."""

    def values(rows):
        out = {(r["patient"], int(r["seed"])): float(r.get(metric, math.nan)) for r in rows}
        return {k: v for k, v in out.items() if math.isfinite(v)}

    va, vb = values(rows_a), values(rows_b)
    common = [k for k in va if k in vb]
    diff = sum(vb[k] - va[k] for k in common) / len(common) if common else math.nan
    gain = DIRECTION.get(metric, 0) * diff
    return {
        "controller": controller,
        "env_id": env_id,
        "metric": metric,
        "mean_a": sum(va.values()) / len(va) if va else math.nan,
        "mean_b": sum(vb.values()) / len(vb) if vb else math.nan,
        "n_a": len(va),
        "n_b": len(vb),
        "diff": diff,
        "n_paired": len(common),
        "change": ""
        if not math.isfinite(gain) or not DIRECTION.get(metric)
        else "better"
        if gain > 0
        else "worse"
        if gain < 0
        else "same",
    }
