"""``closedloop cohort``: per-cohort summary of thresholds, slopes and windows per posture."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from closedloop._io import nan_to_none
from closedloop._parallel import check_workers
from closedloop.cli._common import PROG
from closedloop.patients.calibration import CalibrationRecord, calibrate_many
from closedloop.patients.calibration_cache import write_calibrations
from closedloop.patients.cohort import load_cohort, write_cohort
from closedloop.patients.cohort_draw import SPLITS, check_count, generate_cohort
from closedloop.patients.postures import POSTURES

COLUMNS = (
    ("ecap_threshold_ma", "ECAP thr mA"),
    ("slope_uv_per_ma", "slope µV/mA"),
    ("perception_ma", "percept mA"),
    ("discomfort_ma", "discomf mA"),
    ("perception_ecap_uv", "window lo µV"),
    ("discomfort_ecap_uv", "window hi µV"),
)


def add_parsers(sub) -> None:
    """Add the ``cohort`` subcommand."""
    p = sub.add_parser(
        "cohort",
        help="summarise the virtual-patient cohorts",
        description="Run the programming sweep of every patient in every posture "
        "and print, per cohort, median [IQR] of the ECAP threshold, "
        "slope, perception and discomfort currents and the "
        "therapeutic window (ECAP µV) per posture.",
    )
    p.add_argument(
        "--split",
        action="append",
        choices=tuple(SPLITS),
        help="cohort(s) to summarise (repeatable; default all)",
    )
    p.add_argument(
        "--n", type=int, default=None, metavar="N", help="only the first N patients of each cohort"
    )
    p.add_argument("--patients", action="store_true", help="also print one row per patient")
    p.add_argument("--json", action="store_true", help="print the calibration records as JSON")
    p.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="parallel processes, 1-256 (default: up to 2)",
    )
    p.add_argument(
        "--regenerate",
        action="store_true",
        help="redraw the cohorts from their seeds and rewrite the shipped files (developers)",
    )
    p.set_defaults(run=run_cohort)


def run_cohort(args: argparse.Namespace) -> int:
    """Run the ``cohort`` subcommand."""
    splits = args.split or list(SPLITS)
    n = None if args.n is None else check_count("--n", args.n)
    check_workers(args.workers, "--workers")
    report = {}
    for split in splits:
        if args.regenerate:
            path = write_cohort(split, generate_cohort(split, workers=args.workers, progress=True))
            print(f"wrote {path}", file=sys.stderr)
            print(f"wrote {write_calibrations(split, args.workers, True)}", file=sys.stderr)
        patients = load_cohort(split)[:n]
        records = calibrate_many(patients, POSTURES, workers=args.workers, progress=True)
        report[split] = records
        if not args.json:
            print(format_summary(split, records, patients))
            if args.patients:
                print(format_patients(records))
    if args.json:
        doc = {s: [r.to_dict() for r in recs] for s, recs in report.items()}
        print(json.dumps(nan_to_none(doc), indent=1, allow_nan=False))
    return 0


def _stat(values) -> str:
    """``median [q1-q3] (n missing)`` of finite values."""
    v = np.asarray(values, float)
    ok = v[np.isfinite(v)]
    if ok.size == 0:
        return "-"
    q1, med, q3 = np.percentile(ok, [25, 50, 75])
    miss = v.size - ok.size
    return f"{med:.3g} [{q1:.3g}-{q3:.3g}]" + (f" ({miss}×-)" if miss else "")


def format_summary(split: str, records: list[CalibrationRecord], patients) -> str:
    """One table per cohort: a row per posture, median [IQR] per column."""
    t11 = sum(p.vertebral_level == "T11" for p in patients)
    head = (
        f"cohort {split}: {len(records)} patients ({t11} T11, {len(records) - t11} T12); "
        f"target {_stat([r.target_uv for r in records])} µV, comfort current "
        f"{_stat([r.comfort_ma for r in records])} mA, clinician max "
        f"{_stat([r.max_ma for r in records])} mA"
    )
    widths = [9] + [24] * len(COLUMNS)
    lines = [
        head,
        " | ".join(
            h.ljust(w) for h, w in zip(["posture", *(c[1] for c in COLUMNS)], widths, strict=True)
        ),
    ]
    lines.append("-" * len(lines[-1]))
    for posture in POSTURES:
        rows = [r.posture(posture) for r in records]
        cells = [posture] + [_stat([getattr(x, key) for x in rows]) for key, _ in COLUMNS]
        lines.append(" | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    lines.append(
        "median [25th-75th percentile]; (k×-) = k patients without a value (not reached by 25.5 mA)"
    )
    return "\n".join(lines) + "\n"


def format_patients(records: list[CalibrationRecord]) -> str:
    """One row per patient: target, comfort current and the window per posture (µV)."""
    lines = [
        "patient     | target µV | comfort mA | " + " | ".join(f"{p[:7]:>11}" for p in POSTURES)
    ]
    for r in records:
        wins = []
        for p in POSTURES:
            pc = r.posture(p)
            lo, hi = pc.perception_ecap_uv, pc.discomfort_ecap_uv
            wins.append(f"{_num(lo):>5}-{_num(hi):<5}")
        lines.append(
            f"{r.patient_id:<11} | {r.target_uv:9.1f} | {r.comfort_ma:10.2f} | " + " | ".join(wins)
        )
    return "\n".join(lines) + f"\nwindows in µV; '-' = not reached by 25.5 mA ({PROG} cohort)\n"


def _num(x: float) -> str:
    """Short number or '-' for NaN."""
    return "-" if not math.isfinite(x) else f"{x:.0f}"
