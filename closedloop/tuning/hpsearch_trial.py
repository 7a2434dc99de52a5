"""One trial of the hyperparameter search: its hyperparameters drawn, the agent trained, scored."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from closedloop.controllers import SB3Policy
from closedloop.envs.vector import ECAPVectorEnv
from closedloop.evaluation import run_episode
from closedloop.training.sb3_args import sb3_kwargs
from closedloop.tuning.hpsearch_space import (
    POLICIES,
    REPORTED,
    SearchSpace,
    algorithm_class,
    rule_kind,
)


def sample(
    trial: Any, ranges: Mapping[str, Mapping[str, Any]], algo: str | None = None
) -> dict[str, Any]:
    """Draw one value per range with an optuna ``trial``.

    An integer hyperparameter of ``algo`` is drawn as an integer, any other as a float
    (without ``algo``: an integer if both bounds are integers).
    """
    out = {}
    for key, rng in ranges.items():
        ints = isinstance(rng.get("low"), int) and isinstance(rng.get("high"), int)
        if "choices" in rng:
            out[key] = trial.suggest_categorical(key, list(rng["choices"]))
        elif rule_kind(algo, key) == "int" if algo else ints:
            out[key] = trial.suggest_int(key, rng["low"], rng["high"], log=bool(rng.get("log")))
        else:
            out[key] = trial.suggest_float(
                key, float(rng["low"]), float(rng["high"]), log=bool(rng.get("log"))
            )
    return out


def rollout_size(algo: str, hp: Mapping[str, Any], n_envs: int) -> int | None:
    """An on-policy ``algo``'s rollout size ``n_steps * n_envs``, the cap of its ``batch_size``.

    ``n_steps`` is the algorithm's default if ``hp`` sets none; None off-policy (no cap).
    """
    if algo not in ("ppo", "recurrentppo"):
        return None
    n_steps = inspect.signature(algorithm_class(algo).__init__).parameters["n_steps"].default
    return int(hp.get("n_steps", n_steps)) * n_envs


class NormalizedPredictor:
    """An SB3 model whose ``predict`` sees observations normalised by frozen VecNormalize stats.

    Args:
        model: The trained SB3 model.
        vecnorm: The training ``VecNormalize`` (or None: observations pass unchanged).
    """

    def __init__(self, model: Any, vecnorm: Any = None) -> None:
        self.model, self.vecnorm = model, vecnorm

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        """``model.predict`` on the normalised observation."""
        if self.vecnorm is not None:
            obs = self.vecnorm.normalize_obs(obs)
        return self.model.predict(
            obs, state=state, episode_start=episode_start, deterministic=deterministic
        )


@dataclasses.dataclass(frozen=True)
class TrialSetup:
    """Everything one trial needs besides its sampled hyperparameters.

    Attributes:
        algo: Key of :data:`ALGOS`.
        env_id: Registered env id trained on (its spec's cohort, normally ``train``).
        steps: Env steps of training per trial (over all sub-envs).
        space: The search space (fixed values, n_envs, normalisation).
        env_overrides: ``gymnasium.make`` overrides of the training env, e.g. ``episode_s``.
        eval_patients: Patient ids the policy is scored on.
        eval_seeds: Episode seeds of the scoring.
        eval_overrides: ``gymnasium.make`` overrides of the scoring episodes.
    """

    algo: str
    env_id: str
    steps: int
    space: SearchSpace
    env_overrides: Mapping[str, Any]
    eval_patients: tuple[str, ...]
    eval_seeds: tuple[int, ...]
    eval_overrides: Mapping[str, Any]


def train_trial(setup: TrialSetup, hp: Mapping[str, Any], seed: int) -> NormalizedPredictor:
    """Train ``setup.algo`` with ``hp`` for ``setup.steps`` steps; the trained predictor."""
    from stable_baselines3.common.vec_env import VecNormalize

    from closedloop.envs.sb3 import SB3VecEnv

    space = setup.space
    venv = SB3VecEnv(ECAPVectorEnv(space.n_envs, setup.env_id, **setup.env_overrides))
    venv.seed(seed)
    vecnorm = None
    if space.normalize_obs or space.normalize_reward:
        gamma = float(hp.get("gamma", 0.99))
        venv = vecnorm = VecNormalize(
            venv, norm_obs=space.normalize_obs, norm_reward=space.normalize_reward, gamma=gamma
        )
    cls = algorithm_class(setup.algo)
    policy = POLICIES.get(setup.algo, "MlpPolicy")
    model = cls(
        policy,
        venv,
        seed=seed,
        verbose=0,
        device="cpu",
        **sb3_kwargs(hp, venv.action_space.shape[0], rollout_size(setup.algo, hp, space.n_envs)),
    )
    model.learn(total_timesteps=setup.steps)
    if vecnorm is not None:
        vecnorm.training = False
    venv.close()
    return NormalizedPredictor(model, vecnorm if space.normalize_obs else None)


def score(predictor: NormalizedPredictor, setup: TrialSetup) -> dict[str, float]:
    """Mean clinical metrics (:data:`REPORTED`) of ``predictor`` over the scoring episodes."""
    controller = SB3Policy(predictor)
    rows = [
        run_episode(controller, setup.env_id, patient, seed, setup.eval_overrides).metrics
        for patient in setup.eval_patients
        for seed in setup.eval_seeds
    ]
    return {k: float(sum(r[k] for r in rows) / len(rows)) for k in REPORTED}
