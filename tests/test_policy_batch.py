"""Trained SB3 MLP policies through the numba row kernel: close to torch, and the batched path
(predict_many, run_episodes) equal to the one-episode path bit for bit."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from _identity import differences
from stable_baselines3 import PPO, SAC, TD3

from closedloop import ConfigError
from closedloop.controllers import ControlContext
from closedloop.evaluation.batch_runner import run_episodes
from closedloop.evaluation.episode_runner import run_episode
from closedloop.training.policy import ObsNormalizer, TrainedPolicy, TrainedPolicyFactory
from closedloop.training.policy_kernels import extract_mlp, mlp_actions, with_obs_norm

ENV_ID = "closedloop/ECAPTracking-Test-v0"
SHORT = {"episode_s": 12.0}  # two seconds scored after the 10 s warm-up
EPISODES = [("test-001", 0), ("test-002", 1), ("test-003", 0)]


@pytest.fixture(scope="module")
def env():
    e = gym.make(ENV_ID, **SHORT)
    e.reset(seed=0, options={"patient": "test-001"})
    yield e
    e.close()


def _model(env, algo, activation=torch.nn.Tanh, seed=0):
    """An untrained model whose weights are redrawn so its actions span the action space."""
    cls = {"ppo": PPO, "sac": SAC, "td3": TD3}[algo]
    kwargs = {"learning_starts": 0, "buffer_size": 10} if algo != "ppo" else {"n_steps": 64}
    model = cls(
        "MlpPolicy",
        env,
        seed=seed,
        device="cpu",
        **kwargs,
        policy_kwargs={"activation_fn": activation, "net_arch": [32, 24]},
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.policy.modules():
            if isinstance(module, torch.nn.Linear):
                std = 2.0 / module.in_features**0.5
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.3)
    return model


def _normalizer(n):
    rng = np.random.default_rng(5)
    return ObsNormalizer(rng.normal(size=n) * 2.0, rng.uniform(0.2, 30.0, n), clip=5.0)


def _observations(env, n, seed=1):
    """Raw observations of ``env``'s space, scaled like real ones (some normalised values clip)."""
    rng = np.random.default_rng(seed)
    dim = env.observation_space.shape[0]
    return rng.normal(size=(n, dim)) * rng.uniform(0.1, 20.0, dim)


@pytest.mark.parametrize(
    ("algo", "activation"),
    [
        ("ppo", torch.nn.Tanh),
        ("ppo", torch.nn.ReLU),
        ("sac", torch.nn.ReLU),
        ("td3", torch.nn.ReLU),
    ],
)
def test_the_kernel_equals_torch_within_rounding(env, algo, activation):
    model = _model(env, algo, activation)
    net = model.policy
    params = extract_mlp(net)
    assert params is not None
    x = (_observations(env, 500) / 5.0).astype(np.float32)
    got = mlp_actions(params, x)
    with torch.no_grad():
        ref = net._predict(torch.as_tensor(x), deterministic=True).numpy()
    ref = net.unscale_action(ref) if net.squash_output else np.clip(ref, -1.0, 1.0)
    low, high = env.action_space.low, env.action_space.high
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-5 * float(np.max(high - low))
    inside = (np.abs(ref) < 0.99).mean()
    assert 0.1 < inside < 0.95  # the actions span the space, some at its ends


def test_the_kernel_normalises_observations_as_obs_normalizer_does(env):
    model = _model(env, "ppo")
    obs = _observations(env, 200, seed=4)
    norm = _normalizer(obs.shape[1])
    assert 0.0 < (np.abs(norm(obs)) == norm.clip).mean() < 0.5  # some entries clip
    plain = extract_mlp(model.policy)
    fused = with_obs_norm(plain, norm.mean, norm.var, norm.epsilon, norm.clip)
    assert mlp_actions(fused, obs).tobytes() == mlp_actions(plain, norm(obs)).tobytes()
    policy = TrainedPolicy(model, norm)
    policy.reset(ControlContext(calibration=None, target_uv=100.0, dt_s=0.02))
    got = np.array([policy.predict(o)[0] for o in obs])
    ref = model.predict(norm(obs), deterministic=True)[0]  # SB3's torch forward
    assert np.abs(got - ref).max() <= 1e-5 * 2.0
    with pytest.raises(ConfigError, match="observation statistics of 3 entries"):
        with_obs_norm(plain, norm.mean[:3], norm.var[:3], norm.epsilon, norm.clip)


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_predict_many_equals_one_episode_predict_bit_for_bit(env, algo):
    base = env.unwrapped
    ctx = ControlContext.from_env(base.spec_.config, base.calibration, base.target_uv)
    obs = _observations(env, 40, seed=2)
    policy = TrainedPolicy(_model(env, algo), _normalizer(obs.shape[1]))
    assert policy.batch_ready
    rng = np.random.default_rng(3)
    for n in rng.integers(1, 20, 4):
        one = TrainedPolicy(policy.policy, policy.normalizer)
        ref = []
        for i in range(n):
            one.reset(ctx)
            ref.append(one.predict(obs[i], deterministic=True)[0])
            assert one.steps == 1 and one.t_s == ctx.dt_s
        ref = np.array(ref)
        policy.reset_many([ctx] * int(n))
        assert policy.predict_many(obs[:n]).tobytes() == ref.tobytes()
        rows = np.sort(rng.choice(n, rng.integers(1, n + 1), replace=False))
        assert policy.predict_many(obs[rows], rows).tobytes() == ref[rows].tobytes()
        steps = np.ones(n, np.int64)
        steps[rows] += 1
        assert np.array_equal(policy.steps, steps)  # an int for one episode, else an array


def test_run_episodes_with_a_trained_policy_equals_run_episode_bit_for_bit(env, tmp_path):
    model = _model(env, "ppo")
    model.save(tmp_path / "model.zip")
    (tmp_path / "card.json").write_text(json.dumps({"algorithm": "PPO", "name": "tiny"}))
    (tmp_path / "obs_norm.json").write_text(_normalizer(env.observation_space.shape[0]).to_json())
    factory = TrainedPolicyFactory(str(tmp_path))
    made = []

    def counted():
        made.append(factory())
        return made[-1]

    got = run_episodes(counted, ENV_ID, EPISODES, SHORT)
    assert len(made) == 1 and made[0].batch_ready
    assert made[0].steps.tolist() == [r.n_steps for r in got]
    ref = [run_episode(factory(), ENV_ID, p, s, SHORT) for p, s in EPISODES]
    for g, r in zip(got, ref, strict=True):
        assert differences(g, r) == [], (g.patient, g.seed)
        assert g.controller == "tiny" and g.n_steps > 0
    assert len({r.metrics["mad_uv"] for r in got}) == len(EPISODES)


def test_an_unsupported_network_keeps_torch_and_plays_one_instance_per_episode(env):
    model = _model(env, "ppo", torch.nn.ELU)
    assert extract_mlp(model.policy) is None
    made = []

    def factory():
        made.append(TrainedPolicy(model, name="elu"))
        return made[-1]

    assert factory().batch_ready is False
    made.clear()
    got = run_episodes(factory, ENV_ID, EPISODES[:2], SHORT)
    assert len(made) == 2
    ref = [
        run_episode(TrainedPolicy(model, name="elu"), ENV_ID, p, s, SHORT) for p, s in EPISODES[:2]
    ]
    for g, r in zip(got, ref, strict=True):
        assert differences(g, r) == []
    obs = _observations(env, 3).astype(np.float32)
    policy = made[0]
    for row in obs:
        assert (
            policy.predict(row)[0].tobytes()
            == model.predict(row, deterministic=True)[0].astype(np.float32).tobytes()
        )
    with pytest.raises(ConfigError, match="not batch_ready"):
        policy.reset_many([policy.context] * 2)
    with pytest.raises(ConfigError, match="batch_ready"):
        policy.predict_many(obs)


def test_bad_inputs_to_the_batched_path_are_config_errors(env):
    base = env.unwrapped
    ctx = ControlContext.from_env(base.spec_.config, base.calibration, base.target_uv)
    policy = TrainedPolicy(_model(env, "ppo"))
    obs = _observations(env, 3)
    with pytest.raises(ConfigError, match="reset_many"):
        policy.predict_many(obs)
    policy.reset_many([ctx] * 3)
    with pytest.raises(ConfigError, match=r"obs has shape \(3, 5\)"):
        policy.predict_many(obs[:, :5])
    with pytest.raises(ConfigError, match="rows="):
        policy.predict_many(obs[:2], [0, 0])
    with pytest.raises(ConfigError, match="predict plays one"):
        policy.predict(obs[0])
