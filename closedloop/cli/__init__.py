"""Command-line interface: ``closedloop <command>``.

Every subcommand calls only the public Python API, so the numbers it prints are the numbers the
API returns for the same arguments.

Examples:
    $ closedloop benchmark --quick
    $ closedloop tune pid --budget 40
    $ closedloop growth-curve --patient thin-csf --posture sitting --currents 0:10:0.5
    $ closedloop model-card --output docs/model_card_params.md
    $ closedloop cohort --split test
    $ closedloop scenario show clinic --plot clinic.png
    $ closedloop open-loop --patient validation-003 --scenario clinic --plot run.png
    $ closedloop evaluate ./my_ctl.py:MyController --patient validation-003 --plot run.png
    $ closedloop validate --json fidelity.json
"""

from __future__ import annotations

import argparse
import sys

from closedloop._config import ConfigError
from closedloop.cli import (
    benchmark,
    cohort,
    evaluate,
    growth,
    hpsearch,
    report,
    scenario,
    simulate,
    train,
    tune,
    validate,
)
from closedloop.cli._common import PROG, parse_currents

__all__ = ["build_parser", "main", "parse_currents"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Closed-loop spinal cord stimulation: "
        "virtual patients, scenarios and the neural response model.",
    )
    from closedloop import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        benchmark,
        evaluate,
        report,
        tune,
        train,
        hpsearch,
        growth,
        cohort,
        scenario,
        simulate,
        validate,
    ):
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``closedloop`` command.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        0 on success, 2 for invalid input (a :class:`ConfigError`), 1 if a file cannot be
        written, 130 after Ctrl-C (long compiled loops run in chunks, so it stops within about
        0.1 s). Argparse usage errors exit with status 2 directly.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
