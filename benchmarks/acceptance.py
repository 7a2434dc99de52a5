"""Acceptance figures (issues 5 and 18) from a ``closedloop benchmark`` run folder.

    python benchmarks/acceptance.py runs/benchmark-default            # print the tables
    python benchmarks/acceptance.py runs/benchmark-default --md OUT   # also write Markdown

Reads ``summary.json`` (statistics across patients and seeds with bootstrap CIs) and prints:

1. on the clinic posture sequence (test cohort), every controller's mean |ECAP - target| and
   time in window as ratios to open loop, with 95 % paired-bootstrap CIs, and whether it beats
   open loop on both;
2. on the cough storm (test cohort), overstimulation events per episode (mean) against open loop;
3. (issue 18) for each env's primary metric, the paired differences that show whether the suite
   separates controllers: the clinical loop against P, every closed loop against open loop, and
   the best controller against the median one (mean over patients and seeds, 95 % hierarchical
   paired-bootstrap CI, probability of improvement; ``closedloop.evaluation.ranking``);
4. (issue 22) on daily living (test cohort), every controller against the clinical loop: the
   paired difference in time in window, overstimulation events per hour and charge per pulse,
   and whether it is better on the first with no more of the other two (charge within 2 %).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from closedloop._io import write_text_atomic
from closedloop.benchmark import Suite
from closedloop.evaluation.episode_runner import DIRECTION
from closedloop.evaluation.ranking import paired_differences

CLINIC = "closedloop/ECAPClinic-Test-v0"
COUGH = "closedloop/ECAPCoughStorm-Test-v0"
DAILY = "closedloop/ECAPTracking-Test-v0"
CHARGE_TOLERANCE = 0.02
"""Charge per pulse may exceed the clinical loop's by this fraction and count as no more
(issue 22)."""
BASELINE = "open-loop"


def clinic_table(doc: dict) -> list[str]:
    """Markdown rows: ratio to open loop of mean |ECAP - target| and of time in window."""
    ratios = {(r["controller"], r["metric"]): r for r in doc["ratios"] if r["env_id"] == CLINIC}
    lines = [
        "| controller | mad ratio [95 % CI] | time-in-window ratio [95 % CI] | beats open "
        "loop on both |",
        "|---|---|---|---|",
    ]
    for name in sorted({c for c, _ in ratios}):
        mad, tiw = ratios.get((name, "mad_uv")), ratios.get((name, "time_in_window_frac"))
        if name == BASELINE or mad is None or tiw is None:
            continue
        both = mad["value"] < mad["baseline_value"] and tiw["value"] > tiw["baseline_value"]
        lines.append(
            f"| {name} | {mad['ratio']:.3f} [{mad['ratio_lo']:.3f}, "
            f"{mad['ratio_hi']:.3f}] | {tiw['ratio']:.3f} [{tiw['ratio_lo']:.3f}, "
            f"{tiw['ratio_hi']:.3f}] | {'yes' if both else 'NO'} |"
        )
    return lines


def cough_table(doc: dict) -> list[str]:
    """Markdown rows: overstimulation events per episode in the cough storm."""
    rows = {
        r["controller"]: r
        for r in doc["summary"]
        if r["env_id"] == COUGH and r["metric"] == "overstim_events"
    }
    base = rows[BASELINE]["mean"]
    lines = [
        "| controller | overstimulation events per episode, mean [95 % CI] | vs open loop |",
        "|---|---|---|",
    ]
    for name, r in sorted(rows.items(), key=lambda kv: kv[1]["mean"]):
        lines.append(
            f"| {name} | {r['mean']:.2f} [{r['mean_lo']:.2f}, {r['mean_hi']:.2f}] | "
            f"{r['mean'] / base:.2f}x |"
        )
    return lines


def _diff_cell(d: dict) -> str:
    """``diff [lo, hi]`` and the probability of improvement of one paired comparison."""
    return (
        f"{d['diff']:+.3g} [{d['diff_lo']:+.3g}, {d['diff_hi']:+.3g}] | {d['poi']:.2f} | "
        f"{d['vs_baseline']}"
    )


def _envs(rows: list[dict], primary: dict[str, str]):
    """Per env with rows: ``(env_id, metric, env_rows, means, order)``, best first."""
    for env_id, metric in primary.items():
        env_rows = [r for r in rows if r["env_id"] == env_id]
        if not env_rows:
            continue
        names = list(dict.fromkeys(r["controller"] for r in env_rows))
        means = {c: _mean([r[metric] for r in env_rows if r["controller"] == c]) for c in names}
        yield (
            env_id,
            metric,
            env_rows,
            means,
            sorted(names, key=lambda c: -DIRECTION[metric] * means[c]),
        )


def separation_table(rows: list[dict], primary: dict[str, str], baseline: str) -> list[str]:
    """Markdown: per env, the paired differences of the primary metric that rank the suite.

    Each line is ``controller - reference`` on the same episodes; ``better``/``worse``/``tied``
    is the ranking rule's verdict (CI excludes 0 and the gain reaches the metric's MCID).
    """
    lines = []
    for env_id, metric, env_rows, means, order in _envs(rows, primary):
        names, sign = list(means), DIRECTION[metric]
        best, median = order[0], order[(len(order) - 1) // 2]
        pairs = [("clinical-loop", "p"), (best, median)]
        pairs += [(c, baseline) for c in order if c != baseline]
        lines += [
            f"### {env_id}: `{metric}` ({'higher' if sign > 0 else 'lower'} is better)",
            "",
            "| comparison | mean of the paired difference [95 % CI] | P(improvement) | verdict |",
            "|---|---|---|---|",
        ]
        for c, ref in pairs:
            if c not in names or ref not in names or c == ref:
                continue
            d = next(
                x for x in paired_differences(env_rows, env_id, metric, ref) if x["controller"] == c
            )
            tag = " (best - median)" if (c, ref) == (best, median) else ""
            lines.append(f"| {c} - {ref}{tag} | {_diff_cell(d)} |")
        lines.append("")
    return lines


def _ci(d: dict) -> str:
    return f"{d['diff']:+.3g} [{d['diff_lo']:+.3g}, {d['diff_hi']:+.3g}]"


def headline_table(rows: list[dict], primary: dict[str, str], baseline: str) -> list[str]:
    """Markdown: one line per env, the README headline (means and paired differences)."""
    lines = [
        "| env: primary metric | open loop | clinical loop | best | clinical loop - P | "
        "clinical loop - open loop | best - median |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_id, metric, env_rows, means, order in _envs(rows, primary):
        best, median = order[0], order[(len(order) - 1) // 2]
        cl_p, cl_ol, top = (
            _pair(env_rows, env_id, metric, c, ref)
            for c, ref in (("clinical-loop", "p"), ("clinical-loop", baseline), (best, median))
        )
        lines.append(
            f"| {env_id.split('/')[1]}: `{metric}` | {means[baseline]:.3g} | "
            f"{means['clinical-loop']:.3g} | {best} {means[best]:.3g} | "
            f"{_ci(cl_p)} | {_ci(cl_ol)} | {_ci(top)} ({median}) |"
        )
    return lines


def beats_clinical_table(rows: list[dict], env_id: str = DAILY) -> list[str]:
    """Markdown: every controller against the clinical loop on time in window, overstimulation
    events per hour and charge per pulse (issue 22's goal), best first."""
    mine = [r for r in rows if r["env_id"] == env_id]
    if not any(r["controller"] == "clinical-loop" for r in mine):
        return [f"(no clinical-loop rows on {env_id})"]
    diffs = {
        m: {d["controller"]: d for d in paired_differences(mine, env_id, m, "clinical-loop")}
        for m in ("time_in_window_frac", "overstim_events_per_hour", "charge_per_pulse_uc")
    }
    base = {m: _mean([r[m] for r in mine if r["controller"] == "clinical-loop"]) for m in diffs}
    lines = [
        f"Clinical loop: time in window {base['time_in_window_frac']:.3f}, "
        f"{base['overstim_events_per_hour']:.2f} overstimulation events per hour, "
        f"{base['charge_per_pulse_uc']:.4f} µC per pulse.",
        "",
        "| controller | Δ time in window [95 % CI] | Δ overstim events/h [95 % CI] | "
        "charge per pulse ratio | meets all three |",
        "|---|---|---|---|---|",
    ]
    order = sorted(
        diffs["time_in_window_frac"], key=lambda c: -diffs["time_in_window_frac"][c]["diff"]
    )
    for c in (c for c in order if c != "clinical-loop"):
        win, over, charge = (diffs[m][c] for m in diffs)
        ratio = 1.0 + charge["diff"] / base["charge_per_pulse_uc"]
        ok = win["diff_lo"] > 0 and over["diff"] <= 0 and ratio <= 1.0 + CHARGE_TOLERANCE
        lines.append(f"| {c} | {_ci(win)} | {_ci(over)} | {ratio:.3f} | {'yes' if ok else 'no'} |")
    return lines


def _pair(rows: list[dict], env_id: str, metric: str, c: str, ref: str) -> dict:
    """The paired difference ``c - ref`` of :func:`paired_differences`."""
    return next(x for x in paired_differences(rows, env_id, metric, ref) if x["controller"] == c)


def _mean(values: list) -> float:
    v = [x for x in values if x is not None]
    return sum(v) / len(v) if v else float("nan")


def main(argv=None) -> int:
    """Print (and optionally write) the acceptance tables of a run folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run folder of closedloop benchmark")
    ap.add_argument("--md", metavar="PATH", help="also write the tables as Markdown")
    args = ap.parse_args(argv)
    doc = json.loads(Path(args.run, "summary.json").read_text(encoding="utf-8"))
    rows = json.loads(Path(args.run, "results.json").read_text(encoding="utf-8"))["rows"]
    suite = Suite.from_dict(json.loads(Path(args.run, "suite.json").read_text(encoding="utf-8")))
    text = "\n".join(
        [
            "## Headline: means over patients and seeds, paired differences [95 % CI]",
            "",
            *headline_table(rows, suite.primary(), suite.baseline),
            "",
            "## Does the suite separate controllers? (issue 18)",
            "",
            "Paired differences on each env's primary metric, controller minus reference, over the "
            "same patients and seeds.",
            "",
            *separation_table(rows, suite.primary(), suite.baseline),
            "## Clinic posture sequence, test cohort: ratio to open loop (mean over patients and "
            "seeds)",
            "",
            *clinic_table(doc),
            "",
            "## Cough storm, test cohort: overstimulation events",
            "",
            *cough_table(doc),
            "",
            "## Daily living, test cohort: against the clinical loop (issue 22)",
            "",
            "Paired differences over the same patients and seeds; 'meets all three': time in "
            "window better with a CI above 0, no more overstimulation events per hour (mean), "
            f"charge per pulse at most {CHARGE_TOLERANCE:.0%} above the clinical loop's.",
            "",
            *beats_clinical_table(rows),
            "",
        ]
    )
    print(text)
    if args.md:
        write_text_atomic(Path(args.md), "# Acceptance figures\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
