"""Speed of the Gymnasium environment: step throughput against CartPole, PPO, memory.

    python benchmarks/bench_env.py            # about 1-2 minutes
    python benchmarks/bench_env.py --quick    # smoke run
    python benchmarks/bench_env.py --json results/env_speed.json

Figures compared with each other come from the same run, timed round-robin, best of repeats
(other load can only slow a repeat down). Exit status is 0 whether or not targets are met.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import closedloop  # noqa: F401  (registers the suite)
from closedloop._io import write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_speed import null_env, section_ppo  # noqa: E402  (a sibling script)

ENV_ID = "closedloop/ECAPTracking-v0"


def steps_per_second(env, n_steps: int, rng: np.random.Generator) -> float:
    """Steps/s of ``env`` with random actions, resetting at episode ends (reset not timed)."""
    actions = [env.action_space.sample() for _ in range(256)]
    env.reset(seed=int(rng.integers(1 << 30)))
    elapsed, done = 0.0, 0
    while done < n_steps:
        t0 = time.perf_counter()
        for i in range(min(1000, n_steps - done)):
            _, _, term, trunc, _ = env.step(actions[i % 256])
            if term or trunc:
                break
        elapsed += time.perf_counter() - t0
        done += i + 1
        if term or trunc:
            env.reset()
    return done / elapsed


def section_step(n_steps: int, repeats: int) -> dict:
    """Our env against CartPole-v1, both from gymnasium.make, round-robin."""
    rng = np.random.default_rng(0)
    ours, cart = gym.make(ENV_ID), gym.make("CartPole-v1")
    cart.action_space.seed(0)
    ours.action_space.seed(0)
    steps_per_second(ours, 200, rng)  # warm-up: JIT caches, model build
    res = {"ours": [], "cartpole": []}
    for _ in range(repeats):
        res["ours"].append(steps_per_second(ours, n_steps, rng))
        res["cartpole"].append(steps_per_second(cart, n_steps, rng))
    best = {k: max(v) for k, v in res.items()}
    return {
        "steps_per_s": res,
        "best": best,
        "ratio": best["ours"] / best["cartpole"],
        "breakdown_us": step_breakdown(min(n_steps, 8000), repeats),
    }


def step_breakdown(n_steps: int, repeats: int) -> dict:
    """µs per step of one fixed patient's episode (process CPU time, round-robin, best).

    ``step_wrapped`` is ``gymnasium.make``'s env, ``step`` the unwrapped env; ``compiled`` is
    the compiled part of the step (:func:`closedloop.envs.step.control_step_one`: device
    limits, pulse kernel, sensation, history, reward): ``step`` minus the same episode with it
    replaced by a compiled no-op of the same signature, plus that no-op's call (``compiled_call``:
    unboxing the arguments); ``python`` is the rest of ``step``, and ``wrappers`` what
    ``gymnasium.make`` adds.
    """
    env, cart = gym.make(ENV_ID), gym.make("CartPole-v1")
    env.action_space.seed(1)
    cart.action_space.seed(1)
    acts = [env.action_space.sample() for _ in range(256)]
    cart_acts = [cart.action_space.sample() for _ in range(256)]
    inner = env.unwrapped

    def run(e, actions, stub=None) -> float:
        e.reset(seed=0)  # our patient's episode is longer than n_steps
        if stub is not None:
            inner._step_fn = stub
        elapsed, done = 0.0, 0
        while done < n_steps:  # CartPole's resets are not timed
            t0 = time.process_time()
            while done < n_steps:
                _, _, term, trunc, _ = e.step(actions[done & 255])
                done += 1
                if term or trunc:
                    break
            elapsed += time.process_time() - t0
            if term or trunc:
                e.reset()
        return elapsed / n_steps * 1e6

    env.reset(seed=0)
    args = (1.0, 0.0, 0.0, inner._batch)
    stub = _stub_step(args)
    jobs = {
        "step_wrapped": lambda: run(env, acts),
        "step": lambda: run(inner, acts),
        "step_stub": lambda: run(inner, acts, stub),
        "compiled_call": lambda: timeit_us(lambda: stub(*args), n_steps),
        "cartpole": lambda: run(cart, cart_acts),
    }
    best = {k: min(f() for _ in range(repeats)) for k, f in jobs.items()}
    best["compiled"] = best["step"] - best["step_stub"] + best["compiled_call"]
    best["python"] = best["step_stub"] - best["compiled_call"]
    best["wrappers"] = best["step_wrapped"] - best["step"]
    best["patient"] = inner.patient.patient_id
    return best


def _stub_step(args: tuple):
    """A compiled no-op with the signature and result types of the env's compiled step."""
    import numba

    def noop(a0, a1, a2, batch):  # the types of RESULT_DTYPE's fields, in order
        return (0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1000.0, 3.0, 0, 0, 0, False, True, False,
                False, 250.0, 50.0)  # fmt: skip

    return numba.njit(noop).compile(tuple(numba.typeof(a) for a in args))


def section_memory() -> dict:
    """Resident memory added by one env after reset (MB), read from /proc (Linux).

    Without the background build of the next patient's model, which adds one model's tables
    per env (``model_tables_mb``) until that patient's reset.
    """

    def rss_mb() -> float:
        with open(f"/proc/{os.getpid()}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    gc.collect()
    before = rss_mb()
    envs = [gym.make(ENV_ID) for _ in range(4)]
    for i, e in enumerate(envs):
        e.unwrapped.prefetch_next_patient = False
        e.reset(seed=i)
    gc.collect()
    per_env = (rss_mb() - before) / len(envs)
    model = envs[0].unwrapped.model
    tables_mb = sum(a.nbytes for a in model.tables if hasattr(a, "nbytes")) / 2**20
    return {"rss_per_env_mb": per_env, "model_tables_mb": tables_mb}


def ppo_breakdown(ppo: dict, step: dict) -> dict:
    """Where PPO's extra time per step on our env goes (µs per step; resets in s), estimated.

    ``env_step`` is our wrapped step (:func:`step_breakdown`'s patient) minus a null step,
    ``info_deepcopy`` the extra cost of ``DummyVecEnv`` deep-copying our info rather than the
    null env's, ``resets`` the time our env spent in reset inside the timed steps (measured;
    the next patient's model is prefetched in the background, so a reset costs about
    ``reset_cached_s`` rather than ``reset_new_patient_s``, the reset that builds a new
    patient's model); ``other`` is the rest.
    """
    import copy

    from closedloop.envs import model_store

    env, null = gym.make(ENV_ID), null_env(gym.make(ENV_ID))
    env.reset(seed=0)
    null.reset(seed=0)
    info = env.step(env.action_space.sample())[4]  # our info dict, as DummyVecEnv keeps it
    info["TimeLimit.truncated"] = False
    infos = [[info], [{"TimeLimit.truncated": False}]]
    cost = [min(timeit_us(lambda x=x: copy.deepcopy(x), 2000) for _ in range(5)) for x in infos]
    model_store.clear()  # time a reset that builds a new model
    env = gym.make(ENV_ID)
    env.unwrapped.prefetch_next_patient = False
    t0 = time.perf_counter()
    env.reset(seed=0)
    new_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    env.reset(seed=0)
    cached_s = time.perf_counter() - t0
    null_step = min(
        timeit_us(lambda: null.step(null.action_space.sample()), 5000) for _ in range(5)
    )
    sample = min(timeit_us(null.action_space.sample, 5000) for _ in range(5))
    out = {
        "ours_per_step": 1e6 / ppo["ours"],
        "null_per_step": 1e6 / ppo["null"],  # µs
        "env_step": step["breakdown_us"]["step_wrapped"] - (null_step - sample),
        "info_deepcopy": cost[0] - cost[1],
        "resets": ppo["reset_s_ours"] * 1e6 / ppo["steps"],
        "reset_new_patient_s": new_s,
        "reset_cached_s": cached_s,
    }
    out["extra"] = out["ours_per_step"] - out["null_per_step"]
    out["other"] = out["extra"] - out["env_step"] - out["info_deepcopy"] - out["resets"]
    return out


def timeit_us(fn, n: int) -> float:
    """Mean µs per call of ``fn`` over ``n`` calls (process CPU time)."""
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


def section_vector(sizes, steps: int, repeats: int) -> dict:
    """Native vector env throughput (env-steps/s) and memory for each batch size."""
    import resource

    from closedloop.envs.vector import ECAPVectorEnv

    out = {}
    for n in sizes:
        t0 = time.perf_counter()
        venv = ECAPVectorEnv(n)
        venv.reset(seed=0)
        reset_s = time.perf_counter() - t0
        act = np.zeros((n, 1), np.float32)
        for _ in range(10):
            venv.step(act)
        best = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                venv.step(act)
            best = max(best, steps * n / (time.perf_counter() - t0))
        out[n] = {
            "env_steps_per_s": best,
            "reset_s": reset_s,
            "table_slots": len(venv._slots["tables"]),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        del venv
        gc.collect()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    n, reps = (2000, 2) if args.quick else (20000, 5)
    res = {"machine": os.uname().machine, "cpus": os.cpu_count()}
    res["step"] = section_step(n, reps)
    s = res["step"]
    print(
        f"single env step, best of {reps}: ours {s['best']['ours']:,.0f} steps/s, CartPole-v1 "
        f"{s['best']['cartpole']:,.0f} steps/s, ratio {s['ratio']:.3f} (target >= 0.5, goal 1)"
    )
    b = s["breakdown_us"]
    print(
        f"  per step, {b['patient']} (µs): gymnasium.make env {b['step_wrapped']:.2f} = "
        f"compiled step {b['compiled']:.2f} (of which argument unboxing "
        f"{b['compiled_call']:.2f}) + env "
        f"Python {b['python']:.2f} + make's wrappers {b['wrappers']:.2f}; CartPole-v1 "
        f"{b['cartpole']:.2f} (ratio {b['cartpole'] / b['step_wrapped']:.3f})"
    )
    res["memory"] = section_memory()
    m = res["memory"]
    print(
        f"memory: {m['rss_per_env_mb']:.1f} MB resident per env after reset; the patient's "
        f"model tables {m['model_tables_mb']:.1f} MB (the next patient's, built ahead, as "
        "much again)"
    )
    res["ppo"] = section_ppo(args.quick)
    for name, p in res["ppo"].items():
        r = np.array(p["round_ratios"])
        print(
            f"PPO {name} ({p['n_envs']} env(s), {p['steps']} steps): ours {p['ours']:,.0f} "
            f"env-steps/s, null env {p['null']:,.0f}, ratio {p['ratio']:.3f} (target >= 0.9;"
            f" rounds: median {np.median(r):.3f}, range {r.min():.3f}-{r.max():.3f})"
        )
    p = res["ppo"]["single_lean"]
    p["breakdown_us"] = d = ppo_breakdown(p, s)
    print(
        f"  single_lean per step (µs): ours {d['ours_per_step']:.0f}, null "
        f"{d['null_per_step']:.0f}, extra {d['extra']:.0f} = env step {d['env_step']:.0f} + "
        f"info deep copy {d['info_deepcopy']:.1f} + resets {d['resets']:.1f} "
        f"({p['resets_ours']} reset(s) in {p['reset_s_ours']:.3f} s; a reset building a new "
        f"patient's model takes {d['reset_new_patient_s']:.2f} s, with it built "
        f"{d['reset_cached_s'] * 1e3:.0f} ms) + other {d['other']:.0f}"
    )
    p = res["ppo"]["training"]
    w, a = p["step_wait_us"], p["step_wait_alone_us"]
    per = {k: 1e6 * p["n_envs"] / p[k] for k in ("ours", "null")}
    print(
        f"  training per step of {p['n_envs']} (µs): ours {per['ours']:.0f}, null "
        f"{per['null']:.0f}, extra {per['ours'] - per['null']:.0f}; the vec env's step_wait "
        f"inside PPO: ours {w['ours']:.0f}, null {w['null']:.0f} (alone, median: ours "
        f"{a['ours']:.0f}, null {a['null']:.0f})"
    )
    res["vector"] = section_vector((256, 1024), 10 if args.quick else 50, 2 if args.quick else 6)
    for n, r in res["vector"].items():
        print(
            f"native vector env, {n} patients: {r['env_steps_per_s']:,.0f} env-steps/s "
            f"(target >= 250,000; goal 1,000,000), reset {r['reset_s']:.1f} s, "
            f"{r['table_slots']} table slots, process max RSS {r['max_rss_mb']:.0f} MB"
        )
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
