"""RLlib PPO (the new API stack) on a closedloop env id, then played as a closedloop controller.

Ray's env runners are separate processes that do not see the Gymnasium registry of this one, so
the env is named with Gymnasium's module prefix, ``closedloop:closedloop/ECAPTracking-v0``:
``gymnasium.make`` imports ``closedloop`` in each runner (which registers the ids) and then makes
the env, with ``env_config`` as its ``gymnasium.make`` keyword arguments. (``register_env`` with
a creator function that imports closedloop works too.) After training, the RLModule's greedy
action is wrapped as a controller (:class:`RLlibPolicy`: the common ``predict`` interface) and
played on validation patients by :func:`closedloop.evaluation.run_episode`, which prints the
clinical metrics. Training uses the training cohort; nothing here touches the held-out test
cohort.

Install either ``ray[rllib]`` (it pins its own Gymnasium: 1.2.2 for Ray 2.60) or closedloop's
``rllib`` extra (RLlib's dependencies without that pin; tested with Gymnasium 1.4.0)::

    pip install torch==2.13.0 && pip install closedloop "ray[rllib]==2.60.0"
    pip install torch==2.13.0 && pip install "closedloop[rllib]"

Usage::

    python benchmarks/scripts/rllib_ppo.py --iterations 1 --env-runners 1      # smoke run
    python benchmarks/scripts/rllib_ppo.py --iterations 50 --env-runners 2 --out runs/rllib
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ENV = "closedloop:closedloop/ECAPTracking-v0"


class RLlibPolicy:
    """An RLlib RLModule as a closedloop controller: its greedy (mean) action.

    Args:
        module: The trained RLModule (``algo.get_module()``).
        action_space: The env's action space (the action is clipped into it).
    """

    def __init__(self, module, action_space) -> None:
        self.module, self.space = module, action_space

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        """The module's mean action for ``obs``, as SB3's ``predict`` returns it."""
        import torch
        from ray.rllib.core.columns import Columns

        batch = {Columns.OBS: torch.as_tensor(np.asarray(obs, np.float32)[None])}
        with torch.no_grad():
            out = self.module.forward_inference(batch)
        dist = out[Columns.ACTION_DIST_INPUTS][0].numpy()
        mean = dist[: self.space.shape[0]]  # Gaussian inputs: means, then log stds
        return np.clip(mean, self.space.low, self.space.high).astype(np.float32), state


def build(args):
    """The PPO algorithm of ``args`` (new API stack: RLModule, Learner, EnvRunner)."""
    from ray.rllib.algorithms.ppo import PPOConfig

    config = (
        PPOConfig()
        .environment(ENV, env_config={"episode_s": args.episode_s})
        .env_runners(num_env_runners=args.env_runners, num_envs_per_env_runner=1)
        .training(
            train_batch_size_per_learner=args.batch,
            minibatch_size=min(128, args.batch),
            num_epochs=args.epochs,
            lr=args.lr,
            gamma=0.99,
        )
        .rl_module(model_config={"fcnet_hiddens": [64, 64]})
        .debugging(seed=args.seed)
    )
    return config.build_algo()


def evaluate(algo, n_patients: int, episode_s: float) -> list[dict]:
    """Play the trained module on the first validation patients; their clinical metrics."""
    import gymnasium as gym

    import closedloop  # noqa: F401  (registers the ids in this process)
    from closedloop.evaluation import run_episode

    space = gym.make(ENV.partition(":")[2]).action_space
    policy = RLlibPolicy(algo.get_module(), space)
    return [
        run_episode(
            policy, ENV.partition(":")[2], f"validation-{i:03d}", 0, {"episode_s": episode_s}
        ).metrics
        for i in range(n_patients)
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=20, help="training iterations")
    ap.add_argument("--env-runners", type=int, default=1, help="Ray env-runner processes")
    ap.add_argument("--batch", type=int, default=2000, help="env steps per iteration")
    ap.add_argument("--epochs", type=int, default=4, help="SGD epochs per iteration")
    ap.add_argument("--lr", type=float, default=3e-4, help="learning rate")
    ap.add_argument(
        "--episode-s", type=float, default=20.0, help="simulated episode length (s; 50 steps/s)"
    )
    ap.add_argument("--eval-patients", type=int, default=2, help="validation patients played")
    ap.add_argument("--seed", type=int, default=0, help="RLlib's seed")
    ap.add_argument("--out", default=None, help="save the algorithm checkpoint here")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: local)")
    args = ap.parse_args(argv)
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=args.address, include_dashboard=False, logging_level="WARNING")
    algo = build(args)
    for i in range(args.iterations):
        t0 = time.perf_counter()
        result = algo.train()
        runners = result.get("env_runners", {})
        ret = runners.get("episode_return_mean", float("nan"))  # NaN: no episode ended yet
        print(
            f"iteration {i + 1}: return {ret:.2f}, "
            f"{runners.get('num_env_steps_sampled_lifetime', 0)} env steps, "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    if args.out:
        print(f"checkpoint: {algo.save_to_path(str(Path(args.out).resolve()))}")
    for i, m in enumerate(evaluate(algo, args.eval_patients, args.episode_s)):
        print(
            f"validation-{i:03d}: time in window {m['time_in_window_frac']:.3f}, "
            f"above discomfort {m['time_above_discomfort_frac']:.3f}, mad {m['mad_uv']:.2f} uV"
        )
    algo.stop()
    if started:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
