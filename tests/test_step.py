"""The control step exists once: the compiled body equals its NumPy reference, bit for bit.

Every env id steps through :func:`closedloop.envs.step.control_step` (the scalar env as a
batch of one, the vector env as a batch of N); :func:`closedloop.envs.step_reference.
reference_step` writes the same step plainly with NumPy around the neural model.
"""

import copy

import gymnasium as gym
import numpy as np
import pytest

from closedloop.envs.episode import Episode
from closedloop.envs.pairwise import pairwise_sum
from closedloop.envs.step_data import RESULT_DTYPE
from closedloop.envs.step_reference import reference_step
from closedloop.neural.pulse_runner import PulseRunner

CASES = [
    ("closedloop/ECAPTracking-v0", {}),
    ("closedloop/ECAPTracking-v0", {"action_mode": "multiplicative"}),
    ("closedloop/ECAPTracking-v0", {"action_mode": "absolute", "scenario": "chronic-drift"}),
    ("closedloop/ECAPHighRate-v0", {}),  # 20 pulses per step: pairwise means
    ("closedloop/ECAPHighRate-v0", {"pulses_per_step": 200}),  # NumPy's split past 128
    ("closedloop/ECAPPulseShape-v0", {}),  # pulse width and rate per step
    ("closedloop/ECAPWaveform-v0", {}),  # the sweep in the observation
    ("closedloop/ECAPCoughStorm-v0", {"pulses_per_step": 3}),
    ("closedloop/ECAPHighRate-v0", {"reward": {"window": 1.0, "charge": 0.3}}),
]


def _twin(env):
    """A copy of the env's episode arrays and a runner over a clone of its model."""
    inner = env.unwrapped
    ep = Episode(*(a.copy() for a in inner._ep))
    model = copy.deepcopy(inner.model)
    cfg = inner.spec_.config
    return ep, PulseRunner(model, cfg.pulses_per_step, cfg.observe_waveform)


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_control_step_equals_the_numpy_reference(env_id, kwargs):
    env = gym.make(env_id, episode_s=0.8, **kwargs)
    env.reset(seed=3)
    ep, runner = _twin(env)
    rng = np.random.default_rng(1)
    shape = env.action_space.shape
    actions = rng.uniform(-1.4, 1.4, (40, *shape)).astype(np.float32)
    actions[::3] = np.sign(actions[::3])  # full swings: the device limits act
    inner, seen_flags = env.unwrapped, 0
    for a in actions:
        obs, reward, _, truncated, info = env.step(a)
        reference_step(ep, runner, np.clip(a, -1.0, 1.0))
        mine = inner._ep
        assert obs.tobytes() == ep.obs[0].tobytes()
        assert mine.state.tobytes() == ep.state.tobytes()
        assert mine.result.tobytes() == ep.result.tobytes(), [
            (f, mine.result[f], ep.result[f])
            for f in RESULT_DTYPE.names
            if mine.result[f] != ep.result[f]
        ]
        for name in ("pulse_current", "pulse_impedance", "pulse_flags"):
            assert getattr(mine, name).tobytes() == getattr(ep, name).tobytes(), name
        assert reward == ep.result["reward"][0] and truncated == ep.result["truncated"][0]
        seen_flags |= info["device_flags"]
    if kwargs.get("action_mode") == "absolute":  # full swings: the ramp limits act
        assert seen_flags


def test_window_reward_is_the_fraction_of_pulses_in_the_window():
    """With only the window weight, a step's reward is its time in window (issue 22)."""
    only = {"tracking": 0.0, "discomfort": 0.0, "charge": 0.0, "window": 2.0}
    env = gym.make("closedloop/ECAPTracking-v0", episode_s=6.0, reward=only)
    base = gym.make("closedloop/ECAPTracking-v0", episode_s=6.0)
    env.reset(seed=5)
    base.reset(seed=5)
    rng = np.random.default_rng(2)
    rewards, inside = [], []
    for a in rng.uniform(-1.0, 1.0, (300, 1)).astype(np.float32):
        _, reward, _, _, info = env.step(a)
        _, reward_0, _, _, info_0 = base.step(a)
        assert info["ecap_true_uv"] == info_0["ecap_true_uv"]  # the weights change no dynamics
        rewards.append(reward)
        inside.append(info["in_window"])
    assert rewards == [2.0 * float(w) for w in inside]
    assert 0 < sum(inside) < len(inside)  # both kinds of step were seen


def test_pairwise_sum_is_numpys_sum_bit_for_bit():
    rng = np.random.default_rng(0)
    for n in [*range(1, 140), 255, 256, 1000, 1037, 10_000]:  # blocks of 128, then NumPy's split
        x = rng.standard_normal(n) * 10 ** rng.uniform(-3, 3, n)
        assert pairwise_sum(x, n) == np.add.reduce(x)
        assert pairwise_sum(x, n, 0.7, True) == np.add.reduce(np.abs(x - 0.7))
