"""run_episodes equals run_episode episode by episode, bit for bit (a batched controller through
predict_many, any other one instance per episode), and checks its inputs."""

import pytest
from _identity import differences, same

from closedloop import ConfigError
from closedloop.controllers import PID, PIDParams
from closedloop.controllers.registry import make_controller
from closedloop.evaluation.batch_runner import run_episodes
from closedloop.evaluation.episode_runner import run_episode

EPISODES = [(f"test-00{i}", seed) for i in (1, 2, 3) for seed in (0, 7)]
SHORT = {"episode_s": 14.0}  # a few seconds scored after the calibration's warm-up


@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        ("closedloop/ECAPTracking-Test-v0", SHORT),
        ("closedloop/ECAPClinic-Test-v0", SHORT),
        ("closedloop/ECAPHighRate-v0", SHORT),  # 20 pulses per step
    ],
)
@pytest.mark.parametrize("controller", ["open-loop", "clinical-loop", "pid"])
def test_run_episodes_equals_run_episode_bit_for_bit(env_id, overrides, controller):
    _assert_identical(controller, env_id, overrides)


@pytest.mark.parametrize(
    ("controller", "batched"),
    [
        ("ceiling", True),
        ("clinical-loop-log", True),
        ("p", True),
        ("pi", True),
        ("adaptive-inverse", True),
        ("mpc", True),
    ],
)
def test_every_batched_law_and_the_per_instance_path_equal_run_episode(controller, batched):
    assert getattr(make_controller(controller), "batch_ready", False) is batched
    _assert_identical(controller, "closedloop/ECAPClinic-Test-v0", SHORT)


def _assert_identical(controller, env_id, overrides):
    """run_episodes on EPISODES equals run_episode episode by episode, bit for bit."""
    got = run_episodes(lambda: make_controller(controller), env_id, EPISODES, overrides)
    ref = [run_episode(make_controller(controller), env_id, p, s, overrides) for p, s in EPISODES]
    assert [(r.patient, r.seed) for r in got] == EPISODES
    for g, r in zip(got, ref, strict=True):
        assert differences(g, r) == [], (g.patient, g.seed)
        assert g.n_steps > 0 and g.wall_s > 0
    # The patients' episodes differ, so equality above is not a coincidence. (Two seeds of one
    # patient may not: an open loop on an env without random disturbances reads no draw.)
    assert len({r.metrics["mad_uv"] for r in got}) >= len({p for p, _ in EPISODES})


class _Halved(PID):
    """Overrides current_ma, so it is not batch_ready: one instance per episode."""

    name = "halved-pid"

    def current_ma(self, obs):
        return 0.5 * super().current_ma(obs)


def test_a_batched_controller_is_made_once_and_plays_every_episode():
    made = []

    def factory():
        made.append(make_controller("pid"))
        return made[-1]

    got = run_episodes(factory, "closedloop/ECAPTracking-Test-v0", EPISODES[:3], SHORT, name="mine")
    assert len(made) == 1 and made[0].batch_ready
    assert made[0].steps.tolist() == [r.n_steps for r in got]  # one row per episode
    assert {r.controller for r in got} == {"mine"}


def test_a_controller_without_predict_many_gets_its_own_instance_per_episode():
    made = []

    def factory():
        made.append(_Halved(PIDParams(ki_ma_per_uv_s=0.5)))
        return made[-1]

    env_id, episodes = "closedloop/ECAPTracking-Test-v0", EPISODES[:3]
    got = run_episodes(factory, env_id, episodes, SHORT)
    assert len(made) == 3 and len({id(c) for c in made}) == 3
    assert [c.steps for c in made] == [r.n_steps for r in got]  # each saw its own episode
    assert {r.controller for r in got} == {"halved-pid"}
    ref = [
        run_episode(_Halved(PIDParams(ki_ma_per_uv_s=0.5)), env_id, p, s, SHORT)
        for p, s in episodes
    ]
    for g, r in zip(got, ref, strict=True):
        assert differences(g, r) == []
    plain = run_episode(PID(PIDParams(ki_ma_per_uv_s=0.5)), env_id, *episodes[0], SHORT)
    assert differences(got[0], plain) != []  # the override was played


def test_envs_with_several_action_components_fall_back_to_run_episode():
    env_id = "closedloop/ECAPPulseShape-v0"  # the agent sets pulse width and rate
    episodes = [("test-001", 0), ("test-002", 1)]
    got = run_episodes(lambda: make_controller("open-loop"), env_id, episodes, SHORT)
    ref = [run_episode(make_controller("open-loop"), env_id, p, s, SHORT) for p, s in episodes]
    for g, r in zip(got, ref, strict=True):
        assert differences(g, r) == []


@pytest.mark.parametrize(
    ("episodes", "match"),
    [
        ([], r"episodes=\[\] must be a non-empty list of \(patient_id, seed\) pairs"),
        ("test-001", r"episodes='test-001' must be a non-empty list"),
        ([("test-001", 0), ("test-001",)], r"episodes\[1\]=.* must be a \(patient_id, seed\) pair"),
        ([("no-such-patient", 0)], r"episodes\[0\]: .*no-such-patient"),
        ([(3, 0)], r"episodes\[0\] patient=3 must be a patient id"),
        ([("test-001", -1)], r"episodes\[0\] seed=-1 is invalid; valid: an integer >= 0"),
        ([("test-001", 0), ("test-001", 1.5)], r"episodes\[1\] seed=1.5 is invalid"),
    ],
)
def test_bad_episodes_raise_config_error_naming_them(episodes, match):
    with pytest.raises(ConfigError, match=match):
        run_episodes(
            lambda: make_controller("open-loop"), "closedloop/ECAPTracking-Test-v0", episodes, SHORT
        )


def test_other_bad_inputs_raise_config_error_naming_the_parameter():
    ok = [("test-001", 0)]
    with pytest.raises(ConfigError, match="controller_factory='open-loop' must be a zero-arg"):
        run_episodes("open-loop", "closedloop/ECAPTracking-Test-v0", ok, SHORT)
    with pytest.raises(ConfigError, match="env_id='nope' is unknown"):
        run_episodes(lambda: make_controller("open-loop"), "nope", ok, SHORT)
    with pytest.raises(ConfigError, match="env_overrides key"):
        run_episodes(
            lambda: make_controller("open-loop"),
            "closedloop/ECAPTracking-Test-v0",
            ok,
            {"patient": "test-002"},
        )
    with pytest.raises(ConfigError, match="threads=0"):
        run_episodes(
            lambda: make_controller("open-loop"),
            "closedloop/ECAPTracking-Test-v0",
            ok,
            SHORT,
            threads=0,
        )


def test_run_grid_plays_batches_with_the_rows_of_one_episode_at_a_time(tmp_path):
    from closedloop.evaluation.grid import grid_specs, play_spec, run_grid

    grid = (
        {"o": "open-loop", "c": "clinical-loop"},
        ["closedloop/ECAPTracking-Test-v0"],
        ["test-001", "test-002"],
        [0, 3],
    )
    rows = run_grid(*grid, env_overrides=SHORT, progress=False, out_dir=tmp_path)
    specs = grid_specs(*grid, env_overrides=SHORT)
    assert [r["episode"] for r in rows] == [s.key() for s in specs]
    for row, spec in zip(rows, specs, strict=True):
        ref = play_spec(spec).row()
        assert all(same(row[k], v) for k, v in ref.items() if k != "wall_s"), spec


def test_batches_group_cells_by_controller_env_and_overrides(monkeypatch):
    from closedloop.evaluation import grid
    from closedloop.evaluation.grid import batches, grid_specs

    specs = grid_specs(
        {"o": "open-loop", "p": "pid"},
        ["closedloop/ECAPTracking-Test-v0", "closedloop/ECAPClinic-Test-v0"],
        ["test-001", "test-002"],
        [0, 1, 2],
    )
    groups = batches(specs)
    assert [len(g) for g in groups] == [6, 6, 6, 6]
    for g in groups:
        assert len({(specs[i].controller, specs[i].env_id) for i in g}) == 1
    assert sorted(i for g in groups for i in g) == list(range(len(specs)))
    # two batches per worker in all, each within one group
    assert [len(g) for g in batches(specs, workers=4)] == [3] * 8
    assert [len(g) for g in batches(specs, workers=12)] == [1] * 24
    monkeypatch.setattr(grid, "MAX_BATCH", 4)
    assert [len(g) for g in batches(specs)] == [4, 2] * 4


@pytest.mark.parametrize("agent", ["ppo-tracking", "sac-tracking", "residual-ppo-tracking"])
def test_trained_policies_play_alike_in_a_batch(agent):
    from pathlib import Path

    from closedloop.training.policy import TrainedPolicyFactory

    path = Path(__file__).resolve().parents[1] / "agents" / "zoo" / agent
    if not (path / "model.zip").exists():
        pytest.skip(f"{path} holds no trained model")
    factory, episodes = TrainedPolicyFactory(str(path)), EPISODES[:3]
    got = run_episodes(factory, "closedloop/ECAPTracking-Test-v0", episodes, SHORT)
    ref = [
        run_episode(factory(), "closedloop/ECAPTracking-Test-v0", p, s, SHORT) for p, s in episodes
    ]
    for g, r in zip(got, ref, strict=True):
        assert differences(g, r) == []
