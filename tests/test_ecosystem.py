"""The ecosystem around training: the single-file PPO example and the optuna search."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from closedloop import cohort as cohort_mod
from closedloop._config import ConfigError
from closedloop.cohort import HeldOutError

ROOT = Path(__file__).resolve().parents[1]
ENV = "closedloop/ECAPTracking-v0"
TINY_RANGES = {"n_envs": 2, "search": {
    "learning_rate": {"low": 1e-4, "high": 1e-3, "log": True},
    "n_steps": {"choices": [32, 64]}, "n_epochs": {"low": 1, "high": 2}}}
EVAL_S = 11.0      # just past the 10 s calibration warm-up, so that some steps are scored


@pytest.fixture
def one_thread():
    """Torch on one thread (small networks on a busy 2-core machine), restored afterwards."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ppo_script():
    """``benchmarks/scripts/ppo_single_file.py`` imported as a module."""
    path = ROOT / "benchmarks" / "scripts" / "ppo_single_file.py"
    spec = importlib.util.spec_from_file_location("ppo_single_file", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


# -- single-file PPO ---------------------------------------------------------------------------
def test_single_file_ppo_trains_through_autoresets_and_evaluates(ppo_script, one_thread):
    args = ppo_script.Args(total_timesteps=256, num_envs=2, num_steps=64, num_minibatches=2,
                           update_epochs=1, episode_s=0.5, patient="train-000", progress=False,
                           eval_patients="validation-000", eval_episode_s=EVAL_S)
    agent, obs_rms, rows = ppo_script.main(args)
    assert [r["patient"] for r in rows] == ["validation-000"]
    assert 0.0 <= rows[0]["time_in_window_frac"] <= 1.0
    assert np.all(np.isfinite(obs_rms.mean)) and obs_rms.count > 256
    assert all(torch_finite(p) for p in agent.parameters())


def torch_finite(tensor) -> bool:
    return bool(tensor.detach().isfinite().all())


def test_single_file_ppo_arguments_come_from_the_dataclass(ppo_script):
    args = ppo_script.parse_args(["--total-timesteps", "128", "--no-progress", "--seed", "3"])
    assert (args.total_timesteps, args.progress, args.seed) == (128, False, 3)
    with pytest.raises(SystemExit):
        ppo_script.parse_args(["--no-such-flag", "1"])


def test_gae_never_bootstraps_across_an_episode_end(ppo_script):
    import torch

    rewards = torch.ones(3, 1)
    values = torch.full((3, 1), 10.0)
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    adv, ret = ppo_script.compute_gae(rewards, values, dones, torch.tensor([10.0]), 1.0, 1.0)
    # Step 1 ends the episode: its return is its reward alone; step 0 adds step 1's.
    assert ret[:, 0].tolist() == pytest.approx([2.0, 1.0, 11.0])
    assert adv[:, 0].tolist() == pytest.approx([-8.0, -9.0, 1.0])


def test_torch_policy_is_a_controller(ppo_script):
    import gymnasium as gym

    from closedloop.controllers import ControlContext

    env = gym.make(ENV, patient="validation-000", episode_s=1.0)
    obs, info = env.reset(seed=0)
    agent = ppo_script.Agent(obs.size, 1)
    policy = ppo_script.TorchPolicy(agent, ppo_script.RunningMeanStd(obs.shape), 10.0)
    with pytest.raises(RuntimeError, match="before reset"):
        policy.predict(obs)
    base = env.unwrapped
    policy.reset(ControlContext.from_env(base.spec_.config, base.calibration, info["target_uv"]))
    action, state = policy.predict(obs, None, np.array([True]), deterministic=True)
    assert action.shape == (1,) and -1.0 <= action[0] <= 1.0 and state is None
    assert policy.steps == 1


# -- optuna search ------------------------------------------------------------------------------
def test_hpsearch_scores_on_validation_and_writes_the_best(tmp_path, one_thread, monkeypatch):
    pytest.importorskip("optuna")
    from closedloop.hpsearch import search

    touched = []
    real = cohort_mod._read
    monkeypatch.setattr(cohort_mod, "_read", lambda split: touched.append(split) or real(split))
    result = search("ppo", ENV, 2, 128, TINY_RANGES, seed=0, eval_patients=1,
                    env_overrides={"episode_s": 1.0}, eval_overrides={"episode_s": EVAL_S},
                    out_dir=tmp_path)
    assert "test" not in touched and "validation" in touched
    assert result.eval_patients == ("validation-000",) and len(result.trials) == 2
    assert set(result.best_params) == set(TINY_RANGES["search"])
    assert 0.0 <= result.best_value <= 1.0
    best = tomllib.loads((tmp_path / "best.toml").read_text())["hyperparams"][ENV]
    assert best == pytest.approx(result.best_params)
    doc = json.loads((tmp_path / "trials.json").read_text())
    assert doc["objective"] == "time_in_window_frac" and len(doc["trials"]) == 2
    assert all(math.isfinite(t["metrics"]["mean_rel_error"]) for t in doc["trials"])


@pytest.mark.parametrize("kwargs", [
    {"eval_split": "test"},
    {"env_overrides": {"split": "test", "episode_s": 1.0}},
    {"env_id": "closedloop/ECAPTracking-Test-v0"},
])
def test_hpsearch_never_touches_the_test_cohort(kwargs, one_thread, monkeypatch):
    pytest.importorskip("optuna")
    from closedloop.hpsearch import search

    touched = []
    real = cohort_mod._read
    monkeypatch.setattr(cohort_mod, "_read", lambda split: touched.append(split) or real(split))
    kwargs = {"env_id": ENV, **kwargs}
    with pytest.raises(HeldOutError, match="hpsearch"):
        search("ppo", kwargs.pop("env_id"), 1, 64, TINY_RANGES, eval_patients=1,
               eval_overrides={"episode_s": EVAL_S}, **kwargs)
    assert "test" not in touched


@pytest.mark.parametrize(("ranges", "match"), [
    ({"search": {"learning_rate": {"low": 1e-3, "high": 1e-4}}}, "low < high"),
    ({"search": {"ent_coef": {"low": 0.0, "high": 0.1, "log": True}}}, "low > 0"),
    ({"search": {"n_steps": {"choices": []}}}, "non-empty list"),
    ({"search": {"n_steps": {"values": [1]}}}, "keys low, high, log, choices"),
    ({"search": {"gamma": {"low": 0.9, "high": 0.99}}, "extra": 1}, "unknown key.*extra"),
    ({"search": {}}, "non-empty table"),
    ({"search": {"no_such_param": {"low": 0.1, "high": 1.0}}}, "no_such_param"),
    ({"algorithm": "SAC", "search": {"gamma": {"low": 0.9, "high": 0.99}}}, "algorithm='sac'"),
])
def test_hpsearch_rejects_malformed_ranges_by_name(ranges, match):
    from closedloop.hpsearch import check_space, load_ranges

    with pytest.raises(ConfigError, match=match):
        check_space("ppo", load_ranges(ranges))


def test_default_ranges_file_is_valid_for_ppo():
    from closedloop.cli.hpsearch import resolve_ranges
    from closedloop.hpsearch import check_space, load_ranges

    path = resolve_ranges("ppo", None)
    from closedloop._specdirs import spec_dir

    assert path == spec_dir("agents") / "rl" / "search-ranges-ppo.toml"
    space = load_ranges(path)
    check_space("ppo", space)
    assert {"learning_rate", "n_steps", "gamma"} <= set(space.ranges)
    with pytest.raises(ConfigError, match="no default ranges"):
        resolve_ranges("td3", None)


def test_missing_optuna_names_the_extra(monkeypatch):
    from closedloop.hpsearch import search

    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"closedloop\[rl\]"):
        search("ppo", ENV, 1, 64, TINY_RANGES)


def test_hpsearch_cli_parses_and_checks_its_arguments():
    import argparse

    from closedloop.cli import hpsearch as cli_hpsearch

    parser = argparse.ArgumentParser()
    cli_hpsearch.add_parsers(parser.add_subparsers())
    args = parser.parse_args(["hpsearch", "--algo", "ppo", "--trials", "3", "--steps", "100",
                              "--ranges", "search-ranges-ppo", "--eval-seeds", "x"])
    assert (args.trials, args.steps) == (3, 100)
    with pytest.raises(ConfigError, match="--eval-seeds"):
        args.run(args)
    with pytest.raises(ConfigError, match="no such file"):
        cli_hpsearch.resolve_ranges("ppo", "missing.toml")


def test_sb3_kwargs_converts_schedules_activations_and_caps_the_batch():
    pytest.importorskip("torch")
    from closedloop.hpsearch import sb3_kwargs

    kw = sb3_kwargs("ppo", {"batch_size": 256, "n_steps": 16, "learning_rate": "lin_1e-3",
                            "policy_kwargs": {"activation_fn": "relu"}}, n_envs=4)
    assert kw["batch_size"] == 64 and kw["learning_rate"](0.5) == pytest.approx(5e-4)
    assert kw["policy_kwargs"]["activation_fn"].__name__ == "ReLU"
    assert sb3_kwargs("ppo", {}, n_envs=4) == {}
    with pytest.raises(ConfigError, match="activation_fn='swish'"):
        sb3_kwargs("ppo", {"policy_kwargs": {"activation_fn": "swish"}}, n_envs=1)
    with pytest.raises(ConfigError, match="lin_<number>"):
        sb3_kwargs("ppo", {"learning_rate": "fast"}, n_envs=1)
