"""Per-controller figures of an evaluation run (matplotlib imported lazily, PNG, atomic).

* :func:`plot_patients`: one metric per patient (mean over seeds as a bar, seeds as dots).
* :func:`plot_controller`: that bar chart, and the ECAP trace of a representative patient
  against target and therapeutic window (:func:`closedloop.plots.plot_trajectory`), when the
  run saved trajectories.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from closedloop._config import ConfigError
from closedloop.evaluation.episode_spec import trajectory_path
from closedloop.evaluation.schema import SCHEMA
from closedloop.evaluation.simulate import window_along
from closedloop.evaluation.summary import check_metrics, groups, score_matrix
from closedloop.evaluation.trajectory import load_trajectory
from closedloop.patients.cohort import get_patient
from closedloop.plots import plot_trajectory
from closedloop.plots._save import new_figure, save_png


def slug(label: str) -> str:
    """A file-name-safe version of a controller label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "controller"


def with_window(traj: Any, patient: Any = None, cache: dict | None = None) -> Any:
    """The trajectory with its therapeutic window (ECAP at perception and discomfort) measured.

    The window depends on the patient and the CSF trace only, which are the same for every
    controller on one env, patient and seed; pass the same ``cache`` dict to measure it once.

    Args:
        traj: A :class:`~closedloop.evaluation.trajectory.Trajectory`.
        patient: The patient; looked up from ``traj.patient_id`` if None.
        cache: Optional dict reused across calls.
    """
    csf = np.asarray(traj.csf_mm, dtype=np.float64)
    key = (traj.patient_id, hashlib.sha256(csf.tobytes()).hexdigest(), traj.pw_us, traj.rate_hz)
    cache = {} if cache is None else cache
    if key not in cache:
        patient = get_patient(traj.patient_id) if patient is None else patient
        cache[key] = window_along(patient, patient.model(), csf, traj.pw_us, traj.rate_hz)
    lo, hi = cache[key]
    return dataclasses.replace(traj, window_lo_uv=lo, window_hi_uv=hi)


def representative_patient(
    rows: Sequence[Mapping[str, Any]], env_id: str, metric: str = "time_in_window_frac"
) -> str:
    """The patient whose metric, averaged over controllers and seeds, is the median one."""
    per: dict[str, list[float]] = {}
    for r in rows:
        value = r.get(metric)
        if r["env_id"] == env_id and value is not None and np.isfinite(value):
            per.setdefault(r["patient"], []).append(float(value))
    if not per:
        raise ConfigError(f"env_id={env_id!r} has no finite {metric} in the rows")
    means = {p: float(np.mean(v)) for p, v in per.items()}
    ranked = sorted(means, key=means.__getitem__)
    return ranked[(len(ranked) - 1) // 2]


def plot_patients(
    rows: Sequence[Mapping[str, Any]],
    controller: str,
    env_id: str,
    path: str | Path,
    metric: str = "time_in_window_frac",
) -> Path:
    """Save a bar chart of ``metric`` per patient (mean over seeds, seeds as dots)."""
    check_metrics([metric])
    group = groups(rows).get((controller, env_id))
    if not group:
        raise ConfigError(f"no rows for controller={controller!r} on env_id={env_id!r}")
    m, patients, _ = score_matrix(group, metric)
    x = np.arange(len(patients))
    fig = new_figure(max(5.0, 0.35 * len(patients) + 2.0), 3.6)
    ax = fig.subplots()
    with np.errstate(all="ignore"):
        ax.bar(x, np.nanmean(m, axis=1), color="tab:blue", alpha=0.6, label="mean over seeds")
    for j in range(m.shape[1]):
        ax.plot(x, m[:, j], "o", color="black", ms=3, label="seeds" if j == 0 else None)
    ax.set_xticks(x, patients, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"{metric}\n{SCHEMA[metric]}", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    ax.set_title(f"{controller} on {env_id}", fontsize=10)
    return save_png(fig, path)


def plot_controller(
    rows: Sequence[Mapping[str, Any]],
    controller: str,
    out_dir: str | Path,
    run_dir: str | Path | None = None,
    metric: str = "time_in_window_frac",
    patient: str | None = None,
    cache: dict | None = None,
) -> list[Path]:
    """Save the figures of one controller for every env it ran on.

    Writes ``<slug>-<env>-patients.png`` (:func:`plot_patients`) and, when ``run_dir`` holds
    the saved trajectory of the representative patient's first seed, ``<slug>-<env>-trace.png``
    (ECAP vs target with the therapeutic window, current, sensation, posture).

    Args:
        rows: Result rows (with ``episode`` keys).
        controller: Controller label.
        out_dir: Folder of the PNGs (created).
        run_dir: Run folder of :func:`~closedloop.evaluation.run_grid`, for trajectories.
        metric: Metric of the bar chart and of the choice of the representative patient.
        patient: Patient of the trace; :func:`representative_patient` if None.
        cache: Window cache shared between controllers (see :func:`with_window`).

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ctrl, env_id in groups(rows):
        if ctrl != controller:
            continue
        stem = f"{slug(controller)}-{slug(env_id.split('/')[-1])}"
        written.append(
            plot_patients(rows, controller, env_id, out / f"{stem}-patients.png", metric)
        )
        pid = patient or representative_patient(rows, env_id, metric)
        mine = sorted(
            (
                r
                for r in rows
                if (r["controller"], r["env_id"], r["patient"]) == (controller, env_id, pid)
            ),
            key=lambda r: r["seed"],
        )
        if run_dir is None or not mine or "episode" not in mine[0]:
            continue
        npz = trajectory_path(run_dir, mine[0]["episode"])
        if npz.is_file():
            traj = with_window(_load_saved(npz), cache=cache)
            title = f"{controller} on {env_id}: patient {pid}, seed {mine[0]['seed']}"
            written.append(plot_trajectory(traj, out / f"{stem}-trace.png", title))
    return written


def _load_saved(npz: Path) -> Any:
    """The trajectory a run folder saved at ``npz``; ConfigError naming the file if damaged."""
    import zipfile

    try:
        return load_trajectory(npz)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(
            f"{npz} is not a saved trajectory ({type(exc).__name__}: {exc}); the "
            "run folder is damaged: delete that file (the plot then goes without "
            "it), or start afresh"
        ) from None
