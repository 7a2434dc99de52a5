"""``closedloop tune``: auto-tune a controller's gains on the training cohort."""

from __future__ import annotations

import argparse
import os
import sys

from closedloop.cli._common import PROG, add_ray_options, check_ray_options, parse_int_list


def add_parsers(sub) -> None:
    """Add the ``tune`` subcommand."""
    from closedloop.tuning.controller import DEFAULT_GAINS

    p = sub.add_parser(
        "tune",
        help="auto-tune PID or clinical-loop gains on the training cohort",
        description="Search a controller spec's gains (log space, bounded Nelder-Mead) on "
        "training-cohort patients in the clinic and cough-storm scenarios, for a "
        "fixed budget of evaluations, and write the tuned spec with a [tuning] "
        "record. The test cohort is never used.",
    )
    p.add_argument("agent", choices=sorted(DEFAULT_GAINS), help="base agent spec")
    p.add_argument("--budget", type=int, default=40, help="objective evaluations (default 40)")
    p.add_argument("--patients", type=int, default=6, help="training patients (default 6)")
    p.add_argument("--split", default="train", help="train (default) or validation")
    p.add_argument("--seeds", default="0", help="episode seeds (comma list, default 0)")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="local worker processes, 1-256 (default: one per CPU)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="spec .toml file to write, its folder created before tuning (default: "
        "<agents folder>/<agent>-tuned.toml)",
    )
    add_ray_options(p.add_argument_group("Ray (each evaluation's episodes on a cluster)"), "batch")
    p.set_defaults(run=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    """Run the ``tune`` subcommand."""
    from closedloop._specdirs import spec_dir
    from closedloop.tuning.controller import DEFAULT_GAINS, TuningProblem, tune

    check_ray_options(args)
    seeds = tuple(parse_int_list("--seeds", args.seeds))
    problem = TuningProblem(
        args.agent,
        DEFAULT_GAINS[args.agent],
        split=args.split,
        n_patients=args.patients,
        seeds=seeds,
        budget=args.budget,
    )
    path = args.out or spec_dir("agents") / f"{args.agent}-tuned.toml"
    doc = tune(problem, workers=args.workers, out=path, ray=args.ray, max_retries=args.max_retries)
    rec = doc["tuning"]
    print(
        f"{doc['name']}: J {rec['objective_before']:.4f} -> {rec['objective_after']:.4f} "
        f"in {rec['evaluations']} evaluations, {rec['wall_s']} s; "
        + ", ".join(f"{k}={doc['params'][k]:.4g}" for k in problem.gains)
    )
    print(f"{PROG} tune: wrote {path}", file=sys.stderr)
    return 0
