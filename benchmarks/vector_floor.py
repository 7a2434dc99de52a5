"""How close the native vector env is to its floor, the neural batch kernel alone.

The vector env's step at one pulse per step (``closedloop/ECAPTracking-v0``) is one compiled
call: action check, device limits, one pulse of the neural kernel per patient, sensation,
reward. This script times, alternating in one process:

* ``env.step``: :meth:`ECAPVectorEnv.step` (Gymnasium's API: observations, info, autoreset);
* ``env.step_records``: the compiled step without the autoreset bookkeeping;
* ``kernel only``: :func:`closedloop.neural.batch.run_pulses_batch`, one pulse per patient per
  call, on the same patients' models at their calibrated comfort current (stacked copies, so the
  patients drawn twice do not share tables as they do in the env).

    python benchmarks/vector_floor.py                 # 256 patients
    python benchmarks/vector_floor.py --patients 1024

If ``kernel only`` is not much faster than ``env.step``, the env's own work is not what limits
env-steps/s: the neural model's pulse is.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from closedloop.envs.vector import ECAPVectorEnv
from closedloop.neural.batch import run_pulses_batch, stack
from closedloop.neural.kernels import PULSE_DTYPE, KernelState, PulseInputs
from closedloop.neural.validation import check_inputs


def kernel_setup(venv: ECAPVectorEnv) -> tuple:
    """Stacked (state, tables, kparams, inputs, out, wave) of the env's patients, one pulse."""
    models, inputs = [], []
    for slot in venv.slots:
        d = slot.draw
        models.append(d.model)
        csf = float(d.patient.posture_csf_now_mm["supine"])
        dt = np.full(1, 1.0 / d.calibration.rate_hz)
        inputs.append(PulseInputs(*check_inputs(d.calibration.comfort_ma, 250.0, csf, dt)))
    state = stack([KernelState(*(a.copy() for a in m.initial_state())) for m in models])
    tables, kparams = stack([m.tables for m in models]), stack([m.kparams for m in models])
    n = len(models)
    out = np.empty((n, 1), PULSE_DTYPE)
    wave = np.empty((n, 0, models[0].n_samples))
    return state, tables, kparams, stack(inputs), out, wave


def rate(fn, steps: int, n: int) -> float:
    """Env-steps (patient-pulses) per second of ``steps`` calls of ``fn``."""
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return steps * n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=256, help="sub-environments (default 256)")
    ap.add_argument("--steps", type=int, default=400, help="steps per timing (default 400)")
    ap.add_argument("--repeats", type=int, default=5, help="alternating rounds (default 5)")
    args = ap.parse_args(argv)
    n = args.patients
    venv = ECAPVectorEnv(n)
    venv.reset(seed=0)
    act = np.zeros((n, 1), np.float32)
    kernel = kernel_setup(venv)
    jobs = {
        "env.step": lambda: venv.step(act),
        "env.step_records": lambda: venv.step_records(act),
        "kernel only": lambda: run_pulses_batch(*kernel),
    }
    for fn in jobs.values():  # compile and warm
        rate(fn, 20, n)
    res = {k: [] for k in jobs}
    for _ in range(args.repeats):
        for k, fn in jobs.items():
            res[k].append(rate(fn, args.steps, n))
    print(f"{n} patients, one pulse per step, best and median of {args.repeats} rounds:")
    for k, v in res.items():
        print(f"  {k:<18} best {max(v):>10,.0f}  median {np.median(v):>10,.0f}  env-steps/s")
    ratio = max(res["kernel only"]) / max(res["env.step"])
    print(f"  kernel only / env.step (best): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
