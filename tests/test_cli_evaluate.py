"""``closedloop evaluate``: every controller form, ``--json``, ``--plot``, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from _user_files import write_user_files

from closedloop.cli import main

ENV = "closedloop/ECAPTracking-v0"
SHORT = ["--episode-s", "12"]
"""Ten seconds of warm-up and two scored: every form plays the same short episode."""
ZOO_MODEL = Path(__file__).resolve().parents[1] / "agents" / "zoo" / "ppo-tracking"


def evaluate_json(capsys, *args: str) -> dict:
    """Run ``closedloop evaluate ... --json``; the parsed stdout (which must be only JSON)."""
    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_registered_name_prints_readable_metrics(capsys):
    assert main(["evaluate", "open-loop", "--patient", "validation-000", *SHORT]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"open-loop on {ENV} (daily-living): patient validation-000, seed 0")
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert lines["time_in_window_frac"].split()[1:3][1] == "%"
    assert lines["mad_uv"].split()[2] == "µV"
    assert lines["n_pulses"].split()[1] == "100"  # a count: an integer, no exponent
    assert lines["overstim_events_per_hour"].split()[2] == "/h"
    assert "e+" not in out


def test_json_equals_run_episode(capsys):
    from closedloop._io import nan_to_none
    from closedloop.controllers.registry import make_controller
    from closedloop.evaluation import run_episode

    doc = evaluate_json(capsys, "pid", "--patient", "validation-001", "--seed", "3", *SHORT)
    ref = run_episode(
        make_controller("pid"), ENV, "validation-001", 3, {"episode_s": 12.0}, name="pid"
    )
    assert doc["metrics"] == nan_to_none(ref.metrics)
    assert (doc["label"], doc["env_id"], doc["patient"], doc["seed"]) == (
        "pid",
        ENV,
        "validation-001",
        3,
    )
    assert doc["target_uv"] == ref.target_uv and doc["n_steps"] == ref.n_steps == 600
    assert doc["metrics"]["settling_time_s_mean"] is None  # NaN is null


def test_default_patient_is_the_envs_draw_with_the_seed(capsys):
    a = evaluate_json(capsys, "open-loop", *SHORT)
    b = evaluate_json(capsys, "open-loop", "--seed", "0", *SHORT)
    assert a["patient"].startswith("train-") and a == b


def test_spec_file(capsys, tmp_path, monkeypatch):
    write_user_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    doc = evaluate_json(capsys, "./my-pid.toml", "--patient", "validation-000", *SHORT)
    pid = evaluate_json(capsys, "pid", "--patient", "validation-000", *SHORT)
    assert doc["label"] == "my-pid" and doc["source"] == f"spec:{tmp_path / 'my-pid.toml'}"
    assert doc["metrics"]["mad_uv"] != pid["metrics"]["mad_uv"]  # its own gain


def test_file_class_and_label(capsys, tmp_path, monkeypatch):
    write_user_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    doc = evaluate_json(capsys, "./my_ctl.py:MyController", "--patient", "validation-000", *SHORT)
    assert doc["label"] == "MyController"
    named = evaluate_json(
        capsys, "mine=./my_ctl.py:MyController", "--patient", "validation-000", *SHORT
    )
    assert named["label"] == "mine" and named["metrics"] == doc["metrics"]


def test_module_class(capsys, tmp_path, monkeypatch):
    write_user_files(tmp_path, module="evalctl_mod")
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = evaluate_json(capsys, "evalctl_mod:MyController", "--patient", "validation-000", *SHORT)
    assert doc["label"] == "MyController" and doc["source"] == "object:evalctl_mod:MyController"
    ol = evaluate_json(
        capsys, "closedloop.controllers:OpenLoop", "--patient", "validation-000", *SHORT
    )
    ref = evaluate_json(capsys, "open-loop", "--patient", "validation-000", *SHORT)
    assert ol["metrics"] == ref["metrics"]
    assert doc["metrics"]["mad_uv"] != ref["metrics"]["mad_uv"]


def test_training_run_folder(capsys, tmp_path):
    run = tmp_path / "runs" / "ppo"
    shutil.copytree(ZOO_MODEL, run / "best")
    doc = evaluate_json(capsys, str(run), "--patient", "validation-000", *SHORT)
    zoo = evaluate_json(capsys, "ppo-tracking", "--patient", "validation-000", *SHORT)
    assert doc["label"] == "ppo" and doc["metrics"] == zoo["metrics"]


def test_plot_and_trajectory(capsys, tmp_path):
    from closedloop.evaluation.trajectory import load_trajectory

    png, npz = tmp_path / "trace.png", tmp_path / "run.npz"
    assert (
        main(
            [
                "evaluate",
                "clinical-loop",
                "--env",
                "closedloop/ECAPCoughStorm-Test-v0",
                "--patient",
                "test-000",
                "--episode-s",
                "20",
                "--plot",
                str(png),
                "--save-trajectory",
                str(npz),
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == (1320, 1080) and png.stat().st_size > 50_000
    traj = load_trajectory(npz)
    assert traj.patient_id == "test-000" and traj.t_s.size == doc["n_steps"] == 1000
    assert traj.metrics()["mad_uv"] == doc["metrics"]["mad_uv"]
    from closedloop.plots import plot_trajectory

    plain = plot_trajectory(traj, tmp_path / "plain.png").read_bytes()
    hatched = plot_trajectory(traj, tmp_path / "hatched.png", unscored=traj.t_s > 15.0)
    assert hatched.read_bytes()[:8] == head[:8] and hatched.read_bytes() != plain


def test_ecap_axis_clips_spikes():
    from closedloop.plots.clinic import ecap_axis_top

    rng = np.random.default_rng(0)
    ecap = 20.0 + rng.normal(0.0, 2.0, 10_000)
    ecap[5_000:5_010] = 600.0  # a cough
    top = ecap_axis_top(ecap, 20.0, np.full(ecap.size, 35.0))
    assert 35.0 < top < 600.0 / 5
    storm = ecap.copy()
    storm[::20] = 500.0  # 5 % of the time: still capped
    assert ecap_axis_top(storm, 20.0) == pytest.approx(60.0)
    assert ecap_axis_top(storm, 20.0, np.full(ecap.size, 80.0)) == pytest.approx(84.0)
    high = np.full(1000, 50.0)  # sustained, not a spike: shown
    assert ecap_axis_top(high, 20.0) == pytest.approx(55.0)
    assert ecap_axis_top([], math.nan) > 0
    assert ecap_axis_top([math.nan], 20.0) == pytest.approx(28.6)  # 1.1 x 1.3 x target


def test_binned_means_and_ranges():
    from closedloop.plots.clinic import bin_samples, binned

    t = np.arange(250) / 50.0
    y = np.arange(250, dtype=float)
    assert bin_samples(t, 1.0) == 50
    tb, mean, lo, hi = binned(t, y, 50)
    assert np.array_equal(tb, [0.0, 1.0, 2.0, 3.0, 4.0])
    assert np.array_equal(mean, np.arange(5) * 50 + 24.5)
    assert np.array_equal(lo, np.arange(5) * 50) and np.array_equal(hi, lo + 49)
    tb, mean, lo, hi = binned(t[:60], y[:60], 50)  # a short last bin
    assert mean[-1] == 54.5 and hi[-1] == 59.0
    assert all(np.array_equal(a, b) for a, b in zip(binned(t, y, 1), (t, y, y, y), strict=True))


@pytest.mark.parametrize(
    "args, option",
    [
        (["no-such-controller"], "CONTROLLER"),
        (["open-loop", "--env", "CartPole-v1"], "--env"),
        (["open-loop", "--seed", "-1"], "--seed"),
        (["open-loop", "--episode-s", "nan"], "--episode-s"),
        (["open-loop", "--episode-s", "5"], "--episode-s"),
        (["open-loop", "--patient", "nobody"], "--patient"),
        (["open-loop", "--plot", "/no/such/dir/x.png"], "--plot"),
    ],
)
def test_bad_input_exits_2_naming_the_option(capsys, args, option):
    assert main(["evaluate", *args]) == 2
    captured = capsys.readouterr()
    assert option in captured.err and captured.out == ""
