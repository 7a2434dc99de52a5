"""Speed of two per-step costs that the tests used to time: an MPC step and a scenario trace.

    python benchmarks/bench_steps.py

Prints the best of 5 repeats (this machine is shared; the best repeat is the closest estimate of
what the code costs): MPC ``predict`` per step (300 steps of a sinusoidal ECAP), and sampling one
hour of the daily-living scenario at 50 Hz (180,000 samples). No figure here is asserted by a
test (speed lives in benchmarks); the former test bounds were 1 ms a step and 1 s an hour.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_controllers import _context, _obs  # noqa: E402

from closedloop.controllers import MPC  # noqa: E402
from closedloop.disturbances import load_scenario  # noqa: E402

REPEATS = 5


def best(fn) -> float:
    """Best wall time (s) of ``REPEATS`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    ctl = MPC()
    ctl.reset(_context())
    obs = [_obs(30.0 + 3.0 * math.sin(k), 1.0, 6.0) for k in range(300)]
    t = best(lambda: [ctl.predict(o) for o in obs])
    print(f"MPC predict: {1e3 * t / len(obs):.3f} ms per step (former test bound 1 ms)")
    sc = load_scenario("daily-living", duration_s=3600.0)
    csf = {p: 3.5 for p in ("supine", "prone", "side", "sitting", "standing", "walking")}
    t = best(lambda: sc.sample(csf, 50.0, seed=1))
    print(f"daily-living, 1 h at 50 Hz: {t:.3f} s (former test bound 1 s)")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
