"""The speed scripts in benchmarks/ run end to end (their figures are quoted, not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_env_quick_runs_and_writes_every_section(tmp_path):
    out = tmp_path / "env_speed.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_env.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    res = json.loads(out.read_text())
    assert res["step"]["ratio"] > 0 and res["memory"]["rss_per_env_mb"] > 0
    assert set(res["ppo"]) == {"single_lean", "single_default", "training"}
    for p in res["ppo"].values():
        assert p["ours"] > 0 and p["null"] > 0 and len(p["round_ratios"]) == 2
    assert set(res["vector"]) == {"256", "1024"}
    assert "PPO training (8 env(s)" in run.stdout
