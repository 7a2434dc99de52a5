"""A training run over several seeds: one run folder per seed, then a summary across seeds.

Example::

    from closedloop.training.seeds import train_seeds

    sweep = train_seeds("ppo", "closedloop/ECAPTracking-v0", 200_000, "runs/ppo", [0, 1, 2, 3],
                        ray=True)            # or workers=2: local processes
    sweep.summary["metrics"]["time_in_window_frac"]    # mean, sd, 95 % CI across seeds

``out_dir/seed-<seed>/`` is an ordinary :func:`~closedloop.training.train` run folder (resumed
by the same call, like one run). Each seed trains in its own process: a local worker process
(``workers``) or a Ray task (``ray``; one CPU each). A Ray task writes its run folder in place,
so on a cluster ``out_dir`` must be on a filesystem every node sees; a task whose node died is
run again and resumes from that seed's newest checkpoint. When every seed has finished,
``out_dir`` gets ``seeds.json`` and ``seeds.md`` (each seed's validation metrics of its selected
model, and their mean, SD and 95 % t-interval across seeds) and ``learning_curves.png`` (every
seed's curves together).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError, short_repr
from closedloop._io import nan_to_none, write_text_atomic
from closedloop._parallel import check_workers, parallel_map
from closedloop._ray import MAX_RETRIES, check_ray, check_retries, connect, ray_map
from closedloop.evaluation.episode_inputs import check_seed

SEED_DIR = "seed-{seed}"
"""Run folder of one seed, inside the sweep's folder."""
SUMMARY_JSON, SUMMARY_MD, CURVES_PNG = "seeds.json", "seeds.md", "learning_curves.png"
SHOWN = ("time_in_window_frac", "mad_uv", "time_above_discomfort_frac", "charge_rate_uc_per_s")
"""Validation metrics of ``seeds.md`` (``seeds.json`` has every one)."""


@dataclasses.dataclass(frozen=True)
class _SeedJob:
    """What one process needs to train one seed (picklable)."""

    seed: int
    out_dir: str
    args: tuple
    kwargs: dict


@dataclasses.dataclass(frozen=True)
class SeedSweep:
    """What :func:`train_seeds` produced.

    Attributes:
        out_dir: The sweep's folder.
        runs: Seed -> its run folder.
        summary: The content of ``seeds.json``: per-seed metrics and their statistics.
        paths: The summary files written.
    """

    out_dir: Path
    runs: dict[int, Path]
    summary: dict[str, Any]
    paths: dict[str, Path]


def check_seeds(seeds: Any, name: str = "seeds") -> list[int]:
    """Distinct seeds >= 0, at least one; ConfigError naming ``name`` otherwise."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ConfigError(f"{name}={short_repr(seeds)} is invalid; valid: a list of seeds >= 0")
    out = [check_seed(s, f"{name}[{i}]") for i, s in enumerate(seeds)]
    if len(set(out)) != len(out):
        raise ConfigError(f"{name}={out!r} has duplicates; valid: distinct integers >= 0")
    return out


def train_seeds(
    agent: str | Path,
    env_id: str,
    total_steps: int,
    out_dir: str | Path,
    seeds: Sequence[int],
    *,
    workers: int = 1,
    ray: bool | str = False,
    max_retries: int = MAX_RETRIES,
    progress: bool = True,
    **train_kwargs: Any,
) -> SeedSweep:
    """Train ``agent`` once per seed (see the module docstring) and summarise across seeds.

    Args:
        agent: An RL spec name or spec file, as for :func:`~closedloop.training.train`.
        env_id: The training env id.
        total_steps: Env steps of each seed's run.
        out_dir: The sweep's folder (``seed-<seed>/`` run folders and the summary).
        seeds: Distinct seeds >= 0, one run each.
        workers: Local processes training seeds at once (1: one after the other, here).
        ray: Train each seed as a Ray task instead: True starts or joins a local Ray
            instance, a string is a cluster's address (``HOST:PORT``, ``auto``).
        max_retries: With ``ray``, re-runs of a task whose worker or node died.
        progress: A bar over seeds (each run's own bar shows only with one at a time, here).
        **train_kwargs: Keyword arguments of :func:`~closedloop.training.train` (``n_envs``,
            ``resume``, ``hyperparams``, ``env_overrides``, ``name``, ``options``).

    Returns:
        The :class:`SeedSweep`.

    Raises:
        ConfigError: On bad arguments, checked for every seed before any training starts.
    """
    from closedloop.training.train import train_config

    seeds = check_seeds(seeds)
    workers, max_retries = check_workers(workers), check_retries(max_retries)
    address = check_ray(ray)
    if "callbacks" in train_kwargs or "seed" in train_kwargs:
        raise ConfigError("train_seeds takes neither seed= (use seeds) nor callbacks=")
    out = Path(out_dir)
    args = (agent, env_id, total_steps)
    alone = ray is False and workers == 1
    kwargs = _quiet(train_kwargs, progress and alone)
    jobs = [_SeedJob(s, str(out / SEED_DIR.format(seed=s)), args, kwargs) for s in seeds]
    for job in jobs:  # every argument checked before any run starts
        train_config(*args, job.out_dir, job.seed, **_config_kwargs(kwargs))
    if ray is False:
        done = list(
            parallel_map(_train_one, jobs, workers, progress and not alone, "seeds", "seed")
        )
    else:
        connect(address)
        by_index = dict(
            ray_map(_train_one, jobs, max_retries=max_retries, progress=progress, unit="seed")
        )
        done = [by_index[i] for i in range(len(jobs))]
    runs = {job.seed: Path(job.out_dir) for job in jobs}
    summary = summarise(done)
    return SeedSweep(out, runs, summary, write_summary(out, summary, runs))


def _quiet(kwargs: dict, progress: bool) -> dict:
    """``kwargs`` with the runs' own progress bar on only if asked (one run at a time here)."""
    from closedloop.training.run_config import TrainOptions

    options = kwargs.get("options") or TrainOptions()
    if not isinstance(options, TrainOptions):
        raise ConfigError(f"options={short_repr(options)} must be a TrainOptions")
    return {
        **kwargs,
        "options": dataclasses.replace(options, progress=progress and options.progress),
    }


def _config_kwargs(kwargs: dict) -> dict:
    """The keyword arguments of :func:`train` that its configuration checks."""
    keys = ("n_envs", "hyperparams", "env_overrides", "name", "options")
    unknown = sorted(set(kwargs) - set(keys) - {"resume"})
    if unknown:
        raise ConfigError(f"unknown argument(s) of train: {', '.join(unknown)}; valid: {keys}")
    return {k: kwargs[k] for k in keys if k in kwargs}


def _train_one(job: _SeedJob) -> dict[str, Any]:
    """Worker entry point: train one seed; its steps, wall-clock and validation metrics."""
    from closedloop.training.checkpoints import ray_host_gone
    from closedloop.training.train import train

    result = train(*job.args, job.out_dir, job.seed, **job.kwargs, host_gone=ray_host_gone)
    val = result.card.get("validation") or {}
    return {
        "seed": job.seed,
        "run": job.out_dir,
        "steps": result.steps,
        "wall_clock_s": result.wall_clock_s,
        "selection": result.card.get("training", {}).get("selection"),
        "n_episodes": val.get("n_episodes", 0),
        "metrics": val.get("metrics", {}),
    }


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, SD and the two-sided t-interval of the mean (NaN bounds for fewer than 2)."""
    from scipy import stats

    x = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(x)
    mean = sum(x) / n if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "sd": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    sd = math.sqrt(sum((v - mean) ** 2 for v in x) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half}


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-seed results and, for each validation metric, its statistics across seeds."""
    names = sorted({k for r in runs for k in r["metrics"]})
    return {
        "seeds": [r["seed"] for r in runs],
        "runs": list(runs),
        "metrics": {k: t_interval([r["metrics"].get(k) for r in runs]) for k in names},
    }


def write_summary(out: Path, summary: dict, runs: Mapping[int, Path]) -> dict[str, Path]:
    """Write ``seeds.json``, ``seeds.md`` and ``learning_curves.png`` atomically."""
    from closedloop.plots.learning import plot_learning_curves

    paths = {
        SUMMARY_JSON: write_text_atomic(
            out / SUMMARY_JSON, json.dumps(nan_to_none(summary), indent=1) + "\n"
        ),
        SUMMARY_MD: write_text_atomic(out / SUMMARY_MD, summary_markdown(summary)),
    }
    curves = {f"seed {s}": path for s, path in runs.items()}
    paths[CURVES_PNG] = plot_learning_curves(curves, out / CURVES_PNG)
    return paths


def summary_markdown(summary: dict) -> str:
    """The summary as a markdown table: one row per seed, then mean, SD and the 95 % CI."""
    shown = [k for k in SHOWN if k in summary["metrics"]]
    head = "| seed | steps | selected | " + " | ".join(shown) + " |"
    lines = [
        "# Validation across seeds",
        "",
        "The selected model of each seed on the validation cohort; 95 % t-interval of the mean.",
        "",
        head,
        "|" + "---|" * (3 + len(shown)),
    ]
    for r in summary["runs"]:
        vals = " | ".join(f"{r['metrics'].get(k, math.nan):.4g}" for k in shown)
        lines.append(f"| {r['seed']} | {r['steps']:,} | {r['selection']} | {vals} |")
    for stat in ("mean", "sd"):
        vals = " | ".join(f"{summary['metrics'][k][stat]:.4g}" for k in shown)
        lines.append(f"| {stat} | | | {vals} |")
    ci = " | ".join(
        f"[{summary['metrics'][k]['ci_low']:.4g}, {summary['metrics'][k]['ci_high']:.4g}]"
        for k in shown
    )
    lines.append(f"| 95 % CI | | | {ci} |")
    return "\n".join(lines) + "\n"
