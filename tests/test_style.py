"""The linter and the formatter hold the style: ``ruff check`` and ``ruff format --check`` pass."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("closedloop", "tests", "benchmarks", "envs", "agents")


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (pip install .[test])")
@pytest.mark.parametrize("command", [["check"], ["format", "--check", "--diff"]], ids=" ".join)
def test_ruff_clean(command):
    paths = [p for p in PATHS if (ROOT / p).is_dir()]
    proc = subprocess.run(["ruff", *command, *paths], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr
