"""``closedloop growth-curve`` and ``closedloop model-card``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

from closedloop._config import ConfigError, describe
from closedloop._io import nan_to_none, write_text_atomic
from closedloop.cli._common import PROG, check_out_path, parse_currents, parse_float_list
from closedloop.neural import GrowthCurve, ModelParams, growth_curve
from closedloop.patients.cohort import get_patient
from closedloop.patients.patient import NAMED_PATIENTS
from closedloop.patients.postures import POSTURES


def add_parsers(sub) -> None:
    """Add the ``growth-curve`` and ``model-card`` subcommands."""
    _add_growth_parser(sub)
    card = sub.add_parser(
        "model-card",
        help="print the parameter model card (Markdown)",
        description="Print every model parameter with its unit, valid range "
        "and source as Markdown.",
    )
    card.add_argument("--output", metavar="PATH", help="write to PATH (atomically) instead")
    card.set_defaults(run=run_model_card)


def _add_growth_parser(sub) -> None:
    """Add the ``growth-curve`` subcommand."""
    p = sub.add_parser(
        "growth-curve",
        help="sweep the current and fit the ECAP growth curve",
        description="Sweep the current upwards through a patient's model, "
        "average the ECAP per level and fit threshold and slope.",
    )
    p.add_argument(
        "--patient",
        default="default",
        metavar="ID",
        help=f"a named patient ({', '.join(NAMED_PATIENTS)}) or a cohort id such as "
        "train-007 (default: default)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--posture",
        choices=POSTURES,
        default=None,
        help="posture setting the CSF thickness (default supine)",
    )
    where.add_argument(
        "--csf-mm",
        type=float,
        default=None,
        metavar="MM",
        help="dorsal CSF thickness (mm) instead of a posture",
    )
    p.add_argument("--pw-us", type=float, default=250.0, help="pulse width (µs; default 250)")
    p.add_argument("--rate-hz", type=float, default=50.0, help="pulse rate (Hz; default 50)")
    p.add_argument(
        "--currents",
        default="0:15:0.5",
        metavar="START:STOP:STEP",
        help="current levels in mA, STOP included (default 0:15:0.5)",
    )
    p.add_argument(
        "--pulses-per-level",
        type=int,
        default=50,
        metavar="N",
        help="pulses per level; the last half are averaged (default 50)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON document instead")
    p.add_argument("--plot", metavar="PATH.png", help="also save a figure to PATH.png")
    p.add_argument(
        "--waveform-currents",
        metavar="LIST",
        help="comma list of mA whose sweeps the plot shows (needs --plot)",
    )
    p.set_defaults(run=run_growth_curve)


def run_growth_curve(args: argparse.Namespace) -> int:
    """Run the ``growth-curve`` subcommand."""
    if args.waveform_currents is not None and args.plot is None:
        raise ConfigError("--waveform-currents needs --plot")
    check_out_path("--plot", args.plot)
    patient = get_patient(args.patient)
    posture = None if args.csf_mm is not None else (args.posture or "supine")
    csf = args.csf_mm if args.csf_mm is not None else patient.csf_mm(posture)
    kwargs = dict(
        pw_us=args.pw_us, rate_hz=args.rate_hz, csf_mm=csf, pulses_per_level=args.pulses_per_level
    )
    currents = parse_currents(args.currents)
    wanted = (
        None
        if args.waveform_currents is None
        else parse_float_list("--waveform-currents", args.waveform_currents)
    )
    model = patient.model()
    curve = growth_curve(model, currents, waveforms=args.plot is not None, **kwargs)
    for warning in fit_warnings(curve):
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    if args.json:
        doc = {
            "patient": patient.patient_id,
            "posture": posture,
            "pulses_per_level": args.pulses_per_level,
            "estimator": patient.params.recording.estimator,
            **dataclasses.replace(curve, waveforms_uv=None).to_dict(),
        }
        print(json.dumps(nan_to_none(doc), indent=2, allow_nan=False))
    else:
        print(format_table(curve, patient.patient_id, posture))
    if args.plot is not None:
        _plot(curve, model, patient, posture, args, wanted)
    return 0


def _plot(curve: GrowthCurve, model, patient, posture, args, wanted) -> None:
    """Save the growth-curve figure for ``run_growth_curve``."""
    from closedloop.plots import plot_growth_curve

    rec = patient.params.recording
    start = (2.0 * curve.pw_us + rec.interphase_us) * 1e-3 + rec.blank_ms
    where = posture if posture is not None else "custom CSF"
    title = f"Patient {patient.patient_id}, {where}: ECAP growth curve"
    path = plot_growth_curve(
        curve,
        args.plot,
        model.sample_times_ms,
        title,
        waveform_currents_ma=wanted,
        window_ms=(start, rec.est_end_ms),
    )
    print(f"wrote {path}", file=sys.stderr)


def fit_warnings(curve: GrowthCurve) -> list[str]:
    """Reasons not to trust the fitted threshold and slope (empty if none)."""
    lo, hi = float(curve.currents_ma[0]), float(curve.currents_ma[-1])
    if not np.any(curve.frac_recruited > 0):
        return ["no fibre fired at any level; the fit describes noise and artefact only"]
    if not lo <= curve.threshold_ma <= hi:
        return [
            f"fitted threshold {curve.threshold_ma:.3g} mA lies outside the swept range "
            f"[{lo:g}, {hi:g}] mA; it is an extrapolation"
        ]
    return []


def format_table(curve: GrowthCurve, patient_id: str, posture: str | None) -> str:
    """A readable table of the growth curve and a line with its fit."""
    where = f"posture {posture}, " if posture else ""
    lines = [
        f"patient {patient_id}, {where}CSF {curve.csf_mm:g} mm, "
        f"PW {curve.pw_us:g} µs, rate {curve.rate_hz:g} Hz",
        f"{'current mA':>10} | {'ECAP µV':>8} | {'sd µV':>6} | {'true µV':>8} | "
        f"{'recruited %':>11} | {'N1 ms':>6}",
    ]
    lines.append("-" * len(lines[-1]))
    for row in zip(
        curve.currents_ma,
        curve.ecap_uv,
        curve.ecap_sd_uv,
        curve.ecap_true_uv,
        100.0 * curve.frac_recruited,
        curve.n1_latency_ms,
        strict=True,
    ):
        i, ecap, sd, true, pct, lat = (float(v) for v in row)
        n1 = f"{lat:6.3f}" if math.isfinite(lat) else f"{'-':>6}"
        lines.append(f"{i:10.2f} | {ecap:8.2f} | {sd:6.2f} | {true:8.2f} | {pct:11.2f} | {n1}")
    lines.append(
        f"fit: threshold {curve.threshold_ma:.3f} mA, slope "
        f"{curve.slope_uv_per_ma:.2f} µV/mA, knee {curve.knee_ma:.3f} mA"
    )
    return "\n".join(lines)


def model_card() -> str:
    """The parameter model card as Markdown: the neural model, patients and disturbances."""
    out = [
        "# closedloop neural response model: parameters",
        "",
        "Generated by `closedloop model-card` from the parameter declarations "
        "(`closedloop/neural/params.py`, `closedloop/neural/signal_params.py`); "
        "sources refer to `shared/domain.md`. "
        "Unit `1` means dimensionless.",
        "",
    ]
    for section in dataclasses.fields(ModelParams):
        out += _table(
            f"{section.name} ({section.default_factory.__name__})", section.default_factory
        )
    out += [
        "# Patients, perception, battery, disturbances and device: parameters",
        "",
        "Generated from `closedloop/patients/perception.py`, "
        "`closedloop/patients/cohort_distribution.py`, "
        "`closedloop/metrics/`, `closedloop/disturbances/` and `closedloop/device.py`. "
        "Scenario files in `closedloop/disturbances/library/` override the disturbance "
        "defaults.",
        "",
    ]
    for cls in _clinic_classes():
        out += _table(cls.__name__, cls)
    return "\n".join(out)


def _clinic_classes() -> list[type]:
    """Parameter classes of patients, perception, battery and disturbances, in card order."""
    from closedloop.device import DeviceParams
    from closedloop.disturbances import drift, events, periodic, posture, sway
    from closedloop.metrics import BatterySpec
    from closedloop.patients.cohort_distribution import CohortDistribution
    from closedloop.patients.perception import PerceptionParams

    return [
        PerceptionParams,
        CohortDistribution,
        BatterySpec,
        posture.PostureSpec,
        periodic.RespirationSpec,
        periodic.CardiacSpec,
        periodic.GaitSpec,
        events.CoughSpec,
        events.SneezeSpec,
        events.BendSpec,
        drift.DriftSpec,
        sway.SwaySpec,
        DeviceParams,
    ]


def _table(title: str, cls: type) -> list[str]:
    """One Markdown section: the class docstring's summary and a row per declared field."""
    out = [
        f"## {title}",
        "",
        (cls.__doc__ or "").strip().split("\n\n")[0],
        "",
        "| name | default | unit | valid range | source | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for row in describe(cls):
        cells = (
            f"`{row['name']}`",
            _fmt_default(row["default"]),
            row["unit"],
            row["range"],
            row["source"],
            row["doc"],
        )
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*out, ""]


def _fmt_default(value) -> str:
    """Format a default value for the card."""
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt_default(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _cell(text) -> str:
    """Escape a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def run_model_card(args: argparse.Namespace) -> int:
    """Run the ``model-card`` subcommand."""
    check_out_path("--output", args.output)
    text = model_card()
    if args.output is None:
        print(text)
    else:
        write_text_atomic(Path(args.output), text + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
