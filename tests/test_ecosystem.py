"""The ecosystem: the single-file PPO example, the optuna search, Gymnasium's ``closedloop:``
prefix, rl-baselines3-zoo's hyperparameter file, Minari datasets and the CLI's small
conveniences (``--version``, ``train --list``, ``tune --out``)."""

import copy
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from closedloop._config import ConfigError
from closedloop.patients import cohort as cohort_mod
from closedloop.patients.cohort import HeldOutError

ROOT = Path(__file__).resolve().parents[1]
ENV = "closedloop/ECAPTracking-v0"
TINY_RANGES = {
    "n_envs": 2,
    "search": {
        "learning_rate": {"low": 1e-4, "high": 1e-3, "log": True},
        "n_steps": {"choices": [32, 64]},
        "n_epochs": {"low": 1, "high": 2},
    },
}
EVAL_S = 11.0  # just past the 10 s calibration warm-up, so that some steps are scored


@pytest.fixture(scope="module")
def ppo_script():
    """``benchmarks/scripts/ppo_single_file.py`` imported as a module."""
    path = ROOT / "benchmarks" / "scripts" / "ppo_single_file.py"
    spec = importlib.util.spec_from_file_location("ppo_single_file", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


# -- single-file PPO ---------------------------------------------------------------------------
def test_single_file_ppo_trains_through_autoresets_and_evaluates(ppo_script, one_thread):
    args = ppo_script.Args(
        total_timesteps=256,
        num_envs=2,
        num_steps=64,
        num_minibatches=2,
        update_epochs=1,
        episode_s=0.5,
        patient="train-000",
        progress=False,
        eval_patients="validation-000",
        eval_episode_s=EVAL_S,
    )
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
    from closedloop.tuning.hpsearch import search

    touched = []
    real = cohort_mod._read
    monkeypatch.setattr(cohort_mod, "_read", lambda split: touched.append(split) or real(split))
    result = search(
        "ppo",
        ENV,
        2,
        128,
        TINY_RANGES,
        seed=0,
        eval_patients=1,
        env_overrides={"episode_s": 1.0},
        eval_overrides={"episode_s": EVAL_S},
        out_dir=tmp_path,
    )
    assert "test" not in touched and "validation" in touched
    assert result.eval_patients == ("validation-000",) and len(result.trials) == 2
    assert set(result.best_params) == set(TINY_RANGES["search"])
    assert 0.0 <= result.best_value <= 1.0
    best = tomllib.loads((tmp_path / "best.toml").read_text())["hyperparams"][ENV]
    assert best == pytest.approx(result.best_params)
    doc = json.loads((tmp_path / "trials.json").read_text())
    assert doc["objective"] == "time_in_window_frac" and len(doc["trials"]) == 2
    assert all(math.isfinite(t["metrics"]["mean_rel_error"]) for t in doc["trials"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"eval_split": "test"},
        {"env_overrides": {"split": "test", "episode_s": 1.0}},
        {"env_id": "closedloop/ECAPTracking-Test-v0"},
    ],
)
def test_hpsearch_never_touches_the_test_cohort(kwargs, one_thread, monkeypatch):
    pytest.importorskip("optuna")
    from closedloop.tuning.hpsearch import search

    touched = []
    real = cohort_mod._read
    monkeypatch.setattr(cohort_mod, "_read", lambda split: touched.append(split) or real(split))
    kwargs = {"env_id": ENV, **kwargs}
    with pytest.raises(HeldOutError, match="hpsearch"):
        search(
            "ppo",
            kwargs.pop("env_id"),
            1,
            64,
            TINY_RANGES,
            eval_patients=1,
            eval_overrides={"episode_s": EVAL_S},
            **kwargs,
        )
    assert "test" not in touched


@pytest.mark.parametrize(
    ("ranges", "match"),
    [
        ({"search": {"learning_rate": {"low": 1e-3, "high": 1e-4}}}, "low < high"),
        ({"search": {"ent_coef": {"low": 0.0, "high": 0.1, "log": True}}}, "low > 0"),
        ({"search": {"n_steps": {"choices": []}}}, "non-empty list"),
        ({"search": {"n_steps": {"values": [1]}}}, "keys low, high, log, choices"),
        ({"search": {"gamma": {"low": 0.9, "high": 0.99}}, "extra": 1}, "unknown key.*extra"),
        ({"search": {}}, "non-empty table"),
        ({"search": {"no_such_param": {"low": 0.1, "high": 1.0}}}, "no_such_param"),
        ({"algorithm": "SAC", "search": {"gamma": {"low": 0.9, "high": 0.99}}}, "algorithm='sac'"),
    ],
)
def test_hpsearch_rejects_malformed_ranges_by_name(ranges, match):
    from closedloop.tuning.hpsearch import check_space, load_ranges

    with pytest.raises(ConfigError, match=match):
        check_space("ppo", load_ranges(ranges))


def test_default_ranges_file_is_valid_for_ppo():
    from closedloop.cli.hpsearch import resolve_ranges
    from closedloop.tuning.hpsearch import check_space, load_ranges

    path = resolve_ranges("ppo", None)
    from closedloop._specdirs import spec_dir

    assert path == spec_dir("agents") / "rl" / "search-ranges-ppo.toml"
    space = load_ranges(path)
    check_space("ppo", space)
    assert {"learning_rate", "n_steps", "gamma"} <= set(space.ranges)
    with pytest.raises(ConfigError, match="no default ranges"):
        resolve_ranges("td3", None)


def test_missing_optuna_names_the_extra(monkeypatch):
    from closedloop.tuning.hpsearch import search

    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"closedloop\[rl\]"):
        search("ppo", ENV, 1, 64, TINY_RANGES)


def test_hpsearch_cli_parses_and_checks_its_arguments():
    import argparse

    from closedloop.cli import hpsearch as cli_hpsearch

    parser = argparse.ArgumentParser()
    cli_hpsearch.add_parsers(parser.add_subparsers())
    args = parser.parse_args(
        [
            "hpsearch",
            "--algo",
            "ppo",
            "--trials",
            "3",
            "--steps",
            "100",
            "--ranges",
            "search-ranges-ppo",
            "--eval-seeds",
            "x",
        ]
    )
    assert (args.trials, args.steps) == (3, 100)
    with pytest.raises(ConfigError, match="--eval-seeds"):
        args.run(args)
    with pytest.raises(ConfigError, match="no such file"):
        cli_hpsearch.resolve_ranges("ppo", "missing.toml")


def test_sb3_kwargs_converts_schedules_activations_and_caps_the_batch():
    pytest.importorskip("torch")
    from closedloop.training.sb3_args import sb3_kwargs
    from closedloop.tuning.hpsearch_trial import rollout_size

    hp = {
        "batch_size": 256,
        "n_steps": 16,
        "learning_rate": "lin_1e-3",
        "train_freq": [4, "step"],
        "policy_kwargs": {"activation_fn": "relu"},
    }
    assert rollout_size("ppo", hp, 4) == 64 and rollout_size("sac", hp, 4) is None
    kw = sb3_kwargs(hp, rollout_size=rollout_size("ppo", hp, 4))
    assert kw["batch_size"] == 64 and kw["learning_rate"](0.5) == pytest.approx(5e-4)
    assert kw["learning_rate"](1.0) == pytest.approx(1e-3) and kw["train_freq"] == (4, "step")
    assert kw["policy_kwargs"]["activation_fn"].__name__ == "ReLU"
    assert sb3_kwargs(hp)["batch_size"] == 256  # no rollout size: not capped
    noise = sb3_kwargs({"action_noise_sigma": 0.2}, n_actions=2)["action_noise"]
    assert noise._sigma.tolist() == [0.2, 0.2] and "action_noise_sigma" not in sb3_kwargs({})
    assert sb3_kwargs({}) == {}
    with pytest.raises(ConfigError, match="activation_fn='swish'"):
        sb3_kwargs({"policy_kwargs": {"activation_fn": "swish"}})
    for bad in ("fast", "lin_x", "lin_nan"):
        with pytest.raises(ConfigError, match="lin_<number>"):
            sb3_kwargs({"learning_rate": bad})


# -- Gymnasium's module:id form -------------------------------------------------------------------
PREFIX_SCRIPT = """
import json, sys
import gymnasium as gym
try:
    gym.make("closedloop/ECAPTracking-v0")
    unprefixed = "made"
except gym.error.Error as exc:
    unprefixed = type(exc).__name__
before = "closedloop" in sys.modules
env = gym.make("closedloop:closedloop/ECAPTracking-v0", episode_s=0.2, patient="validation-000")
obs, info = env.reset(seed=0)
obs2, reward, terminated, truncated, info2 = env.step(env.action_space.sample())
venv = gym.make_vec("closedloop:closedloop/ECAPTracking-v0", num_envs=2,
                    vectorization_mode="vector_entry_point", episode_s=0.2)
vobs, _ = venv.reset(seed=0)
print(json.dumps({"unprefixed": unprefixed, "before": before, "after": "closedloop" in sys.modules,
                  "id": env.spec.id, "obs": len(obs2), "reward": reward,
                  "patient": info2["patient_id"], "vec": [type(venv).__name__, *vobs.shape]}))
"""


def test_closedloop_prefix_finds_the_ids_in_a_fresh_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", PREFIX_SCRIPT],
        cwd=tmp_path,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["unprefixed"] == "NamespaceNotFound"  # without the prefix or an import
    assert got["before"] is False and got["after"] is True
    assert got["id"] == ENV and got["obs"] == 13 and math.isfinite(got["reward"])
    assert got["patient"] == "validation-000" and got["vec"] == ["ECAPVectorEnv", 2, 13]


def _child_env() -> dict:
    """The environment of a child Python: this checkout first on the path, one torch thread."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


# -- info: the same keys at reset and every step; Minari ------------------------------------------
def _types(info: dict) -> dict:
    return {k: type(v) for k, v in info.items()}


@pytest.mark.parametrize("env_id", sorted(__import__("closedloop").register_suite()))
def test_reset_and_step_info_have_the_same_keys_and_types(env_id):
    import gymnasium as gym

    env = gym.make(env_id, episode_s=0.2, patient="validation-000")
    _, first = env.reset(seed=1)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert type(first) is dict and type(info) is dict  # pytree libraries need plain dicts
    assert _types(first) == _types(info)
    from closedloop.envs.step_info import (
        EPISODE_KEYS,
        PULSE_INFO_KEYS,
        PW_RATE_INFO_KEYS,
        STEP_KEYS,
    )

    cfg = env.unwrapped.spec_.config
    extra = (PULSE_INFO_KEYS if cfg.pulses_per_step > 1 else ()) + (
        PW_RATE_INFO_KEYS if cfg.control_pw_rate else ()
    )
    assert list(info) == [*STEP_KEYS, *EPISODE_KEYS, *extra]  # the one list, in order
    base = env.unwrapped
    for one in (first, info):
        assert one["posture"] == base.posture_names[one["posture_code"]]
        assert 0 <= one["event"] < len(base.event_names)
        assert one["patient_id"] == "validation-000" and one["target_uv"] == base.target_uv
    assert math.isnan(first["ecap_true_uv"]) and math.isnan(first["charge_uc"])
    assert not (first["in_window"] or first["overstim"] or first["understim"])
    assert first["current_ma"] == first["comfort_ma"] == base.calibration.comfort_ma
    assert first["device_flags"] == 0 and not any(first["device_limits"].values())
    assert first["csf_mm"] == base.trace.csf_mm[0] and math.isfinite(info["ecap_true_uv"])


def test_device_limits_count_so_far_at_every_step():
    import gymnasium as gym

    from closedloop.device import LIMIT_FLAGS

    env = gym.make(ENV, action_mode="absolute", episode_s=0.3, patient="default")
    _, reset_info = env.reset(seed=0)
    infos, truncated = [], False
    while not truncated:  # the clinician maximum: the slew limit acts
        _, _, _, truncated, info = env.step(np.array([1.0], np.float32))
        infos.append(info)
    assert all(i.keys() == reset_info.keys() for i in infos)
    for k, info in enumerate(infos):
        for name, bit in LIMIT_FLAGS.items():
            assert info["device_limits"][name] == sum(
                bool(i["device_flags"] & bit) for i in infos[: k + 1]
            ), (k, name)
    assert infos[-1]["device_limits"]["slew"] > 0
    dup = copy.deepcopy(infos[-1])
    assert dup == infos[-1] and dup["device_limits"] is not infos[-1]["device_limits"]
    infos[0]["device_limits"]["slew"] = -1  # each step's counts are its own
    assert infos[1]["device_limits"]["slew"] >= 0


@pytest.mark.filterwarnings("ignore:`.*` is set to None:UserWarning")  # metadata
def test_minari_records_and_reloads_the_infos(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    pytest.importorskip("jax")  # Minari's DataCollector stacks steps with jax
    import gymnasium as gym

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = minari.DataCollector(
        gym.make(ENV, episode_s=0.3, patient="validation-001"), record_infos=True
    )
    seen = []
    for seed in (0, 1):
        seen.append([env.reset(seed=seed)[1]])
        truncated = False
        while not truncated:
            _, _, _, truncated, info = env.step(env.action_space.sample())
            seen[-1].append(info)
    env.create_dataset("closedloop/tracking/random-v0", algorithm_name="random", description="test")
    env.close()
    episodes = list(minari.load_dataset("closedloop/tracking/random-v0").iterate_episodes())
    assert len(episodes) == 2
    for ep, want in zip(episodes, seen, strict=True):
        n = len(want)  # the reset and every step (16 at 50 Hz)
        assert n == 16 and ep.observations.shape == (n, 13) and ep.actions.shape == (n - 1, 1)
        assert set(ep.infos) == set(want[0])
        for key in ("ecap_true_uv", "current_ma", "posture_code", "event", "in_window"):
            np.testing.assert_array_equal(ep.infos[key], [i[key] for i in want])
        assert ep.infos["posture_code"].dtype.kind == "i" and math.isnan(ep.infos["sensation"][0])
        assert ep.infos["device_limits"]["slew"].tolist() == [
            i["device_limits"]["slew"] for i in want
        ]
        assert {p.decode() if isinstance(p, bytes) else p for p in ep.infos["patient_id"]} == {
            "validation-001"
        }


# -- rl-baselines3-zoo ----------------------------------------------------------------------------
ZOO_CONF = ROOT / "agents" / "rl" / "rl_zoo3.yml"
ZOO_KEYS = {
    "learning_rate",
    "n_steps",
    "batch_size",
    "n_epochs",
    "gamma",
    "gae_lambda",
    "clip_range",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
}


def _zoo_conf() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(ZOO_CONF.read_text())


def test_zoo_hyperparameters_are_ppo_toml_for_every_training_id():
    from closedloop.envs.config import load_suite
    from closedloop.training import load_rl_spec

    conf = _zoo_conf()
    assert set(conf) == {i for i in load_suite() if "-Test-" not in i}  # never the test ids
    spec = load_rl_spec("ppo")
    for env_id, hp in conf.items():
        want = spec.hyperparams_for(env_id)
        assert {k: hp[k] for k in ZOO_KEYS} == {k: want[k] for k in ZOO_KEYS}, env_id
        assert hp["n_envs"] == spec.n_envs and hp["policy"] == spec.policy
        assert hp["normalize"] == {
            "norm_obs": spec.normalize_obs,
            "norm_reward": spec.normalize_reward,
            "clip_obs": 10.0,
        }
        kw = want["policy_kwargs"]
        assert hp["policy_kwargs"] == (
            f"dict(net_arch={kw['net_arch']}, activation_fn="
            f"nn.{kw['activation_fn'].title()}, "
            f"log_std_init={kw['log_std_init']})"
        )


def _zoo(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    pytest.importorskip("rl_zoo3")
    cmd = [
        sys.executable,
        "-m",
        "rl_zoo3.train",
        "--algo",
        "ppo",
        "--env",
        ENV,
        "--gym-packages",
        "closedloop",
        "-conf",
        str(ZOO_CONF),
        "--seed",
        "0",
        "-f",
        "logs",
        *argv,
    ]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=_child_env(), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_zoo_trains_with_our_hyperparameter_file(tmp_path):
    yaml = pytest.importorskip("yaml")
    proc = _zoo(tmp_path, "-n", "256", "--eval-freq", "-1")
    run = tmp_path / "logs" / "ppo" / "closedloop-ECAPTracking-v0_1"
    saved = yaml.unsafe_load((run / "closedloop-ECAPTracking-v0" / "config.yml").read_text())
    want = _zoo_conf()[ENV]
    assert {k: saved[k] for k in ZOO_KEYS | {"n_envs", "policy"}} == {
        k: want[k] for k in ZOO_KEYS | {"n_envs", "policy"}
    }
    assert saved["normalize"] == {**want["normalize"], "gamma": want["gamma"]}
    assert "Using 8 environments" in proc.stdout
    assert (run / "closedloop-ECAPTracking-v0.zip").is_file()


@pytest.mark.slow
def test_zoo_optimize_writes_its_report(tmp_path):
    pytest.importorskip("pandas")  # the report of -optimize is a pandas data frame
    _zoo(
        tmp_path,
        "-optimize",
        "--n-trials",
        "1",
        "-n",
        "2048",
        "--n-jobs",
        "1",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--n-evaluations",
        "1",
        "--eval-episodes",
        "1",
        "--env-kwargs",
        "episode_s:2.0",
    )
    assert list((tmp_path / "logs" / "ppo").glob("report_closedloop-ECAPTracking-v0_*.csv"))


# -- CLI: --version, train --list, tune --out ------------------------------------------------------
def test_version_prints_the_package_version(cli):
    import closedloop

    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"closedloop {closedloop.__version__}"


def test_train_list_shows_agents_not_search_ranges(cli):
    from closedloop._specdirs import spec_dir
    from closedloop.training import list_rl_agents, load_rl_spec

    code, out, _ = cli("train", "--list")
    listed = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert code == 0 and {"ppo", "sac", "td3"} <= set(listed)
    assert not [n for n in listed if n.startswith("search-ranges")]
    assert "search-ranges-ppo" not in list_rl_agents()
    with pytest.raises(ConfigError, match="search-ranges-ppo.*is unknown; valid: ppo"):
        load_rl_spec("search-ranges-ppo")
    # By path it is still a valid spec (closedloop hpsearch --ranges reads it).
    assert load_rl_spec(spec_dir("agents") / "rl" / "search-ranges-ppo.toml").algorithm == "PPO"


def test_tune_out_writes_the_file_and_name_the_user_gave(tmp_path, monkeypatch, cli):
    import closedloop.tuning.controller as controller
    from closedloop.controllers.sources import resolve_controller

    def fake_grid(controllers, env_ids, patients, seeds, **kwargs):  # no episodes: J of the gain
        (factory,) = controllers.values()
        return [
            {
                "mean_rel_error": abs(math.log(factory.args[1]["kp_ma_per_uv"] / 0.01)),
                "time_above_discomfort_frac": 0.0,
                "time_below_perception_frac": 0.0,
            }
        ]

    monkeypatch.setattr(controller, "run_grid", fake_grid)  # where tune looks it up
    out = tmp_path / "mine" / "my-pid.toml"
    code, _, err = cli(
        "tune", "pid", "--budget", "3", "--patients", "1", "--workers", "1", "--out", str(out)
    )
    assert code == 0 and f"wrote {out}" in err
    assert [p.name for p in out.parent.iterdir()] == ["my-pid.toml"]
    doc = tomllib.loads(out.read_text())
    assert doc["name"] == "my-pid" and doc["controller"] == "pid"
    assert resolve_controller(str(out))[0] == "my-pid"  # its leaderboard label
