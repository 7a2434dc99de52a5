"""The native vector env equals N scalar envs seeded alike, including next-step autoreset."""

import gymnasium as gym
import numpy as np
import pytest

from closedloop import ConfigError
from closedloop.envs.step_info import EPISODE_KEYS
from closedloop.envs.vector import ECAPVectorEnv


def _scalar_rollout(n_envs, seed, actions, env_id="closedloop/ECAPTracking-v0", **kw):
    envs = [gym.make(env_id, **kw).unwrapped for _ in range(n_envs)]
    obs = [np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)])]
    rewards, truncs, infos, pending = [], [], [], np.zeros(n_envs, bool)
    for a in actions:
        o, r, t, inf = [], [], [], []
        for i, e in enumerate(envs):
            if pending[i]:
                oi, _ = e.reset()
                ri, ti, info = 0.0, False, None
            else:
                oi, ri, _, ti, info = e.step(a[i])
            o.append(oi)
            r.append(ri)
            t.append(ti)
            inf.append(info)
        pending = np.array(t)
        obs.append(np.stack(o))
        rewards.append(r)
        truncs.append(t)
        infos.append(inf)
    return np.array(obs), np.array(rewards), np.array(truncs), infos


def _ids():
    import closedloop  # noqa: F401  (registers the ids)

    return sorted(k for k in gym.registry if k.startswith("closedloop/"))


@pytest.mark.parametrize("env_id", _ids())
def test_make_vec_serves_every_id_and_equals_scalar_envs(env_id):
    n, steps = 2, 45  # 0.3-s episodes: next-step autoreset twice or more
    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", episode_s=0.3)
    assert isinstance(venv.unwrapped, ECAPVectorEnv)
    shape = venv.single_action_space.shape
    actions = np.random.default_rng(2).uniform(-1, 1, (steps, n, *shape)).astype(np.float32)
    ref_obs, ref_r, ref_t, ref_info = _scalar_rollout(n, 5, actions, env_id, episode_s=0.3)
    obs, rewards, truncs = [venv.reset(seed=5)[0]], [], []
    for a, infos in zip(actions, ref_info, strict=True):
        o, r, _, t, info = venv.step(a)
        obs.append(o), rewards.append(r), truncs.append(t)
        for i, ref in enumerate(infos):
            if ref is not None:  # one list of info keys: every step key, the same values
                assert set(info) == set(ref) - set(EPISODE_KEYS)
                for key in info:
                    assert np.array_equal(info[key][i], ref[key]), key
    assert np.array(truncs).sum() >= n
    assert np.array(obs).tobytes() == ref_obs.tobytes()
    assert np.array(rewards).tobytes() == ref_r.tobytes()
    assert np.array_equal(np.array(truncs), ref_t)


@pytest.mark.parametrize(
    ("pulses_per_step", "scenario", "mode"),
    [  # both step paths
        (1, "cough-storm", "incremental"),
        (3, "cough-storm", "incremental"),
        (5, "chronic-drift", "absolute"),
    ],
)  # the ramp at a changing impedance
def test_vector_env_equals_scalar_envs_bit_for_bit(pulses_per_step, scenario, mode):
    n, steps = 3, 120 // pulses_per_step
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, n, 1)).astype(np.float32)
    if mode == "absolute":
        actions[::2] = np.sign(actions[::2])  # full swings: the ramp acts
    kw = {
        "episode_s": 1.0,
        "scenario": scenario,
        "pulses_per_step": pulses_per_step,
        "action_mode": mode,
    }
    ref_obs, ref_r, ref_t, ref_info = _scalar_rollout(n, 11, actions, **kw)
    venv = ECAPVectorEnv(n, **kw)
    obs = [venv.reset(seed=11)[0]]
    rewards, truncs = [], []
    for a, infos in zip(actions, ref_info, strict=True):
        o, r, term, t, info = venv.step(a)
        obs.append(o)
        rewards.append(r)
        truncs.append(t)
        assert not term.any()
        for i, ref in enumerate(infos):  # per-step clinical quantities, where a step ran
            for key in (
                (
                    "ecap_true_uv",
                    "sensation",
                    "in_window",
                    "overstim",
                    "current_ma",
                    "charge_uc",
                    "impedance_ohm",
                    "csf_clipped",
                )
                if ref is not None
                else ()
            ):
                assert info[key][i] == ref[key], key
            if ref is not None:
                assert info["device_flags"][i] == ref["device_flags"]
            if ref is not None and pulses_per_step > 1:
                for key in ("pulse_current_ma", "pulse_impedance_ohm", "pulse_flags"):
                    assert np.array_equal(info[key][i], ref[key]), key
    assert np.array(truncs).sum() >= n  # every sub-env reached its end
    assert np.array_equal(np.array(truncs), ref_t)
    assert np.array_equal(np.array(rewards), ref_r)
    assert np.array_equal(np.array(obs), ref_obs)


@pytest.mark.parametrize("pulses_per_step", [1, 2])  # compiled and NumPy step paths
def test_vector_env_spaces_and_bad_input(pulses_per_step):
    venv = ECAPVectorEnv(4, pulses_per_step=pulses_per_step)
    assert venv.observation_space.shape == (4, 13)
    assert venv.action_space.shape == (4, 1)
    venv.reset(seed=0)
    before = venv.observations()
    for dtype in (np.float64, np.float32):
        with pytest.raises(ConfigError, match=r"actions\[2\]=\[nan\] must be finite; valid range"):
            venv.step(np.array([[0.0], [0.0], [np.nan], [0.0]], dtype))
    with pytest.raises(ConfigError, match=r"actions\[0\]=\[inf\]"):
        venv.step([np.inf, 0.0, 0.0, 0.0])
    for bad in (
        np.zeros((3, 1)),
        np.zeros((8, 1), np.float32),
        np.zeros((4, 0)),
        np.zeros((4, 2)),
        np.zeros((8, 1), np.int64),
        np.zeros(8),
        np.zeros(6),
        [],
    ):
        with pytest.raises(ConfigError, match=r"actions has shape .*; expected \(4, 1\): one row"):
            venv.step(bad)
    assert np.array_equal(venv.observations(), before)  # nothing was stepped
    # Every accepted form of the same actions steps alike.
    a = np.array([[-2.0], [-0.5], [0.25], [3.0]])
    strided = np.asfortranarray(np.hstack([a, a]))[:, :1]
    ints = np.array([[-2], [0], [1], [3]])
    for forms in ((a, a.astype(np.float32), a.ravel().tolist(), strided), (ints, ints * 1.0)):
        steps = []
        for form in forms:
            venv.reset(seed=0)
            steps.append(venv.step(form))
        for other in steps[1:]:
            assert all(np.array_equal(x, y) for x, y in zip(steps[0][:4], other[:4], strict=True))
    with pytest.raises(ConfigError, match="num_envs=0"):
        ECAPVectorEnv(0)
    for bad in (4, -1, 1.5, "0"):
        with pytest.raises(
            ConfigError, match=r"i=.* is out of range; valid: an integer in \[0, 3\]"
        ):
            venv.reset_one(bad)
    pulse_shape = ECAPVectorEnv(2, "closedloop/ECAPPulseShape-v0")  # three action components
    pulse_shape.reset(seed=0)
    with pytest.raises(ConfigError, match=r"expected \(2, 3\)"):
        pulse_shape.step(np.zeros((2, 1)))


def test_sb3_ppo_trains_on_the_native_vector_env():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from closedloop.envs.sb3 import SB3VecEnv

    venv = VecMonitor(SB3VecEnv(ECAPVectorEnv(8, episode_s=5.0)), info_keywords=("in_window",))
    model = PPO("MlpPolicy", venv, n_steps=128, batch_size=256, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=4096)
    assert model.num_timesteps >= 4096
    assert len(model.ep_info_buffer) > 0 and "in_window" in model.ep_info_buffer[0]


@pytest.mark.parametrize("pulses_per_step", [1, 2])
def test_sb3_adapter_resets_in_the_same_step_as_gymnasium_does_in_the_next(pulses_per_step):
    from closedloop.envs.sb3 import SB3VecEnv

    kw = {"episode_s": 0.12, "pulses_per_step": pulses_per_step}  # 6 pulses per episode
    gym_env, sb3_env = ECAPVectorEnv(2, **kw), SB3VecEnv(ECAPVectorEnv(2, **kw))
    sb3_env.seed(5)
    first = gym_env.reset(seed=5)[0]
    assert np.array_equal(sb3_env.reset(), first)
    rng, ended = np.random.default_rng(1), False
    for _ in range(12 // pulses_per_step):
        a = rng.uniform(-1, 1, (2, 1)).astype(np.float32)
        obs, r, _, trunc, info = gym_env.step(a)
        sb3_env.step_async(a)
        s_obs, s_r, done, infos = sb3_env.step_wait()
        assert np.array_equal(s_r, r.astype(np.float32)) and np.array_equal(done, trunc)
        for i in np.flatnonzero(trunc):
            assert np.array_equal(infos[i]["terminal_observation"], obs[i])
            assert infos[i]["TimeLimit.truncated"] is True
        assert infos[0]["in_window"] == bool(info["in_window"][0])
        if trunc.any():  # Gymnasium resets on the next step
            obs, r = gym_env.step(a)[:2]
            assert np.all(r[trunc] == 0.0)
            assert np.array_equal(s_obs[trunc], obs[trunc])
            ended = True
            break
    assert ended, "no episode ended"


def test_sb3_adapter_infos_carry_the_gymnasium_info_values():
    from closedloop.envs.sb3 import SB3VecEnv, dict_rows
    from closedloop.envs.vector import INFO_KEYS, info_dict

    keys = ("ecap_true_uv", "in_window", "overstim", "current_ma", "charge_uc")
    gym_env, sb3_env = ECAPVectorEnv(3), SB3VecEnv(ECAPVectorEnv(3), info_keywords=keys)
    sb3_env.seed(2)
    gym_env.reset(seed=2), sb3_env.reset()
    a = np.full((3, 1), 0.3, np.float32)
    info = gym_env.step(a)[4]
    sb3_env.step_async(a)
    infos = sb3_env.step_wait()[3]
    assert [sorted(d) for d in infos] == [sorted(keys)] * 3
    for i, d in enumerate(infos):
        for k in keys:
            assert d[k] == info[k][i] and type(d[k]) is type(info[k][i].item())
    from closedloop.envs.step_data import RESULT_DTYPE

    result = np.zeros(2, RESULT_DTYPE)
    for j, name in enumerate(RESULT_DTYPE.names):
        result[name] = [j + 1, 0] if RESULT_DTYPE[name].kind == "b" else [j + 0.5, -j]
    result["posture"] = [1, 0]  # posture codes index the posture names
    assert dict_rows(())(result) == [{}, {}]
    info = info_dict(result)
    assert dict_rows(INFO_KEYS)(result) == [
        {k: info[k][i].item() for k in INFO_KEYS} for i in range(2)
    ]
    for bad in ((3,), ("in_windw",)):
        with pytest.raises(ConfigError, match="info_keywords.*valid keys: ecap_true_uv"):
            SB3VecEnv(ECAPVectorEnv(1), info_keywords=bad)


def test_sb3_adapter_attributes_come_from_slots_or_the_shared_native_env():
    from stable_baselines3.common.vec_env import VecNormalize

    from closedloop.envs.ecap_env import ECAPTrackingEnv
    from closedloop.envs.sb3 import SB3VecEnv

    venv = ECAPVectorEnv(2, "closedloop/ECAPTracking-Test-v0", episode_s=0.2)
    assert not any(isinstance(v, ECAPTrackingEnv) for v in vars(venv).values())
    sb3_env = SB3VecEnv(venv)
    sb3_env.seed(4)
    sb3_env.reset()
    patients = sb3_env.get_attr("patient")
    assert [p.patient_id for p in patients] == [s.draw.patient.patient_id for s in venv.slots]
    for i in range(2):  # each slot drew what a scalar env reset with seed + i draws
        env = gym.make("closedloop/ECAPTracking-Test-v0", episode_s=0.2).unwrapped
        env.reset(seed=4 + i)
        assert sb3_env.get_attr("target_uv", [i]) == [env.target_uv]
        assert sb3_env.get_attr("calibration", [i]) == [env.calibration]
    assert sb3_env.get_attr("spec_") == [venv.spec_] * 2
    assert sb3_env.get_attr("render_mode") == [None, None]
    assert sb3_env.env_method("observations", indices=[1])[0].shape == (2, 3 * 4 + 1)
    with pytest.raises(ConfigError, match="'target_uv' is drawn at reset"):
        sb3_env.set_attr("target_uv", 1.0)
    with pytest.raises(ConfigError, match="shared by every sub-env.*indices=None"):
        sb3_env.set_attr("prefetch_next_patient", False, indices=[0])
    sb3_env.set_attr("prefetch_next_patient", False)
    assert venv.prefetch_next_patient is False
    rng = np.random.default_rng(0)
    sb3_env.set_attr("np_random", rng, indices=[1])
    assert venv.slots[1].np_random is rng
    VecNormalize(sb3_env)  # SB3 wrappers see the attributes they ask for
    with pytest.raises(AttributeError):
        sb3_env.get_attr("no_such_attribute")


@pytest.mark.parametrize("pulses_per_step", [1, 2])
def test_vector_env_info_has_the_documented_keys(pulses_per_step):
    from closedloop.envs.vector import INFO_KEYS, PULSE_INFO_KEYS

    env = ECAPVectorEnv(2, pulses_per_step=pulses_per_step)
    env.reset(seed=0)
    info = env.step(np.zeros((2, 1), np.float32))[4]
    pulse_keys = PULSE_INFO_KEYS if pulses_per_step > 1 else ()
    assert sorted(info) == sorted(INFO_KEYS + pulse_keys)
    assert all(np.shape(info[k]) == (2,) for k in INFO_KEYS)
    assert all(np.shape(info[k]) == (2, pulses_per_step) for k in pulse_keys)


def test_make_vec_builds_the_native_vector_env():
    venv = gym.make_vec(
        "closedloop/ECAPClinic-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        episode_s=2.0,
    )
    assert isinstance(venv, ECAPVectorEnv)
    assert venv.cfg.scenario == "clinic" and venv.cfg.episode_s == 2.0
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, 13)


def _short_rollout(seed: int) -> tuple[np.ndarray, bool]:
    from closedloop.neural import batch

    venv = ECAPVectorEnv(2, episode_s=1.0)
    obs = [venv.reset(seed=seed)[0]]
    obs += [venv.step(np.zeros((2, 1), np.float32))[0] for _ in range(5)]
    return np.array(obs), batch._SERIAL


def test_vector_env_works_in_a_process_forked_after_its_threads_started():
    import multiprocessing

    import numba

    parent, serial = _short_rollout(3)  # starts the threading layer's threads here
    assert not serial
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child, child_serial = pool.apply_async(_short_rollout, (3,)).get(timeout=120)
    assert np.array_equal(child, parent)
    # GNU OpenMP cannot start threads in the child: the batch kernel then runs serially
    assert child_serial == (numba.threading_layer() == "omp")


def test_shared_recording_cache_with_another_pulse_width_is_refused():
    venv = ECAPVectorEnv(2)
    venv.reset(seed=0)
    venv.step(np.zeros((2, 1)))  # the stacked state is made at the first step
    venv._inputs.pw_us[:] = 300.0  # the slots hold the spec's 250 µs
    from closedloop.neural.batch import run_pulses_batch_indexed

    with pytest.raises(ValueError, match=r"inputs.pw_us\[0\] must equal .* holds, 250 µs"):
        run_pulses_batch_indexed(
            venv._state,
            venv._tables,
            venv._table_index,
            venv._kparams,
            venv._inputs,
            venv._out,
            venv._wave,
            venv._cache_index,
        )


def test_sb3_adapter_pickles_and_steps_after_unpickling():
    import pickle

    from closedloop.envs.sb3 import SB3VecEnv

    env = SB3VecEnv(ECAPVectorEnv(2, episode_s=1.0))
    env.reset()
    env.step(np.zeros((2, 1), np.float32))
    clone = pickle.loads(pickle.dumps(env))
    a = np.full((2, 1), 0.2, np.float32)
    out, copy = env.step(a), clone.step(a)
    assert np.array_equal(out[0], copy[0]) and out[3] == copy[3]


def test_reset_with_one_options_dict_per_sub_env_equals_scalar_resets():
    patients, seeds = ["test-002", "test-001", "test-002"], [4, 9, 4]
    venv = ECAPVectorEnv(3, "closedloop/ECAPTracking-Test-v0", episode_s=1.0)
    obs, info = venv.reset(seed=seeds, options=[{"patient": p} for p in patients])
    assert info["patient_id"].tolist() == patients
    actions = np.full((3, 1), 0.3)
    steps = [venv.step(actions) for _ in range(5)]
    for i, (patient, seed) in enumerate(zip(patients, seeds, strict=True)):
        env = gym.make("closedloop/ECAPTracking-Test-v0", patient=patient, episode_s=1.0)
        ref_obs, _ = env.reset(seed=seed)
        assert np.array_equal(obs[i], ref_obs)
        for o, r, _, _, inf in steps:
            ref_obs, ref_r, _, _, ref_info = env.step(actions[i])
            assert np.array_equal(o[i], ref_obs) and r[i] == ref_r
            assert inf["ecap_true_uv"][i] == ref_info["ecap_true_uv"]
    # None entries and a shared dict keep their meaning; one dict still applies to every sub-env.
    venv.reset(seed=0, options=[None, {"patient": "test-003"}, {}])
    assert venv.slots[1].draw.patient.patient_id == "test-003"
    venv.reset(seed=0, options={"patient": "test-004"})
    assert {s.draw.patient.patient_id for s in venv.slots} == {"test-004"}


def test_per_sub_env_reset_options_are_checked():
    venv = ECAPVectorEnv(2, "closedloop/ECAPTracking-Test-v0", episode_s=1.0)
    with pytest.raises(ConfigError, match=r"options is a list of 1 entries; expected .* list of 2"):
        venv.reset(seed=0, options=[{"patient": "test-001"}])
    with pytest.raises(ConfigError, match=r"options\[1\]: .*unknown reset option\(s\) patien"):
        venv.reset(seed=0, options=[{"patient": "test-001"}, {"patien": "test-001"}])
    with pytest.raises(ConfigError, match=r"options\[0\]: .*no-such-patient"):
        venv.reset(seed=0, options=[{"patient": "no-such-patient"}, None])
    with pytest.raises(ConfigError, match=r"options\[1\]: options=3 must be a dict"):
        venv.reset(seed=0, options=[None, 3])
