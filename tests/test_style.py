"""The linter holds the style: ruff must pass on the whole repository."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (pip install .[test])")
def test_ruff_clean():
    paths = [p for p in ("closedloop", "tests", "benchmarks", "envs", "agents")
             if (ROOT / p).is_dir()]
    proc = subprocess.run(["ruff", "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
