"""Play controllers on env ids x patients x fixed seeds, in parallel, resumably.

Each cell of the grid is an :class:`~closedloop.evaluation.episode_spec.EpisodeSpec`.
:func:`run_grid` plays the cells in local worker processes
(:func:`closedloop._parallel.parallel_map`) and returns one result row per episode
(:meth:`~closedloop.evaluation.episode_runner.EpisodeResult.row`). Controllers are built inside the
workers from something picklable: a spec name handed to ``make_controller`` (by default
``closedloop.controllers.registry.make_controller``), or a zero-argument factory (a class or a
top-level function).

The cells of one controller label, env id and overrides are played in batches of up to
:data:`MAX_BATCH` episodes through the native vector env
(:func:`~closedloop.evaluation.batch_runner.run_episodes`, results identical to
:func:`~closedloop.evaluation.episode_runner.run_episode`'s; each row's ``wall_s`` is its share of
its batch's time). A batch's episodes are written when the batch ends.

With ``out_dir``, every finished episode is written atomically to
``out_dir/episodes/<key>.json`` (and its trajectory to ``out_dir/trajectories/<key>.npz`` if
asked), and a re-run skips the episodes already there: an interrupted run resumes where it
stopped. The key hashes the cell (controller label and source, env id, patient, seed, env
overrides), so use a new ``out_dir`` after changing what a spec name means.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError, short_repr
from closedloop._parallel import check_workers, parallel_map
from closedloop._ray import MAX_RETRIES, check_ray, check_retries, connect, ray_map
from closedloop.controllers.registry import list_agents
from closedloop.evaluation.batch_runner import run_episodes
from closedloop.evaluation.episode_inputs import (
    check_env_id,
    check_env_overrides,
    check_patient,
    check_seed,
)
from closedloop.evaluation.episode_runner import run_episode
from closedloop.evaluation.episode_spec import (
    EPISODES_DIR,
    TRAJECTORIES_DIR,
    EpisodeSpec,
    finished_row,
    write_episode,
)
from closedloop.patients.cohort import load_cohort
from closedloop.patients.cohort_draw import SPLITS

MAX_BATCH = 16
"""Most episodes played together in one vector env (memory: each holds its step log)."""

BATCHES_PER_WORKER = 2
"""Batches per worker process or Ray CPU that :func:`batches` aims at."""


def resolve_patients(patients: str | Iterable[str]) -> list[str]:
    """Patient ids from a split name (``train``, ``validation``, ``test``) or a list of ids.

    Every id is looked up here, in the calling process, so that the held-out guard of
    :func:`closedloop.patients.cohort.tuning_session` applies even when the episodes run in workers.
    """
    if isinstance(patients, str):
        if patients not in SPLITS:
            raise ConfigError(
                f"patients={patients!r} is unknown; valid: a split "
                f"({', '.join(SPLITS)}) or a list of patient ids"
            )
        return [p.patient_id for p in load_cohort(patients)]
    ids = [
        str(p)
        for p in _non_empty(
            "patients", patients, f"a split name ({', '.join(SPLITS)}) or a non-empty list of ids"
        )
    ]
    for i, pid in enumerate(ids):
        check_patient(pid, f"patients[{i}]")
    return ids


def grid_specs(
    controllers: Mapping[str, str | Callable[[], Any]] | Sequence[str],
    env_ids: Sequence[str],
    patients: str | Iterable[str],
    seeds: Sequence[int],
    env_overrides: Mapping[str, Any] | None = None,
) -> list[EpisodeSpec]:
    """The cells of a grid, validated, ordered controller x env x patient x seed.

    Args:
        controllers: Label -> spec name or zero-argument factory; a list of spec names means
            each is its own label.
        env_ids: Registered ids.
        patients: A split name or patient ids (:func:`resolve_patients`).
        seeds: Fixed, distinct seeds (>= 0).
        env_overrides: ``gymnasium.make`` overrides for every env.

    Raises:
        ConfigError: Naming the argument if any is empty, unknown or malformed.
    """
    ctrl = _controllers(controllers)
    env_ids = [
        check_env_id(e, f"env_ids[{i}]")
        for i, e in enumerate(
            _non_empty("env_ids", env_ids, "registered ids such as closedloop/ECAPClinic-Test-v0")
        )
    ]
    overrides = {} if env_overrides is None else env_overrides
    for env_id in env_ids:
        overrides = check_env_overrides(env_id, overrides)
    seeds = [
        check_seed(s, f"seeds[{i}]")
        for i, s in enumerate(_non_empty("seeds", seeds, "a list of integers >= 0"))
    ]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={seeds!r} has duplicates; valid: distinct integers >= 0")
    over = tuple(sorted(overrides.items()))
    return [
        EpisodeSpec(name, env_id, pid, seed, src, over)
        for (name, src), env_id, pid, seed in itertools.product(
            ctrl.items(), env_ids, resolve_patients(patients), seeds
        )
    ]


def _controllers(controllers) -> dict[str, str | Callable[[], Any]]:
    """Normalise the ``controllers`` argument of :func:`grid_specs`."""
    if isinstance(controllers, str | bytes) or not isinstance(controllers, Mapping | Iterable):
        raise ConfigError(
            f"controllers={short_repr(controllers)} is invalid; valid: a dict "
            "label -> spec name or factory, or a list of spec names (a list even "
            "for one)"
        )
    if isinstance(controllers, Mapping):
        ctrl = dict(controllers)
    else:
        names = list(controllers)
        for i, name in enumerate(names):
            if not isinstance(name, str):
                raise ConfigError(
                    f"controllers[{i}]={short_repr(name)} must be a spec name (a "
                    "string); pass a dict label -> factory for anything else"
                )
        ctrl = {name: name for name in names}
    if not ctrl:
        raise ConfigError("controllers is empty; valid: a dict label -> spec name or factory")
    for name, src in ctrl.items():
        if not (isinstance(src, str) or callable(src)):
            raise ConfigError(
                f"controllers[{name!r}]={src!r} is invalid; valid: a spec name or "
                "a zero-argument factory"
            )
    return ctrl


def _check_spec_names(specs: Iterable[EpisodeSpec]) -> None:
    """Refuse, before any episode is played, a spec name that ``agents/`` does not hold."""
    known = list_agents()
    for spec in specs:
        src = spec.controller if spec.source is None else spec.source
        if isinstance(src, str) and src not in known:
            raise ConfigError(
                f"controllers[{spec.controller!r}]={src!r} is unknown; valid: "
                f"{', '.join(known)}, or a zero-argument factory"
            )


def _non_empty(name: str, values, valid: str) -> list:
    """``values`` as a list; ConfigError naming ``name`` if it is a string or empty."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigError(f"{name}={values!r} must be a list; valid: {valid}")
    out = list(values)
    if not out:
        raise ConfigError(f"{name} is empty; valid: {valid}")
    return out


@dataclasses.dataclass(frozen=True)
class _Job:
    """What a worker process needs to play a batch of cells (picklable; see :func:`batches`)."""

    specs: tuple[EpisodeSpec, ...]
    make_controller: Callable[[str], Any] | None
    out_dir: str | None
    save_trajectory: bool


def play_spec(spec: EpisodeSpec, make_controller: Callable[[str], Any] | None = None):
    """Build the cell's controller and play its episode; the :class:`EpisodeResult`."""
    return run_episode(
        spec.build(make_controller),
        spec.env_id,
        spec.patient,
        spec.seed,
        dict(spec.env_overrides),
        name=spec.controller,
    )


def _results(job: _Job) -> list:
    """Play a batch of cells through the native vector env; one :class:`EpisodeResult` each."""
    first = job.specs[0]
    return run_episodes(
        functools.partial(first.build, job.make_controller),
        first.env_id,
        [(spec.patient, spec.seed) for spec in job.specs],
        dict(first.env_overrides),
        name=first.controller,
    )


def _run_job(job: _Job) -> list[dict[str, Any]]:
    """Local worker entry point: play a batch of cells, write their files, return their rows."""
    rows = []
    for spec, result in zip(job.specs, _results(job), strict=True):
        row = {"episode": spec.key(), **result.row()}
        if job.out_dir is not None:
            write_episode(
                job.out_dir, spec, row, result.trajectory if job.save_trajectory else None
            )
        rows.append(row)
    return rows


def _ray_job(job: _Job) -> list[tuple[dict[str, Any], Any]]:
    """Ray task: play a batch of cells; ``(row, trajectory or None)`` each (the driver writes)."""
    return [
        (
            {"episode": spec.key(), **result.row()},
            result.trajectory if job.save_trajectory else None,
        )
        for spec, result in zip(job.specs, _results(job), strict=True)
    ]


def batches(specs: Sequence[EpisodeSpec], workers: int = 1) -> list[list[int]]:
    """Indices of ``specs`` grouped into batches that one vector env can play together.

    Cells of the same controller label and source, env id and overrides, in order, split into
    batches of at most :data:`MAX_BATCH` episodes, and small enough that there are about
    :data:`BATCHES_PER_WORKER` batches per worker in all (so that every worker has work and the
    last ones finish together), but no smaller than needed: a batch plays its episodes faster
    than they play one at a time.
    """
    groups: dict[tuple, list[int]] = {}
    for i, spec in enumerate(specs):
        key = (spec.controller, spec.source_id(), spec.env_id, spec.env_overrides)
        groups.setdefault(key, []).append(i)
    size = max(1, min(MAX_BATCH, math.ceil(len(specs) / (BATCHES_PER_WORKER * workers))))
    out = []
    for idx in groups.values():
        out.extend(idx[j : j + size] for j in range(0, len(idx), size))
    return out


def run_grid(
    controllers: Mapping[str, str | Callable[[], Any]] | Sequence[str],
    env_ids: Sequence[str],
    patients: str | Iterable[str],
    seeds: Sequence[int],
    *,
    workers: int = 1,
    progress: bool = True,
    out_dir: str | Path | None = None,
    env_overrides: Mapping[str, Any] | None = None,
    make_controller: Callable[[str], Any] | None = None,
    save_trajectories: bool = False,
    ray: bool | str = False,
    max_retries: int = MAX_RETRIES,
    placement: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Play every controller on every env, patient and seed; one result row per episode.

    Args:
        controllers: Label -> spec name or zero-argument factory (see :func:`grid_specs`).
        env_ids: Registered ids.
        patients: A split name (``test`` for the held-out cohort) or patient ids.
        seeds: Fixed, distinct seeds.
        workers: Local worker processes (1: in this process); ignored with ``ray``.
        progress: Show a progress bar.
        out_dir: Run folder: finished episodes are written there and skipped when re-run.
        env_overrides: ``gymnasium.make`` overrides for every env (e.g. ``{"episode_s": 20}``).
        make_controller: Spec name -> controller, picklable (a top-level function); by default
            ``closedloop.controllers.registry.make_controller``.
        save_trajectories: With ``out_dir``, also save each trajectory as ``.npz``.
        ray: Play on Ray instead of local processes: True starts or joins a local Ray
            instance, a string is the address of a cluster (:func:`closedloop._ray.connect`).
            Each batch is a Ray task; this process writes every result as it arrives.
        max_retries: With ``ray``, re-runs of a task whose worker or node died.
        placement: With ``ray``, a dict this fills with Ray node id -> episodes it played.

    Returns:
        Rows in grid order (controller, env, patient, seed): ``episode`` (the key), then the
        columns of :data:`closedloop.evaluation.report.SCHEMA`. The rows (all but ``wall_s``)
        do not depend on ``workers`` or ``ray``.
    """
    specs = grid_specs(controllers, env_ids, patients, seeds, env_overrides)
    if make_controller is None:
        _check_spec_names(specs)
    workers = check_workers(workers)
    address = check_ray(ray)
    max_retries = check_retries(max_retries)
    if placement is not None and not isinstance(placement, dict):
        raise ConfigError(f"placement={short_repr(placement)} must be a dict (or None)")
    if save_trajectories and out_dir is None:
        raise ConfigError("save_trajectories=True needs out_dir (where the .npz files go)")
    rows: list[dict | None] = [None] * len(specs)
    if out_dir is not None:
        for sub in (EPISODES_DIR, TRAJECTORIES_DIR) if save_trajectories else (EPISODES_DIR,):
            (Path(out_dir) / sub).mkdir(parents=True, exist_ok=True)
        rows = [finished_row(out_dir, s) for s in specs]
    todo = [i for i, row in enumerate(rows) if row is None]
    if ray is False:
        _play_local(
            specs, todo, rows, workers, progress, out_dir, make_controller, save_trajectories
        )
    else:
        _play_ray(
            specs,
            todo,
            rows,
            address,
            max_retries,
            progress,
            out_dir,
            placement,
            _Job((), make_controller, None, save_trajectories),
        )
    return rows


def _play_ray(specs, todo, rows, address, max_retries, progress, out_dir, placement, proto):
    """Play the cells ``todo`` as Ray tasks (``proto``: the job fields) and write them here."""
    n_cpus = connect(address) if todo else 1
    groups = _groups(specs, todo, n_cpus)
    jobs = [dataclasses.replace(proto, specs=tuple(specs[i] for i in g)) for g in groups]
    results = ray_map(
        _ray_job,
        jobs,
        max_retries=max_retries,
        progress=progress,
        desc="episodes",
        unit="episode",
        weights=[len(g) for g in groups],
        nodes=placement,
    )
    for k, pairs in results:
        for i, (row, trajectory) in zip(groups[k], pairs, strict=True):
            if out_dir is not None:
                write_episode(out_dir, specs[i], row, trajectory)
            rows[i] = row


def _groups(specs: Sequence[EpisodeSpec], todo: list[int], workers: int) -> list[list[int]]:
    """Indices (into ``specs``) of the unplayed cells ``todo``, in :func:`batches`."""
    return [[todo[j] for j in batch] for batch in batches([specs[i] for i in todo], workers)]


def _play_local(specs, todo, rows, workers, progress, out_dir, make_controller, save) -> None:
    """Play the cells ``todo`` in local processes (which write them); fill in ``rows``."""
    groups = _groups(specs, todo, workers)
    out = None if out_dir is None else str(out_dir)
    jobs = [_Job(tuple(specs[i] for i in g), make_controller, out, save) for g in groups]
    played = parallel_map(_run_job, jobs, workers, progress, "episode batches", "batch")
    for group, batch_rows in zip(groups, played, strict=True):
        for i, row in zip(group, batch_rows, strict=True):
            rows[i] = row
