"""Learning curves of ``closedloop train`` runs: return, clinical metrics and validation."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

from closedloop.plots._save import new_figure, save_png

PANELS = (
    ("rollout/ep_rew_mean", "episode return"),
    ("clinical/time_in_window", "time in window (training)"),
    ("clinical/mean_rel_error", "|ECAP - target| / target (training)"),
)


def read_progress(run_dir: str | Path) -> dict[str, list[float]]:
    """The logged scalars of a run (``logs/progress-*.csv``, all segments), by key."""
    cols: dict[str, list[float]] = {}
    for path in sorted(Path(run_dir, "logs").glob("progress-*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                step = row.get("time/total_timesteps")
                if not step:
                    continue
                for key, value in row.items():
                    if value not in ("", None):
                        cols.setdefault(key, []).append(float(value))
                        cols.setdefault(f"{key}@step", []).append(float(step))
    return cols


def plot_learning_curves(runs: Mapping[str, str | Path], path: str | Path) -> Path:
    """One PNG comparing runs: training return and clinical metrics, validation time in window.

    Args:
        runs: Label -> run folder of ``closedloop train``.
        path: PNG to write.
    """
    fig = new_figure(11.0, 7.0)
    axes = fig.subplots(2, 2).ravel()
    for label, run in runs.items():
        cols = read_progress(run)
        for ax, (key, title) in zip(axes[:3], PANELS, strict=True):
            if key in cols:
                ax.plot(cols[f"{key}@step"], cols[key], label=label, lw=1.0)
            ax.set_title(title, fontsize=10)
        evals_path = Path(run, "evaluations.json")
        if evals_path.is_file():
            evals = json.loads(evals_path.read_text(encoding="utf-8"))
            axes[3].plot(
                [e["step"] for e in evals],
                [e["metrics"]["time_in_window_frac"] for e in evals],
                "o-",
                label=label,
            )
    axes[3].set_title("time in window (validation cohort)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    return save_png(fig, path)
