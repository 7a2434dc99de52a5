"""``closedloop validate``: the fast fibre model against MRG in NEURON (issue 17)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from closedloop._config import ConfigError
from closedloop.cli._common import check_out_path, parse_names

EXTRA_HINT = "pip install 'closedloop[validate]'"


def add_parsers(sub) -> None:
    """Add the ``validate`` subcommand."""
    p = sub.add_parser(
        "validate",
        help="compare the fast fibre model with MRG (thresholds, slopes, "
        "strength-duration, CV, recovery, SFAP, latency)",
        description="Print the fast-vs-MRG comparison table with the targets of issue 17 and "
        "which are met. Uses the stored MRG reference (package data) unless "
        "--reference names another file; --rerun-mrg first remakes the reference "
        f"with PyFibers and NEURON ({EXTRA_HINT}).",
    )
    p.add_argument(
        "--reference",
        metavar="PATH",
        help="an MRG reference JSON file (default: the stored package data); with "
        "--rerun-mrg, where the new reference is written",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="write every row and metric to PATH (JSON, written atomically)",
    )
    p.add_argument("--plot", metavar="PATH.png", help="save the comparison figure to PATH.png")
    p.add_argument(
        "--rerun-mrg",
        action="store_true",
        help="rerun the MRG protocols in NEURON into --reference PATH (hours; "
        "needs the validate extra), then compare",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="with --rerun-mrg: the quick reference (fewer points, minutes)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=2,
        metavar="N",
        help="with --rerun-mrg: NEURON worker processes, 1-64 (default 2)",
    )
    p.add_argument(
        "--only",
        metavar="A,B",
        help="with --rerun-mrg: rerun only these sections (thresholds, "
        "thresholds_offset, cv, recovery, sfap, latency, convergence); the "
        "others are kept from the file at --reference",
    )
    p.set_defaults(run=run_validate)


def _check_args(args: argparse.Namespace) -> None:
    """Refuse inconsistent options before any work."""
    if args.rerun_mrg and args.reference is None:
        raise ConfigError(
            "--rerun-mrg needs --reference PATH (where the new MRG reference is "
            "written; the stored package data is not overwritten)"
        )
    if not args.rerun_mrg and (args.quick or args.processes != 2 or args.only is not None):
        raise ConfigError("--quick, --processes and --only apply only with --rerun-mrg")
    if not 1 <= args.processes <= 64:
        raise ConfigError(f"--processes={args.processes} is out of range; valid range [1, 64]")
    check_out_path("--json", args.json)
    check_out_path("--plot", args.plot)
    if args.rerun_mrg:
        check_out_path("--reference", args.reference)
    elif args.reference is not None and not Path(args.reference).is_file():
        raise ConfigError(
            f"--reference={args.reference!r} is not a file; valid: an MRG reference JSON file"
        )


def missing_modules() -> list[str]:
    """The modules of the ``validate`` extra that are not installed."""
    return [m for m in ("neuron", "pyfibers") if importlib.util.find_spec(m) is None]


def rerun_mrg(out_path: str, quick: bool, processes: int, only: str | None = None) -> None:
    """Remake the MRG reference with PyFibers and NEURON into ``out_path``.

    ``only``: a comma list of sections to rerun (the others are kept from ``out_path``).

    Raises:
        ConfigError: If PyFibers or NEURON is missing (naming the ``validate`` extra).
    """
    missing = missing_modules()
    if missing:
        raise ConfigError(
            f"--rerun-mrg needs {' and '.join(missing)}: {EXTRA_HINT}, then run "
            "pyfibers_compile once"
        )
    try:
        from closedloop.fidelity.mrg_reference import make_reference
    except ImportError as exc:
        raise ConfigError(
            f"--rerun-mrg: the MRG reference script cannot be imported ({exc}); {EXTRA_HINT}"
        ) from None
    sections = None if only is None else parse_names("--only", only)
    make_reference(out_path, sections=sections, quick=quick, processes=processes, progress=True)


def run_validate(args: argparse.Namespace) -> int:
    """Run the ``validate`` subcommand."""
    from closedloop._io import nan_to_none, write_text_atomic
    from closedloop.fidelity.compare import validate
    from closedloop.fidelity.table import format_table

    _check_args(args)
    if args.rerun_mrg:
        rerun_mrg(args.reference, args.quick, args.processes, args.only)
    report = validate(args.reference)
    print(format_table(report))
    if args.json is not None:
        text = json.dumps(nan_to_none(report.to_dict()), indent=1, allow_nan=False)
        write_text_atomic(Path(args.json), text + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot is not None:
        from closedloop.fidelity.plots import plot_validation

        print(f"wrote {plot_validation(report, args.plot)}", file=sys.stderr)
    return 0
