"""SB3 PPO training throughput on our environments against null environments with the same spaces.

Imported by ``bench_env.py``. Three set-ups, each timed against its own null twin (same spaces,
same wrappers, no simulation: the cost floor of the training loop):

* ``single_lean``: one ``gymnasium.make`` env in SB3's ``DummyVecEnv``, a lean PPO
  (``n_steps=1024, batch_size=256, n_epochs=4``: few gradient steps per env step, so the env's
  share of the time is large; the strictest of the three);
* ``single_default``: the same env with SB3's default PPO hyperparameters;
* ``training``: what ``closedloop train ppo`` runs: the native vector env of 8 patients behind
  ``VecMonitor`` and ``VecNormalize`` (:func:`closedloop.training.env.make_training_env`) with
  the hyperparameters of ``agents/rl/ppo.toml``.

Torch runs one thread: with two, its threads spin-wait whenever the other is descheduled, and
on a shared 2-core machine that made both figures swing several-fold between runs.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

ENV_ID = "closedloop/ECAPTracking-v0"
EPISODE_STEPS = 9000
"""Steps of a default episode (180 s at 50 Hz); the null envs end theirs as often."""
LEAN = {"n_steps": 1024, "batch_size": 256, "n_epochs": 4}


class NullEnv(gym.Env):
    """Same spaces as ours, no simulation: the cost floor of the training loop."""

    def __init__(self, like):
        self.observation_space, self.action_space = like.observation_space, like.action_space
        self._obs = np.zeros(like.observation_space.shape, np.float32)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs.copy(), {}

    def step(self, action):  # a new observation array per call, as Gymnasium asks (and ours)
        self._t += 1
        return self._obs.copy(), 0.0, False, self._t >= EPISODE_STEPS, {}


def null_env(like):
    """A :class:`NullEnv` behind the wrappers ``gymnasium.make`` gives every env (ours too)."""
    from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker

    return OrderEnforcing(PassiveEnvChecker(NullEnv(like)))


class ResetTimer(gym.Wrapper):
    """Times the wrapped env's resets (``reset_s``, ``resets``); steps pass straight through."""

    def __init__(self, env):
        super().__init__(env)
        self.reset_s, self.resets = 0.0, 0

    def reset(self, **kwargs):
        t0 = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.reset_s += time.perf_counter() - t0
        self.resets += 1
        return out


def null_vec_env(n_envs: int, like):
    """An SB3 ``VecEnv`` of ``n_envs`` null envs stepped together (the native env's twin)."""
    from stable_baselines3.common.vec_env import VecEnv

    class NullVecEnv(VecEnv):
        def __init__(self):
            super().__init__(n_envs, like.observation_space, like.action_space)
            self._obs = np.zeros((n_envs, *like.observation_space.shape), np.float32)
            self._t = 0

        def reset(self):
            self._t = 0
            return self._obs.copy()

        def step_async(self, actions):
            pass

        def step_wait(self):
            self._t += 1
            done = self._t % EPISODE_STEPS == 0
            infos = [
                {"terminal_observation": self._obs[i].copy(), "TimeLimit.truncated": True}
                if done
                else {}
                for i in range(n_envs)
            ]
            return (self._obs.copy(), np.zeros(n_envs, np.float32), np.full(n_envs, done), infos)

        def close(self):
            pass

        def get_attr(self, attr_name, indices=None):
            return [None for _ in self._get_indices(indices)]

        def set_attr(self, attr_name, value, indices=None):
            pass

        def env_method(self, method_name, *args, indices=None, **kwargs):
            return [None for _ in self._get_indices(indices)]

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False for _ in self._get_indices(indices)]

    return NullVecEnv()


def _training_pair():
    """Our training env and its null twin, wrapped as ``closedloop train`` wraps, and PPO's
    keyword arguments from ``agents/rl/ppo.toml``.
    """
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from closedloop.training.env import make_training_env
    from closedloop.training.sb3_args import sb3_kwargs
    from closedloop.training.spec import load_rl_spec

    spec = load_rl_spec("ppo")
    hp = spec.hyperparams_for(ENV_ID)
    norm = {
        "normalize_obs": spec.normalize_obs,
        "normalize_reward": spec.normalize_reward,
        "gamma": float(hp.get("gamma", 0.99)),
        "clip_obs": spec.clip_obs,
    }
    ours = make_training_env(ENV_ID, spec.n_envs, **norm)
    null = VecNormalize(
        VecMonitor(null_vec_env(spec.n_envs, gym.make(ENV_ID))),
        norm_obs=norm["normalize_obs"],
        norm_reward=norm["normalize_reward"],
        clip_obs=norm["clip_obs"],
        gamma=norm["gamma"],
    )
    return ours, null, sb3_kwargs(hp, 1), spec.n_envs


def setups(quick: bool) -> dict:
    """Each set-up's ``(make_envs, rounds, steps per round)``.

    ``make_envs()`` returns ``(ours, null, PPO keyword arguments, n_envs)``.
    """

    def single(hp):
        return lambda: (
            ResetTimer(gym.make(ENV_ID)),
            ResetTimer(null_env(gym.make(ENV_ID))),
            dict(hp),
            1,
        )

    rounds = 2 if quick else 36
    return {
        "single_lean": (single(LEAN), rounds, 2048),
        "single_default": (single({}), rounds, 2048),
        "training": (_training_pair, rounds, 4096),
    }


class StepWaitTimer:
    """Times the ``step_wait`` of the innermost SB3 ``VecEnv`` under ``env``'s wrappers.

    For the training set-up that is our :class:`~closedloop.envs.sb3.SB3VecEnv` (the native
    vector env's step) or the null twin's; for the single set-ups, ``DummyVecEnv`` (our env's
    step and the copy of its info).
    """

    def __init__(self, env) -> None:
        from stable_baselines3.common.vec_env import VecEnv

        while isinstance(getattr(env, "venv", None), VecEnv):
            env = env.venv
        self.env, self.seconds, self.calls = env, 0.0, 0
        inner = env.step_wait

        def timed():
            t0 = time.perf_counter()
            out = inner()
            self.seconds += time.perf_counter() - t0
            self.calls += 1
            return out

        env.step_wait = timed

    def mean_us(self) -> float:
        """Mean µs per call so far."""
        return self.seconds / max(self.calls, 1) * 1e6

    def alone_us(self, steps: int = 400) -> float:
        """Median µs of ``step_wait`` over ``steps`` back-to-back steps outside PPO."""
        env, times = self.env, []
        actions = np.zeros((env.num_envs, *env.action_space.shape), env.action_space.dtype)
        for _ in range(steps):
            env.step_async(actions)
            t0 = time.perf_counter()
            env.step_wait()
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * 1e6


def measure(make_envs, rounds: int, chunk: int) -> dict:
    """PPO env-steps/s on ours and on the null twin, timed round-robin in ``chunk`` steps.

    One untimed ``learn`` of one chunk first warms both up (torch, the JIT caches, the first
    patients' model builds and the background builds of their successors). The timed ``learn``
    calls then alternate, so that background load falls on both alike; episode ends inside the
    timed steps count. Returns both rates, their ratio over all rounds, each round's ratio, and
    the time our single env spent in resets, and the mean ``step_wait`` of each side's
    innermost ``VecEnv`` inside the timed rounds and (median) alone (:class:`StepWaitTimer`).
    """
    import torch
    from stable_baselines3 import PPO

    from closedloop.envs import model_store

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ours, null, kwargs, n_envs = make_envs()
        envs = {"ours": ours, "null": null}
        models = {
            name: PPO("MlpPolicy", env, seed=0, device="cpu", verbose=0, **kwargs)
            for name, env in envs.items()
        }
        for model in models.values():
            model.learn(total_timesteps=chunk)
        model_store.wait_idle()  # the first resets' prefetches: part of the warm-up
        reset0 = getattr(ours, "reset_s", 0.0), getattr(ours, "resets", 0)
        timers = {name: StepWaitTimer(model.get_env()) for name, model in models.items()}
        times = {name: [] for name in models}
        for _ in range(rounds):
            for name, model in models.items():
                t0 = time.perf_counter()
                model.learn(total_timesteps=chunk, reset_num_timesteps=False)
                times[name].append(time.perf_counter() - t0)
        inside = {name: t.mean_us() for name, t in timers.items()}
        alone = {name: t.alone_us() for name, t in timers.items()}
    finally:
        torch.set_num_threads(threads)
    steps = rounds * chunk
    out = {name: steps / sum(t) for name, t in times.items()}
    out.update(
        ratio=out["ours"] / out["null"],
        steps=steps,
        n_envs=n_envs,
        round_ratios=[n / o for o, n in zip(times["ours"], times["null"], strict=True)],
        reset_s_ours=getattr(ours, "reset_s", 0.0) - reset0[0],
        resets_ours=getattr(ours, "resets", 0) - reset0[1],
        step_wait_us=inside,
        step_wait_alone_us=alone,
    )
    return out


def section_ppo(quick: bool = False) -> dict:
    """:func:`measure` for every set-up of :func:`setups`."""
    return {name: measure(*args) for name, args in setups(quick).items()}
