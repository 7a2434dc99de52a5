"""``hpsearch --ray`` (Ray Tune with the optuna sampler) and ``tune --ray`` (episodes on Ray)."""

import json

import pytest

from closedloop._config import ConfigError
from closedloop.patients.cohort import HeldOutError

pytest.importorskip("ray")
pytest.importorskip("optuna")

ENV = "closedloop/ECAPTracking-v0"
RANGES = {
    "n_envs": 2,
    "search": {
        "learning_rate": {"low": 1e-4, "high": 1e-3, "log": True},
        "n_steps": {"choices": [32, 64]},
        "n_epochs": {"low": 1, "high": 2},
    },
}
SEARCH = dict(
    eval_patients=1,
    env_overrides={"episode_s": 1.0},
    eval_overrides={"episode_s": 11.0},
)


def test_hpsearch_on_ray_tune_draws_and_scores_as_locally(local_ray, tmp_path, one_thread):
    from closedloop.tuning.hpsearch import search

    local = search("ppo", ENV, 2, 128, RANGES, seed=4, out_dir=tmp_path / "local", **SEARCH)
    on_ray = search(
        "ppo",
        ENV,
        2,
        128,
        RANGES,
        seed=4,
        out_dir=tmp_path / "ray",
        ray=True,
        max_concurrent_trials=2,
        **SEARCH,
    )
    assert [t["number"] for t in on_ray.trials] == [0, 1]
    for a, b in zip(local.trials, on_ray.trials, strict=True):
        assert a["params"] == b["params"]  # the same sampler, seed and trial numbers
        assert a["metrics"] == pytest.approx(b["metrics"], rel=1e-9)  # trained with seed + k
    assert on_ray.best_value == pytest.approx(local.best_value, rel=1e-9)
    doc = json.loads((tmp_path / "ray" / "trials.json").read_text())
    assert len(doc["trials"]) == 2 and (tmp_path / "ray" / "best.toml").is_file()
    assert (tmp_path / "ray" / "ray-tune").is_dir()


def test_hpsearch_on_ray_keeps_the_test_cohort_out(local_ray, tmp_path):
    from closedloop.tuning.hpsearch import search

    with pytest.raises(HeldOutError):
        search("ppo", ENV, 1, 64, RANGES, ray=True, **{**SEARCH, "eval_split": "test"})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ray": 1}, "ray=1 is invalid"),
        ({"ray": True, "max_concurrent_trials": 0}, "max_concurrent_trials=0 is invalid"),
        ({"ray": True, "max_retries": -2}, "max_retries=-2 is invalid"),
    ],
)
def test_bad_ray_arguments_of_hpsearch_are_named(kwargs, message):
    from closedloop.tuning.hpsearch import search

    with pytest.raises(ConfigError, match=message):
        search("ppo", ENV, 1, 64, RANGES, **SEARCH, **kwargs)


@pytest.mark.slow  # minutes on 2 cores; pytest -m slow runs it
def test_tune_on_ray_finds_the_same_gains(local_ray, tmp_path):
    from closedloop.tuning.controller import DEFAULT_GAINS, TuningProblem, tune

    problem = TuningProblem(
        "pid", DEFAULT_GAINS["pid"], env_ids=("closedloop/ECAPClinic-v0",), n_patients=1, budget=3
    )
    local = tune(problem, workers=1, progress=False)
    on_ray = tune(problem, progress=False, ray=True)
    assert on_ray["params"] == local["params"]
    for key in ("objective_before", "objective_after", "evaluations"):
        assert on_ray["tuning"][key] == local["tuning"][key]


def test_cli_hpsearch_and_tune_name_bad_ray_options(cli, tmp_path):
    code, _, err = cli("hpsearch", "--ray", "nowhere", "--trials", "1", "--steps", "64")
    assert code == 2 and "--ray='nowhere' is invalid" in err
    code, _, err = cli("hpsearch", "--ray", "--max-concurrent-trials", "0")
    assert code == 2 and "--max-concurrent-trials=0 is invalid" in err
    code, _, err = cli("tune", "pid", "--ray", "--max-retries", "-1")
    assert code == 2 and "--max-retries=-1 is invalid" in err
