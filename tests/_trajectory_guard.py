"""Trajectories the control-step redesign (issue 20) must leave unchanged.

Three kinds of case, each a dict of float64 arrays:

* ``scalar|<id>|<seed>``: every registered id through ``gymnasium.make``, reset with ``seed``,
  then :data:`STEPS` steps of a fixed pseudo-random action sequence (drawn from ``seed``);
  the observation, reward, truncation and every numeric ``info`` entry of each step;
* ``vector|<id>``: the native vector env (3 patients, seed 5, 0.3-s episodes so that next-step
  autoreset happens twice) for every id it plays;
* ``episodes|<controller>``: the evaluation path (:func:`closedloop.evaluation.batch_runner.
  run_episodes`) of three shipped controllers on two clinic patients, 14-s episodes (10 s of
  warm-up): the recorded trajectory and the scores.

``python tests/_trajectory_guard.py`` prints each case's exact hash (SHA-256 of its arrays'
bytes) beside the recorded one in ``tests/data/trajectory_guard.json``: the before/after check
of a refactor on one machine, bit for bit. ``--record`` rewrites that file and the arrays
(``tests/data/trajectory_guard.npz``), which ``tests/test_trajectory_guard.py`` compares with a
relative tolerance of 1e-7 (numba may fuse or vectorise differently on another CPU).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
STEPS = 60
"""Steps of each scalar case."""
SEEDS = (0, 7)
"""Reset seeds of the scalar cases."""
VECTOR = {"num_envs": 3, "seed": 5, "episode_s": 0.3, "steps": 40}
"""The vector cases: patients, seed, episode length (s) and steps."""
EPISODES = {
    "env_id": "closedloop/ECAPClinic-Test-v0",
    "controllers": ("open-loop", "clinical-loop", "pid"),
    "episodes": (("test-001", 0), ("test-004", 3)),
    "episode_s": 14.0,
}
"""The evaluation-path cases."""


def env_ids() -> list[str]:
    """Every registered closedloop id, sorted."""
    import gymnasium as gym

    import closedloop  # noqa: F401  (registers the ids)

    return sorted(k for k in gym.registry if k.startswith("closedloop/"))


def _numeric(info: dict) -> dict[str, np.ndarray]:
    """The numeric entries of a step's info (the names are not numbers)."""
    out = {}
    for key, value in info.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": np.asarray(v, np.float64) for k, v in value.items()})
        elif not isinstance(value, str) and np.asarray(value).dtype.kind in "biuf":
            out[key] = np.asarray(value, np.float64)
    return out


def scalar_case(env_id: str, seed: int) -> dict[str, np.ndarray]:
    """One scalar env's trajectory (see the module docstring)."""
    import gymnasium as gym

    env = gym.make(env_id)
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed + 1000)
    actions = rng.uniform(-1.0, 1.0, (STEPS, *env.action_space.shape)).astype(np.float32)
    rows = [{"obs": obs, **_numeric(info)}]
    for a in actions:
        obs, reward, term, trunc, info = env.step(a)
        rows.append(
            {"obs": obs, "reward": reward, "done": float(term) + 2 * float(trunc), **_numeric(info)}
        )
    env.close()
    return _stack(rows)


def vector_case(env_id: str) -> dict[str, np.ndarray] | None:
    """The native vector env's trajectory, or None if it does not play ``env_id``."""
    from closedloop._config import ConfigError
    from closedloop.envs.vector import ECAPVectorEnv

    n = VECTOR["num_envs"]
    try:
        venv = ECAPVectorEnv(n, env_id, episode_s=VECTOR["episode_s"])
    except ConfigError:
        return None
    obs, _ = venv.reset(seed=VECTOR["seed"])
    rng = np.random.default_rng(VECTOR["seed"] + 1000)
    rows = [{"obs": obs}]
    for _ in range(VECTOR["steps"]):
        a = rng.uniform(-1.0, 1.0, (n, *venv.single_action_space.shape)).astype(np.float32)
        obs, reward, term, trunc, info = venv.step(a)
        rows.append({"obs": obs, "reward": reward, "done": term + 2.0 * trunc, **_numeric(info)})
    return _stack(rows)


def episodes_case(controller: str) -> dict[str, np.ndarray]:
    """The evaluation path's recorded trajectories and scores of one shipped controller."""
    from closedloop.controllers.registry import make_controller
    from closedloop.evaluation.batch_runner import run_episodes

    results = run_episodes(
        lambda: make_controller(controller),
        EPISODES["env_id"],
        list(EPISODES["episodes"]),
        {"episode_s": EPISODES["episode_s"]},
    )
    out = {}
    for j, r in enumerate(results):
        traj = r.trajectory
        for name in ("ecap_uv", "ecap_true_uv", "sensation", "current_ma", "charge_uc", "csf_mm"):
            out[f"{j}.{name}"] = np.asarray(getattr(traj, name), np.float64)
        for key, value in sorted(r.metrics.items()):
            out[f"{j}.metric.{key}"] = np.asarray(value, np.float64)
    return out


def _stack(rows: list[dict]) -> dict[str, np.ndarray]:
    """Stack per-step entries over the steps (keys missing at reset start at step 1)."""
    keys = sorted({k for row in rows for k in row})
    return {k: np.stack([np.asarray(row[k], np.float64) for row in rows if k in row]) for k in keys}


def all_cases() -> dict[str, dict[str, np.ndarray]]:
    """Every case by name."""
    cases = {}
    for env_id in env_ids():
        for seed in SEEDS:
            cases[f"scalar|{env_id}|{seed}"] = scalar_case(env_id, seed)
        vec = vector_case(env_id)
        if vec is not None:
            cases[f"vector|{env_id}"] = vec
    for controller in EPISODES["controllers"]:
        cases[f"episodes|{controller}"] = episodes_case(controller)
    return cases


def digest(case: dict[str, np.ndarray]) -> str:
    """SHA-256 of a case's keys and arrays (exact bytes)."""
    h = hashlib.sha256()
    for key in sorted(case):
        h.update(key.encode())
        h.update(np.ascontiguousarray(case[key], np.float64).tobytes())
    return h.hexdigest()


def main(argv: list[str]) -> int:
    """Print each case's hash against the recorded one; ``--record`` records them."""
    cases = all_cases()
    hashes = {name: digest(case) for name, case in cases.items()}
    path = DATA / "trajectory_guard.json"
    if "--record" in argv:
        DATA.mkdir(exist_ok=True)
        path.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
        np.savez_compressed(
            DATA / "trajectory_guard.npz",
            **{f"{name}::{k}": v for name, case in cases.items() for k, v in case.items()},
        )
        print(f"recorded {len(cases)} cases in {path} and trajectory_guard.npz")
        return 0
    recorded = json.loads(path.read_text())
    changed = 0
    for name, h in hashes.items():
        same = recorded.get(name) == h
        changed += not same
        print(f"{'same   ' if same else 'CHANGED'} {h[:16]} {name}")
    for name in sorted(set(recorded) - set(hashes)):
        print(f"MISSING {recorded[name][:16]} {name}")
    print(f"{len(hashes) - changed} of {len(hashes)} cases bit-identical to the recorded ones")
    return 1 if changed or set(recorded) - set(hashes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
