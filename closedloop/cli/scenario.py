"""``closedloop scenario``: list the scenario library, describe and plot one scenario."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from closedloop.cli._common import check_out_path
from closedloop.patients.cohort import get_patient
from closedloop.patients.postures import POSTURES


def add_parsers(sub) -> None:
    """Add the ``scenario`` subcommand."""
    p = sub.add_parser(
        "scenario",
        help="list, describe and plot disturbance scenarios",
        description="Without NAME, list the scenario library. With NAME, sample "
        "the scenario for a patient and summarise it.",
    )
    p.add_argument("name", nargs="?", help="scenario id (see the list)")
    p.add_argument(
        "--patient",
        default="default",
        metavar="ID",
        help="patient whose posture CSF thicknesses are used (default: default)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the scenario draws (default 0)")
    p.add_argument("--rate-hz", type=float, default=50.0, help="pulse rate (Hz; default 50)")
    p.add_argument("--duration-s", type=float, default=None, help="override the duration (s)")
    p.add_argument("--plot", metavar="PATH.png", help="save the timeline figure")
    p.set_defaults(run=run_scenario)


def run_scenario(args: argparse.Namespace) -> int:
    """Run the ``scenario`` subcommand."""
    from closedloop.disturbances import EVENT_TYPES, list_scenarios, load_scenario
    from closedloop.evaluation.simulate import check_run_memory

    if args.name is None:
        for name in list_scenarios():
            sc = load_scenario(name)
            print(f"{name:<16} {sc.duration_s:>8g} s  {_first_line(sc.description)}")
        return 0
    check_out_path("--plot", args.plot)
    overrides = {} if args.duration_s is None else {"duration_s": args.duration_s}
    sc = load_scenario(args.name, **overrides)
    check_run_memory(sc.duration_s, args.rate_hz)
    patient = get_patient(args.patient)
    trace = sc.sample(patient.posture_csf_now_mm, args.rate_hz, args.seed)
    print(f"scenario {args.name}: {sc.description.strip()}")
    print(
        f"patient {patient.patient_id}, seed {args.seed}, {trace.t_s.size} pulses at "
        f"{args.rate_hz:g} Hz ({sc.duration_s:g} s)"
    )
    print(
        f"CSF thickness {trace.csf_mm.min():.2f}-{trace.csf_mm.max():.2f} mm; impedance scale "
        f"{trace.impedance_scale.min():.3f}-{trace.impedance_scale.max():.3f}"
    )
    dt = 1.0 / args.rate_hz
    for code, posture in enumerate(POSTURES):
        share = float(np.mean(trace.posture == code))
        if share > 0:
            print(f"  {posture:<9} {share * trace.t_s.size * dt:9.1f} s ({100 * share:.0f} %)")
    for code, name in enumerate(EVENT_TYPES, start=1):
        on = np.diff(np.r_[0, (trace.event == code).astype(np.int8)]) == 1
        print(f"  {name + 's':<9} {int(on.sum()):6d} events")
    if args.plot:
        from closedloop.plots import plot_scenario

        print(f"wrote {plot_scenario(trace, args.plot)}", file=sys.stderr)
    return 0


def _first_line(text: str) -> str:
    """First non-empty line of ``text``."""
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
