"""Episodes per second of evaluation: one episode at a time vs all episodes through the vector env.

    python benchmarks/bench_eval.py            # 8 test patients x 2 seeds, 600 s daily living
    python benchmarks/bench_eval.py --quick    # 4 patients x 2 seeds, 60 s, one repeat

For each controller (clinical loop, PID and open loop by default) the same episodes are played
three ways, in one process, round-robin over ``--repeats`` repeats:

* ``one-by-one``: :func:`closedloop.evaluation.episode_runner.run_episode` in a loop;
* ``vec+loop``: :func:`closedloop.evaluation.batch_runner.run_episodes` in one batch, with one
  controller instance per episode called on its own observation row in a Python loop (the
  controller is wrapped so that it is not ``batch_ready``: the path of every controller without
  ``predict_many``, and of every controller before the batch protocol);
* ``vec+batch``: ``run_episodes`` with the controller's batched ``predict_many`` (one compiled
  call per step for every episode; not measured for a controller without it).

Times are CPU time of this process (``time.process_time``: the machine is shared, so wall time
would measure the neighbours too); the best repeat of each is reported as episodes per CPU
second, with the ratios to one-by-one. Every repeat also checks that the three paths gave
identical metrics (it says so if they did not). Patient models and compiled code are warmed up
first, so every path starts with the same caches.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from closedloop.controllers.registry import make_controller
from closedloop.evaluation.batch_runner import run_episodes
from closedloop.evaluation.episode_runner import run_episode

ENV_ID = "closedloop/ECAPTracking-Test-v0"


def _same(a, b) -> bool:
    """Whether two episode results have identical metrics (bit for bit, NaN equal to NaN)."""
    return a.metrics.keys() == b.metrics.keys() and all(
        np.array_equal(np.asarray(a.metrics[k]), np.asarray(b.metrics[k]), equal_nan=True)
        for k in a.metrics
    )


class _OneByOne:
    """A controller behind a wrapper without ``batch_ready``: one instance per episode."""

    def __init__(self, controller) -> None:
        self.controller, self.name = controller, controller.name

    def reset(self, context) -> None:
        self.controller.reset(context)

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self.controller.predict(obs, state, episode_start, deterministic)


def _timed(fn):
    """``(result, CPU seconds)`` of ``fn()``."""
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def main(argv=None) -> int:
    """Run the benchmark and print episodes per CPU second before and after."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 patients x 2 seeds, 60 s, 1 repeat")
    ap.add_argument("--controllers", nargs="+", default=["clinical-loop", "pid", "open-loop"])
    ap.add_argument("--episode-s", type=float, help="episode length (s); 600 (quick: 60)")
    ap.add_argument("--repeats", type=int, help="round-robin repeats; 2 (quick: 1)")
    ap.add_argument("--threads", type=int, default=1, help="numba threads of the batched step")
    args = ap.parse_args(argv)
    n_patients = 4 if args.quick else 8
    episode_s = args.episode_s or (60.0 if args.quick else 600.0)
    repeats = args.repeats or (1 if args.quick else 2)
    episodes = [(f"test-{i:03d}", seed) for i in range(1, n_patients + 1) for seed in (0, 1)]
    overrides = {"episode_s": episode_s}
    paths = {
        "one-by-one": lambda n: [
            run_episode(make_controller(n), ENV_ID, p, s, overrides) for p, s in episodes
        ],
        "vec+loop": lambda n: run_episodes(
            lambda: _OneByOne(make_controller(n)), ENV_ID, episodes, overrides, threads=args.threads
        ),
        "vec+batch": lambda n: run_episodes(
            lambda: make_controller(n), ENV_ID, episodes, overrides, threads=args.threads
        ),
    }
    batched = {n: getattr(make_controller(n), "batch_ready", False) for n in args.controllers}
    for name in args.controllers:  # warm up: compile, build and cache every patient
        run_episodes(lambda n=name: make_controller(n), ENV_ID, episodes, {"episode_s": 12})
        run_episode(make_controller(name), ENV_ID, episodes[0][0], 0, {"episode_s": 12})
    best: dict = {}
    for rep in range(repeats):
        for name in args.controllers:
            times, results = {}, {}
            for path, play in paths.items():
                if path == "vec+batch" and not batched[name]:
                    continue
                results[path], times[path] = _timed(lambda n=name, f=play: f(n))
                best[name, path] = min(best.get((name, path), np.inf), times[path])
            ref = results["one-by-one"]
            same = all(
                _same(a, b) for out in results.values() for a, b in zip(out, ref, strict=True)
            )
            print(
                f"repeat {rep}: {name}: "
                + ", ".join(f"{p} {t:.2f} s CPU" for p, t in times.items())
                + f"; identical metrics: {same}",
                flush=True,
            )
    n = len(episodes)
    print(
        f"\n{ENV_ID}, episode_s={episode_s:g}, {n} episodes ({n_patients} patients x 2 seeds), "
        f"threads={args.threads}; best of {repeats} repeat(s), episodes per CPU second "
        "(ratio to one-by-one):"
    )
    for name in args.controllers:
        base = best[name, "one-by-one"]
        cells = [
            f"{p} {n / best[name, p]:8.3f} ({base / best[name, p]:4.2f}x)"
            for p in paths
            if (name, p) in best
        ]
        print(f"  {name:15s} " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
