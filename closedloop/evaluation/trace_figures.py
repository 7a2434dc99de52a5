"""ECAP traces of the top controllers on a representative and a worst patient, per env.

:func:`plot_top_traces` draws, for each env of a ranked run, the noise-free ECAP of the best
``n_top`` controllers (and the baseline) against the target and the therapeutic window, on two
patients: the representative one (:func:`~closedloop.evaluation.figures.representative_patient`,
the median of the primary metric over every controller) and the worst one for the best
controller. Every controller played the same episode (same patient and seed: the same day), so
the traces differ only by what the controllers did. Needs the run folder's saved trajectories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from closedloop.evaluation.episode_spec import trajectory_path
from closedloop.evaluation.figures import _load_saved, representative_patient, slug, with_window
from closedloop.evaluation.rank_figures import paired_by_env
from closedloop.evaluation.summary import groups, score_matrix
from closedloop.plots._save import new_figure, save_png
from closedloop.plots.clinic import SMOOTH_AFTER_S

DEFAULT_TOP = 3
"""Controllers drawn besides the baseline."""


def worst_patient(
    rows: Sequence[Mapping[str, Any]], controller: str, env_id: str, metric: str, direction: int
) -> str:
    """The patient on whom ``controller`` scores worst in ``metric`` (mean over seeds)."""
    m, patients, _ = score_matrix(groups(rows)[(controller, env_id)], metric)
    with np.errstate(all="ignore"):
        means = np.nanmean(m, axis=1)
    means = np.where(np.isfinite(means), means, np.inf if direction > 0 else -np.inf)
    return patients[int(np.argmin(means) if direction > 0 else np.argmax(means))]


def _episode(
    rows: Sequence[Mapping[str, Any]], controller: str, env_id: str, patient: str
) -> Mapping[str, Any] | None:
    """The controller's row of ``patient`` on ``env_id`` with the lowest seed, if any."""
    mine = [
        r
        for r in rows
        if (r["controller"], r["env_id"], r["patient"]) == (controller, env_id, patient)
    ]
    return min(mine, key=lambda r: r["seed"]) if mine else None


def _traces(
    rows, run_dir: Path, env_id: str, patient: str, controllers: Sequence[str], cache: dict
) -> tuple[int | None, list[tuple[str, Any]]]:
    """The saved trajectories of ``controllers`` on the patient's first seed (found ones)."""
    seed, found = None, []
    for c in controllers:
        row = _episode(rows, c, env_id, patient)
        if row is None or "episode" not in row:
            continue
        path = trajectory_path(run_dir, row["episode"])
        if path.is_file():
            seed = row["seed"] if seed is None else seed
            if row["seed"] == seed:
                found.append((c, with_window(_load_saved(path), cache=cache)))
    return seed, found


# Episodes longer than SMOOTH_AFTER_S (the same length as plot_trajectory's) are drawn as the
# 1-s moving mean of the ECAP: at 50 Hz an hour is 180,000 pulses, and the pulse-to-pulse
# scatter of the noise-free ECAP fills the panel.
SMOOTH_S = 1.0
"""Width of that moving mean (s)."""


def _smoothed(traj: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """``(t_s, ecap_uv, label)``: the noise-free ECAP, as a 1-s moving mean for long episodes."""
    t, y = np.asarray(traj.t_s), np.asarray(traj.ecap_true_uv, dtype=float)
    if t.size < 2 or t[-1] - t[0] <= SMOOTH_AFTER_S:
        return t, y, "true ECAP (µV)"
    n = max(1, int(round(SMOOTH_S * float(traj.rate_hz))))
    c = np.concatenate(([0.0], np.cumsum(y)))
    return t[n - 1 :], (c[n:] - c[:-n]) / n, f"true ECAP, {SMOOTH_S:g}-s mean (µV)"


def _panel(ax, traces: Sequence[tuple[str, Any]], title: str) -> None:
    """ECAP (noise-free) of each controller, with the target and the first trace's window.

    The baseline (last) is drawn first, under the others; the y-axis stops at 1.5 times the
    highest of the window's top, the target and the controllers' 99th percentiles, so a
    baseline's spikes (coughs, lying) do not flatten the other traces.
    """
    first = traces[0][1]
    t = np.asarray(first.t_s)
    ax.fill_between(
        t,
        first.window_lo_uv,
        first.window_hi_uv,
        color="tab:green",
        alpha=0.12,
        step="post",
        label="therapeutic window",
    )
    drawn, ylabel, tops = [], "true ECAP (µV)", [float(first.target_uv)]
    for k, (name, traj) in enumerate(traces):
        ts, y, ylabel = _smoothed(traj)
        drawn.append((k, name, ts, y))
        if k < len(traces) - 1 or len(traces) == 1:
            tops.append(float(np.nanpercentile(y, 99)) if y.size else 0.0)
    hi = np.asarray(first.window_hi_uv, dtype=float)
    if np.isfinite(hi).any():
        tops.append(float(np.nanmax(hi)))
    for k, name, ts, y in reversed(drawn):
        ax.plot(ts, y, lw=0.8, color=f"C{k}", label=name, zorder=3 + len(drawn) - k)
    ax.axhline(
        first.target_uv,
        color="black",
        ls="--",
        lw=1.0,
        zorder=20,
        label=f"target {first.target_uv:.1f} µV",
    )
    ax.set_ylim(0.0, 1.5 * max(tops))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=7, ncol=2)


def trace_picks(
    rows: Sequence[Mapping[str, Any]], paired: Sequence[Mapping[str, Any]], n_top: int = DEFAULT_TOP
) -> dict[str, tuple]:
    """Per env: ``(ranked, controllers, baseline, ((label, patient), ...))`` of the figure.

    The controllers are the best ``n_top`` and the baseline; the patients the representative
    one and the worst one for the best controller.
    """
    out = {}
    for env_id, ranked in paired_by_env(paired).items():
        metric, direction = ranked[0]["metric"], int(ranked[0]["direction"]) or -1
        names = [p["controller"] for p in ranked[: max(1, int(n_top))]]
        base = ranked[0]["baseline"]
        if base and base not in names:
            names.append(base)
        picks = (
            ("representative", representative_patient(rows, env_id, metric)),
            (f"worst for {names[0]}", worst_patient(rows, names[0], env_id, metric, direction)),
        )
        out[env_id] = (ranked, names, base, picks)
    return out


def trace_episodes(
    rows: Sequence[Mapping[str, Any]], paired: Sequence[Mapping[str, Any]], n_top: int = DEFAULT_TOP
) -> list[Mapping[str, Any]]:
    """The result rows whose trajectories :func:`plot_top_traces` draws (each once).

    A run that did not save every trajectory can replay just these (the episodes are
    reproducible bit for bit) and then draw the figures.
    """
    seen, out = set(), []
    for env_id, (_, names, _, picks) in trace_picks(rows, paired, n_top).items():
        for _, patient in picks:
            for c in names:
                row = _episode(rows, c, env_id, patient)
                if row is not None and "episode" in row and row["episode"] not in seen:
                    seen.add(row["episode"])
                    out.append(row)
    return out


def plot_top_traces(
    rows: Sequence[Mapping[str, Any]],
    paired: Sequence[Mapping[str, Any]],
    run_dir: str | Path,
    out_dir: str | Path,
    n_top: int = DEFAULT_TOP,
    cache: dict | None = None,
) -> list[Path]:
    """Save ``traces-<env>.png`` per env: the top controllers on two patients.

    Args:
        rows: Result rows (with ``episode`` keys, as :func:`~closedloop.evaluation.run_grid`
            writes them).
        paired: Rows of :func:`~closedloop.evaluation.ranking.rank_controllers` (their
            ``position``, ``metric``, ``direction`` and ``baseline``).
        run_dir: Run folder holding the saved trajectories.
        out_dir: Folder of the PNGs (created).
        n_top: Controllers drawn besides the baseline, >= 1.
        cache: Window cache shared with other figures (see
            :func:`~closedloop.evaluation.figures.with_window`).

    Returns:
        The paths written (an env whose trajectories were not saved gets no figure).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = {} if cache is None else cache
    written = []
    for env_id, (ranked, names, base, picks) in trace_picks(rows, paired, n_top).items():
        panels = []
        for label, patient in picks:
            seed, traces = _traces(rows, Path(run_dir), env_id, patient, names, cache)
            if traces:
                panels.append((traces, f"{label} patient {patient}, seed {seed}"))
        if not panels:
            continue
        fig = new_figure(11.0, 3.2 * len(panels) + 0.6)
        axes = np.atleast_1d(fig.subplots(len(panels), 1))
        for ax, (traces, title) in zip(axes, panels, strict=True):
            _panel(ax, traces, title)
        axes[-1].set_xlabel("time (s)")
        top = min(len(ranked), max(1, int(n_top)))
        extra = f", and the baseline {base}" if base and base not in names[:top] else ""
        fig.suptitle(f"{env_id}: the top {top} by {ranked[0]['metric']}{extra}", fontsize=10)
        written.append(save_png(fig, out / f"traces-{slug(env_id.split('/')[-1])}.png"))
    return written
