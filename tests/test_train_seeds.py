"""``train --seeds``: one run folder per seed, locally or as Ray tasks, and the summary."""

import json
import math
import re

import numpy as np
import pytest
from scipy import stats

from closedloop._config import ConfigError
from closedloop.training import TrainOptions, load_trained
from closedloop.training.seeds import t_interval, train_seeds

ENV = "closedloop/ECAPTracking-v0"
KW = dict(
    n_envs=2,
    hyperparams={
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 2,
        "policy_kwargs": {"net_arch": [16]},
    },
    env_overrides={"episode_s": 12.0},
    options=TrainOptions(
        eval_every=256, eval_patients=1, checkpoint_every=256, progress=False, tensorboard=False
    ),
)


def _params(model_dir):
    policy = load_trained(model_dir).policy.policy
    return {k: v.numpy().copy() for k, v in policy.state_dict().items()}


@pytest.mark.slow  # minutes on 2 cores; pytest -m slow runs it
def test_seeds_on_ray_train_as_locally_and_are_summarised(local_ray, tmp_path):
    on_ray = train_seeds("ppo", ENV, 256, tmp_path / "ray", [0, 5], ray=True, progress=False, **KW)
    local = train_seeds("ppo", ENV, 256, tmp_path / "local", [0, 5], progress=False, **KW)
    assert sorted(on_ray.runs) == [0, 5]
    for seed in (0, 5):
        assert on_ray.runs[seed] == tmp_path / "ray" / f"seed-{seed}"
        a, b = _params(on_ray.runs[seed] / "final"), _params(local.runs[seed] / "final")
        assert all(np.array_equal(a[k], b[k]) for k in a)  # the same training, bit for bit
    a0, a5 = _params(on_ray.runs[0] / "final"), _params(on_ray.runs[5] / "final")
    assert not all(np.array_equal(a0[k], a5[k]) for k in a0)  # two seeds, two trainings
    doc = json.loads((tmp_path / "ray" / "seeds.json").read_text())
    assert doc["seeds"] == [0, 5]
    cards = [
        json.loads((on_ray.runs[s] / "best" / "card.json").read_text())["validation"]["metrics"]
        for s in (0, 5)
    ]
    tiw = doc["metrics"]["time_in_window_frac"]
    assert tiw["mean"] == pytest.approx(np.mean([c["time_in_window_frac"] for c in cards]))
    assert tiw["n"] == 2 and tiw["ci_low"] <= tiw["mean"] <= tiw["ci_high"]
    assert "| 95 % CI |" in (tmp_path / "ray" / "seeds.md").read_text()
    assert (tmp_path / "ray" / "learning_curves.png").stat().st_size > 10_000


def test_t_interval_matches_scipy():
    x = [0.61, 0.7, 0.55, 0.68]
    got = t_interval(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert got["ci_low"] == pytest.approx(lo) and got["ci_high"] == pytest.approx(hi)
    assert got["sd"] == pytest.approx(np.std(x, ddof=1))
    one = t_interval([0.5, math.nan])
    assert one["n"] == 1 and one["mean"] == 0.5 and math.isnan(one["ci_low"])


@pytest.mark.parametrize(
    "seeds, kwargs, message",
    [
        ([], {}, "seeds=[] is invalid"),
        ([0, 0], {}, "has duplicates"),
        ([0, -1], {}, "seeds[1]=-1"),
        ([0], {"workers": 0}, "workers=0 is invalid"),
        ([0], {"ray": 2}, "ray=2 is invalid"),
        ([0], {"seed": 3}, "neither seed="),
        ([0], {"n_env": 3}, "unknown argument(s) of train: n_env"),
        ([0], {"hyperparams": {"n_step": 64}}, "n_step"),
    ],
)
def test_bad_sweeps_are_refused_before_any_training(tmp_path, seeds, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        train_seeds("ppo", ENV, 256, tmp_path / "x", seeds, progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def test_cli_seed_options(cli, tmp_path):
    base = ["train", "--steps", "64", "--out", str(tmp_path / "x")]
    code, _, err = cli(*base, "--seed", "1", "--seeds", "0,1")
    assert code == 2 and "not allowed with argument" in err
    code, _, err = cli(*base, "--ray")
    assert code == 2 and "give --seeds" in err
    code, _, err = cli(*base, "--seeds", "0,x")
    assert code == 2 and "--seeds='0,x' must be a comma-separated list" in err
    assert not (tmp_path / "x").exists()


def test_cli_trains_several_seeds_and_prints_the_summary(cli, tmp_path):
    code, out, err = cli(
        "train", "--agent", "ppo", "--steps", "128", "--seeds", "1,2", "--workers", "2",
        "--out", str(tmp_path / "sweep"), "--n-envs", "2", "--set", "n_steps=64",
        "--set", "batch_size=64", "--set", "n_epochs=1", "--env-kw", "episode_s=12",
        "--eval-every", "128", "--eval-patients", "1", "--checkpoint-every", "128",
        "--no-progress", "--no-tensorboard",
    )  # fmt: skip
    assert code == 0, err
    assert "| 95 % CI |" in out and "| 1 | 128 |" in out and "| 2 | 128 |" in out
    for seed in (1, 2):
        card = json.loads((tmp_path / "sweep" / f"seed-{seed}" / "final" / "card.json").read_text())
        assert card["seed"] == seed and f"--seed {seed} " in card["command"]
    assert (tmp_path / "sweep" / "learning_curves.png").is_file()
