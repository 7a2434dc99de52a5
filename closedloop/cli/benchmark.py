"""``closedloop benchmark``: rank every controller on the held-out test cohort."""

from __future__ import annotations

import argparse
import sys

from closedloop.cli._common import (
    PROG,
    add_ray_options,
    check_ray_options,
    parse_int_list,
    parse_names,
)


def add_parsers(sub) -> None:
    """Add the ``benchmark`` subcommand."""
    p = sub.add_parser(
        "benchmark",
        help="rank the controllers on the held-out test cohort",
        description="Play every controller (agents/ and the agent zoo, or those of "
        "--controllers) on the held-out test cohort in the six envs of the default "
        "suite, in local worker processes; print the leaderboard and write a run "
        "folder (report.html, results JSON/CSV, summary, leaderboard.md, "
        "report_card.md, plots). Finished episodes are kept, so an interrupted run "
        "resumes when started again, and a run folder takes more controllers: the "
        "report covers every controller in it.",
    )
    _selection_options(p.add_argument_group("what is played"))
    _run_options(p.add_argument_group("run folder and output"))
    add_ray_options(p.add_argument_group("Ray (more than one machine)"), "episode batch")
    p.set_defaults(run=run_benchmark_cli)


def _selection_options(p) -> None:
    """The suite, controllers, envs, patients and seeds of a benchmark run."""
    p.add_argument(
        "--quick",
        action="store_true",
        help="the quick suite: 3 test patients, one seed, 3-minute episodes "
        "(about 2-3 minutes on 2 cores)",
    )
    p.add_argument(
        "--suite",
        metavar="FILE",
        help="a suite TOML file (fields of "
        "closedloop.benchmark.Suite) instead of the embedded default",
    )
    p.add_argument(
        "--controllers",
        metavar="A,B",
        help="comma list of controllers, each a registered name (agents/, the zoo, "
        "a plugin's entry point), a spec file (./my-pid.toml), module:Class, "
        "path/to/file.py:Class, or a folder written by closedloop train; "
        "LABEL=REF sets the row label; 'all' is every shipped controller",
    )
    p.add_argument(
        "--baseline",
        metavar="NAME",
        help="label of the controller the paired differences compare against (default: open-loop)",
    )
    p.add_argument("--envs", metavar="ID,ID", help="only these env ids (comma list)")
    p.add_argument("--patients", type=int, metavar="N", help="only the first N patients")
    p.add_argument("--seeds", metavar="S,S", help="episode seeds (comma list of integers)")


def _run_options(p) -> None:
    """Workers, the run folder, and what is written and shown."""
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes, 1-256 (default: one per CPU; ignored with --ray)",
    )
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/benchmark-<suite>)")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="discard finished episodes in the run folder instead of resuming",
    )
    p.add_argument(
        "--save-trajectories",
        action="store_true",
        help="keep every episode's trajectory (trajectories/*.npz, tens of MB per "
        "hour of daily living)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def suite_from_args(args: argparse.Namespace):
    """The suite the arguments select (embedded default, quick, or a file, then overrides).

    An option given with an empty value (``--controllers ""``) is an error, not "all".
    """
    import dataclasses

    from closedloop._config import ConfigError
    from closedloop.benchmark import DEFAULT, QUICK, load_suite

    suite = load_suite(args.suite) if args.suite is not None else QUICK if args.quick else DEFAULT
    changes: dict = {}
    if args.controllers is not None:
        changes["controllers"] = tuple(parse_names("--controllers", args.controllers))
    if args.envs is not None:
        from closedloop.evaluation.episode_inputs import check_env_id

        changes["env_ids"] = tuple(
            check_env_id(e, "--envs") for e in parse_names("--envs", args.envs)
        )
    if args.patients is not None:
        if args.patients < 1:
            raise ConfigError(f"--patients={args.patients} is out of range; valid range [1, inf)")
        changes["n_patients"] = args.patients
    if args.seeds is not None:
        changes["seeds"] = tuple(parse_int_list("--seeds", args.seeds))
    if args.baseline is not None:
        changes["baseline"] = args.baseline
    return dataclasses.replace(suite, **changes) if changes else suite


def run_benchmark_cli(args: argparse.Namespace) -> int:
    """Run the ``benchmark`` subcommand."""
    from closedloop.benchmark import run_benchmark

    check_ray_options(args)
    suite = suite_from_args(args)
    report = run_benchmark(
        suite,
        args.out,
        workers=args.workers,
        progress=not args.no_progress,
        plots=not args.no_plots,
        fresh=args.fresh,
        save_trajectories=args.save_trajectories,
        ray=args.ray,
        max_retries=args.max_retries,
    )
    print(report.text)
    folder = report.paths["leaderboard.md"].parent
    print(
        f"\nrun folder: {folder} (report.html, leaderboard.md, report_card.md, "
        "results.csv, plots/)",
        file=sys.stderr,
    )
    print(f"{PROG} benchmark: done", file=sys.stderr)
    return 0
