"""Issue 19's acceptance: your own controllers and models on the leaderboard, in one command.

Run from a scratch folder outside the repository, as a new user would: a spec file, a
``file.py:Class``, a training run folder and a registered name in one ``--controllers``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
from _user_files import write_user_files

from closedloop.benchmark import zoo_policies

ENV = "closedloop/ECAPClinic-Test-v0"


def _cli(cwd, *args):
    return subprocess.run(
        [sys.executable, "-m", "closedloop", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A user's folder: a controller file, a spec, a trained run, a short suite; one run."""
    if not zoo_policies():
        pytest.skip("no zoo policy to stand in for a training run")
    d = write_user_files(tmp_path_factory.mktemp("scratch"))
    shutil.copytree(zoo_policies()["ppo-tracking"], d / "runs" / "ppo" / "best")
    (d / "short.toml").write_text(
        textwrap.dedent(f'''
        name = "short"
        env_ids = ["{ENV}"]
        seeds = [0]
        n_patients = 2
        env_overrides = {{ episode_s = 14.0 }}
    ''')
    )
    proc = _cli(
        d,
        "benchmark",
        "--suite",
        "short.toml",
        "--controllers",
        "open-loop,./my-pid.toml,./my_ctl.py:MyController,runs/ppo/best",
        "--out",
        "run",
        "--workers",
        "2",
        "--no-progress",
        "--save-trajectories",
    )
    assert proc.returncode == 0, proc.stderr
    return d, proc


def test_every_form_is_on_the_leaderboard_and_in_the_report(scratch):
    d, proc = scratch
    labels = ("open-loop", "my-pid", "MyController", "ppo")
    board = (d / "run" / "leaderboard.md").read_text()
    html = (d / "run" / "report.html").read_text()
    for label in labels:
        assert label in board and label in proc.stdout and label in html
    rows = json.loads((d / "run" / "results.json").read_text())["rows"]
    assert sorted({r["controller"] for r in rows}) == sorted(labels)
    assert len(list((d / "run" / "trajectories").glob("*.npz"))) >= len(rows)


def test_a_run_folder_takes_more_controllers_and_reports_them_all(scratch):
    d, _ = scratch
    proc = _cli(
        d,
        "benchmark",
        "--suite",
        "short.toml",
        "--controllers",
        "pi",
        "--baseline",
        "my-pid",
        "--out",
        "run",
        "--workers",
        "1",
        "--no-progress",
        "--no-plots",
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((d / "run" / "results.json").read_text())["rows"]
    assert {r["controller"] for r in rows} == {"open-loop", "my-pid", "MyController", "ppo", "pi"}
    suite = json.loads((d / "run" / "suite.json").read_text())
    assert suite["controllers"][0] == "pi" and "./my_ctl.py:MyController" in suite["controllers"]
    assert "Δ vs my-pid" in (d / "run" / "leaderboard.md").read_text()


def test_another_suite_in_the_same_folder_is_refused(scratch):
    d, _ = scratch
    proc = _cli(
        d,
        "benchmark",
        "--suite",
        "short.toml",
        "--controllers",
        "pi",
        "--seeds",
        "1",
        "--out",
        "run",
        "--no-progress",
    )
    assert proc.returncode == 2 and "another suite" in proc.stderr
