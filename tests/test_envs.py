"""The Gymnasium suite: API conformance, determinism, options, bad input, pickling, rendering."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import closedloop
from closedloop import ConfigError
from closedloop.envs.config import load_suite

IDS = list(load_suite())


def test_import_registers_the_whole_suite():
    assert "closedloop/ECAPTracking-v0" in IDS and len(IDS) >= 10
    assert closedloop.register_suite() == IDS
    for env_id in IDS:
        assert env_id in gym.registry


@pytest.mark.parametrize("env_id", IDS)
def test_every_id_passes_gymnasium_and_sb3_checks(env_id):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id, episode_s=2.0)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    env.close()


def _rollout(env, seed, n=60, action=0.2):
    obs, info = env.reset(seed=seed)
    out = [obs]
    rewards = []
    for _ in range(n):
        obs, r, term, trunc, info = env.step(np.array([action], np.float32))
        out.append(obs)
        rewards.append(r)
    return np.array(out), np.array(rewards), info


def test_same_seed_same_trajectory_and_different_seed_differs():
    env = gym.make("closedloop/ECAPTracking-v0")
    a, ra, ia = _rollout(env, 7)
    b, rb, ib = _rollout(env, 7)
    c, _, ic = _rollout(env, 8)
    assert np.array_equal(a, b) and np.array_equal(ra, rb)
    assert not np.array_equal(a, c)
    env2 = gym.make("closedloop/ECAPTracking-v0")
    d, rd, _ = _rollout(env2, 7)
    assert np.array_equal(a, d) and np.array_equal(ra, rd)


def test_observation_layout_and_ground_truth_only_in_info():
    env = gym.make("closedloop/ECAPClinic-v0", history=3)
    obs, info = env.reset(seed=0, options={"patient": "default"})
    assert obs.shape == (10,) and info["patient_id"] == "default"
    assert obs[-1] == pytest.approx(info["target_uv"])
    assert np.all(obs[6:9] == np.float32(info["comfort_ma"]))
    obs, r, term, trunc, info = env.step(np.zeros(1, np.float32))
    for key in ("ecap_true_uv", "sensation", "csf_mm", "posture", "event", "device_flags"):
        assert key in info
    assert r <= 0.0 and not term and not trunc


def test_reset_options_select_patient_scenario_and_target():
    env = gym.make("closedloop/ECAPTracking-v0")
    _, info = env.reset(
        seed=1, options={"patient": "validation-002", "scenario": "clinic", "target_uv": 30.0}
    )
    assert info["patient_id"] == "validation-002" and info["target_uv"] == 30.0
    _, info = env.reset(seed=1, options={"split": "validation"})
    assert info["patient_id"].startswith("validation-")
    with pytest.raises(ConfigError, match="unknown reset option.*colour"):
        env.reset(options={"colour": 1})


def test_one_seed_gives_each_patient_its_own_day():
    env = gym.make("closedloop/ECAPTracking-v0").unwrapped
    days = {}
    for patient in ("validation-000", "validation-001", "validation-002"):
        env.reset(seed=3, options={"patient": patient})
        days[patient] = env.trace.posture.copy()
        env.reset(seed=3, options={"patient": patient})
        assert np.array_equal(env.trace.posture, days[patient])  # reproducible per patient
    postures = list(days.values())
    assert not all(np.array_equal(postures[0], p) for p in postures[1:])  # different days


def test_episode_truncates_after_its_simulated_duration():
    env = gym.make("closedloop/ECAPTracking-v0", episode_s=1.0)
    env.reset(seed=0)
    steps, trunc = 0, False
    while not trunc:
        *_, term, trunc, _ = env.step(np.zeros(1, np.float32))
        steps += 1
    assert steps == 50


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"colour": "red"}, "unknown keyword(s) colour"),
        ({"rate_hz": -5.0}, "rate_hz=-5.0 is out of range"),
        ({"action_mode": "sideways"}, "action_mode='sideways' is invalid"),
        ({"reward": {"speed": 1}}, "speed"),
        ({"device": {"compliance_v": -1}}, "compliance_v"),
    ],
)
def test_bad_make_arguments_name_the_key(kwargs, needle):
    with pytest.raises(ConfigError) as err:
        gym.make("closedloop/ECAPTracking-v0", **kwargs)
    assert needle in str(err.value)


def test_nan_action_raises_and_device_limits_are_counted():
    from closedloop.device import LIMIT_FLAGS

    env = gym.make(
        "closedloop/ECAPTracking-v0", action_mode="absolute", episode_s=0.2, patient="default"
    )
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="must be finite"):
        env.step(np.array([np.nan], np.float32))
    flags = []
    trunc = False
    while not trunc:  # ask for the clinician maximum at every step
        _, _, _, trunc, info = env.step(np.array([1.0], np.float32))
        flags.append(info["device_flags"])
        assert info["current_ma"] <= env.unwrapped.calibration.max_ma + 1e-12
    assert flags[0] & LIMIT_FLAGS["slew"]  # the first jump is slew-limited
    for name, bit in LIMIT_FLAGS.items():
        assert info["device_limits"][name] == sum(bool(f & bit) for f in flags), name
    env = gym.make("closedloop/ECAPTracking-v0", device={"compliance_v": 2.0})
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0], np.float32))
    assert info["device_flags"] & LIMIT_FLAGS["compliance"]
    assert info["current_ma"] * info["impedance_ohm"] * 1e-3 <= 2.0 + 1e-9


def test_env_pickles_and_runs_in_async_vector_env():
    env = gym.make("closedloop/ECAPTracking-v0", episode_s=2.0)
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.reset(seed=3)[0].shape == env.observation_space.shape
    venv = gym.vector.AsyncVectorEnv(
        [lambda: gym.make("closedloop/ECAPTracking-v0", episode_s=2.0)] * 2
    )
    obs, _ = venv.reset(seed=[1, 2])
    for _ in range(5):
        obs, r, term, trunc, info = venv.step(np.zeros((2, 1), np.float32))
    assert obs.shape == (2, env.observation_space.shape[0])
    venv.close()


def test_render_rgb_array():
    env = gym.make("closedloop/ECAPWaveform-v0", render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(20):
        env.step(np.zeros(1, np.float32))
    img = env.render()
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    assert img.std() > 5


def test_sb3_ppo_trains_a_few_thousand_steps():
    from stable_baselines3 import PPO

    env = gym.make("closedloop/ECAPTracking-v0", episode_s=20.0)
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=2048)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)


def _trajectory(env, seed, actions):
    """Every step's (obs bytes, reward, terminated, truncated, info) for ``actions``."""
    env.reset(seed=seed)
    out = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs.tobytes(), r, term, trunc, {k: (type(v), v) for k, v in info.items()}))
    return out


@pytest.mark.parametrize(
    "action",
    [
        np.array([0.25], np.float32),
        np.array([-1.0]),
        np.array([1.7], np.float32),
        np.array([-3.0]),
        np.array([0.5], np.float16),
        [0.3],
        0.3,
        np.array([[0.2]]),
        np.array([1], np.int64),
        np.array([-0.0], np.float32),
    ],
)
def test_check_action_fast_path_equals_numpy(action):
    from closedloop.envs.inputs import check_action as _check_action

    want = np.clip(np.asarray(action, np.float64).reshape(1), -1.0, 1.0)
    got = _check_action(action, (1,))
    assert type(got[0]) is float and np.array_equal(np.array(got), want)
    assert np.float64(got[0]).tobytes() == want[0].tobytes()


def test_step_after_pickling_mid_episode_continues_identically():
    env = gym.make("closedloop/ECAPTracking-v0", episode_s=0.6)
    env.reset(seed=2)
    for _ in range(10):
        env.step(np.array([0.4], np.float32))
    clone = pickle.loads(pickle.dumps(env))
    actions = [np.array([a], np.float32) for a in np.linspace(-1, 1, 25)]
    for a in actions:  # past the end: truncated every step
        got, want = clone.step(a), env.step(a)
        assert got[0].tobytes() == want[0].tobytes() and got[1:] == want[1:]


FAST_DRIFT = """
duration_s = 2.0
[posture]
mode = "markov"
start = "sitting"
[drift]
migration_mm_per_day = 1.0
time_compression = 10.0
"""
"""A drift of 10 mm per simulated second: past the model's 12 mm within the episode."""


def test_trace_flags_the_pulses_whose_csf_was_clamped_into_range():
    from closedloop.disturbances import CSF_RANGE_MM, PARTS, load_scenario
    from closedloop.patients.postures import POSTURES

    for csf, scenario, clipped in (
        (9.0, load_scenario("daily-living", duration_s=20.0), False),
        (11.0, load_scenario(_fast_drift_table()), True),
        (0.6, load_scenario(_fast_drift_table(-1.0)), True),
    ):
        trace = scenario.sample(dict.fromkeys(POSTURES, csf), 50.0, 3)
        total = np.zeros(len(trace))
        for key in PARTS:
            total = total + trace.parts[key]
        np.testing.assert_array_equal(trace.csf_mm, np.clip(total, *CSF_RANGE_MM))  # unchanged
        want = np.where(total > CSF_RANGE_MM[1], 1, np.where(total < CSF_RANGE_MM[0], -1, 0))
        np.testing.assert_array_equal(trace.csf_clipped, want)
        assert trace.csf_clipped.any() == clipped and trace.csf_clipped.dtype == np.int8
        assert trace.csf_clipped_fraction == np.count_nonzero(want) / len(trace)
        assert trace.to_dict()["csf_clipped"] == want.tolist()


def _fast_drift_table(sign: float = 1.0) -> dict:
    import tomllib

    table = tomllib.loads(FAST_DRIFT)
    table["drift"]["migration_mm_per_day"] *= sign
    return table


@pytest.mark.parametrize("pulses_per_step", [1, 5])
def test_info_flags_csf_clamped_by_chronic_drift_scalar_and_vector(tmp_path, pulses_per_step):
    from closedloop.envs.vector import ECAPVectorEnv

    path = tmp_path / "fast-drift.toml"
    path.write_text(FAST_DRIFT, encoding="utf-8")
    kw = {"scenario": str(path), "episode_s": 1.0, "pulses_per_step": pulses_per_step}
    env = gym.make("closedloop/ECAPDrift-v0", **kw)
    env.reset(seed=0)
    trace = env.unwrapped.trace
    flags, steps = [], 50 // pulses_per_step
    for _ in range(steps):
        flags.append(env.step(np.zeros(1, np.float32))[4]["csf_clipped"])
    assert type(flags[0]) is bool and not flags[0] and flags[-1]  # drifts out of range
    by_step = trace.csf_clipped[:50].reshape(steps, pulses_per_step).any(axis=1)
    assert flags == by_step.tolist()
    venv = ECAPVectorEnv(2, "closedloop/ECAPDrift-v0", **kw)
    venv.reset(seed=0)  # sub-env 0 has the scalar env's seed
    vflags = [venv.step(np.zeros((2, 1), np.float32))[4]["csf_clipped"] for _ in range(steps)]
    assert [bool(f[0]) for f in vflags] == flags
