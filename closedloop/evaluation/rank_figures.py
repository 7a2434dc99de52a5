"""Comparison figures of a ranked run (matplotlib imported lazily, PNG, written atomically).

* :func:`plot_strip`: one metric on one env, every controller in leaderboard order: a box over
  patients and one dot per patient (its mean over seeds).
* :func:`plot_forest`: the paired differences of every controller to the baseline on one env,
  with their CIs, the line of no difference and the MCID band.
* :func:`plot_ranking`: both, for every env of a ranking (strip plots for each metric).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from closedloop._config import ConfigError
from closedloop.evaluation.episode_runner import DIRECTION
from closedloop.evaluation.figures import slug
from closedloop.evaluation.schema import SCHEMA
from closedloop.evaluation.stats import row_statistic
from closedloop.evaluation.summary import check_metrics, groups, score_matrix
from closedloop.plots._save import new_figure, save_png


def _patient_means(
    rows: Sequence[Mapping[str, Any]], env_id: str, metric: str, order: Sequence[str]
) -> list[np.ndarray]:
    """Per controller in ``order``: its patients' means over seeds (finite values only)."""
    by = groups(rows)
    out = []
    for c in order:
        if (c, env_id) not in by:
            raise ConfigError(f"no rows for controller={c!r} on env_id={env_id!r}")
        per = row_statistic(score_matrix(by[(c, env_id)], metric)[0], "mean")
        out.append(per[np.isfinite(per)])
    return out


def _better_note(metric: str) -> str:
    d = DIRECTION[metric]
    return "higher is better" if d > 0 else "lower is better" if d < 0 else ""


def plot_strip(
    rows: Sequence[Mapping[str, Any]],
    env_id: str,
    metric: str,
    path: str | Path,
    order: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Save a strip plot with boxes of ``metric`` over patients, one row per controller.

    Args:
        rows: Result rows.
        env_id: The env.
        metric: A key of :data:`~closedloop.evaluation.EPISODE_METRICS`.
        path: PNG to write (its folder must exist).
        order: Controllers top to bottom (leaderboard order); order of appearance if None.
        labels: Tick label per controller (e.g. ``"1= pid"``); the names if None.

    Returns:
        ``path``.
    """
    check_metrics([metric])
    order = list(order) if order is not None else [c for c, e in groups(rows) if e == env_id]
    if not order:
        raise ConfigError(f"env_id={env_id!r} has no rows")
    data = _patient_means(rows, env_id, metric, order)
    fig = new_figure(7.0, 1.2 + 0.38 * len(order))
    ax = fig.subplots()
    y = np.arange(len(order))[::-1]
    ax.boxplot(
        [d if d.size else [math.nan] for d in data],
        positions=y,
        widths=0.6,
        orientation="horizontal",
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "tab:blue", "alpha": 0.25},
        medianprops={"color": "tab:blue"},
    )
    for yi, d in zip(y, data, strict=True):
        jitter = np.linspace(-0.18, 0.18, d.size) if d.size > 1 else np.zeros(d.size)
        ax.plot(d, yi + jitter, "o", color="black", ms=2.5, alpha=0.7)
    ax.set_yticks(y, list(labels) if labels is not None else order, fontsize=8)
    ax.set_xlabel(f"{metric}: {SCHEMA[metric]}", fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(
        f"{env_id}: {metric} per patient\n(mean over seeds; "
        f"{_better_note(metric)}; controllers in leaderboard order)",
        fontsize=9,
    )
    return save_png(fig, path)


def plot_forest(paired: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Save a forest plot of one env's paired differences to the baseline.

    Args:
        paired: Rows of :func:`~closedloop.evaluation.ranking.rank_controllers` for one env
            (with a baseline), in leaderboard order; the baseline's own row is left out.
        path: PNG to write (its folder must exist).

    Returns:
        ``path``.
    """
    if not paired or not paired[0]["baseline"] or len({p["env_id"] for p in paired}) != 1:
        raise ConfigError("paired must be the ranked rows of one env, with a baseline")
    p0 = paired[0]
    shown = [p for p in paired if p["controller"] != p0["baseline"]]
    fig = new_figure(7.0, 1.4 + 0.38 * max(len(shown), 1))
    ax = fig.subplots()
    y = np.arange(len(shown))[::-1]
    if math.isfinite(p0["mcid"]):
        ax.axvspan(
            -p0["mcid"], p0["mcid"], color="tab:green", alpha=0.15, label=f"±MCID ({p0['mcid']:g})"
        )
    ax.axvline(0.0, color="black", lw=0.8)
    for yi, p in zip(y, shown, strict=True):
        color = {"better": "tab:blue", "worse": "tab:red"}.get(p["vs_baseline"], "tab:gray")
        err = [[max(p["diff"] - p["diff_lo"], 0.0)], [max(p["diff_hi"] - p["diff"], 0.0)]]
        ax.errorbar([p["diff"]], [yi], xerr=err, fmt="o", color=color, ms=4, capsize=3)
    ax.set_yticks(
        y, [f"{p['rank_label']} {p['controller']}  P={p['poi']:.2f}" for p in shown], fontsize=8
    )
    arrow = "better →" if p0["direction"] > 0 else "← better"
    ax.set_xlabel(
        f"{p0['metric']}: controller − {p0['baseline']} [95 % CI] ({arrow})\n"
        f"{SCHEMA[p0['metric']]}",
        fontsize=8,
    )
    ax.grid(alpha=0.3, axis="x")
    if math.isfinite(p0["mcid"]):
        ax.legend(fontsize=7, loc="best")
    ax.set_title(
        f"{p0['env_id']}: paired {p0['stat']} difference to {p0['baseline']}\n"
        "blue better, red worse, grey tied (ranking rule); P: probability of "
        "improvement",
        fontsize=9,
    )
    return save_png(fig, path)


def paired_by_env(paired: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Ranking rows grouped by env (order of first appearance), each best first."""
    by_env: dict[str, list[Mapping[str, Any]]] = {}
    for p in paired:
        by_env.setdefault(p["env_id"], []).append(p)
    return {e: sorted(rows, key=lambda p: p["position"]) for e, rows in by_env.items()}


def plot_ranking(
    rows: Sequence[Mapping[str, Any]],
    paired: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    metrics: Sequence[str],
) -> list[Path]:
    """Strip plots of each metric and the forest plot of the primary metric, per env.

    Files: ``strip-<env>-<metric>.png`` and, with a baseline, ``forest-<env>-<metric>.png``
    in ``out_dir`` (created).

    Args:
        rows: Result rows.
        paired: Rows of :func:`~closedloop.evaluation.ranking.rank_controllers`.
        out_dir: Folder of the PNGs.
        metrics: Metrics of the strip plots.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for env_id, ranked in paired_by_env(paired).items():
        env = slug(env_id.split("/")[-1])
        order = [p["controller"] for p in ranked]
        labels = [f"{p['rank_label']} {p['controller']}" for p in ranked]
        for metric in metrics:
            written.append(
                plot_strip(rows, env_id, metric, out / f"strip-{env}-{metric}.png", order, labels)
            )
        if ranked[0]["baseline"]:
            written.append(plot_forest(ranked, out / f"forest-{env}-{ranked[0]['metric']}.png"))
    return written
