"""``closedloop calibrate`` and ``closedloop open-loop``: the programming session and a run."""

from __future__ import annotations

import argparse
import json
import math
import sys

from closedloop._config import ConfigError
from closedloop._io import nan_to_none
from closedloop.cli._common import check_out_path
from closedloop.patients.calibration import CALIBRATION_POSTURES, CalibrationRecord, calibrate
from closedloop.patients.cohort import get_patient
from closedloop.patients.patient import REFERENCE_POSTURE
from closedloop.patients.postures import POSTURES


def add_parsers(sub) -> None:
    """Add the ``calibrate`` and ``open-loop`` subcommands."""
    c = sub.add_parser(
        "calibrate",
        help="simulate the programming session of a patient",
        description="Sweep the current in each calibration posture; print the "
        "thresholds, window, target and clinician limits.",
    )
    c.add_argument("--patient", default="default", metavar="ID", help="patient id")
    c.add_argument(
        "--postures",
        default=",".join(CALIBRATION_POSTURES),
        help=f"comma list of calibration postures (default {','.join(CALIBRATION_POSTURES)})",
    )
    c.add_argument("--output", metavar="PATH.json", help="save the calibration record")
    c.add_argument("--plot", metavar="PATH.png", help="save the growth curves per posture")
    c.set_defaults(run=run_calibrate)
    o = sub.add_parser(
        "open-loop",
        help="run a fixed current through a scenario",
        description="Calibrate the patient, deliver the comfort current (or "
        "--current-ma) through the scenario as one episode of the open-loop controller "
        "(one pulse per step; the device's limits apply), print clinical metrics.",
    )
    o.add_argument("--patient", default="default", metavar="ID", help="patient id")
    o.add_argument("--scenario", default="clinic", help="scenario id (default clinic)")
    o.add_argument(
        "--current-ma",
        type=float,
        default=None,
        help="fixed current (mA), at most 4x the comfort current; default the calibrated "
        "comfort current",
    )
    o.add_argument("--seed", type=int, default=0, help="seed of scenario and noise (default 0)")
    o.add_argument("--duration-s", type=float, default=None, help="override the duration (s)")
    o.add_argument("--json", action="store_true", help="print the metrics as JSON")
    o.add_argument("--plot", metavar="PATH.png", help="save the ECAP-vs-target trace")
    o.add_argument("--save-trajectory", metavar="PATH.npz", help="save every pulse")
    o.set_defaults(run=run_open_loop)


def _postures(text: str) -> tuple[str, ...]:
    """Parse and check a comma list of postures."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in names if p not in POSTURES]
    if not names or bad:
        raise ConfigError(f"--postures={text!r}: unknown {bad}; valid: {', '.join(POSTURES)}")
    if REFERENCE_POSTURE not in names:
        raise ConfigError(f"--postures must include the reference posture {REFERENCE_POSTURE}")
    return names


def run_calibrate(args: argparse.Namespace) -> int:
    """Run the ``calibrate`` subcommand."""
    check_out_path("--output", args.output)
    check_out_path("--plot", args.plot)
    postures = _postures(args.postures)
    patient = get_patient(args.patient)
    model = patient.model()
    rec = calibrate(patient, postures=postures, model=model)
    print(format_calibration(rec))
    if args.output:
        print(f"wrote {rec.save(args.output)}", file=sys.stderr)
    if args.plot:
        from closedloop.patients.perception import programming_sweep
        from closedloop.plots import plot_posture_growth

        curves = {
            p: programming_sweep(model, patient.csf_mm(p), rec.pw_us, rec.rate_hz) for p in postures
        }
        path = plot_posture_growth(
            curves,
            args.plot,
            {p.posture: p for p in rec.postures},
            f"Patient {patient.patient_id}: growth curves per posture",
        )
        print(f"wrote {path}", file=sys.stderr)
    return 0


def format_calibration(rec: CalibrationRecord) -> str:
    """The calibration record as a readable table."""

    def num(x: float, fmt: str = ".2f") -> str:
        return "-" if not math.isfinite(x) else format(x, fmt)

    lines = [
        f"patient {rec.patient_id}: programming at {rec.pw_us:g} µs, {rec.rate_hz:g} Hz",
        "posture   | CSF mm | ECAP thr mA | slope µV/mA | percept mA | discomf mA | window µV",
    ]
    for p in rec.postures:
        lines.append(
            f"{p.posture:<9} | {p.csf_mm:6.2f} | {num(p.ecap_threshold_ma):>11} | "
            f"{num(p.slope_uv_per_ma, '.1f'):>11} | {num(p.perception_ma):>10} | "
            f"{num(p.discomfort_ma):>10} | {num(p.perception_ecap_uv, '.1f')}-"
            f"{num(p.discomfort_ecap_uv, '.1f')}"
        )
    lines.append(
        f"target {rec.target_uv:.1f} µV; comfort current {rec.comfort_ma:.2f} mA "
        f"({rec.reference_posture}); clinician limits {rec.min_ma:g}-{rec.max_ma:.2f} "
        f"mA; warm-up {rec.warmup_s:g} s"
    )
    return "\n".join(lines)


def run_open_loop(args: argparse.Namespace) -> int:
    """Run the ``open-loop`` subcommand."""
    from closedloop.evaluation.simulate import open_loop

    check_out_path("--plot", args.plot)
    check_out_path("--save-trajectory", args.save_trajectory)
    patient = get_patient(args.patient)
    model = patient.model()
    cal = calibrate(patient, model=model)
    run = open_loop(
        patient,
        args.scenario,
        args.current_ma,
        cal,
        args.seed,
        args.duration_s,
        model=model,
        with_window=args.plot is not None,
    )
    metrics = run.metrics()
    if args.json:
        doc = {
            "patient": patient.patient_id,
            "scenario": args.scenario,
            "seed": args.seed,
            "current_ma": float(run.current_ma[0]),
            "calibration": cal.to_dict(),
            "metrics": metrics,
        }
        print(json.dumps(nan_to_none(doc), indent=2, allow_nan=False))
    else:
        print(format_calibration(cal))
        print(
            f"\nopen loop at {run.current_ma[0]:.2f} mA through {args.scenario} "
            f"(seed {args.seed}, {run.n_pulses} pulses; first {cal.warmup_s:g} s unscored)"
        )
        print(format_metrics(metrics))
    if args.save_trajectory:
        print(f"wrote {run.save(args.save_trajectory)}", file=sys.stderr)
    if args.plot:
        from closedloop.plots import plot_trajectory

        title = (
            f"Patient {patient.patient_id}, {args.scenario}: open loop at "
            f"{run.current_ma[0]:.2f} mA"
        )
        print(f"wrote {plot_trajectory(run, args.plot, title)}", file=sys.stderr)
    return 0


def format_metrics(metrics: dict) -> str:
    """Metrics as ``key  value  meaning`` lines."""
    from closedloop.metrics import METRIC_DOCS

    return "\n".join(f"  {k:<28} {v:>12.4g}  {METRIC_DOCS.get(k, '')}" for k, v in metrics.items())
