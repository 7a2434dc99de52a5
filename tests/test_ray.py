"""Benchmark grids on a local Ray instance: the same results and run folder as local workers."""

import json
import sys

import pytest

from closedloop._config import ConfigError
from closedloop._io import nan_to_none
from closedloop.evaluation.grid import run_grid

ray = pytest.importorskip("ray")

ENV = "closedloop/ECAPClinic-Test-v0"
GRID = dict(
    controllers=["open-loop", "clinical-loop"],
    env_ids=[ENV, "closedloop/ECAPTracking-Test-v0"],
    patients=["test-000", "test-001"],
    seeds=[0, 3],
    env_overrides={"episode_s": 12.0},
)


def _without_wall_time(rows):
    """The rows without their timing, NaN as None (NaN != NaN)."""
    return nan_to_none([{k: v for k, v in r.items() if k != "wall_s"} for r in rows])


def _episode_files(out):
    docs = {}
    for path in sorted((out / "episodes").glob("*.json")):
        doc = json.loads(path.read_text())
        doc["row"].pop("wall_s")
        docs[path.name] = doc
    return docs


def test_a_ray_run_equals_a_local_run_and_resumes(local_ray, tmp_path):
    local = run_grid(**GRID, workers=2, progress=False, out_dir=tmp_path / "local")
    placement = {}
    on_ray = run_grid(
        **GRID, ray=True, progress=False, out_dir=tmp_path / "ray", placement=placement
    )
    assert len(on_ray) == 16 and _without_wall_time(on_ray) == _without_wall_time(local)
    assert _episode_files(tmp_path / "ray") == _episode_files(tmp_path / "local")
    assert sum(placement.values()) == 16 and len(placement) == 1  # one node
    # resume: half the episodes gone, the rest kept untouched, the rows the same
    files = sorted((tmp_path / "ray" / "episodes").glob("*.json"))
    for path in files[::2]:
        path.unlink()
    kept = {p: p.stat().st_mtime_ns for p in files[1::2]}
    placement.clear()
    again = run_grid(
        **GRID, ray=True, progress=False, out_dir=tmp_path / "ray", placement=placement
    )
    assert sum(placement.values()) == 8  # only the missing ones were played
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert _without_wall_time(again) == _without_wall_time(local)


def test_trajectories_come_back_to_the_driver(local_ray, tmp_path):
    from closedloop.evaluation.trajectory import load_trajectory

    grid = {**GRID, "env_ids": [ENV], "patients": ["test-002"], "seeds": [1]}
    run_grid(**grid, ray=True, progress=False, out_dir=tmp_path / "r", save_trajectories=True)
    run_grid(**grid, workers=1, progress=False, out_dir=tmp_path / "l", save_trajectories=True)
    names = sorted(p.name for p in (tmp_path / "r" / "trajectories").glob("*.npz"))
    assert len(names) == 2
    for name in names:
        a = load_trajectory(tmp_path / "r" / "trajectories" / name)
        b = load_trajectory(tmp_path / "l" / "trajectories" / name)
        assert a.ecap_uv.tobytes() == b.ecap_uv.tobytes()
        assert a.current_ma.tobytes() == b.current_ma.tobytes()


def test_benchmark_cli_with_ray_writes_the_same_report(local_ray, cli, tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        'name = "tiny"\ncontrollers = ["open-loop", "pid"]\n'
        f'env_ids = ["{ENV}"]\nn_patients = 2\nseeds = [0]\nenv_overrides = {{episode_s = 15.0}}\n'
    )
    argv = ["benchmark", "--suite", str(suite), "--no-plots", "--no-progress"]
    code, text, err = cli(*argv, "--ray", "--out", str(tmp_path / "ray"))
    assert code == 0, err
    assert "Ray: played 4 episodes on 1 node(s)" in err
    assert cli(*argv, "--workers", "1", "--out", str(tmp_path / "local"))[0] == 0
    assert _episode_files(tmp_path / "ray") == _episode_files(tmp_path / "local")
    meta = json.loads((tmp_path / "ray" / "results.json").read_text())["meta"]
    assert meta["ray"] == "local" and meta["ray_cpus"] == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ray": 3}, "ray=3 is invalid"),
        ({"ray": "no address"}, "ray='no address' is invalid"),
        ({"ray": True, "max_retries": -1}, "max_retries=-1 is invalid"),
        ({"ray": True, "max_retries": 1.5}, "max_retries=1.5 is invalid"),
        ({"ray": True, "placement": []}, "placement=[] must be a dict"),
    ],
)
def test_bad_ray_arguments_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_grid(**GRID, progress=False, **kwargs)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ray", "host"], "--ray='host' is invalid"),
        (["--ray", "--max-retries", "101"], "--max-retries=101 is invalid"),
    ],
)
def test_bad_ray_options_are_named(cli, tmp_path, argv, message):
    code, _, err = cli("benchmark", "--quick", "--out", str(tmp_path / "x"), *argv)
    assert code != 0 and message in err
    assert not (tmp_path / "x").exists()


def test_without_ray_installed_the_error_says_how_to_install(monkeypatch):
    from closedloop._ray import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "closedloop\[ray\]"'):
        require_ray()
