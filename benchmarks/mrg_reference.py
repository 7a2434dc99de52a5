"""Make the stored MRG (NEURON) reference of ``closedloop validate`` (needs the validate extra).

Runs the protocols of ``closedloop/fidelity/mrg_protocols.py`` (threshold grids, conduction
velocity, recovery cycle, SFAP, latency, convergence) and writes
``closedloop/fidelity/data/mrg_reference.json``; see :mod:`closedloop.fidelity.mrg_reference`.

Examples::

    python benchmarks/mrg_reference.py                      # everything (about an hour on 2 cores)
    python benchmarks/mrg_reference.py --grids grid0.json grid05.json   # reuse threshold grids
    python benchmarks/mrg_reference.py --only recovery      # rerun one section, merge
    python benchmarks/mrg_reference.py --quick --out /tmp/ref.json      # tiny, for tests
"""

from __future__ import annotations

import argparse

from closedloop.fidelity.mrg_reference import REFERENCE_PATH, SECTIONS, make_reference, summary


def main(argv=None) -> None:
    """Parse the command line, make the reference and print its summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REFERENCE_PATH), help="output JSON (merged into)")
    ap.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="rerun only this section (repeatable); the others are kept",
    )
    ap.add_argument("--quick", action="store_true", help="tiny protocols (use with --out)")
    ap.add_argument(
        "--grids",
        nargs="+",
        default=(),
        help="threshold-grid JSON files to merge instead of rerunning the grids",
    )
    ap.add_argument("--processes", type=int, default=2, help="worker processes")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.quick and args.out == str(REFERENCE_PATH):
        ap.error("--quick needs --out (the stored reference is never overwritten by it)")
    doc = make_reference(
        args.out,
        sections=args.only,
        quick=args.quick,
        grids=args.grids,
        processes=args.processes,
        progress=not args.no_progress,
    )
    print(f"wrote {args.out}")
    print(summary(doc))


if __name__ == "__main__":
    main()
