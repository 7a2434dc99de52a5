"""The RLlib example (benchmarks/scripts/rllib_ppo.py): one PPO iteration on a closedloop id.

Needs RLlib's own dependencies (``closedloop[rllib]``, in the test extra; or ``ray[rllib]``,
which pins an older Gymnasium); skipped without them.
"""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("ray.rllib.algorithms.ppo")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scripts" / "rllib_ppo.py"


@pytest.mark.slow  # minutes on 2 cores; pytest -m slow runs it
def test_one_iteration_on_an_env_runner_then_a_clinical_episode(local_ray, capsys):
    spec = importlib.util.spec_from_file_location("rllib_ppo", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--iterations", "1", "--env-runners", "1", "--batch", "200", "--epochs", "1"]
    assert script.main([*argv, "--episode-s", "12", "--eval-patients", "1"]) == 0
    out = capsys.readouterr().out
    assert "iteration 1: return" in out and "env steps" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("validation-000"))
    tiw = float(line.split("time in window ")[1].split(",")[0])
    assert 0.0 <= tiw <= 1.0
