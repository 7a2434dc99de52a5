"""The clinic posture sequence beside EVOKE's posture trace: open loop against closed loop.

Issue 18's instrument for the clinic: each controller plays the clinic posture sequence
(``closedloop/ECAPClinic-v0``, or ``-Test-v0`` for the test split) on every patient of a cohort
split, (a) at the patient's calibrated target and (b) at a fixed target (50 µV, EVOKE's figure)
for the patients whose sitting window holds it (perception ECAP < target < discomfort ECAP). At
the fixed target every controller is told that target, and its current setting (the open loop's
fixed current, the clinical loop's fallback) is the one that gives the target sitting, from the
patient's sitting programming sweep. Prone is scored separately (the clinic envs'
``unscored_postures``; docs/clinic_protocol.md).

Reported, per patient and across patients (median and quartiles), beside EVOKE's figures: mean
|ECAP - target| of open and closed loop and their ratio, the closed loop's charge per pulse
across postures (max / min of the per-posture medians), the prone figures, and what makes up the
closed-loop deviation (posture transitions, coughs, steady posture; the pulse-to-pulse part).

    python benchmarks/clinic_sequence.py                        # validation cohort, seed 0
    python benchmarks/clinic_sequence.py --seeds 0 1 --controllers open-loop clinical-loop pid
    python benchmarks/clinic_sequence.py --split test --report-test
    python benchmarks/clinic_sequence.py --quick                # 4 patients

``--split test`` is refused without ``--report-test`` (report the held-out cohort, never tune on
it). Results go to ``--out`` as Markdown and JSON, written atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
from pathlib import Path

import numpy as np

from closedloop._config import ConfigError
from closedloop._io import nan_to_none, write_text_atomic
from closedloop._parallel import check_workers, parallel_map
from closedloop.patients.cohort import check_cohort_run
from closedloop.patients.postures import POSTURES

RESULTS = Path(__file__).resolve().parent / "results"
ENV_IDS = {
    "train": "closedloop/ECAPClinic-v0",
    "validation": "closedloop/ECAPClinic-v0",
    "test": "closedloop/ECAPClinic-Test-v0",
}
CONTROLLERS = ("open-loop", "clinical-loop")
BASELINE = "open-loop"
MODES = ("calibrated", "fixed")
SMOOTH_S = 0.5
"""Window of the moving mean that splits the deviation into a slow and a pulse-to-pulse part (s)."""
SWING_REL = 1.0
"""Open-loop mean deviation / target at which a patient swings like EVOKE's example (1.33)."""
TRANSITION_S = 3.0
"""Time after a posture change counted as 'transition' in the deviation breakdown (s)."""
EVOKE = {
    "ol_mad_uv": "66.4 (JAMA Neurol 2022 Fig. 4A); 68 (RAPM 2024 Fig. 1)",
    "cl_mad_uv": "3.0 (Fig. 4A); 3 (RAPM Fig. 1)",
    "ratio": "22.1x (Fig. 4A)",
    "cl_charge_span": "2.8x (0.5-1.4 µC/pulse, RAPM Fig. 1)",
    "ol_charge_uc": "1.1 µC/pulse fixed (RAPM Fig. 1)",
    "sequence": "one patient each, 150 s in-clinic posture sequence at a 50 µV target",
}
"""EVOKE's posture-trace figures (notes 1.8 and 1.9 of shared/clinic-calibration.md)."""


def sitting_current_ma(patient, target_uv: float, pw_us: float, rate_hz: float) -> float:
    """Current (mA) giving ``target_uv`` in the sitting programming sweep (NaN if unreached).

    The same sweep and crossing that set the calibrated comfort current
    (:func:`closedloop.patients.calibration.calibrate`).
    """
    from closedloop.patients.calibration import programming_model
    from closedloop.patients.perception import crossing_ma, programming_sweep

    curve = programming_sweep(programming_model(patient), patient.csf_mm("sitting"), pw_us, rate_hz)
    return crossing_ma(curve.currents_ma, curve.ecap_uv, target_uv)


def retarget(calibration, patient, target_uv: float):
    """The calibration re-programmed to ``target_uv``, or None if the sitting window excludes it.

    Target, comfort (open-loop) and fallback currents move to the target's sitting current;
    the clinician limits stay.
    """
    sitting = calibration.posture("sitting")
    if not sitting.perception_ecap_uv < target_uv < sitting.discomfort_ecap_uv:
        return None
    current = sitting_current_ma(patient, target_uv, calibration.pw_us, calibration.rate_hz)
    if not math.isfinite(current):
        return None
    return dataclasses.replace(
        calibration, target_uv=float(target_uv), comfort_ma=current, fallback_ma=current
    )


def play_episode(
    controller, env_id: str, patient_id: str, seed: int, episode_s: float, target_uv: float | None
):
    """One episode through the runner's own pieces; ``(trajectory, metrics, scored)`` or None.

    At the calibrated target (``target_uv`` None) this is exactly
    :func:`closedloop.evaluation.run_episode`. None if the patient's window excludes the target.
    """
    import gymnasium as gym

    from closedloop.controllers.base import ControlContext
    from closedloop.controllers.sources import build_controller
    from closedloop.evaluation.episode_runner import play, score, to_trajectory
    from closedloop.metrics import unscored_mask

    env = gym.make(env_id, patient=patient_id, episode_s=episode_s)
    try:
        base = env.unwrapped
        options = {}
        if target_uv is not None:  # the patient's calibration, then the real reset
            env.reset(seed=seed)
            cal = retarget(base.calibration, base.patient, target_uv)
            if cal is None:
                return None
            options = {"target_uv": float(target_uv)}
        obs, info = env.reset(seed=seed, options=options)
        cal = base.calibration if target_uv is None else cal
        context = ControlContext.from_env(base.spec_.config, cal, info["target_uv"])
        log = play(build_controller(controller), context, env, obs)
        traj = to_trajectory(base, float(info["target_uv"]), log)
        cfg = base.spec_.config
    finally:
        env.close()
    scored = ~unscored_mask(
        traj.t_s, traj.posture, cfg.unscored_posture_names, cfg.unscored_after_s
    )
    return traj, score(traj, log, cfg), scored


def moving_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Trailing mean of ``x`` over ``n`` samples (fewer at the start)."""
    c = np.cumsum(np.insert(np.asarray(x, float), 0, 0.0))
    k = np.arange(x.size)
    lo = np.maximum(k - n + 1, 0)
    return (c[k + 1] - c[lo]) / (k + 1 - lo)


def breakdown(traj, scored: np.ndarray) -> dict:
    """What makes up the mean |ECAP - target| over the scored pulses after the warm-up.

    Returns:
        Per part (``transition``: within :data:`TRANSITION_S` of a posture change; ``cough``:
        during an event; ``steady``: the rest) its share of the time and of the deviation, and
        ``slow_mad_uv`` (the deviation of the :data:`SMOOTH_S` moving mean ECAP) and
        ``fast_sd_uv`` (sd of the ECAP about that mean on steady pulses): the pulse-to-pulse part.
    """
    t = traj.t_s
    keep = scored & (t >= t[0] + traj.warmup_s)
    err = np.abs(traj.ecap_true_uv - traj.target_uv)
    change_t = t[np.flatnonzero(traj.posture[1:] != traj.posture[:-1]) + 1]
    transition = np.zeros(t.size, dtype=bool)
    for c in change_t:
        transition |= (t >= c) & (t < c + TRANSITION_S)
    cough = (traj.event != 0) & ~transition
    steady = ~transition & ~cough
    total = float(np.sum(err[keep]))
    out = {}
    for name, part in (("transition", transition), ("cough", cough), ("steady", steady)):
        sel = keep & part
        out[f"{name}_time_frac"] = float(np.count_nonzero(sel) / np.count_nonzero(keep))
        out[f"{name}_dev_frac"] = float(np.sum(err[sel]) / total) if total > 0 else math.nan
    n = max(1, round(SMOOTH_S * traj.rate_hz))
    smooth = moving_mean(traj.ecap_true_uv, n)
    out["slow_mad_uv"] = float(np.mean(np.abs(smooth - traj.target_uv)[keep]))
    out["fast_sd_uv"] = float(np.std((traj.ecap_true_uv - smooth)[keep & steady]))
    return out


def per_posture(traj, scored: np.ndarray) -> dict:
    """Per scored posture: median charge per pulse (µC) and mean |ECAP - target| (µV)."""
    keep = scored & (traj.t_s >= traj.t_s[0] + traj.warmup_s)
    out = {}
    for code, name in enumerate(POSTURES):
        sel = keep & (traj.posture == code)
        if sel.any():
            out[name] = {
                "charge_uc": float(np.median(traj.charge_uc[sel])),
                "mad_uv": float(np.mean(np.abs(traj.ecap_true_uv[sel] - traj.target_uv))),
            }
    return out


ROW_KEYS = (
    "mad_uv",
    "time_in_window_frac",
    "time_below_perception_frac",
    "time_above_discomfort_frac",
    "charge_per_pulse_uc",
    "unscored_duration_s",
    "unscored_mad_uv",
    "unscored_time_in_window_frac",
    "unscored_time_below_perception_frac",
    "unscored_charge_per_pulse_uc",
    "overstim_events",
)


def one(job: tuple, env_id: str, episode_s: float, fixed_uv: float) -> dict | None:
    """One episode ``(mode, (label, source), patient, seed)`` -> its row (None: excluded).

    ``source`` is a spec name or a picklable factory
    (:func:`closedloop.controllers.sources.resolve_controller`).
    """
    mode, (controller, source), patient, seed = job
    got = play_episode(
        source, env_id, patient, seed, episode_s, None if mode == "calibrated" else fixed_uv
    )
    if got is None:
        return None
    traj, metrics, scored = got
    postures = per_posture(traj, scored)
    charges = [p["charge_uc"] for p in postures.values()]
    return {
        "mode": mode,
        "controller": controller,
        "patient": patient,
        "seed": seed,
        "target_uv": traj.target_uv,
        **{k: metrics[k] for k in ROW_KEYS},
        "charge_span": max(charges) / min(charges) if min(charges) > 0 else math.nan,
        "per_posture": postures,
        **breakdown(traj, scored),
    }


def _quartiles(values) -> list[float]:
    """[25 %, median, 75 %] of the finite values (NaN if none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    return np.percentile(v, [25, 50, 75]).tolist() if v.size else [math.nan] * 3


def _patient_means(rows: list[dict], key: str) -> dict[str, float]:
    """Patient -> mean of ``key`` over that patient's seeds."""
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r["patient"], []).append(r[key])
    return {p: float(np.mean(v)) for p, v in out.items()}


def summarise_mode(rows: list[dict], controllers) -> dict:
    """Across-patient figures of one mode: per controller, and each against the open loop."""
    per_ctrl = {c: [r for r in rows if r["controller"] == c] for c in controllers}
    summary = {"n_patients": len({r["patient"] for r in rows}), "controllers": {}}
    keys = (
        *ROW_KEYS,
        "charge_span",
        "slow_mad_uv",
        "fast_sd_uv",
        "transition_dev_frac",
        "cough_dev_frac",
        "steady_dev_frac",
        "transition_time_frac",
        "cough_time_frac",
    )
    for c, mine in per_ctrl.items():
        summary["controllers"][c] = {k: _quartiles(_patient_means(mine, k).values()) for k in keys}
        summary["controllers"][c]["overstim_events_total"] = float(
            sum(r["overstim_events"] for r in mine)
        )
    base = per_ctrl.get(BASELINE, [])
    targets = _patient_means(base, "target_uv")
    summary["vs_open_loop"] = {}
    for c, mine in per_ctrl.items():
        if c == BASELINE or not base:
            continue
        ol, cl = _patient_means(base, "mad_uv"), _patient_means(mine, "mad_uv")
        ol_s, cl_s = _patient_means(base, "slow_mad_uv"), _patient_means(mine, "slow_mad_uv")
        ratio = {p: ol[p] / cl[p] for p in cl if p in ol and cl[p] > 0}
        slow = {p: ol_s[p] / cl_s[p] for p in cl_s if p in ol_s and cl_s[p] > 0}
        swing = [v for p, v in ratio.items() if ol[p] >= SWING_REL * targets[p]]
        summary["vs_open_loop"][c] = {
            "ratio_per_patient": ratio,
            "ratio": _quartiles(ratio.values()),
            "ratio_min": min(ratio.values(), default=math.nan),
            "n_at_least_10x": sum(v >= 10.0 for v in ratio.values()),
            "n": len(ratio),
            "slow_ratio": _quartiles(slow.values()),
            "slow_n_at_least_10x": sum(v >= 10.0 for v in slow.values()),
            "swing_ratio": _quartiles(swing),
            "swing_n": len(swing),
            "swing_n_at_least_10x": sum(v >= 10.0 for v in swing),
        }
    return summary


def summarise(rows: list[dict], controllers, n_patients: int) -> dict:
    """Both modes, and how many patients' windows allow the fixed target."""
    out = {m: summarise_mode([r for r in rows if r["mode"] == m], controllers) for m in MODES}
    out["fixed"]["n_allowed"] = out["fixed"]["n_patients"]
    out["fixed"]["n_cohort"] = n_patients
    return out


def _q(q: list[float], fmt: str = ".3g") -> str:
    """'median (25 %-75 %)'."""
    return f"{q[1]:{fmt}} ({q[0]:{fmt}}-{q[2]:{fmt}})"


def report_mode(summary: dict, rows: list[dict], mode: str, fixed_uv: float) -> list[str]:
    """The Markdown section of one mode: cohort table, EVOKE beside it, per-patient table."""
    s = summary[mode]
    title = (
        "each patient's calibrated target"
        if mode == "calibrated"
        else f"a {fixed_uv:g} µV target ({s['n_allowed']} of {s['n_cohort']} patients' sitting "
        "windows allow it)"
    )
    lines = [f"## At {title}", ""]
    if not s["n_patients"]:
        return lines + ["No patient.", ""]
    lines += [
        "Median (quartiles) across patients; primary metrics leave out prone and its ramp out.",
        "",
        "| controller | mean abs dev µV | time in window | below "
        "perception | charge µC/pulse | charge span across postures | prone: in window "
        "| prone: below perception | prone: mean abs dev µV | above discomfort | "
        "overstimulation events (all episodes) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c, q in s["controllers"].items():
        lines.append(
            f"| {c} | {_q(q['mad_uv'])} | {_q(q['time_in_window_frac'])} | "
            f"{_q(q['time_below_perception_frac'])} | {_q(q['charge_per_pulse_uc'])} | "
            f"{_q(q['charge_span'])} | {_q(q['unscored_time_in_window_frac'])} | "
            f"{_q(q['unscored_time_below_perception_frac'])} | "
            f"{_q(q['unscored_mad_uv'])} | {_q(q['time_above_discomfort_frac'])} | "
            f"{q['overstim_events_total']:g} |"
        )
    lines += [
        "",
        "| vs open loop | ratio OL/CL mean abs dev | min | patients >= 10x | "
        f"ratio of the {SMOOTH_S:g}-s mean ECAP's dev | its patients >= 10x | patients "
        f"whose open loop deviates >= {SWING_REL:g} x target: ratio | their >= 10x | EVOKE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c, v in s["vs_open_loop"].items():
        lines.append(
            f"| {c} | {_q(v['ratio'])} | {v['ratio_min']:.3g} | "
            f"{v['n_at_least_10x']} of {v['n']} | {_q(v['slow_ratio'])} | "
            f"{v['slow_n_at_least_10x']} of {v['n']} | {_q(v['swing_ratio'])} | "
            f"{v['swing_n_at_least_10x']} of {v['swing_n']} | {EVOKE['ratio']} |"
        )
    lines += [
        "",
        "What the deviation is made of (median across patients): share of the "
        f"deviation within {TRANSITION_S:g} s of a posture change, in coughs and in steady "
        f"posture; the deviation of the {SMOOTH_S:g}-s mean ECAP; the pulse-to-pulse sd of "
        "the ECAP about that mean in steady posture.",
        "",
        "| controller | transitions (time share) | coughs (time share) | steady | "
        f"{SMOOTH_S:g}-s mean dev µV | pulse-to-pulse sd µV |",
        "|---|---|---|---|---|---|",
    ]
    for c, q in s["controllers"].items():
        lines.append(
            f"| {c} | {q['transition_dev_frac'][1]:.2f} "
            f"({q['transition_time_frac'][1]:.2f}) | {q['cough_dev_frac'][1]:.3f} "
            f"({q['cough_time_frac'][1]:.3f}) | {q['steady_dev_frac'][1]:.2f} | "
            f"{q['slow_mad_uv'][1]:.3g} | {q['fast_sd_uv'][1]:.3g} |"
        )
    return lines + [""] + patient_table(summary, rows, mode)


def patient_table(summary: dict, rows: list[dict], mode: str) -> list[str]:
    """Per patient (mean over seeds): target, each controller's deviation, ratio, charge span."""
    controllers = list(summary[mode]["controllers"])
    mine = [r for r in rows if r["mode"] == mode]
    head = ["patient", "target µV", *(f"{c} dev µV" for c in controllers)]
    ratios = summary[mode]["vs_open_loop"]
    head += [f"OL/{c}" for c in ratios] + [f"{c} charge span" for c in controllers if c != BASELINE]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in sorted({r["patient"] for r in mine}):
        pr = [r for r in mine if r["patient"] == p]
        dev = {c: np.mean([r["mad_uv"] for r in pr if r["controller"] == c]) for c in controllers}
        span = {
            c: np.mean([r["charge_span"] for r in pr if r["controller"] == c])
            for c in controllers
            if c != BASELINE
        }
        cells = [
            p,
            f"{pr[0]['target_uv']:.1f}",
            *(f"{dev[c]:.2f}" for c in controllers),
            *(f"{ratios[c]['ratio_per_patient'].get(p, math.nan):.1f}" for c in ratios),
            *(f"{v:.2f}" for v in span.values()),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def report(summary: dict, rows: list[dict], args) -> str:
    """The Markdown report."""
    lines = [
        f"# The clinic posture sequence on the {args.split} cohort ({ENV_IDS[args.split]}, "
        f"{args.episode_s:g} s, seeds {', '.join(map(str, args.seeds))})",
        "",
        "Mean |ECAP - target| is time-weighted over the scored pulses (after the warm-up; "
        "prone and the 1-s ramp out of it are scored separately, see "
        "docs/clinic_protocol.md). Charge span = highest / lowest per-posture median "
        "charge per pulse over the scored postures.",
        "",
        "EVOKE (" + EVOKE["sequence"] + "): open loop "
        f"{EVOKE['ol_mad_uv']} µV, closed loop {EVOKE['cl_mad_uv']} µV, ratio "
        f"{EVOKE['ratio']}; closed-loop charge {EVOKE['cl_charge_span']}; open loop "
        f"{EVOKE['ol_charge_uc']}.",
        "",
    ]
    for mode in MODES:
        lines += report_mode(summary, rows, mode, args.target_uv)
    return "\n".join(lines)


def parse(argv) -> argparse.Namespace:
    """Command-line arguments, checked."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="validation", choices=tuple(ENV_IDS))
    ap.add_argument(
        "--report-test",
        action="store_true",
        help="allow --split test (reporting the held-out cohort, never tuning on it)",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--patients", type=int, default=0, help="first N patients (0: all)")
    ap.add_argument(
        "--controllers",
        nargs="+",
        default=list(CONTROLLERS),
        help="names, spec files, module:Class, file.py:Class or LABEL=REF "
        "(as closedloop benchmark --controllers)",
    )
    ap.add_argument("--target-uv", type=float, default=50.0, help="the fixed target (µV)")
    ap.add_argument(
        "--episode-s",
        type=float,
        default=450.0,
        help="episode length (s); the whole sequence is 450 s",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="4 patients")
    ap.add_argument("--out", default=str(RESULTS / "clinic_sequence"))
    args = ap.parse_args(argv)
    if args.quick:
        args.patients = 4
    check_cohort_run(args.split, args.report_test, args.seeds, args.patients)
    if BASELINE not in args.controllers:
        raise ConfigError(
            f"controllers={args.controllers!r} must include {BASELINE!r} (the "
            "baseline of the ratio)"
        )
    if not 0.0 < args.target_uv <= 1000.0:
        raise ConfigError(f"target_uv={args.target_uv!r} is out of range; valid (0, 1000] µV")
    if not 20.0 <= args.episode_s <= 3600.0:
        raise ConfigError(f"episode_s={args.episode_s!r} is out of range; valid [20, 3600] s")
    args.workers = check_workers(args.workers)
    from closedloop.controllers.sources import resolve_controllers

    args.sources = resolve_controllers(args.controllers, expand_all=False)  # before any run
    args.controllers = list(args.sources)
    return args


def main(argv=None) -> int:
    try:
        args = parse(argv)
    except ConfigError as exc:
        print(f"clinic_sequence.py: {exc}", file=sys.stderr)
        return 2
    from closedloop.patients.cohort import load_cohort

    patients = [p.patient_id for p in load_cohort(args.split)]
    patients = patients[: args.patients] if args.patients else patients
    jobs = [
        (m, c, p, s)
        for m in MODES
        for c in args.sources.items()
        for p in patients
        for s in args.seeds
    ]
    run = functools.partial(
        one, env_id=ENV_IDS[args.split], episode_s=args.episode_s, fixed_uv=args.target_uv
    )
    rows = [
        r
        for r in parallel_map(run, jobs, args.workers, True, "episodes", "episode")
        if r is not None
    ]
    summary = summarise(rows, args.controllers, len(patients))
    text = report(summary, rows, args)
    print(text)
    out = Path(args.out)
    write_text_atomic(out.with_suffix(".md"), text + "\n")
    shown = {k: v for k, v in vars(args).items() if k != "sources"}  # factories: not JSON
    write_text_atomic(
        out.with_suffix(".json"),
        json.dumps(
            nan_to_none({"args": shown, "evoke": EVOKE, "rows": rows, "summary": summary}), indent=1
        )
        + "\n",
    )
    print(f"wrote {out}.md/.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
