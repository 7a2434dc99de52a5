"""The controller benchmark: every controller on the held-out test cohort, ranked.

A :class:`Suite` names the controllers (any reference of
:mod:`closedloop.controllers.sources`: registered names, spec files, ``module:Class``,
``file.py:Class``, training run folders), env ids, patients and seeds. :data:`DEFAULT` is the
embedded default suite that ``closedloop benchmark`` runs; :data:`QUICK` is a cut-down version
(three patients, one seed, three-minute episodes) that finishes in a few minutes on a 2-core
machine (both defined in :mod:`closedloop.evaluation.suite`, as :class:`Suite` is, and importable
from here). A suite can also come from a TOML file
(``closedloop benchmark --suite my.toml``) with the fields of :class:`Suite`.

:func:`run_benchmark` plays the grid with :func:`closedloop.evaluation.run_grid` in local worker
processes, writing every finished episode atomically into the run folder so that an interrupted
run resumes where it stopped, and then writes the report of every episode the folder holds
(results, summary, leaderboard, report card, plots, ``report.html``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import closedloop
from closedloop._config import ConfigError, short_repr
from closedloop._io import write_text_atomic
from closedloop._parallel import check_workers, parallel_map
from closedloop._ray import MAX_RETRIES, check_ray, check_retries, cluster_cpus
from closedloop.controllers.sources import resolve_controller, resolve_controllers
from closedloop.evaluation import rows_from_folder, run_grid, write_html_report
from closedloop.evaluation.episode_inputs import check_env_overrides
from closedloop.evaluation.episode_spec import TRAJECTORIES_DIR, trajectory_path
from closedloop.evaluation.grid import grid_specs, play_spec, resolve_patients
from closedloop.evaluation.suite import (
    DEFAULT,
    PRIMARY_METRICS,
    QUICK,
    SUITE_FILE,
    SUITES,
    TEST_ENVS,
    Suite,
    load_suite,
    read_suite_file,
)
from closedloop.evaluation.trace_figures import plot_top_traces, trace_episodes
from closedloop.training.policy import ZOO_DIR, zoo_policies

__all__ = [
    "DEFAULT",
    "PRIMARY_METRICS",
    "QUICK",
    "SUITES",
    "SUITE_FILE",
    "TEST_ENVS",
    "ZOO_DIR",
    "Suite",
    "controllers_of",
    "load_suite",
    "machine",
    "patients_of",
    "read_suite_file",
    "run_benchmark",
    "validate",
    "zoo_policies",
]


def controllers_of(suite: Suite) -> dict[str, Any]:
    """The suite's controllers, resolved: row label -> spec name or picklable factory.

    Each entry of ``suite.controllers`` is any reference
    :func:`~closedloop.controllers.sources.resolve_controller` accepts (a registered name, a
    spec file, ``module:Class``, ``file.py:Class``, a training run folder); ``all`` expands to
    every agent spec and zoo policy.

    Raises:
        ConfigError: If a reference is unknown or unusable, two references share a label, or
            the baseline is not one of the labels.
    """
    controllers = resolve_controllers(suite.controllers, "controllers")
    if suite.baseline not in controllers:
        raise ConfigError(
            f"suite {suite.name!r}: baseline={suite.baseline!r} is not one of its "
            f"controllers; valid: {', '.join(controllers)}"
        )
    return controllers


def patients_of(suite: Suite) -> list[str]:
    """The suite's patient ids (the first ``n_patients`` of a split, if set)."""
    ids = resolve_patients(suite.patients)
    return ids[: suite.n_patients] if suite.n_patients else ids


def machine() -> dict[str, Any]:
    """The machine and package versions a run used (stored with its results)."""
    import numba
    import numpy

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "closedloop": closedloop.__version__,
        "numpy": numpy.__version__,
        "numba": numba.__version__,
    }


def validate(suite: Suite) -> tuple[dict[str, Any], list[str]]:
    """Check that everything a suite names exists, before anything is played or written.

    Controllers, the baseline, env ids (closedloop ids only), patients, and the env overrides
    on every env id (every key and value, as ``gymnasium.make`` would check them).

    Returns:
        The controllers (:func:`controllers_of`: label -> source) and the patient ids.

    Raises:
        ConfigError: Naming the bad field and what is valid.
    """
    controllers, patients = controllers_of(suite), patients_of(suite)
    validate_envs(suite)
    return controllers, patients


def validate_envs(suite: Suite) -> None:
    """Check the env overrides on every env id of the suite (as ``gymnasium.make`` would)."""
    for env_id in suite.env_ids:
        check_env_overrides(env_id, dict(suite.env_overrides))


_REPORT_ONLY = ("name", "controllers", "baseline", "primary_metrics")
"""Suite fields that do not change how an episode is played: a run folder takes more
controllers, another baseline or other primary metrics (its report then covers them all)."""


def _played(doc: dict[str, Any]) -> dict[str, Any]:
    """A suite record without the fields that do not change the episodes (:data:`_REPORT_ONLY`)."""
    return {k: v for k, v in doc.items() if k not in _REPORT_ONLY}


def _claim_folder(out: Path, suite: Suite, fresh: bool) -> Suite:
    """Record the suite in the run folder; refuse to resume a different suite there.

    A folder holding the same envs, patients, seeds and overrides takes the suite's
    controllers in addition to its own: the recorded suite lists both (the new ones first).

    Returns:
        The suite recorded in the folder.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir={str(out)!r} is a file; valid: a folder (created if missing)")
    old = None if fresh else read_suite_file(out)
    if old is not None:
        old_suite = Suite.from_dict(old)
        if _played(old_suite.to_dict()) != _played(suite.to_dict()):
            raise ConfigError(
                f"{out} holds a run of another suite ({old.get('name')!r}: other "
                "envs, patients, seeds or env overrides); use another --out, or "
                "--fresh to start over there"
            )
        extra = tuple(c for c in old_suite.controllers if c not in suite.controllers)
        suite = dataclasses.replace(suite, controllers=suite.controllers + extra)
    if fresh and out.exists():
        import shutil

        for sub in ("episodes", "trajectories", "plots"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / SUITE_FILE, json.dumps(suite.to_dict(), indent=2) + "\n")
    return suite


def run_benchmark(
    suite: Suite = DEFAULT,
    out_dir: str | Path | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    plots: bool = True,
    fresh: bool = False,
    save_trajectories: bool = False,
    ray: bool | str = False,
    max_retries: int = MAX_RETRIES,
):
    """Play a suite and write its report; resumes an interrupted run in the same folder.

    Everything is checked (:func:`validate`, ``workers``, the run folder's ``suite.json``)
    before the run folder is claimed or any episode is played. A folder that already holds
    episodes of the same envs, patients and seeds keeps them: the report covers every
    controller in the folder (those of an earlier run, or added from Python with
    :func:`closedloop.evaluation.run_grid`), so ``--controllers mine.py:Mine --out <run>``
    adds one controller to a finished run without playing the others again.

    Args:
        suite: What to play.
        out_dir: Run folder; ``runs/benchmark-<suite name>`` if None.
        workers: Local worker processes, in [1, 256]; all CPUs if None.
        progress: Show a progress bar.
        plots: Write the figures (and ``report.html`` embeds them).
        fresh: Discard finished episodes in the folder instead of resuming.
        save_trajectories: Also keep every episode's trajectory (``trajectories/*.npz``; an
            hour of daily living is tens of MB).
        ray: Play on Ray instead of local processes (``workers`` is then ignored): True
            starts or joins a local Ray instance, a string is a cluster's address
            (``HOST:PORT``, ``auto``). This process writes every episode as it arrives, so the
            run folder, resume and report are those of a local run.
        max_retries: With ``ray``, re-runs of a task whose worker process or node died.

    Returns:
        The :class:`closedloop.evaluation.Report` (leaderboard text in ``.text``).

    Raises:
        ConfigError: If the suite, ``workers`` or the run folder is invalid.
    """
    if not isinstance(suite, Suite):
        raise ConfigError(f"suite={short_repr(suite)} must be a closedloop.benchmark.Suite")
    if out_dir is not None and not isinstance(out_dir, str | os.PathLike):
        raise ConfigError(f"out_dir={short_repr(out_dir)} must be a folder path")
    out = Path(out_dir if out_dir is not None else f"runs/benchmark-{suite.name}")
    controllers = resolve_controllers(suite.controllers, "controllers")
    patients = patients_of(suite)
    validate_envs(suite)
    n_workers = check_workers((os.cpu_count() or 1) if workers is None else workers)
    check_ray(ray)
    check_retries(max_retries)
    earlier = [] if fresh or not (out / "episodes").is_dir() else rows_from_folder(out)
    labels = set(controllers) | {r["controller"] for r in earlier}
    if suite.baseline not in labels:
        raise ConfigError(
            f"baseline={suite.baseline!r} is not one of its controllers (nor of "
            f"the run folder's); valid: {', '.join(sorted(labels))}"
        )
    recorded = _claim_folder(out, suite, fresh)
    placement: dict[str, int] = {}
    rows = run_grid(
        controllers,
        list(suite.env_ids),
        patients,
        list(suite.seeds),
        workers=n_workers,
        progress=progress,
        out_dir=out,
        env_overrides=dict(suite.env_overrides) or None,
        save_trajectories=save_trajectories,
        ray=ray,
        max_retries=max_retries,
        placement=placement if ray is not False else None,
    )
    executor = _executor(n_workers, ray, placement)
    report, rows = _write_report(out, rows, recorded, executor, plots)
    if plots:
        replayable = {**_resolvable(recorded.controllers), **controllers}
        report.paths.update(
            _trace_figures(report, rows, out, replayable, suite, n_workers, progress)
        )
    report.paths["report.html"] = write_html_report(out)
    return report


def _executor(workers: int, ray: bool | str, placement: dict[str, int]) -> dict[str, Any]:
    """Where the episodes ran, for the report's metadata (and said on stderr for Ray)."""
    if ray is False:
        return {"workers": workers}
    if placement:
        print(
            f"Ray: played {sum(placement.values())} episodes on {len(placement)} node(s): "
            + ", ".join(f"{n[:8]} {k}" for n, k in sorted(placement.items())),
            file=sys.stderr,
        )
    return {"ray": "local" if ray is True else ray, "ray_cpus": cluster_cpus()}


def _write_report(out: Path, rows: list[dict], suite: Suite, executor: dict, plots: bool):
    """The report of every episode in the folder (this run's and any other it holds).

    Controllers that cannot be ranked with the others (other episodes than the baseline's)
    are listed in the report, not dropped (:func:`closedloop.evaluation.reopen.report_rows`).

    Returns:
        ``(report, ranked rows)``.
    """
    from closedloop.evaluation.reopen import report_rows, rows_from_folder

    played = {r["episode"] for r in rows}
    rows = rows + [r for r in rows_from_folder(out) if r["episode"] not in played]
    meta = {"suite": suite.to_dict(), "machine": machine(), **executor}
    report, kept, left = report_rows(out, rows, suite.baseline, meta, plots)
    for item in left:
        print(
            f"left out: {item['controller']} on {item['env_id']}: {item['reason']}", file=sys.stderr
        )
    return report, kept


def _resolvable(refs: tuple[str, ...]) -> dict[str, Any]:
    """The controllers of ``refs`` that still resolve (for replays of an earlier run's episodes)."""
    out: dict[str, Any] = {}
    for ref in refs:
        try:
            out.update(
                resolve_controllers([ref]) if ref == "all" else dict([resolve_controller(ref)])
            )
        except ConfigError:
            continue
    return out


def _replay(job: tuple[Any, str]) -> str:
    """Worker entry point: play one grid cell again and save its trajectory at ``job[1]``."""
    spec, path = job
    play_spec(spec).trajectory.save(path)
    return path


def _trace_figures(
    report, rows: list[dict], out: Path, controllers, suite: Suite, workers: int, progress: bool
) -> dict[str, Path]:
    """Replay the episodes the trace figures draw (unless saved) and draw the figures.

    The benchmark does not keep trajectories (an hour of daily living is tens of MB per
    episode); every episode replays bit for bit, so the few the figures need (the top
    controllers and the baseline on two patients per env) are played again one at a time.
    """
    specs = {
        s.key(): s
        for s in grid_specs(
            controllers,
            list(suite.env_ids),
            patients_of(suite),
            list(suite.seeds),
            dict(suite.env_overrides) or None,
        )
    }
    (out / TRAJECTORIES_DIR).mkdir(exist_ok=True)
    jobs = [
        (specs[r["episode"]], str(trajectory_path(out, r["episode"])))
        for r in trace_episodes(rows, report.paired)
        if r["episode"] in specs and not trajectory_path(out, r["episode"]).is_file()
    ]
    list(parallel_map(_replay, jobs, workers, progress, "trace episodes", "episode"))
    return {f"plots/{p.name}": p for p in plot_top_traces(rows, report.paired, out, out / "plots")}
