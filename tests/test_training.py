"""RL training: tiny runs write model, card and checkpoints; determinism; resume; bad input."""

import dataclasses
import importlib.util
import json
import os
import pickle
import shlex
import socket
import sys

import numpy as np
import pytest

from closedloop import ConfigError
from closedloop.controllers import ControlContext
from closedloop.evaluation import run_episode
from closedloop.patients.cohort import HeldOutError
from closedloop.training import (
    TrainedPolicyFactory,
    TrainOptions,
    list_rl_agents,
    load_rl_spec,
    load_trained,
    parse_rl_spec,
    train,
)
from closedloop.training.checkpoints import list_checkpoints
from closedloop.training.spec import algorithm_class

ENV = "closedloop/ECAPTracking-v0"
SHORT = {"episode_s": 12.0}  # 10 s warm-up, then 2 s scored
PPO_HP = {"n_steps": 64, "batch_size": 64, "n_epochs": 2}
OPTS = TrainOptions(
    eval_every=256, eval_patients=1, checkpoint_every=256, progress=False, tensorboard=False
)


def tiny(agent, out, steps=512, seed=3, **kw):
    args = dict(n_envs=2, hyperparams=PPO_HP, env_overrides=SHORT, options=OPTS) | kw
    return train(agent, ENV, steps, out, seed, **args)


def params(model_dir):
    policy = load_trained(model_dir).policy.policy
    return {k: v.numpy().copy() for k, v in policy.state_dict().items()}


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    return tiny("ppo", tmp_path_factory.mktemp("ppo"))


def test_ppo_run_writes_model_card_checkpoints_and_logs(ppo_run):
    out = ppo_run.out_dir
    for folder in ("best", "final"):
        for name in ("model.zip", "vecnormalize.pkl", "obs_norm.json", "card.json", "card.md"):
            assert (out / folder / name).is_file(), (folder, name)
    assert [s for s, _ in list_checkpoints(out)] == [256, 512]
    card = json.loads((out / "final" / "card.json").read_text())
    assert card["env"]["id"] == ENV and card["env"]["version"] == 0
    assert card["env"]["config"]["episode_s"] == 12.0
    assert card["algorithm"] == "PPO" and card["hyperparameters"]["n_steps"] == 64
    assert card["training"]["steps"] == 512 == ppo_run.steps
    assert card["training"]["wall_clock_s"] > 0
    assert 0.0 <= card["validation"]["metrics"]["time_in_window_frac"] <= 1.0
    assert card["validation"]["patients"] == ["validation-000"]
    assert {"stable-baselines3", "torch", "gymnasium", "numpy"} <= set(card["packages"])
    assert card["command"].startswith("closedloop train --agent ppo --env " + ENV)
    assert "## Reproduce" in (out / "final" / "card.md").read_text()
    assert [e["step"] for e in ppo_run.evaluations] == [256, 512]
    log = next((out / "logs").glob("progress-*.csv")).read_text()
    assert "clinical/time_in_window" in log and "validation/time_in_window_frac" in log


def test_same_seed_same_parameters_through_the_cli(ppo_run, cli, tmp_path):
    argv = shlex.split(ppo_run.card["command"])[1:]
    argv[argv.index("--out") + 1] = str(tmp_path)
    code, out, err = cli(*argv, "--no-progress", "--no-tensorboard")
    assert code == 0, err
    assert "trained 512 steps" in out
    mine, theirs = params(ppo_run.out_dir / "final"), params(tmp_path / "final")
    assert mine.keys() == theirs.keys()
    assert all(np.array_equal(mine[k], theirs[k]) for k in mine)


def test_loaded_model_is_a_controller_with_its_normalisation(ppo_run):
    factory = pickle.loads(pickle.dumps(TrainedPolicyFactory(str(ppo_run.out_dir))))
    ctl = factory()  # the run's best model
    assert ctl.card["training"]["selection"].startswith("best validation")
    result = run_episode(ctl, ENV, "validation-000", 0, SHORT)
    assert result.n_steps == 600
    val = ctl.card["validation"]["metrics"]  # scored on the same episode
    assert result.metrics["mad_uv"] == pytest.approx(val["mad_uv"], rel=1e-9)
    assert result.metrics["time_in_window_frac"] == val["time_in_window_frac"]
    from closedloop.training import ObsNormalizer

    pickled = ObsNormalizer.load(ppo_run.out_dir / "best" / "vecnormalize.pkl")
    assert np.array_equal(pickled.mean, ctl.normalizer.mean)  # JSON == pickle
    assert np.array_equal(pickled.var, ctl.normalizer.var)
    for obs in np.random.default_rng(1).normal(0.0, 50.0, (20, 13)).astype(np.float32):
        fast, _ = ctl.predict(obs)  # the float64 row kernel (policy_kernels.py)
        slow, _ = ctl.policy.predict(ctl.normalizer(obs), deterministic=True)  # SB3, torch
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-6)  # float32 rounding apart


def test_interrupted_run_resumes_to_the_requested_total(tmp_path, monkeypatch):
    from stable_baselines3.common.callbacks import BaseCallback

    class Interrupt(BaseCallback):
        def _on_step(self):
            if self.num_timesteps >= 300:
                raise KeyboardInterrupt
            return True

    opts = TrainOptions(
        eval_every=0, eval_patients=1, checkpoint_every=128, progress=False, tensorboard=False
    )
    with pytest.raises(KeyboardInterrupt):
        tiny("ppo", tmp_path, options=opts, callbacks=[Interrupt()])
    assert list_checkpoints(tmp_path)[-1][0] == 256
    with pytest.raises(ConfigError, match="seed"):
        tiny("ppo", tmp_path, seed=4, options=opts)  # not the same run
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    with pytest.warns(UserWarning, match="tensorboard is not installed"):
        result = tiny(
            "ppo", tmp_path, resume=True, options=dataclasses.replace(opts, tensorboard=True)
        )
    assert result.steps == 512
    assert result.card["training"]["resumed_at"] == [256]
    assert list_checkpoints(tmp_path)[-1][0] == 512
    again = tiny("ppo", tmp_path, options=opts)  # finished: nothing to do
    assert again.card == result.card


def test_a_run_folder_is_locked_while_in_use(tmp_path):
    from closedloop.training.checkpoints import RunLock

    (tmp_path / ".lock").write_text(str(os.getppid()))  # a live process
    with pytest.raises(ConfigError, match="in use by another training run"):
        tiny("ppo", tmp_path)
    (tmp_path / ".lock").write_text("999999999")  # no such process: stale
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()} {socket.gethostname()}"
    assert not (tmp_path / ".lock").exists()
    # another host's lock (a shared filesystem): refused unless that host is known to be gone
    (tmp_path / ".lock").write_text("999999999 elsewhere")
    with pytest.raises(ConfigError, match="process 999999999 on host 'elsewhere'.*delete"):
        RunLock(tmp_path).__enter__()
    with pytest.raises(ConfigError, match="on host 'elsewhere'"):
        RunLock(tmp_path, host_gone=lambda host: host != "elsewhere").__enter__()
    with RunLock(tmp_path, host_gone=lambda host: host == "elsewhere"):
        assert (tmp_path / ".lock").read_text().startswith(f"{os.getpid()} ")


def test_wall_clock_budget_stops_the_run(tmp_path):
    opts = dataclasses.replace(OPTS, max_wall_s=0.5, eval_every=0)
    result = tiny("ppo", tmp_path, steps=100_000, options=opts)
    assert result.steps < 100_000
    final = json.loads((tmp_path / "final" / "card.json").read_text())
    assert final["training"]["stopped_by"] == "wall-clock budget"
    assert "--max-wall-s 0.5" in final["command"]


def test_progress_bar_falls_back_to_tqdm_without_rich(monkeypatch):
    import stable_baselines3.common.callbacks as sb3_callbacks

    from closedloop.training.callbacks import TqdmProgressCallback, progress_callback

    if importlib.util.find_spec("rich") is not None:
        assert not isinstance(progress_callback(), TqdmProgressCallback)  # SB3's rich bar
    monkeypatch.setattr(sb3_callbacks, "tqdm", None)  # as without rich
    assert isinstance(progress_callback(), TqdmProgressCallback)


def test_sac_tiny_run_checkpoints_its_replay_buffer(tmp_path):
    hp = {"learning_starts": 64, "batch_size": 32, "buffer_size": 2_000, "gradient_steps": 1}
    result = tiny(
        "sac",
        tmp_path,
        steps=384,
        hyperparams=hp,
        options=TrainOptions(
            eval_every=0, eval_patients=1, checkpoint_every=0, progress=False, tensorboard=False
        ),
    )
    assert result.steps == 384
    steps, ckpt = list_checkpoints(tmp_path)[-1]
    assert steps == 384 and (ckpt / "replay_buffer.pkl").is_file()
    assert result.card["normalization"] == {
        "obs": True,
        "reward": False,
        "clip_obs": 10.0,
        "gamma": 0.98,
    }
    ctl = load_trained(tmp_path)
    ctl.reset(ControlContext(calibration=None, target_uv=100.0, dt_s=0.02))
    action, _ = ctl.predict(np.zeros(13, np.float32))
    assert action.shape == (1,) and -1.0 <= action[0] <= 1.0
    for obs in np.random.default_rng(0).normal(0.0, 50.0, (20, 13)).astype(np.float32):
        fast, _ = ctl.predict(obs)  # the float64 row kernel (policy_kernels.py)
        slow, _ = ctl.policy.predict(ctl.normalizer(obs), deterministic=True)  # SB3, torch
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-6)  # float32 rounding apart


def test_recurrent_ppo_tiny_run(tmp_path):
    pytest.importorskip("sb3_contrib")
    result = tiny(
        "recurrent-ppo", tmp_path, steps=128, hyperparams={"n_steps": 32, "batch_size": 32}
    )
    ctl = load_trained(tmp_path)
    assert result.steps == 128
    assert run_episode(ctl, ENV, "validation-001", 0, {"episode_s": 11.0}).n_steps == 550


def test_training_never_touches_the_test_cohort(tmp_path):
    with pytest.raises(HeldOutError):
        train(
            "ppo",
            "closedloop/ECAPTracking-Test-v0",
            128,
            tmp_path,
            n_envs=1,
            env_overrides=SHORT,
            options=OPTS,
        )


def spec_doc(**changes):
    doc = {
        "name": "x",
        "algorithm": "PPO",
        "policy": "MlpPolicy",
        "hyperparams": {"default": {"learning_rate": 1e-3}},
    }
    return doc | changes


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: train("ppx", ENV, 10, p), ["agent='ppx' is unknown", "ppo", "sac"]),
        (lambda p: train("ppo", "closedloop/Nope-v0", 10, p), ["env_id='closedloop/Nope-v0'", ENV]),
        (lambda p: train("ppo", ENV, 0, p), ["total_steps=0", "[1, inf)"]),
        (lambda p: train("ppo", ENV, 10, p, seed=-1), ["seed=-1"]),
        (lambda p: train("ppo", ENV, 10, p, n_envs=0), ["n_envs=0"]),
        (
            lambda p: train("ppo", ENV, 10, p, hyperparams={"learnin_rate": 1}),
            ["learnin_rate", "valid:", "learning_rate"],
        ),
        (lambda p: train("ppo", ENV, 10, p, env_overrides={"episode_ss": 1}), ["episode_ss"]),
        (
            lambda p: parse_rl_spec(spec_doc(hyperparams={"default": {"n_stepz": 8}})),
            ["n_stepz", "n_steps"],
        ),
        (
            lambda p: parse_rl_spec(
                spec_doc(hyperparams={"default": {"policy_kwargs": {"net_archh": [8]}}})
            ),
            ["net_archh", "net_arch"],
        ),
        (lambda p: parse_rl_spec(spec_doc(gamma=0.9)), ["gamma", "hyperparams"]),
        (lambda p: parse_rl_spec(spec_doc(algorithm="DQN")), ["algorithm='DQN'", "'PPO', 'SAC'"]),
        (
            lambda p: parse_rl_spec(spec_doc(policy="LstmPolicy")),
            ["policy='LstmPolicy'", "MlpPolicy"],
        ),
        (
            lambda p: parse_rl_spec(spec_doc(hyperparams={"closedloop/Nope-v0": {}})),
            ["closedloop/Nope-v0", "default", ENV],
        ),
        (
            lambda p: parse_rl_spec(spec_doc(algorithm="SAC", normalize_reward=True)),
            ["normalize_reward"],
        ),
        (lambda p: parse_rl_spec(spec_doc(search={"lr": {"low": 1, "high": 2}})), ["lr"]),
        (lambda p: TrainOptions(eval_patients=0), ["eval_patients=0"]),
        (lambda p: train("ppo", ENV, 10, p, resume=True), ["resume=True", "no checkpoint"]),
    ],
)
def test_bad_input_names_the_key(make, words, tmp_path):
    with pytest.raises(ConfigError) as err:
        make(tmp_path)
    for word in words:
        assert word in str(err.value)


def test_cli_reports_bad_input(cli, tmp_path):
    code, _, err = cli("train", "--agent", "nope", "--steps", "10", "--out", str(tmp_path))
    assert code == 2 and "agent='nope' is unknown" in err
    code, _, err = cli("train", "--set", "n_steps", "--steps", "10", "--out", str(tmp_path))
    assert code == 2 and "KEY=VALUE" in err
    code, out, _ = cli("train", "--list")
    assert code == 0 and "ppo" in out and "SAC" in out


def test_shipped_specs_parse_and_a_missing_extra_is_named(monkeypatch):
    names = list_rl_agents()
    assert {"ppo", "sac", "td3", "recurrent-ppo"} <= set(names)
    for name in ("ppo", "sac", "td3"):
        assert load_rl_spec(name).name == name
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)
    with pytest.raises(ConfigError, match=r"sb3-contrib.*closedloop\[rl\]"):
        algorithm_class("RecurrentPPO")


def test_selection_by_time_in_window_or_by_the_return():
    from closedloop.training import TrainOptions
    from closedloop.training.validation import is_better

    a = {"time_in_window_frac": 0.90, "env_return": -50.0, "mad_uv": 3.0}
    b = {"time_in_window_frac": 0.85, "env_return": -20.0, "mad_uv": 3.0}
    tie = {**a, "mad_uv": 2.0}
    assert is_better(a, b) and not is_better(b, a)  # time in window by default
    assert is_better(b, a, "env_return") and not is_better(a, b, "env_return")
    assert is_better(tie, a) and is_better(tie, a, "time_in_window_frac")  # ties: lower mad
    assert is_better({"time_in_window_frac": float("nan")}, None)  # nothing yet
    assert not is_better({"time_in_window_frac": float("nan")}, b)  # NaN ranks last
    with pytest.raises(ConfigError, match="select_by='mad_uv' is unknown"):
        is_better(a, b, "mad_uv")
    with pytest.raises(ConfigError, match="select_by"):
        TrainOptions(select_by="mad_uv")
