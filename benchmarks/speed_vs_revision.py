"""Speed of this checkout against an earlier revision, interleaved in one run.

    python benchmarks/speed_vs_revision.py                  # against c37172b, ~5-10 minutes
    python benchmarks/speed_vs_revision.py --base REV --rounds 3 --out results/speed_vs_base.txt

The shared host's speed moves by 2x or more with other load, so an absolute pulses/s figure from
another day says little. This script checks the revision out into a temporary git worktree and
times both trees round-robin, each measurement in a fresh one-thread process, and reports the
best CPU-time figure of each and their ratio. The issue-17 floors are stated against figures
measured when the issue was written ("today 395,000 pulses/s at 6 mA, 586,000 env-steps/s at 256
patients"), so the ratio times that figure is the projection the floor is judged on.

Figures: the default patient's ``NeuralModel.pulse_train`` (2048 fibres, 50 Hz, 250 µs, per-pulse
ECAP records, no waveforms) at 6 and 12 mA, as in section 1 of ``bench_neural.py``; and the
native vector env ``ECAPVectorEnv(256)`` stepping zero actions, as in ``bench_env.py``. CPU time
(``time.process_time``), so that time the process spends descheduled does not count. Every
round measures both figures: the vector env's best figure moved by up to 1.8x between fresh
processes of the same tree on a quiet host (memory placement), so it needs as many processes as
the scalar figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from closedloop._io import write_text_atomic  # noqa: E402

BASE = "c37172b"
"""The last commit before issue 17's fibre model (the issue's 'today' figures are of it)."""
ISSUE_FIGURES = {"scalar 6 mA": (395_000, 300_000), "vector 256": (586_000, 400_000)}
"""Figure -> (the issue's measurement of the base, the floor), pulses/s or env-steps/s."""

CHILD = r"""
import json, sys, time
import numba
numba.set_num_threads(1)
from closedloop.neural import NeuralModel
n, reps, out = int(sys.argv[1]), int(sys.argv[2]), {}
m = NeuralModel(seed=0)
m.pulse_train(6.0, 50.0, 10, pw_us=250.0)                       # warm-up: load or compile
for ma in (6.0, 12.0):
    best = float("inf")
    for _ in range(reps):
        m.reset(0)
        t = time.process_time()
        m.pulse_train(ma, 50.0, n, pw_us=250.0)
        best = min(best, time.process_time() - t)
    out[f"scalar {ma:g} mA"] = n / best
if sys.argv[3] == "1":
    import numpy as np
    from closedloop.envs.vector import ECAPVectorEnv
    venv = ECAPVectorEnv(256)
    venv.reset(seed=0)
    act = np.zeros((256, 1), np.float32)
    for _ in range(10):
        venv.step(act)
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        for _ in range(20):
            venv.step(act)
        best = min(best, time.process_time() - t)
    out["vector 256"] = 20 * 256 / best
print(json.dumps(out))
"""


def measure(tree: Path, pulses: int, reps: int, vector: bool) -> dict:
    """One fresh one-thread process timing ``tree``'s code; figure -> best rate."""
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(pulses), str(reps), "1" if vector else "0"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def compare(base: str, rounds: int, pulses: int, reps: int) -> tuple[dict, dict, str]:
    """Best figure of each tree over ``rounds`` round-robin rounds; also the base's hash."""
    rev = subprocess.run(
        ["git", "rev-parse", "--short", base], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    best: dict[str, dict] = {"base": {}, "head": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), rev],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        try:
            for r in range(rounds):
                for name, path in (("base", tree), ("head", REPO)):
                    res = measure(path, pulses, reps, vector=True)
                    for k, v in res.items():
                        best[name][k] = max(best[name].get(k, 0.0), v)
                print(f"  round {r + 1}/{rounds}: load {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)],
                cwd=REPO,
                capture_output=True,
                check=False,
            )
    return best["base"], best["head"], rev


def report(base: dict, head: dict, rev: str) -> str:
    """The comparison table, with the issue-17 projections."""
    lines = [
        f"base {rev} vs this checkout; best CPU-time figure of each, one thread",
        f"{'figure':<14}{'base':>12}{'head':>12}{'ratio':>8}{'issue base':>12}"
        f"{'projected':>12}{'floor':>10}  verdict",
    ]
    for k in base:
        ratio = head[k] / base[k]
        issue = ISSUE_FIGURES.get(k)
        proj = f"{ratio * issue[0]:>12,.0f}{issue[1]:>10,}" if issue else " " * 22
        verdict = (
            ("meets floor" if ratio * issue[0] >= issue[1] else "BELOW floor") if issue else ""
        )
        lines.append(
            f"{k:<14}{base[k]:>12,.0f}{head[k]:>12,.0f}{ratio:>8.3f}"
            f"{(f'{issue[0]:,}' if issue else ''):>12}{proj}  {verdict}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=BASE, help=f"revision to compare with (default {BASE})")
    ap.add_argument("--rounds", type=int, default=5, help="round-robin rounds (default 5)")
    ap.add_argument("--quick", action="store_true", help="fewer pulses and repeats (smoke run)")
    ap.add_argument("--out", help="also write the table to this file")
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 100:
        ap.error(f"--rounds must be an integer in [1, 100], got {args.rounds}")
    if (
        subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}"],
            cwd=REPO,
            capture_output=True,
        ).returncode
        != 0
    ):
        ap.error(f"--base must name a commit of this repository, got {args.base!r}")
    pulses, reps = (5_000, 2) if args.quick else (50_000, 5)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds", flush=True)
    base, head, rev = compare(args.base, args.rounds, pulses, reps)
    text = report(base, head, rev) + f"\nload average at the end {os.getloadavg()[0]:.2f}\n"
    print(text)
    if args.out:
        write_text_atomic(Path(args.out), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
