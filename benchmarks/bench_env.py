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
    steps_per_second(ours, 200, rng)          # warm-up: JIT caches, model build
    res = {"ours": [], "cartpole": []}
    for _ in range(repeats):
        res["ours"].append(steps_per_second(ours, n_steps, rng))
        res["cartpole"].append(steps_per_second(cart, n_steps, rng))
    best = {k: max(v) for k, v in res.items()}
    return {"steps_per_s": res, "best": best, "ratio": best["ours"] / best["cartpole"]}


def section_memory() -> dict:
    """Resident memory added by one env after reset (MB), read from /proc (Linux)."""
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
        e.reset(seed=i)
    gc.collect()
    per_env = (rss_mb() - before) / len(envs)
    model = envs[0].unwrapped.model
    tables_mb = sum(a.nbytes for a in model.tables if hasattr(a, "nbytes")) / 2**20
    return {"rss_per_env_mb": per_env, "model_tables_mb": tables_mb}


class NullEnv(gym.Env):
    """Same spaces as ours, no simulation: the cost floor of the training loop."""

    def __init__(self, like):
        self.observation_space, self.action_space = like.observation_space, like.action_space
        self._obs = np.zeros(like.observation_space.shape, np.float32)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs, {}

    def step(self, action):
        self._t += 1
        return self._obs, 0.0, False, self._t >= 9000, {}


def section_ppo(total: int) -> dict:
    """Steady-state PPO (SB3, CPU) frames/s on our env and on a null env with the same spaces.

    One untimed ``learn`` of 2048 steps first warms both up (torch, the JIT caches and the first
    patient's model build); the timed ``learn`` continues from there.
    """
    from stable_baselines3 import PPO

    out = {}
    for name, env in (("ours", gym.make(ENV_ID)), ("null", NullEnv(gym.make(ENV_ID)))):
        model = PPO("MlpPolicy", env, n_steps=1024, batch_size=256, n_epochs=4, seed=0,
                    device="cpu", verbose=0)
        model.learn(total_timesteps=2048)
        t0 = time.perf_counter()
        model.learn(total_timesteps=total, reset_num_timesteps=False)
        out[name] = total / (time.perf_counter() - t0)
    out["ratio"] = out["ours"] / out["null"]
    return out


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
        out[n] = {"env_steps_per_s": best, "reset_s": reset_s, "table_slots": len(venv._slots),
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        del venv
        gc.collect()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    n, reps, ppo = (2000, 2, 2048) if args.quick else (20000, 5, 8192)
    res = {"machine": os.uname().machine, "cpus": os.cpu_count()}
    res["step"] = section_step(n, reps)
    s = res["step"]
    print(f"single env step, best of {reps}: ours {s['best']['ours']:,.0f} steps/s, CartPole-v1 "
          f"{s['best']['cartpole']:,.0f} steps/s, ratio {s['ratio']:.3f} (target >= 0.5, goal 1)")
    res["memory"] = section_memory()
    m = res["memory"]
    print(f"memory: {m['rss_per_env_mb']:.1f} MB resident per env after reset; the patient's "
          f"model tables {m['model_tables_mb']:.1f} MB")
    res["ppo"] = section_ppo(ppo)
    p = res["ppo"]
    print(f"PPO ({ppo} steps): ours {p['ours']:,.0f} fps, null env {p['null']:,.0f} fps, ratio "
          f"{p['ratio']:.3f} (target >= 0.9)")
    res["vector"] = section_vector((256, 1024), 10 if args.quick else 50, 2 if args.quick else 3)
    for n, r in res["vector"].items():
        print(f"native vector env, {n} patients: {r['env_steps_per_s']:,.0f} env-steps/s "
              f"(target >= 250,000; goal 1,000,000), reset {r['reset_s']:.1f} s, "
              f"{r['table_slots']} table slots, process max RSS {r['max_rss_mb']:.0f} MB")
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(res, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
