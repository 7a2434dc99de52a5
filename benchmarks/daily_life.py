"""Daily life on a cohort: open loop and the clinical loop, time in window, and its stability.

The instrument of issue 18's calibration: it plays each controller through long episodes of a
scenario on every patient of a cohort split, with several seeds, and reports the across-patient
distribution of time in the therapeutic window (median, quartiles) next to EVOKE's (open loop
about 47 %, closed loop median 93.9 %, IQR 48-99 %), and how stable the figures are: the
per-patient spread between seeds, and the cohort median of each seed alone.

    python benchmarks/daily_life.py                                  # validation, 1 h, 2 seeds
    python benchmarks/daily_life.py --split train --hours 0.5 --seeds 0 1 2
    python benchmarks/daily_life.py --quick                          # 4 patients, 10 min

Calibration reads the train and validation splits only; ``--split test`` is refused unless
``--report-test`` says the run reports (does not tune on) the held-out cohort. Results go to
``--out`` as Markdown and JSON, written atomically.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np

from closedloop._config import ConfigError
from closedloop._io import nan_to_none, write_text_atomic
from closedloop._parallel import check_workers, parallel_map
from closedloop.patients.cohort import check_cohort_run

RESULTS = Path(__file__).resolve().parent / "results"
ENV_ID = "closedloop/ECAPTracking-v0"
CONTROLLERS = ("open-loop", "clinical-loop")
KEYS = (
    "time_in_window_frac",
    "time_below_perception_frac",
    "time_above_discomfort_frac",
    "mad_uv",
    "time_within_20pct_frac",
    "overstim_events_per_hour",
)
EVOKE = {
    "open-loop": "about 0.47 (IQR not retrieved)",
    "clinical-loop": "median 0.939, IQR 0.480-0.989",
}
"""EVOKE's 24-month time in window (Mekhail et al., JAMA Neurol 2022, Fig. 4C; clinic-calibration
notes 4.1-4.2)."""


def one(job: tuple, scenario: str, episode_s: float) -> dict:
    """One episode: ``((label, source), patient, seed)`` -> its metrics.

    ``source`` is a spec name or a picklable factory
    (:func:`closedloop.controllers.sources.resolve_controller`).
    """
    from closedloop.controllers.sources import build_controller
    from closedloop.evaluation import run_episode

    (controller, source), patient, seed = job
    r = run_episode(
        build_controller(source),
        ENV_ID,
        patient,
        seed,
        env_overrides={"scenario": scenario, "episode_s": episode_s},
    )
    return {
        "controller": controller,
        "patient": patient,
        "seed": seed,
        **{k: r.metrics[k] for k in KEYS},
    }


def summarise(rows: list[dict], controllers, seeds) -> dict:
    """Per controller: across-patient quartiles of each key, and the seed stability of TIW."""
    out = {}
    for c in controllers:
        mine = [r for r in rows if r["controller"] == c]
        patients = sorted({r["patient"] for r in mine})
        tiw = np.array(
            [
                [
                    next(
                        r["time_in_window_frac"]
                        for r in mine
                        if r["patient"] == p and r["seed"] == s
                    )
                    for s in seeds
                ]
                for p in patients
            ]
        )
        per_patient = tiw.mean(axis=1)
        out[c] = {
            "quartiles": {
                k: np.percentile(
                    [np.mean([r[k] for r in mine if r["patient"] == p]) for p in patients],
                    [25, 50, 75],
                ).tolist()
                for k in KEYS
            },
            "tiw_per_patient": dict(zip(patients, per_patient.tolist(), strict=True)),
            "seed_spread_median": float(np.median(tiw.max(axis=1) - tiw.min(axis=1))),
            "seed_spread_max": float(np.max(tiw.max(axis=1) - tiw.min(axis=1))),
            "median_by_seed": dict(
                zip(map(str, seeds), np.median(tiw, axis=0).tolist(), strict=True)
            ),
        }
    return out


def report(summary: dict, args) -> str:
    """The Markdown report."""
    lines = [
        f"# Daily life on the {args.split} cohort: {args.scenario}, "
        f"{args.hours:g} h episodes, seeds {', '.join(map(str, args.seeds))}",
        "",
        "Time in window = 1 <= sensation < discomfort, after the warm-up; quartiles are "
        "across patients of each patient's mean over seeds.",
        "",
        "| controller | metric | 25 % | median | 75 % |",
        "|---|---|---|---|---|",
    ]
    for c, s in summary.items():
        for k in KEYS:
            q = s["quartiles"][k]
            lines.append(f"| {c} | {k} | {q[0]:.3g} | {q[1]:.3g} | {q[2]:.3g} |")
    lines += [
        "",
        "| controller | EVOKE time in window | seed spread of a patient's TIW "
        "(median / max) | cohort median per seed |",
        "|---|---|---|---|",
    ]
    for c, s in summary.items():
        per_seed = ", ".join(f"{v:.3f}" for v in s["median_by_seed"].values())
        lines.append(
            f"| {c} | {EVOKE.get(c, '-')} | {s['seed_spread_median']:.3f} / "
            f"{s['seed_spread_max']:.3f} | {per_seed} |"
        )
    return "\n".join(lines)


def parse(argv) -> argparse.Namespace:
    """Command-line arguments, checked."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="validation", choices=("train", "validation", "test"))
    ap.add_argument(
        "--report-test",
        action="store_true",
        help="allow --split test (reporting the held-out cohort, never tuning on it)",
    )
    ap.add_argument("--scenario", default="daily-living")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--patients", type=int, default=0, help="first N patients (0: all)")
    ap.add_argument(
        "--controllers",
        nargs="+",
        default=list(CONTROLLERS),
        help="names, spec files, module:Class, file.py:Class or LABEL=REF "
        "(as closedloop benchmark --controllers)",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="4 patients, 10-minute episodes")
    ap.add_argument("--out", default=str(RESULTS / "daily_life"))
    args = ap.parse_args(argv)
    if args.quick:
        args.patients, args.hours = 4, 1.0 / 6.0
    check_cohort_run(args.split, args.report_test, args.seeds, args.patients)
    if not 0.0 < args.hours <= 24.0:
        raise ConfigError(f"hours={args.hours!r} is out of range; valid (0, 24]")
    args.workers = check_workers(args.workers)
    from closedloop.controllers.sources import resolve_controllers

    args.sources = resolve_controllers(args.controllers, expand_all=False)  # before any run
    args.controllers = list(args.sources)
    return args


def main(argv=None) -> int:
    try:
        args = parse(argv)
    except ConfigError as exc:
        print(f"daily_life.py: {exc}", file=sys.stderr)
        return 2
    from closedloop.patients.cohort import load_cohort

    patients = [p.patient_id for p in load_cohort(args.split)]
    patients = patients[: args.patients] if args.patients else patients
    jobs = [(c, p, s) for c in args.sources.items() for p in patients for s in args.seeds]
    run = functools.partial(one, scenario=args.scenario, episode_s=3600.0 * args.hours)
    rows = list(parallel_map(run, jobs, args.workers, True, "episodes"))
    summary = summarise(rows, args.controllers, args.seeds)
    text = report(summary, args)
    print(text)
    out = Path(args.out)  # a stem: "r0.3" must keep its ".3" (no with_suffix)
    write_text_atomic(out.parent / f"{out.name}.md", text + "\n")
    shown = {k: v for k, v in vars(args).items() if k != "sources"}  # factories: not JSON
    write_text_atomic(
        out.parent / f"{out.name}.json",
        json.dumps(nan_to_none({"args": shown, "rows": rows, "summary": summary}), indent=1) + "\n",
    )
    print(f"wrote {out}.md/.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
