"""Bad input to training and hyperparameter search: a ConfigError naming it, before anything runs.

Every case here used to reach stable-baselines3, torch or optuna (a raw ``ValueError``,
``AssertionError``, ``TypeError`` or ``KeyError``), or to fail only after training had finished.
"""

import math

import pytest

from closedloop._config import ConfigError
from closedloop.training import hyperparams as rules
from closedloop.training.spec import check_hyperparams, load_rl_spec, parse_rl_spec

pytest.importorskip("stable_baselines3")

ENV = "closedloop/ECAPTracking-v0"

BAD_HYPERPARAMS = [
    ("PPO", {"learning_rate": -1}, r"learning_rate=-1 is invalid; valid: a number in \(0, 1\]"),
    ("PPO", {"learning_rate": "lin_-1"}, "learning_rate='lin_-1'"),
    ("PPO", {"learning_rate": "fast"}, "lin_<number>"),
    ("PPO", {"n_steps": 0}, r"n_steps=0 is invalid; valid: an integer in \[1, "),
    ("PPO", {"n_steps": True}, "n_steps=True"),
    ("PPO", {"batch_size": "abc"}, r"batch_size='abc' is invalid; valid: an integer in \[2, "),
    ("PPO", {"batch_size": 1}, "batch_size=1"),
    ("PPO", {"n_epochs": 2.5}, "n_epochs=2.5 is invalid; valid: an integer"),
    ("PPO", {"gamma": math.nan}, r"gamma=nan is invalid; valid: a finite number in \[0, 1\]"),
    ("PPO", {"gamma": 1.5}, "gamma=1.5"),
    ("PPO", {"ent_coef": "auto"}, "ent_coef='auto'"),
    ("PPO", {"max_grad_norm": math.inf}, "max_grad_norm=inf"),
    ("PPO", {"clip_range": 0.0}, "clip_range=0.0"),
    ("PPO", {"foo": 1}, "unknown hyperparameter.*foo.*valid: batch_size"),
    ("PPO", {"policy_kwargs": [64]}, "policy_kwargs=.64. is invalid; valid: a table"),
    ("PPO", {"policy_kwargs": {"net_arch": [0]}}, r"policy_kwargs.net_arch=\[0\]"),
    ("PPO", {"policy_kwargs": {"net_arch": [64.5]}}, "net_arch"),
    ("PPO", {"policy_kwargs": {"net_arch": [8] * 17}}, "at most 16"),
    ("PPO", {"policy_kwargs": {"net_arch": {"pi": [8], "qf": [8]}}}, "unknown key.*qf.*pi, vf"),
    ("PPO", {"policy_kwargs": {"activation_fn": "sigmoid"}}, "activation_fn='sigmoid'.*tanh"),
    ("PPO", {"policy_kwargs": {"log_std_init": "a"}}, "log_std_init='a'"),
    ("PPO", {"policy_kwargs": {"lstm_hidden_size": 8}}, "unknown policy_kwargs.*lstm_hidden"),
    ("PPO", {"policy_kwargs": {"squash_output": True}}, "squash_output=true needs use_sde"),
    ("SAC", {"ent_coef": "auto_-1"}, "ent_coef='auto_-1'"),
    ("SAC", {"gradient_steps": 0}, r"gradient_steps=0 is invalid.*or -1"),
    ("SAC", {"train_freq": [1, "x"]}, "train_freq"),
    ("SAC", {"train_freq": 0}, "train_freq=0"),
    ("SAC", {"tau": 0.0}, "tau=0.0"),
    ("SAC", {"buffer_size": 10**12}, r"buffer_size=\d+ is invalid; valid: an integer in \[1, "),
    ("TD3", {"action_noise_sigma": math.inf}, "action_noise_sigma=inf"),
    ("TD3", {"policy_delay": 0}, "policy_delay=0"),
    ("TD3", {"n_epochs": 3}, "unknown hyperparameter.*n_epochs"),
    ("RecurrentPPO", {"policy_kwargs": {"lstm_hidden_size": 0}}, "lstm_hidden_size=0"),
    ("RecurrentPPO", {"policy_kwargs": {"shared_lstm": True}}, "enable_critic_lstm=false"),
]


@pytest.mark.parametrize(("algorithm", "hp", "match"), BAD_HYPERPARAMS)
def test_bad_hyperparameters_are_named_with_their_valid_range(algorithm, hp, match):
    pytest.importorskip("sb3_contrib")
    policy = "MlpLstmPolicy" if algorithm == "RecurrentPPO" else "MlpPolicy"
    with pytest.raises(ConfigError, match=match):
        check_hyperparams(algorithm, policy, hp, "test")


@pytest.mark.parametrize(
    ("algorithm", "hp"),
    [
        (
            "PPO",
            {
                "learning_rate": "lin_3e-4",
                "clip_range": "lin_0.2",
                "n_steps": 1,
                "policy_kwargs": {"net_arch": {"pi": [32], "vf": [32, 32]}},
            },
        ),
        (
            "SAC",
            {
                "ent_coef": "auto_0.1",
                "train_freq": [4, "episode"],
                "gradient_steps": -1,
                "target_entropy": -1.5,
                "policy_kwargs": {"net_arch": {"pi": [8], "qf": [8]}},
            },
        ),
        ("TD3", {"train_freq": 2, "action_noise_sigma": 0.0, "learning_rate": 1}),
    ],
)
def test_valid_hyperparameters_pass(algorithm, hp):
    check_hyperparams(algorithm, "MlpPolicy", hp, "test")


def test_every_shipped_rl_spec_passes_its_declared_ranges():
    pytest.importorskip("sb3_contrib")
    from closedloop.training import list_rl_agents

    for name in list_rl_agents():
        spec = load_rl_spec(name)
        for section in spec.hyperparams:
            env = ENV if section == "default" else section
            spec.hyperparams_for(env)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"n_envs": 2.5}, "n_envs=2.5 must be an integer"),
        ({"normalize_obs": 1}, "normalize_obs=1 must be true or false"),
        ({"search": "abc"}, r"\[search\] must be a table"),
        ({"search": {"n_epochs": {"low": 2.5, "high": 9}}}, r"n_epochs.low=2.5 is invalid"),
        ({"search": {"gamma": {"choices": [0.9, 2.0]}}}, r"gamma.choices\[1\]=2.0"),
        ({"search": {"gamma": {"low": 0.9, "high": 0.99, "log": "yes"}}}, "log='yes'"),
        (
            {"search": {"policy_kwargs.net_arch": {"low": 1, "high": 2}}},
            "needs low and high .or choices",
        ),
        ({"hyperparams": {"default": {"batch_size": "abc"}}}, "batch_size='abc'"),
        (
            {"search": {"policy_kwargs.net_arch": {"choices": [[64, 64]]}}},
            "optuna cannot search list values",
        ),
    ],
)
def test_bad_spec_files_are_named(doc, match):
    with pytest.raises(ConfigError, match=match):
        parse_rl_spec({"name": "x", "algorithm": "PPO", **doc}, "x.toml")


def test_rules_cover_every_key_the_specs_may_set():
    from closedloop.training.spec import valid_hyperparams, valid_policy_kwargs

    for algorithm, policy in (("PPO", "MlpPolicy"), ("SAC", "MlpPolicy"), ("TD3", "MlpPolicy")):
        for key in valid_hyperparams(algorithm):
            assert rules.rule_for(key, algorithm == "PPO").text()
        for key in valid_policy_kwargs(algorithm, policy):
            assert rules.POLICY_KWARGS[key].text()
    assert "use_sde" not in valid_policy_kwargs("PPO", "MlpPolicy")  # set by the algorithm


# -- train(): the whole run is checked before any folder or env is made ------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"env_id": "CartPole-v1"}, "CartPole-v1.*not a closedloop env id; valid: closedloop/"),
        ({"hyperparams": {"learning_rate": -1}}, "learning_rate=-1"),
        ({"hyperparams": {"n_steps": 0}}, "n_steps=0"),
        ({"hyperparams": {"batch_size": "abc"}}, "batch_size='abc'"),
        ({"hyperparams": "abc"}, "hyperparams='abc' must be a table"),
        ({"env_overrides": [1]}, r"env_overrides=\[1\] must be a table"),
        ({"n_envs": 10**8}, r"n_envs=100000000 is out of range; valid range \[1, 4096\]"),
        ({"n_envs": 2.5}, "n_envs=2.5 must be an integer"),
        ({"n_envs": 1, "hyperparams": {"n_steps": 1}}, "rollout of 1 step"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": 2**40}, "seed=1099511627776 is out of range"),
        ({"total_steps": 0}, r"total_steps=0 is out of range"),
        ({"total_steps": 10**15}, "total_steps=1000000000000000"),
        ({"options": {"eval_every": 5}}, "options=.* must be a TrainOptions"),
        (
            {"env_overrides": {"episode_s": 5.0}},
            r"evaluation episodes of 5 s are too short.*10 s warm-up.*>= 10.04 s",
        ),
    ],
)
def test_train_refuses_bad_input_before_it_starts(tmp_path, kwargs, match):
    from closedloop.training import train

    args = {"agent": "ppo", "env_id": ENV, "total_steps": 64, "out_dir": tmp_path / "run", **kwargs}
    with pytest.raises(ConfigError, match=match):
        train(**args)
    assert not (tmp_path / "run").exists()


def test_train_refuses_validation_episodes_shorter_than_the_warm_up(tmp_path):
    from closedloop.training import TrainOptions, train

    opts = TrainOptions(eval_episode_s=10.02, eval_patients=1)
    with pytest.raises(ConfigError, match="eval_episode_s.* >= 10.04 s"):
        train("ppo", ENV, 64, tmp_path / "run", options=opts)
    with pytest.raises(ConfigError, match="options.eval_every=2.5 must be an integer"):
        train("ppo", ENV, 64, tmp_path / "run", options=TrainOptions(eval_every=2.5))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("env_id", [ENV, "closedloop/ECAPHighRate-v0"])
def test_the_minimum_episode_is_exactly_what_scoring_needs(env_id):
    """At the stated minimum an evaluation episode scores; one step less is refused."""
    import re

    from closedloop.controllers.registry import make_controller
    from closedloop.envs.config import load_suite
    from closedloop.evaluation.episode_runner import run_episode
    from closedloop.training.inputs import check_eval_episode

    with pytest.raises(ConfigError, match=">=") as info:
        check_eval_episode(env_id, {"episode_s": 1.0}, 0.0, 1)
    need = float(re.search(r">= ([0-9.]+) s", str(info.value)).group(1))
    cfg = load_suite()[env_id].config
    step_s = cfg.pulses_per_step / cfg.rate_hz
    check_eval_episode(env_id, {"episode_s": need}, 0.0, 1)
    with pytest.raises(ConfigError):
        check_eval_episode(env_id, {"episode_s": need - step_s}, 0.0, 1)
    result = run_episode(make_controller("pid"), env_id, "validation-000", 0, {"episode_s": need})
    assert result.metrics["n_pulses"] >= 2


# -- hpsearch: every argument checked before optuna runs a trial ------------------------------
TINY = {"search": {"learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}}}


@pytest.fixture
def no_trials(monkeypatch):
    """Make any trial fail the test: the checks must come first."""
    import closedloop.tuning.hpsearch as hp

    def ran(*args, **kwargs):
        raise AssertionError("a trial ran")

    monkeypatch.setattr(hp, "train_trial", ran)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, r"seed=-1 is out of range; valid: an integer in \[0, "),
        ({"seed": 1.5}, "seed=1.5"),
        ({"n_trials": 0}, "n_trials=0"),
        ({"n_trials": 10**9}, "n_trials=1000000000"),
        ({"steps_per_trial": 0}, "steps_per_trial=0"),
        ({"eval_patients": 1000}, r"eval_patients=1000 is out of range; valid range \[1, 20\]"),
        ({"eval_seeds": (-1,)}, "eval_seeds=.-1,."),
        ({"eval_seeds": ()}, "eval_seeds=()"),
        ({"eval_seeds": (0, 0)}, r"eval_seeds=\(0, 0\) is invalid; valid: .* distinct"),
        ({"eval_split": "nope"}, "eval_split='nope'"),
        ({"env_id": "CartPole-v1"}, "CartPole-v1.*not a closedloop env id"),
        ({"env_overrides": {"episode_s": math.nan}}, "episode_s=nan"),
        ({"env_overrides": "abc"}, "env_overrides='abc' must be a table"),
        ({"eval_overrides": {"episode_s": 5.0}}, "too short.*>= 10.04 s"),
        ({"storage": "foo://nowhere"}, "storage='foo://nowhere' is invalid; valid: None"),
        ({"storage": 5}, "storage=5 is invalid"),
        ({"study_name": ""}, "study_name=''"),
        ({"ranges": {"search": {"n_epochs": {"low": 2.5, "high": 9.5}}}}, "n_epochs.low=2.5"),
        ({"ranges": {"search": {"n_steps": {"choices": [0, 64]}}}}, r"choices\[0\]=0"),
        ({"ranges": {"n_envs": 10**6, **TINY}}, "n_envs=1000000"),
        ({"ranges": {"hyperparams": {"default": {"gamma": 2}}, **TINY}}, "gamma=2"),
    ],
)
def test_hpsearch_refuses_bad_input_before_any_trial(no_trials, kwargs, match):
    pytest.importorskip("optuna")
    from closedloop.tuning.hpsearch import search

    args = {
        "agent_algo": "ppo",
        "env_id": ENV,
        "n_trials": 1,
        "steps_per_trial": 64,
        "ranges": TINY,
        "eval_patients": 1,
        **kwargs,
    }
    with pytest.raises(ConfigError, match=match):
        search(**args)


def test_hpsearch_opens_its_storage_before_any_trial(tmp_path, no_trials):
    pytest.importorskip("optuna")
    from closedloop.tuning.hpsearch import search

    url = f"sqlite:///{tmp_path}/missing/folder/hp.db"
    with pytest.raises(ConfigError, match="opening it failed"):
        search("ppo", ENV, 1, 64, TINY, storage=url, eval_patients=1)
    with pytest.raises(ConfigError, match="out_dir=.* cannot be created"):
        (tmp_path / "file").write_text("")
        search("ppo", ENV, 1, 64, TINY, out_dir=tmp_path / "file" / "out", eval_patients=1)


def test_integer_hyperparameters_are_drawn_as_integers():
    from closedloop.tuning.hpsearch_trial import sample

    class Trial:
        def suggest_int(self, key, low, high, log=False):
            return ("int", low, high)

        def suggest_float(self, key, low, high, log=False):
            return ("float", low, high)

    ranges = {"n_epochs": {"low": 3, "high": 9}, "max_grad_norm": {"low": 1, "high": 5}}
    drawn = sample(Trial(), ranges, "ppo")
    assert drawn == {"n_epochs": ("int", 3, 9), "max_grad_norm": ("float", 1.0, 5.0)}


# -- the CLI gives exit status 2 and the API's message -----------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--env", "CartPole-v1"],
        ["train", "--set", "learning_rate=-1"],
        ["train", "--set", "n_steps=0"],
        ["train", "--set", "batch_size=abc"],
        ["train", "--set", "n_epochs=2.5"],
        ["train", "--set", "gamma=nan"],
        ["train", "--n-envs", "0"],
        ["train", "--n-envs", "100000000"],
        ["train", "--seed", "-1"],
        ["train", "--eval-every", "-5"],
        ["train", "--max-wall-s", "nan"],
        ["train", "--eval-episode-s", "inf"],
        ["train", "--env-kw", "episode_s=5"],
        ["hpsearch", "--seed", "-1"],
        ["hpsearch", "--storage", "foo://nowhere"],
        ["hpsearch", "--trials", "0"],
        ["hpsearch", "--steps", "-1"],
        ["hpsearch", "--threads", "100000"],
        ["hpsearch", "--episode-s", "nan"],
        ["hpsearch", "--eval-episode-s", "inf"],
        ["hpsearch", "--eval-patients", "1000"],
    ],
)
def test_cli_exits_2_naming_the_bad_option(cli, tmp_path, no_trials, argv):
    pytest.importorskip("optuna")
    name = argv[1].lstrip("-").replace("-", "_")
    if argv[0] == "train":
        argv = [*argv, "--steps", "64", "--out", str(tmp_path / "run"), "--no-progress"]
    code, _, err = cli(*argv)
    assert code == 2, err
    key = argv[2].partition("=")[0] if argv[1] in ("--set", "--env-kw") else name
    renamed = {"env": "env_id", "trials": "n_trials", "steps": "steps_per_trial"}
    if argv[0] == "hpsearch":  # CLI-only options: named as on the command line
        renamed |= {"episode_s": "--episode-s", "eval_episode_s": "--eval-episode-s"}
    key = renamed.get(key, key)
    assert key in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_spec_built_in_python_is_checked_too(tmp_path):
    from closedloop.training import RLAgentSpec, train

    for kwargs, match in (
        ({"hyperparams": "abc"}, "hyperparams must be a table"),
        ({"hyperparams": {"default": 5}}, "must be a table"),
        ({"search": 3}, "search=3 must be a table"),
    ):
        with pytest.raises(ConfigError, match=match):
            RLAgentSpec(name="x", **kwargs)
    spec = RLAgentSpec(name="x", hyperparams={"default": {"learning_rate": -1}})
    with pytest.raises(ConfigError, match="learning_rate=-1"):
        train(spec, ENV, 64, tmp_path / "run")
    assert not (tmp_path / "run").exists()
