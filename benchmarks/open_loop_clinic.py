"""Open loop (the standard of care) through a scenario on a cohort: what closed loop must fix.

Every patient is calibrated (closedloop.patients.calibration), then receives its comfort current,
fixed, through the scenario. The script prints per-patient clinical metrics and a cohort summary,
and writes them as Markdown and JSON (atomically), plus one example trace figure.

    python benchmarks/open_loop_clinic.py                    # test cohort, clinic, seed 0
    python benchmarks/open_loop_clinic.py --split validation --scenario daily-living
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np

from closedloop._io import nan_to_none, write_text_atomic
from closedloop._parallel import parallel_map
from closedloop.evaluation.simulate import open_loop
from closedloop.patients.cohort import load_cohort
from closedloop.patients.cohort_draw import SPLITS
from closedloop.patients.postures import POSTURES, posture_code

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = (
    "mad_uv",
    "time_in_window_frac",
    "time_above_discomfort_frac",
    "time_below_perception_frac",
    "overstim_events_per_hour",
    "charge_per_pulse_uc",
    "battery_life_years",
)


def one(patient, scenario: str, seed: int) -> dict:
    run = open_loop(patient, scenario, seed=seed, with_window=False)
    m = run.metrics()
    med = {}
    for p in POSTURES:
        sel = (run.posture == posture_code(p)) & (run.event == 0)
        if sel.any():
            med[p] = float(np.median(run.ecap_true_uv[sel]))
    return {
        "patient": patient.patient_id,
        "target_uv": run.target_uv,
        "current_ma": float(run.current_ma[0]),
        "ecap_median_by_posture_uv": med,
        "swing": _swing({k: v for k, v in med.items() if k != "prone"}),
        "metrics": m,
    }


def _swing(med: dict) -> float:
    """Highest / lowest median ECAP across postures (floor 1 µV)."""
    return max(med.values()) / max(min(med.values()), 1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test", choices=tuple(SPLITS))
    ap.add_argument("--scenario", default="clinic")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "open_loop_clinic"))
    args = ap.parse_args(argv)
    patients = load_cohort(args.split)
    rows = list(
        parallel_map(
            functools.partial(one, scenario=args.scenario, seed=args.seed),
            patients,
            args.workers,
            True,
            "open loop",
        )
    )
    text = report(rows, args)
    print(text)
    out = Path(args.out)
    write_text_atomic(out.with_suffix(".md"), text + "\n")
    write_text_atomic(
        out.with_suffix(".json"),
        json.dumps(
            nan_to_none(
                {"split": args.split, "scenario": args.scenario, "seed": args.seed, "rows": rows}
            ),
            indent=1,
        )
        + "\n",
    )
    from closedloop.plots import plot_trajectory

    example = patients[0]
    run = open_loop(example, args.scenario, seed=args.seed)
    plot_trajectory(
        run,
        out.with_suffix(".png"),
        f"Open loop, {example.patient_id}, {args.scenario}: fixed {run.current_ma[0]:.2f} mA",
    )
    print(f"wrote {out}.md/.json/.png", file=sys.stderr)
    return 0


def report(rows: list[dict], args) -> str:
    head = ["patient", "target µV", "current mA", "swing ×", *KEYS]
    lines = [
        f"# Open loop on the {args.split} cohort, scenario {args.scenario}, seed {args.seed}",
        "",
        "Fixed comfort current from the calibration; metrics after the warm-up. "
        "`swing` = highest / lowest median true ECAP across the postures other than prone "
        "(events excluded, floor 1 µV); prone usually loses the ECAP altogether.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        m = r["metrics"]
        cells = [
            r["patient"],
            f"{r['target_uv']:.1f}",
            f"{r['current_ma']:.2f}",
            f"{r['swing']:.1f}",
            *(f"{m[k]:.3g}" for k in KEYS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    stats = {k: np.array([r["metrics"][k] for r in rows]) for k in KEYS}
    stats["swing"] = np.array([r["swing"] for r in rows])
    lines += ["", "| cohort | median | min | max |", "|---|---|---|---|"]
    for k, v in stats.items():
        lines.append(f"| {k} | {np.median(v):.3g} | {v.min():.3g} | {v.max():.3g} |")
    cough = sum(r["metrics"]["overstim_events"] > 0 for r in rows)
    lines += ["", f"Patients with at least one overstimulation event: {cough} of {len(rows)}."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
