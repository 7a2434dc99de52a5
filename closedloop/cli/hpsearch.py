"""``closedloop hpsearch``: optuna search of RL hyperparameters on the validation cohort.

Example:
    $ closedloop hpsearch --algo ppo --env closedloop/ECAPTracking-v0 --trials 20
          --steps 50000 --ranges agents/rl/search-ranges-ppo.toml --out runs/hpsearch-ppo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from closedloop._config import ConfigError
from closedloop.cli._common import add_ray_options, check_ray_options
from closedloop.envs.ecap_env import DEFAULT_ID
from closedloop.tuning.hpsearch import ALGOS

MAX_THREADS = 256
"""Most torch CPU threads ``--threads`` may ask for."""


def add_parsers(sub) -> None:
    """Add the ``hpsearch`` subcommand."""
    p = sub.add_parser(
        "hpsearch",
        help="search RL hyperparameters with optuna on the validation cohort",
        description="Sample hyperparameters from the ranges, train each trial with "
        "stable-baselines3 on the native vector env (training cohort), and score "
        "its mean time in window on the first validation patients. The test cohort "
        'is held out. Writes best.toml (a [hyperparams."<env>"] fragment for a '
        "spec) and trials.json to --out.",
    )
    _study_options(p.add_argument_group("the study"))
    _scoring_options(p.add_argument_group("training and scoring of a trial"))
    ray = p.add_argument_group("Ray Tune (trials on a Ray cluster)")
    add_ray_options(ray, "trial")
    ray.add_argument(
        "--max-concurrent-trials",
        type=int,
        default=None,
        metavar="N",
        help="with --ray, most trials at once (default: one per CPU of the cluster)",
    )
    p.set_defaults(run=run_hpsearch)


def _study_options(p) -> None:
    """Algorithm, env, ranges, trials, seed and the optuna study's storage."""
    p.add_argument("--algo", default="ppo", choices=tuple(ALGOS), help="algorithm (default ppo)")
    p.add_argument("--env", default=DEFAULT_ID, help=f"env id trained on (default {DEFAULT_ID})")
    p.add_argument("--trials", type=int, default=20, help="trials to run (default 20)")
    p.add_argument(
        "--steps", type=int, default=50_000, help="training env steps per trial (default 50000)"
    )
    p.add_argument(
        "--ranges",
        default=None,
        metavar="FILE",
        help="ranges TOML (a [search] table; an agents/rl spec name or path works "
        "too); default agents/rl/search-ranges-<algo>.toml",
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help="folder for best.toml and trials.json (created)"
    )
    p.add_argument("--seed", type=int, default=0, help="sampler seed; trial k trains with seed+k")
    p.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="optuna storage to resume a study, e.g. sqlite:///hpsearch.db",
    )
    p.add_argument("--study", default=None, help="study name (default hpsearch-<algo>-<env>)")


def _scoring_options(p) -> None:
    """Training length and threads of a trial, and its scoring episodes."""
    p.add_argument(
        "--eval-patients",
        type=int,
        default=4,
        metavar="N",
        help="score on the first N validation patients (default 4)",
    )
    p.add_argument(
        "--eval-seeds",
        default="0",
        metavar="S,S",
        help="comma-separated episode seeds of the scoring (default 0)",
    )
    p.add_argument(
        "--episode-s",
        type=float,
        default=None,
        metavar="S",
        help="simulated episode length of training episodes (s; default the env's)",
    )
    p.add_argument(
        "--eval-episode-s",
        type=float,
        default=None,
        metavar="S",
        help="simulated length of scoring episodes (s; > warm-up; default the env's)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1, fastest for small networks)",
    )


def resolve_ranges(algo: str, ranges: str | None) -> Path:
    """The ranges file: ``ranges`` as a path or an ``agents/rl`` name, or the algo's default."""
    from closedloop._specdirs import spec_dir

    folder = spec_dir("agents") / "rl"
    if ranges is None:
        path = folder / f"search-ranges-{algo}.toml"
        if not path.is_file():
            raise ConfigError(
                f"no default ranges for --algo {algo} ({path} is missing); pass --ranges FILE"
            )
        return path
    path = Path(ranges)
    if not path.is_file() and (folder / f"{ranges}.toml").is_file():
        path = folder / f"{ranges}.toml"
    if not path.is_file():
        raise ConfigError(f"--ranges={ranges!r}: no such file or agents/rl spec")
    return path


def run_hpsearch(args: argparse.Namespace) -> int:
    """Run the ``hpsearch`` subcommand."""
    from closedloop.tuning.hpsearch import search

    try:
        seeds = tuple(int(s) for s in args.eval_seeds.split(",") if s.strip())
    except ValueError:
        seeds = ()
    if not seeds:
        raise ConfigError(f"--eval-seeds={args.eval_seeds!r} must be comma-separated integers")
    if not 1 <= args.threads <= MAX_THREADS:
        raise ConfigError(
            f"--threads={args.threads} is out of range; valid range [1, {MAX_THREADS}]"
        )
    check_ray_options(args)
    if args.max_concurrent_trials is not None:
        from closedloop._parallel import check_workers

        check_workers(args.max_concurrent_trials, "--max-concurrent-trials")
    import torch

    torch.set_num_threads(args.threads)
    result = search(
        args.algo,
        args.env,
        args.trials,
        args.steps,
        resolve_ranges(args.algo, args.ranges),
        seed=args.seed,
        storage=args.storage,
        study_name=args.study,
        eval_patients=args.eval_patients,
        eval_seeds=seeds,
        env_overrides=_episode("--episode-s", args.episode_s),
        eval_overrides=_episode("--eval-episode-s", args.eval_episode_s),
        out_dir=args.out,
        ray=args.ray,
        max_concurrent_trials=args.max_concurrent_trials,
        max_retries=args.max_retries,
    )
    print(result.to_toml(), end="")
    m = result.best_metrics
    print(
        f"best trial: time in window {m['time_in_window_frac']:.3f}, above discomfort "
        f"{m['time_above_discomfort_frac']:.3f}, below perception "
        f"{m['time_below_perception_frac']:.3f}, charge/pulse {m['charge_per_pulse_uc']:.3f} "
        f"uC ({len(result.trials)} trials, {result.wall_s:.0f} s)",
        file=sys.stderr,
    )
    if args.out:
        print(
            f"wrote {Path(args.out) / 'best.toml'} and {Path(args.out) / 'trials.json'}",
            file=sys.stderr,
        )
    return 0


def _episode(option: str, seconds: float | None) -> dict:
    """``{"episode_s": seconds}`` if given (checked, naming ``option``), else no override."""
    import dataclasses

    from closedloop._config import check_value
    from closedloop.envs.config import EnvConfig

    if seconds is None:
        return {}
    meta = {f.name: f.metadata for f in dataclasses.fields(EnvConfig)}["episode_s"]
    check_value(option, seconds, meta)
    return {"episode_s": seconds}
