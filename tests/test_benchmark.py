"""``closedloop benchmark``: suites, the run folder, resume, and CLI/API agreement."""

import json
import re

import pytest

from closedloop._config import ConfigError
from closedloop.benchmark import (
    DEFAULT,
    QUICK,
    Suite,
    controllers_of,
    load_suite,
    run_benchmark,
    zoo_policies,
)

TINY = """
name = "tiny"
controllers = ["open-loop", "clinical-loop"]
env_ids = ["closedloop/ECAPClinic-Test-v0"]
patients = "test"
n_patients = 1
seeds = [0]
env_overrides = {episode_s = 20.0}
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_default_suite_is_every_agent_on_the_held_out_cohort():
    assert DEFAULT.patients == "test" and DEFAULT.n_patients == 0
    assert {e.split("/")[1] for e in DEFAULT.env_ids} == {
        "ECAPClinic-Test-v0",
        "ECAPTracking-Test-v0",
        "ECAPCoughStorm-Test-v0",
        "ECAPWalking-Test-v0",
        "ECAPSleep-Test-v0",
        "ECAPDrift-Test-v0",
    }
    names = controllers_of(DEFAULT)
    assert {"open-loop", "pid", "clinical-loop", "mpc"} <= set(names)
    assert QUICK.env_ids == DEFAULT.env_ids and QUICK.n_patients == 3
    assert dict(QUICK.env_overrides) == {"episode_s": 180.0}


def test_cli_and_api_agree_and_a_rerun_resumes(cli, tiny, tmp_path):
    out = tmp_path / "run"
    code, text, err = cli(
        "benchmark",
        "--suite",
        str(tiny),
        "--out",
        str(out),
        "--no-plots",
        "--no-progress",
        "--workers",
        "1",
    )
    assert code == 0, err
    assert "clinical-loop" in text and "open-loop" in text
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["controller"] for r in rows} == {"open-loop", "clinical-loop"}
    assert {r["patient"] for r in rows} == {"test-000"}
    for name in ("results.csv", "summary.json", "leaderboard.md", "report_card.md", "suite.json"):
        assert (out / name).is_file(), name
    episodes = sorted((out / "episodes").glob("*.json"))
    assert len(episodes) == 2
    stamps = [p.stat().st_mtime_ns for p in episodes]
    report = run_benchmark(load_suite(tiny), out, workers=1, progress=False, plots=False)
    assert [p.stat().st_mtime_ns for p in episodes] == stamps  # nothing replayed
    api_rows = json.loads(report.paths["results.json"].read_text())["rows"]
    assert [r["mad_uv"] for r in api_rows] == [r["mad_uv"] for r in rows]


def test_a_different_suite_does_not_resume_into_the_same_folder(tiny, tmp_path):
    out = tmp_path / "run"
    suite = load_suite(tiny)
    run_benchmark(suite, out, workers=1, progress=False, plots=False)
    other = Suite.from_dict({**suite.to_dict(), "seeds": [1]})
    with pytest.raises(ConfigError, match="another suite"):
        run_benchmark(other, out, workers=1, progress=False, plots=False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--controllers", "pid,bogus"),
            r"controllers\[1\]='bogus' is unknown; valid: .*Registered names: .*open-loop",
        ),
        (("--envs", "closedloop/Nope-v0"), "Nope-v0"),
        (("--patients", "0"), r"--patients=0 is out of range; valid range \[1, inf\)"),
        (("--seeds", "a,b"), "--seeds='a,b' must be a comma-separated list of integers"),
        (("--suite", "/nonexistent.toml"), "no such file"),
    ],
)
def test_bad_input_is_named(cli, tmp_path, argv, message):
    code, _, err = cli("benchmark", "--out", str(tmp_path / "x"), "--no-progress", *argv)
    assert code == 2
    assert re.search(message, err), err


def test_malformed_suite_files_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY + "colour = 'red'\n")
    with pytest.raises(ConfigError, match="unknown key.*colour.*in bad.toml"):
        load_suite(bad)
    bad.write_text("name = [")
    with pytest.raises(ConfigError, match="bad.toml: malformed TOML"):
        load_suite(bad)
    with pytest.raises(ConfigError, match="seeds=.*must be distinct"):
        Suite(seeds=(1, 1))


def test_every_agent_plays_through_the_one_runner(tmp_path):
    """Each spec in agents/ runs a short clinic episode through run_benchmark's path."""
    from closedloop.controllers.registry import list_agents

    suite = Suite(
        name="all-short",
        env_ids=("closedloop/ECAPClinic-Test-v0",),
        n_patients=1,
        seeds=(3,),
        env_overrides=(("episode_s", 30.0),),
    )
    report = run_benchmark(suite, tmp_path / "run", workers=2, progress=False, plots=False)
    rows = json.loads(report.paths["results.json"].read_text())["rows"]
    assert sorted(r["controller"] for r in rows) == sorted(list_agents() + list(zoo_policies()))
    for r in rows:
        assert r["n_steps"] == 1500 and 0.0 <= r["time_in_window_frac"] <= 1.0, r["controller"]
        assert r["mad_uv"] >= 0.0


KILLED = """
import sys, time
import closedloop.controllers.registry as registry
from closedloop.cli import main

real, built = registry.make_controller, []

def make_then_hang(name):
    built.append(name)
    if name != built[0]:                # the second controller's batch never starts: killed
        while True:                     # here (a batch-ready controller is built once a batch)
            time.sleep(0.05)
    return real(name)

registry.make_controller = make_then_hang
sys.exit(main(sys.argv[1:]))
"""


def _rows_without_wall_time(out):
    rows = json.loads((out / "results.json").read_text())["rows"]
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def test_a_run_killed_mid_way_resumes_to_the_uninterrupted_results(cli, tmp_path):
    """SIGKILL after two of four episodes (the second batch hangs, so no timing), then resume."""
    import signal
    import subprocess
    import sys
    import time

    suite = tmp_path / "two-by-two.toml"
    suite.write_text(TINY.replace("seeds = [0]", "seeds = [0, 1]").replace("20.0", "15.0"))
    argv = ["benchmark", "--suite", str(suite), "--no-plots", "--no-progress", "--workers", "1"]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, *argv, "--out", str(killed)])
    deadline = time.monotonic() + 600
    try:
        while len(list((killed / "episodes").glob("*.json"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = {p: p.stat().st_mtime_ns for p in (killed / "episodes").glob("*.json")}
    assert len(done) == 2 and not (killed / "results.json").exists()
    assert cli(*argv, "--out", str(killed))[0] == 0  # resumed
    assert {p: p.stat().st_mtime_ns for p in done} == done  # not replayed
    assert len(list((killed / "episodes").glob("*.json"))) == 4
    assert cli(*argv, "--out", str(whole))[0] == 0  # uninterrupted
    assert _rows_without_wall_time(killed) == _rows_without_wall_time(whole)


def test_trace_figures_replay_only_the_episodes_they_draw(tiny, tmp_path):
    """Without saved trajectories, the benchmark replays the drawn episodes bit for bit."""
    from closedloop.evaluation.episode_spec import TRAJECTORIES_DIR
    from closedloop.evaluation.trajectory import load_trajectory

    out = tmp_path / "run"
    report = run_benchmark(load_suite(tiny), out, workers=1, progress=False, plots=True)
    assert (out / "plots" / "traces-ECAPClinic-Test-v0.png").is_file()
    assert "plots/traces-ECAPClinic-Test-v0.png" in report.paths
    saved = sorted((out / TRAJECTORIES_DIR).glob("*.npz"))
    assert len(saved) == 2  # two controllers, one patient, one seed
    rows = {r["episode"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    for path in saved:
        traj = load_trajectory(path)
        row = rows[path.stem]
        assert traj.patient_id == row["patient"]
        metrics = traj.metrics()  # 20 s of the clinic sequence: no prone to mask
        for key in ("mad_uv", "time_in_window_frac", "charge_per_pulse_uc"):
            assert metrics[key] == pytest.approx(row[key], rel=1e-12, abs=1e-12), key
