"""Issue-5 acceptance figures from a ``closedloop benchmark`` run folder.

    python benchmarks/acceptance.py runs/benchmark-default            # print the tables
    python benchmarks/acceptance.py runs/benchmark-default --md OUT   # also write Markdown

Reads ``summary.json`` (statistics across patients and seeds with bootstrap CIs) and prints:

1. on the clinic posture sequence (test cohort), every controller's mean |ECAP - target| and
   time in window as ratios to open loop, with 95 % paired-bootstrap CIs, and whether it beats
   open loop on both;
2. on the cough storm (test cohort), overstimulation events per episode (mean) against open loop.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from closedloop._io import write_text_atomic

CLINIC = "closedloop/ECAPClinic-Test-v0"
COUGH = "closedloop/ECAPCoughStorm-Test-v0"
BASELINE = "open-loop"


def clinic_table(doc: dict) -> list[str]:
    """Markdown rows: ratio to open loop of mean |ECAP - target| and of time in window."""
    ratios = {(r["controller"], r["metric"]): r for r in doc["ratios"] if r["env_id"] == CLINIC}
    lines = ["| controller | mad ratio [95 % CI] | time-in-window ratio [95 % CI] | beats open "
             "loop on both |", "|---|---|---|---|"]
    for name in sorted({c for c, _ in ratios}):
        mad, tiw = ratios.get((name, "mad_uv")), ratios.get((name, "time_in_window_frac"))
        if name == BASELINE or mad is None or tiw is None:
            continue
        both = mad["value"] < mad["baseline_value"] and tiw["value"] > tiw["baseline_value"]
        lines.append(f"| {name} | {mad['ratio']:.3f} [{mad['ratio_lo']:.3f}, "
                     f"{mad['ratio_hi']:.3f}] | {tiw['ratio']:.3f} [{tiw['ratio_lo']:.3f}, "
                     f"{tiw['ratio_hi']:.3f}] | {'yes' if both else 'NO'} |")
    return lines


def cough_table(doc: dict) -> list[str]:
    """Markdown rows: overstimulation events per episode in the cough storm."""
    rows = {r["controller"]: r for r in doc["summary"]
            if r["env_id"] == COUGH and r["metric"] == "overstim_events"}
    base = rows[BASELINE]["mean"]
    lines = ["| controller | overstimulation events per episode, mean [95 % CI] | vs open loop |",
             "|---|---|---|"]
    for name, r in sorted(rows.items(), key=lambda kv: kv[1]["mean"]):
        lines.append(f"| {name} | {r['mean']:.2f} [{r['mean_lo']:.2f}, {r['mean_hi']:.2f}] | "
                     f"{r['mean'] / base:.2f}x |")
    return lines


def main(argv=None) -> int:
    """Print (and optionally write) the acceptance tables of a run folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run folder of closedloop benchmark")
    ap.add_argument("--md", metavar="PATH", help="also write the tables as Markdown")
    args = ap.parse_args(argv)
    doc = json.loads(Path(args.run, "summary.json").read_text(encoding="utf-8"))
    text = "\n".join([
        "## Clinic posture sequence, test cohort: ratio to open loop (mean over patients and "
        "seeds)", "", *clinic_table(doc), "",
        "## Cough storm, test cohort: overstimulation events", "", *cough_table(doc), ""])
    print(text)
    if args.md:
        write_text_atomic(Path(args.md), "# Issue-5 acceptance figures\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
