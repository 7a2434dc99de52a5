"""The committed agent zoo: cards complete, policies load as controllers and play the benchmark."""

import json

import pytest

from closedloop.benchmark import DEFAULT, Suite, controllers_of, run_benchmark, zoo_policies

pytest.importorskip("stable_baselines3")
CARD_KEYS = {"env", "algorithm", "hyperparameters", "training", "validation", "packages", "command"}


def test_zoo_has_ppo_and_sac_with_complete_cards():
    zoo = zoo_policies()
    assert {"ppo-tracking", "sac-tracking"} <= set(zoo)
    for name, folder in zoo.items():
        card = json.loads((folder / "card.json").read_text())
        assert set(card) >= CARD_KEYS, name
        assert card["env"]["id"] == "closedloop/ECAPTracking-v0"
        assert card["training"]["steps"] > 0 and card["training"]["wall_clock_s"] > 0
        assert 0.0 <= card["validation"]["metrics"]["time_in_window_frac"] <= 1.0
        assert card["command"].startswith("closedloop train ")
        assert (folder / "model.zip").is_file() and (folder / "obs_norm.json").is_file()
    assert (next(iter(zoo.values())).parent / "learning_curves.png").is_file()


def test_the_default_benchmark_includes_the_zoo():
    assert set(zoo_policies()) <= set(controllers_of(DEFAULT))


def test_zoo_policies_play_through_the_benchmark(tmp_path):
    suite = Suite(
        name="zoo-short",
        controllers=("open-loop", *sorted(zoo_policies())),
        env_ids=("closedloop/ECAPTracking-Test-v0",),
        n_patients=1,
        seeds=(0,),
        env_overrides=(("episode_s", 20.0),),
    )
    report = run_benchmark(suite, tmp_path / "run", workers=1, progress=False, plots=False)
    rows = json.loads(report.paths["results.json"].read_text())["rows"]
    assert {r["controller"] for r in rows} == {"open-loop", *zoo_policies()}
    assert all(r["n_steps"] == 1000 for r in rows)
