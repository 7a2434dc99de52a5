"""Residual RL (issue 22): an agent that corrects the clinical loop's current.

The residual's arithmetic is checked against the base controller itself (a zero correction plays
the clinical loop bit for bit), its features against their definitions, a trained residual
agent's batched evaluation against one episode at a time, and its spec's errors.
"""

import dataclasses

import numpy as np
import pytest

from closedloop import ConfigError
from closedloop.controllers import make_controller
from closedloop.evaluation import run_episode
from closedloop.training.residual import (
    FEATURES,
    JUMP_MEMORY_S,
    UNDETECTED_MEMORY_S,
    Residual,
    ResidualParams,
    ResidualPolicy,
)

ENV = "closedloop/ECAPTracking-v0"
OVERRIDES = {"episode_s": 14.0, "split": "validation"}


class Constant:
    """A stand-in for a trained network: the same correction at every step."""

    batch_ready = True

    def __init__(self, value):
        self.value, self.context, self.seen = float(value), None, []

    def reset(self, context):
        self.context = context

    def reset_many(self, contexts):
        self.context = contexts[0]

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        self.seen.append(np.array(obs))
        return np.array([self.value], np.float32), state

    def predict_many(self, obs, rows=None):
        return np.full((len(obs), 1), self.value, np.float32)


def test_zero_correction_plays_the_base_controller_bit_for_bit():
    params = ResidualParams()
    base = run_episode(make_controller("clinical-loop"), ENV, "validation-002", 4, OVERRIDES)
    mine = run_episode(ResidualPolicy(Constant(0.0), params), ENV, "validation-002", 4, OVERRIDES)
    a, b = base.row(), mine.row()
    assert [k for k in a if k not in ("controller", "wall_s") and not _same(a[k], b[k])] == []
    assert np.array_equal(base.trajectory.current_ma, mine.trajectory.current_ma)
    assert np.ptp(base.trajectory.current_ma) > 0.5  # the loop acted (mA)


def test_a_negative_correction_lowers_the_current_and_the_charge():
    params = ResidualParams(scale=0.05)
    base = run_episode(make_controller("clinical-loop"), ENV, "validation-000", 1, OVERRIDES)
    low = run_episode(ResidualPolicy(Constant(-0.2), params), ENV, "validation-000", 1, OVERRIDES)
    assert low.row()["charge_per_pulse_uc"] < 0.99 * base.row()["charge_per_pulse_uc"]


def test_features_follow_their_definitions(tracking_env):
    env = tracking_env
    obs, info = env.reset(seed=2)
    from closedloop.controllers import ControlContext

    cfg, cal = env.unwrapped.spec_.config, env.unwrapped.calibration
    ctx = ControlContext.from_env(cfg, cal, info["target_uv"])
    res = Residual(ResidualParams())
    res.reset_many([ctx])
    base = make_controller("clinical-loop")
    base.reset(ctx)
    ref = next(p for p in cal.postures if p.posture == cal.reference_posture)
    h = cfg.history
    for _ in range(40):
        x = res.observe(obs[None])[0]
        assert x.shape == (obs.size + len(FEATURES),) and np.array_equal(x[: obs.size], obs)
        f = dict(zip(FEATURES, x[obs.size :].tolist(), strict=True))
        a_base, _ = base.predict(obs)
        want = float(res._want[0])
        assert np.isclose(a_base[0], ctx.action_for(want, float(obs[2 * h])), atol=1e-6)
        assert np.isclose(f["base_step_rel"], (want - obs[2 * h]) / cal.comfort_ma, atol=1e-6)
        assert np.isclose(f["current_rel"], obs[2 * h] / cal.comfort_ma, rtol=1e-5)
        assert np.isclose(f["ecap_rel"], obs[0] / obs[3 * h], rtol=1e-5)
        assert np.isclose(f["target_over_perception"], obs[3 * h] / ref.perception_ecap_uv)
        assert np.isclose(f["discomfort_over_target"], ref.discomfort_ecap_uv / obs[3 * h])
        assert np.isclose(f["max_over_comfort"], cal.max_ma / cal.comfort_ma)
        assert 0.0 <= f["since_jump"] <= 1.0
        obs, *_ = env.step(res.act(np.zeros((1, 1)))[0])


def test_the_jump_timer_restarts_at_a_jump_of_the_measured_ecap(tracking_env):
    env = tracking_env
    obs, info = env.reset(seed=0)
    from closedloop.controllers import ControlContext

    ctx = ControlContext.from_env(env.unwrapped.spec_.config, env.unwrapped.calibration, 10.0)
    res = Residual(ResidualParams(jump_rel=0.3))
    res.reset_many([ctx])
    h, dt = ctx.history, ctx.dt_s
    x = np.zeros(obs.size)
    x[3 * h], x[h], x[2 * h] = 10.0, 1.0, 2.0  # target 10 µV, detected, 2 mA

    def since(ecap, detected=1.0):
        x[0], x[h] = ecap, detected
        return res.observe(x[None])[0, -2] * JUMP_MEMORY_S

    assert since(10.0) == pytest.approx(JUMP_MEMORY_S)  # nothing seen yet: long ago
    assert since(12.9) == pytest.approx(JUMP_MEMORY_S)  # 2.9 µV < 0.3 x 10 µV
    assert since(16.0) == 0.0  # 3.1 µV: a jump
    assert since(16.5) == pytest.approx(dt)
    assert since(0.0, detected=0.0) == pytest.approx(2 * dt)  # not detected: no jump
    assert since(16.0) == pytest.approx(3 * dt)  # compared with the last detected ECAP


def test_the_undetected_timer_counts_steps_without_a_detected_ecap(tracking_env):
    env = tracking_env
    obs, _ = env.reset(seed=0)
    from closedloop.controllers import ControlContext

    ctx = ControlContext.from_env(env.unwrapped.spec_.config, env.unwrapped.calibration, 10.0)
    res = Residual(ResidualParams())
    res.reset_many([ctx])
    h, dt = ctx.history, ctx.dt_s
    x = np.zeros(obs.size)
    x[3 * h], x[2 * h] = 10.0, 2.0
    seen = []
    for detected in (1.0, 0.0, 0.0, 0.4, 1.0, *([0.0] * 200)):
        x[h] = detected
        seen.append(res.observe(x[None])[0, -1] * UNDETECTED_MEMORY_S)
    assert seen[:5] == pytest.approx([0.0, dt, 2 * dt, 3 * dt, 0.0])  # 0.4 < half the pulses
    assert seen[-1] == UNDETECTED_MEMORY_S  # clipped


def test_reset_row_starts_one_episode_and_leaves_the_others(tracking_env):
    env = tracking_env
    from closedloop.controllers import ControlContext

    obs, contexts = [], []
    for seed in (0, 1, 2):
        o, info = env.reset(seed=seed)
        obs.append(o)
        contexts.append(
            ControlContext.from_env(
                env.unwrapped.spec_.config, env.unwrapped.calibration, info["target_uv"]
            )
        )
    obs = np.array(obs, np.float64)
    obs[:, 0] = 3.0  # a measured ECAP, so that the states move
    many = make_controller("clinical-loop")
    many.reset_many(contexts)
    fresh = make_controller("clinical-loop")
    fresh.reset_many([contexts[1], contexts[1], contexts[2]])
    for _ in range(5):
        many.currents_many(obs)
    many.reset_row(0, contexts[1])
    before = many.currents_many(obs)
    again = make_controller("clinical-loop")
    again.reset_many(contexts)
    for _ in range(6):
        expected = again.currents_many(obs)
    assert before[0] == fresh.currents_many(obs[[1, 1, 2]])[0]  # row 0: a new episode
    assert np.array_equal(before[1:], expected[1:])  # rows 1-2: untouched
    assert many.contexts[0] is contexts[1]
    with pytest.raises(ConfigError, match="rows="):
        many.reset_row(3, contexts[0])


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"scale": 0.0}, "residual.scale"),
        ({"scale": float("nan")}, "residual.scale"),
        ({"jump_rel": -1.0}, "residual.jump_rel"),
        ({"gain": 1.0}, "gain"),
    ],
)
def test_bad_residual_tables_are_config_errors(table, match):
    with pytest.raises(ConfigError, match=match):
        ResidualParams.from_table(table)


def test_an_unknown_or_unbatched_base_is_a_config_error(monkeypatch):
    from closedloop.controllers import Controller, registry

    with pytest.raises(ConfigError, match="nope"):
        Residual(ResidualParams(base="nope"))
    monkeypatch.setattr(registry, "make_controller", lambda name: Controller())
    with pytest.raises(ConfigError, match="batch controller"):
        Residual(ResidualParams(base="a-plugin"))


def test_trained_residual_agent_plays_batched_as_one_by_one(tmp_path):
    from closedloop.evaluation.batch_runner import run_episodes
    from closedloop.training import TrainOptions, load_trained, train
    from closedloop.training.policy import TrainedPolicyFactory

    options = TrainOptions(
        eval_every=0, eval_patients=1, eval_episode_s=12.0, progress=False, tensorboard=False
    )
    hp = {"n_steps": 64, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [8]}}
    reward = {"window": 1.0, "tracking": 0.0, "charge": 1.0}
    train(
        "residual-ppo",
        ENV,
        256,
        tmp_path,
        0,
        n_envs=2,
        hyperparams=hp,
        env_overrides={"episode_s": 2.0, "reward": reward},
        options=options,
    )
    ctl = load_trained(tmp_path)
    assert isinstance(ctl, ResidualPolicy) and ctl.batch_ready
    from closedloop.training.spec import load_rl_spec

    params = load_rl_spec("residual-ppo").residual_params()  # scale_up and the guard set
    assert params.scale_up > 0.0 and params.guard_rel > 0.0
    assert ctl.card["residual"] == dataclasses.asdict(params) and ctl.residual.params == params
    episodes = [("validation-003", 0), ("validation-007", 1), ("validation-001", 0)]
    many = run_episodes(TrainedPolicyFactory(str(tmp_path)), ENV, episodes, OVERRIDES)
    for (patient, seed), res in zip(episodes, many, strict=True):
        one = run_episode(load_trained(tmp_path), ENV, patient, seed, OVERRIDES).row()
        row = res.row()
        assert [k for k in one if k != "wall_s" and not _same(one[k], row[k])] == []


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def _wide_context(env):
    """The env's first observation, its calibration and a context whose actions do not clip."""
    from closedloop.controllers import ControlContext

    obs, info = env.reset(seed=0)
    cal = env.unwrapped.calibration
    ctx = ControlContext.from_env(env.unwrapped.spec_.config, cal, info["target_uv"])
    return obs, cal, dataclasses.replace(ctx, max_delta_ma=25.0)  # no clipping at ±1


def test_the_guard_allows_only_lowering_near_the_discomfort_ecap(tracking_env):
    obs, cal, ctx = _wide_context(tracking_env)
    ref = next(p for p in cal.postures if p.posture == cal.reference_posture)
    h = ctx.history
    free, guarded = Residual(ResidualParams()), Residual(ResidualParams(guard_rel=0.8))
    x = np.array(obs, np.float64)
    x[h], x[2 * h] = 1.0, cal.comfort_ma
    for ecap, blocked in (
        (0.79 * ref.discomfort_ecap_uv, False),
        (0.8 * ref.discomfort_ecap_uv, True),
    ):
        x[0] = ecap
        out = {}
        for name, res in (("free", free), ("guarded", guarded)):
            res.reset_many([ctx])
            res.observe(x[None])
            out[name] = [res.act(np.array([[a]]))[0, 0] for a in (-1.0, 1.0)]
        assert out["guarded"][0] == out["free"][0]  # lowering: always allowed
        up, base = out["guarded"][1], out["free"][1]
        assert bool(up < base) is blocked and bool(up == base) is not blocked


def test_scale_up_slows_only_the_rise(tracking_env):
    obs, _, ctx = _wide_context(tracking_env)
    out = {}
    for name, params in (
        ("same", ResidualParams(scale=0.1)),
        ("slow", ResidualParams(scale=0.1, scale_up=0.02)),
    ):
        res = Residual(params)
        res.reset_many([ctx])
        res.observe(np.array(obs, np.float64)[None])
        out[name] = [res.act(np.array([[a]]))[0, 0] for a in (-1.0, 0.0, 1.0)]
    (dn, zero, up), (dn_s, zero_s, up_s) = out["same"], out["slow"]
    assert dn_s == dn and zero_s == zero  # lowering and no correction: unchanged
    assert up - zero > 0.0
    assert up_s - zero == pytest.approx(0.2 * (up - zero), rel=1e-9)
    with pytest.raises(ConfigError, match="residual.scale_up"):
        ResidualParams(scale_up=-0.1)
