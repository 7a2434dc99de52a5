"""Episodes per second of evaluation: one episode at a time vs all episodes through the vector env.

    python benchmarks/bench_eval.py            # 8 test patients x 2 seeds, 600 s daily living
    python benchmarks/bench_eval.py --quick    # 4 patients x 2 seeds, 60 s, one repeat

For each controller (clinical loop and open loop by default) the same episodes are played by
:func:`closedloop.evaluation.runner.run_episode` in a loop ("before") and by
:func:`closedloop.evaluation.batch_runner.run_episodes` in one batch ("after"), in one process,
round-robin over ``--repeats`` repeats. Times are CPU time of this process
(``time.process_time``: the machine is shared, so wall time would measure the neighbours too);
the best repeat of each is reported as episodes per CPU second, with their ratio. Every repeat
also checks that the two paths gave identical metrics (it says so if they did not). Patient models
and compiled code are warmed up first, so both paths start with the same caches.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from closedloop.controllers.registry import make_controller
from closedloop.evaluation.batch_runner import run_episodes
from closedloop.evaluation.runner import run_episode

ENV_ID = "closedloop/ECAPTracking-Test-v0"


def _same(a, b) -> bool:
    """Whether two episode results have identical metrics (bit for bit, NaN equal to NaN)."""
    return a.metrics.keys() == b.metrics.keys() and all(
        np.array_equal(np.asarray(a.metrics[k]), np.asarray(b.metrics[k]), equal_nan=True)
        for k in a.metrics)


def _timed(fn):
    """``(result, CPU seconds)`` of ``fn()``."""
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def main(argv=None) -> int:
    """Run the benchmark and print episodes per CPU second before and after."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 patients x 2 seeds, 60 s, 1 repeat")
    ap.add_argument("--controllers", nargs="+", default=["clinical-loop", "open-loop"])
    ap.add_argument("--episode-s", type=float, help="episode length (s); 600 (quick: 60)")
    ap.add_argument("--repeats", type=int, help="round-robin repeats; 2 (quick: 1)")
    ap.add_argument("--threads", type=int, default=1, help="numba threads of the batched step")
    args = ap.parse_args(argv)
    n_patients = 4 if args.quick else 8
    episode_s = args.episode_s or (60.0 if args.quick else 600.0)
    repeats = args.repeats or (1 if args.quick else 2)
    episodes = [(f"test-{i:03d}", seed) for i in range(1, n_patients + 1) for seed in (0, 1)]
    overrides = {"episode_s": episode_s}
    for name in args.controllers:          # warm up: compile, build and cache every patient
        run_episodes(lambda n=name: make_controller(n), ENV_ID, episodes, {"episode_s": 12})
        run_episode(make_controller(name), ENV_ID, episodes[0][0], 0, {"episode_s": 12})
    best: dict = {}
    for rep in range(repeats):
        for name in args.controllers:
            ref, before = _timed(lambda n=name: [
                run_episode(make_controller(n), ENV_ID, p, s, overrides) for p, s in episodes])
            out, after = _timed(lambda n=name: run_episodes(
                lambda: make_controller(n), ENV_ID, episodes, overrides, threads=args.threads))
            same = all(_same(a, b) for a, b in zip(out, ref, strict=True))
            print(f"repeat {rep}: {name}: run_episode loop {before:.2f} s CPU, run_episodes "
                  f"{after:.2f} s CPU, identical metrics: {same}", flush=True)
            old = best.get(name, (np.inf, np.inf))
            best[name] = (min(old[0], before), min(old[1], after))
    n = len(episodes)
    print(f"\n{ENV_ID}, episode_s={episode_s:g}, {n} episodes ({n_patients} patients x 2 seeds), "
          f"threads={args.threads}; best of {repeats} repeat(s), episodes per CPU second:")
    for name, (before, after) in best.items():
        print(f"  {name:15s} before {n / before:8.3f}  after {n / after:8.3f}  "
              f"ratio {before / after:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
