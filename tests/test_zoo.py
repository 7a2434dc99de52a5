"""rl-baselines3-zoo trains on our envs unchanged, and its model plays as a controller."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = "closedloop/ECAPTracking-v0"


def test_zoo_trains_and_saves_a_model_that_plays_as_a_controller(tmp_path):
    pytest.importorskip("rl_zoo3")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # small nets on a busy 2-core machine
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    # The command of the issue, with a small step count (PPO still collects one 2048-step rollout).
    cmd = [
        sys.executable,
        "-m",
        "rl_zoo3.train",
        "--algo",
        "ppo",
        "--env",
        ENV,
        "--gym-packages",
        "closedloop",
        "-n",
        "512",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    models = sorted((tmp_path / "logs" / "ppo").glob("closedloop-ECAPTracking-v0_*/*.zip"))
    assert models, proc.stdout[-3000:]

    from stable_baselines3 import PPO

    from closedloop.controllers import SB3Policy
    from closedloop.evaluation import run_episode

    policy = SB3Policy(PPO.load(models[0], device="cpu"))
    result = run_episode(policy, ENV, "validation-000", 0, {"episode_s": 11.0})
    assert 0.0 <= result.metrics["time_in_window_frac"] <= 1.0
