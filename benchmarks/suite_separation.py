"""Does an env separate controllers? Paired differences on the validation cohort (issue 18).

    python benchmarks/suite_separation.py                       # walking, sleep, chronic drift
    python benchmarks/suite_separation.py --envs closedloop/ECAPWalking-Test-v0 --workers 2

Plays the classical controllers on held-out env ids with ``split = "validation"`` (never the
test cohort: choosing the suite's envs is a decision, and decisions are made on validation),
then prints per env the medians (IQR) of time in window and mean |ECAP - target| and
``benchmarks/acceptance.py``'s separation table (clinical loop vs P, best vs median, every
controller vs open loop) for both metrics. ``--md`` writes it as Markdown.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from closedloop._io import write_text_atomic
from closedloop.evaluation.grid import run_grid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from acceptance import separation_table  # noqa: E402

ENVS = (
    "closedloop/ECAPWalking-Test-v0",
    "closedloop/ECAPSleep-Test-v0",
    "closedloop/ECAPDrift-Test-v0",
)
CONTROLLERS = (
    "open-loop",
    "p",
    "pi",
    "pid",
    "clinical-loop",
    "clinical-loop-tuned",
    "ceiling",
    "adaptive-inverse",
)
METRICS = ("time_in_window_frac", "mad_uv")


def env_section(env_id: str, seeds: list[int], workers: int) -> list[str]:
    """Markdown lines for one env: medians per controller and the separation tables."""
    start = time.perf_counter()
    rows = run_grid(
        list(CONTROLLERS),
        [env_id],
        "validation",
        seeds,
        workers=workers,
        progress=False,
        env_overrides={"split": "validation"},
    )
    lines = [
        f"## {env_id}",
        "",
        f"{len(rows)} episodes in {time.perf_counter() - start:.0f} s ({workers} worker(s)).",
        "",
        "| controller | time in window, median (IQR) | mad_uv, median (µV) |",
        "|---|---|---|",
    ]
    for c in CONTROLLERS:
        tiw = np.array([r["time_in_window_frac"] for r in rows if r["controller"] == c])
        mad = np.array([r["mad_uv"] for r in rows if r["controller"] == c])
        q1, q2, q3 = np.nanpercentile(tiw, [25, 50, 75])
        lines.append(f"| {c} | {q2:.3f} ({q1:.3f}-{q3:.3f}) | {np.nanmedian(mad):.2f} |")
    lines.append("")
    for metric in METRICS:
        lines += [
            "#" + line if line.startswith("### ") else line
            for line in separation_table(rows, {env_id: metric}, "open-loop")
        ]
    return lines


def main(argv=None) -> int:
    """Play, print and optionally write the separation tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=list(ENVS), help="held-out env ids")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--md", metavar="PATH", help="also write the tables as Markdown")
    args = ap.parse_args(argv)
    lines = [
        "# Do the added envs separate controllers? (validation cohort)",
        "",
        f"Seeds {args.seeds}; controllers {', '.join(CONTROLLERS)}. Made by "
        "`python benchmarks/suite_separation.py`.",
        "",
    ]
    for env_id in args.envs:
        lines += env_section(env_id, args.seeds, args.workers)
    text = "\n".join(lines)
    print(text)
    if args.md:
        write_text_atomic(Path(args.md), text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
