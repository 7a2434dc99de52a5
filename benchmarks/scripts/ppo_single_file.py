"""PPO in one readable file, written directly against closedloop's native vector env.

In the style of cleanrl's ``ppo_continuous_action.py``: a Gaussian MLP policy, generalised
advantage estimation (GAE) and the clipped surrogate objective, with every step of the
algorithm visible in :func:`main`. Copy this file to start your own algorithm.

The environment is :class:`closedloop.envs.vector.ECAPVectorEnv`: ``num_envs`` virtual patients
stepped together by one numba call. It follows Gymnasium 1.x's ``NEXT_STEP`` autoreset: when a
sub-env's episode ends at step ``t`` (here always by truncation, when the episode's simulated
time is used up), the observation returned at ``t`` is that episode's final observation, and
the *next* call to ``step`` resets the sub-env, ignores its action and returns reward 0. This
script therefore

* bootstraps a truncated episode with the value of its final observation
  (``r_t += gamma * V(o_final)``) and cuts the GAE recursion there;
* marks the reset step ``t + 1`` invalid and leaves it out of the loss and the statistics.

At the end the trained policy is played as a controller (:class:`TorchPolicy`, the common
``predict``/``reset`` interface) on validation patients through
:func:`closedloop.evaluation.run_episode`, which prints the clinical metrics. Training and
validation run inside :func:`closedloop.patients.cohort.tuning_session`, so the held-out test
cohort is refused.

Usage::

    python benchmarks/scripts/ppo_single_file.py --total-timesteps 4096 --num-envs 8
    python benchmarks/scripts/ppo_single_file.py --total-timesteps 200000 --tensorboard runs
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
import typing

import numpy as np
import torch
import torch.nn as nn
from torch.distributions.normal import Normal
from tqdm.auto import tqdm

from closedloop.controllers import Controller
from closedloop.envs.vector import ECAPVectorEnv
from closedloop.evaluation import run_episode
from closedloop.patients.cohort import tuning_session


@dataclasses.dataclass
class Args:
    """Command-line arguments (``--total-timesteps 4096`` sets ``total_timesteps``)."""

    exp_name: str = "ppo_single_file"
    """name of this experiment (TensorBoard run name)"""
    seed: int = 1
    """seed of torch, numpy, python's random and the env resets"""
    threads: int = 1
    """torch CPU threads (1 is fastest for small networks on a busy 2-core machine)"""
    tensorboard: str = ""
    """TensorBoard log folder; empty: no TensorBoard"""
    progress: bool = True
    """show a progress bar"""
    save_model: str = ""
    """path of a .pt file to save the policy and observation statistics to; empty: no save"""

    env_id: str = "closedloop/ECAPTracking-v0"
    """registered closedloop id (the native vector env supports the single-action variants)"""
    episode_s: float = 0.0
    """simulated episode length (s); 0: the env spec's own"""
    patient: str = ""
    """train on this one patient (e.g. train-000); empty: a new training patient each reset"""
    total_timesteps: int = 200_000
    """total env steps over all sub-envs"""
    num_envs: int = 8
    """patients simulated in parallel"""
    num_steps: int = 256
    """steps per sub-env per rollout"""
    learning_rate: float = 3e-4
    """Adam learning rate"""
    anneal_lr: bool = True
    """decay the learning rate linearly to 0"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    num_minibatches: int = 8
    """minibatches per epoch"""
    update_epochs: int = 10
    """epochs over each rollout"""
    norm_adv: bool = True
    """normalise advantages per minibatch"""
    clip_coef: float = 0.2
    """surrogate clipping coefficient"""
    clip_vloss: bool = True
    """clip the value loss as in the PPO paper's implementation"""
    ent_coef: float = 0.0
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """gradient clipping norm"""
    target_kl: float = 0.0
    """stop the epochs early above this approximate KL; 0: never"""
    obs_clip: float = 10.0
    """clip of the normalised observations"""
    norm_reward: bool = True
    """scale rewards by the running std of the discounted return"""

    eval_patients: str = "validation-000,validation-001"
    """comma-separated patient ids for the final evaluation; empty: no evaluation"""
    eval_episode_s: float = 0.0
    """simulated length of an evaluation episode (s); 0: the env spec's own"""


def parse_args(argv: list[str] | None = None) -> Args:
    """Build an argparse parser from the fields of :class:`Args` and parse ``argv``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    hints = typing.get_type_hints(Args)
    for field in dataclasses.fields(Args):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            parser.add_argument(flag, type=kind, default=field.default)
    return Args(**vars(parser.parse_args(argv)))


class RunningMeanStd:
    """Running mean and variance of observations (Chan's parallel update)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.mean, self.var, self.count = np.zeros(shape), np.ones(shape), 1e-4

    def update(self, x: np.ndarray) -> None:
        """Fold a batch ``x`` of shape ``(n, *shape)`` into the statistics."""
        b_mean, b_var, n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta, total = b_mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.var, self.count = m2 / total, total

    def normalize(self, x: np.ndarray, clip: float) -> np.ndarray:
        """``(x - mean) / std`` clipped to ``[-clip, clip]``, as float32."""
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip).astype(np.float32)


class RewardScaler:
    """Divide rewards by the running std of the discounted return (cleanrl's NormalizeReward).

    Args:
        num_envs: Number of sub-environments.
        gamma: Discount factor of the return.
    """

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.rms, self.ret, self.gamma = RunningMeanStd(()), np.zeros(num_envs), gamma

    def __call__(self, reward: np.ndarray, valid: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Scaled rewards; ``valid`` is False on reset steps, ``done`` at episode ends."""
        self.ret = np.where(valid, self.ret * self.gamma + reward, 0.0)
        if valid.any():
            self.rms.update(self.ret[valid])
        self.ret[done] = 0.0
        return np.clip(reward / np.sqrt(self.rms.var + 1e-8), -10.0, 10.0)


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """Orthogonal weights and constant biases (the PPO implementation details)."""
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Separate 64-64 tanh MLPs for the value and the Gaussian policy's mean; state-free std."""

    def __init__(self, n_obs: int, n_act: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(n_obs, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )
        self.actor_mean = nn.Sequential(
            layer_init(nn.Linear(n_obs, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, n_act), std=0.01),
        )
        self.actor_logstd = nn.Parameter(torch.zeros(1, n_act))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        """State value, shape ``(batch, 1)``."""
        return self.critic(x)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        """Sample (or score) an action; returns action, log-prob, entropy and value."""
        mean = self.actor_mean(x)
        probs = Normal(mean, self.actor_logstd.expand_as(mean).exp())
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(x)


class TorchPolicy(Controller):
    """The trained agent behind closedloop's controller interface (``predict``/``reset``).

    Args:
        agent: The trained :class:`Agent`.
        obs_rms: Frozen observation statistics used in training.
        obs_clip: Clip of the normalised observations.
    """

    name = "ppo-single-file"

    def __init__(self, agent: Agent, obs_rms: RunningMeanStd, obs_clip: float) -> None:
        super().__init__()
        self.agent, self.obs_rms, self.obs_clip = agent, obs_rms, obs_clip

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        """The policy's action in [-1, 1] (its mean if ``deterministic``); ``state`` unchanged."""
        if self.context is None:
            raise RuntimeError("TorchPolicy.predict called before reset(context)")
        x = torch.as_tensor(self.obs_rms.normalize(np.asarray(obs)[None], self.obs_clip))
        with torch.no_grad():
            mean = self.agent.actor_mean(x)
            action = mean if deterministic else Normal(mean, self.agent.actor_logstd.exp()).sample()
        self.t_s += self.context.dt_s
        self.steps += 1
        return np.clip(action[0].numpy(), -1.0, 1.0), state


def evaluate(policy: TorchPolicy, args: Args) -> list[dict]:
    """Play ``policy`` on each evaluation patient (seed ``args.seed``); the metric rows."""
    overrides = {"episode_s": args.eval_episode_s} if args.eval_episode_s > 0 else {}
    rows = []
    for patient in filter(None, (p.strip() for p in args.eval_patients.split(","))):
        result = run_episode(policy, args.env_id, patient, args.seed, overrides)
        m = result.metrics
        print(
            f"eval {patient}: time in window {m['time_in_window_frac']:.3f}, above "
            f"discomfort {m['time_above_discomfort_frac']:.3f}, mean rel. error "
            f"{m['mean_rel_error']:.3f}, charge/pulse {m['charge_per_pulse_uc']:.3f} uC, "
            f"return {m['env_return']:.1f}"
        )
        rows.append(result.row())
    if rows:
        tiw = np.mean([r["time_in_window_frac"] for r in rows])
        print(f"eval mean time in window over {len(rows)} patients: {tiw:.3f}")
    return rows


def compute_gae(rewards, values, dones, next_value, gamma: float, gae_lambda: float):
    """Generalised advantage estimates and returns, shape ``(num_steps, num_envs)``.

    ``dones[t]`` is 1 where step ``t`` ended its episode. The step after it is the reset step of
    the next episode, so the recursion never bootstraps across it (truncations were already
    bootstrapped in the reward, with the final observation's value).
    """
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros(rewards.shape[1])
    for t in reversed(range(rewards.shape[0])):
        nextnonterminal = 1.0 - dones[t]
        nextvalues = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
        lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
        advantages[t] = lastgaelam
    return advantages, advantages + values


def ppo_update(agent: Agent, optimizer, batch: dict, args: Args, rng) -> dict[str, float]:
    """Optimise the clipped surrogate objective on one rollout ``batch``; loss statistics."""
    clipfracs, approx_kl = [], torch.zeros(())
    for _epoch in range(args.update_epochs):
        order = rng.permutation(batch["obs"].shape[0])
        for mb_inds in np.array_split(order, args.num_minibatches):
            mb = {k: v[torch.as_tensor(mb_inds)] for k, v in batch.items()}
            _, newlogprob, entropy, newvalue = agent.get_action_and_value(mb["obs"], mb["actions"])
            logratio = newlogprob - mb["logprobs"]
            ratio = logratio.exp()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - logratio).mean()
                clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())

            adv = mb["advantages"]
            if args.norm_adv and adv.numel() > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = torch.max(
                -adv * ratio, -adv * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
            ).mean()

            newvalue = newvalue.view(-1)
            v_loss = (newvalue - mb["returns"]) ** 2
            if args.clip_vloss:
                v_clipped = mb["values"] + torch.clamp(
                    newvalue - mb["values"], -args.clip_coef, args.clip_coef
                )
                v_loss = torch.max(v_loss, (v_clipped - mb["returns"]) ** 2)
            v_loss = 0.5 * v_loss.mean()
            entropy_loss = entropy.mean()
            loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
            optimizer.step()
        if args.target_kl > 0 and approx_kl > args.target_kl:
            break
    return {
        "losses/value_loss": v_loss.item(),
        "losses/policy_loss": pg_loss.item(),
        "losses/entropy": entropy_loss.item(),
        "losses/approx_kl": approx_kl.item(),
        "losses/clipfrac": float(np.mean(clipfracs)),
    }


def explained_variance(batch: dict) -> float:
    """``1 - Var(returns - values) / Var(returns)`` of a rollout batch (NaN if constant)."""
    y_pred, y_true = batch["values"].numpy(), batch["returns"].numpy()
    var_y = np.var(y_true)
    return float("nan") if var_y == 0 else float(1 - np.var(y_true - y_pred) / var_y)


def make_writer(args: Args):
    """A TensorBoard ``SummaryWriter`` if ``args.tensorboard`` is set (lazy import), else None."""
    if not args.tensorboard:
        return None
    from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

    run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    writer = SummaryWriter(f"{args.tensorboard}/{run_name}")
    table = "\n".join(f"|{k}|{v}|" for k, v in vars(args).items())
    writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")
    return writer


def main(args: Args) -> tuple[Agent, RunningMeanStd, list[dict]]:
    """Train and validate inside a tuning session, where the test cohort is refused.

    Training uses the env's cohort (``train``) and the evaluation validation patients; the
    held-out test cohort is for the leaderboard (``closedloop benchmark``) only.
    """
    with tuning_session(args.exp_name):
        return train(args)


def train(args: Args) -> tuple[Agent, RunningMeanStd, list[dict]]:
    """Train PPO with ``args``; returns the agent, its observation statistics and eval rows."""
    batch_size = args.num_envs * args.num_steps
    num_iterations = max(1, args.total_timesteps // batch_size)
    writer = make_writer(args)

    # Seeding: python, numpy (minibatch shuffles), torch (init, sampling) and the env resets.
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    overrides = {"episode_s": args.episode_s} if args.episode_s > 0 else {}
    if args.patient:
        overrides["patient"] = args.patient
    envs = ECAPVectorEnv(args.num_envs, args.env_id, **overrides)
    n_obs = envs.single_observation_space.shape[0]
    n_act = envs.single_action_space.shape[0]
    agent = Agent(n_obs, n_act)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    obs_rms = RunningMeanStd((n_obs,))
    reward_scaler = RewardScaler(args.num_envs, args.gamma) if args.norm_reward else None

    # Rollout storage, shape (num_steps, num_envs, ...).
    obs = torch.zeros((args.num_steps, args.num_envs, n_obs))
    actions = torch.zeros((args.num_steps, args.num_envs, n_act))
    logprobs = torch.zeros((args.num_steps, args.num_envs))
    rewards = torch.zeros((args.num_steps, args.num_envs))
    dones = torch.zeros((args.num_steps, args.num_envs))
    values = torch.zeros((args.num_steps, args.num_envs))
    valid = torch.zeros((args.num_steps, args.num_envs), dtype=torch.bool)

    raw_obs, _ = envs.reset(seed=args.seed)
    obs_rms.update(raw_obs)
    next_obs = torch.as_tensor(obs_rms.normalize(raw_obs, args.obs_clip))
    # True where the previous step ended the episode, so that this step is its autoreset step.
    next_is_reset = np.zeros(args.num_envs, bool)
    ep_return = np.zeros(args.num_envs)
    finished_returns: list[float] = []
    bar = tqdm(
        total=num_iterations * batch_size, unit="step", desc="ppo", disable=not args.progress
    )
    global_step, start_time = 0, time.time()

    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate
        in_window = []

        # --- Collect a rollout --------------------------------------------------------------
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            valid[step] = torch.as_tensor(~next_is_reset)
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step] = value.flatten()
            actions[step], logprobs[step] = action, logprob

            raw_obs, reward, terminated, truncated, info = envs.step(
                np.clip(action.numpy(), -1.0, 1.0)
            )
            done = terminated | truncated
            obs_rms.update(raw_obs)
            next_obs = torch.as_tensor(obs_rms.normalize(raw_obs, args.obs_clip))

            ok = ~next_is_reset  # the reset step's reward (0) and info are not real
            ep_return += np.where(ok, reward, 0.0)
            in_window.append(info["in_window"][ok])
            for i in np.flatnonzero(done):
                finished_returns.append(float(ep_return[i]))
                ep_return[i] = 0.0

            if reward_scaler is not None:
                reward = reward_scaler(reward, ok, done)
            reward_t = torch.as_tensor(reward, dtype=torch.float32)
            # Truncated, not terminated: bootstrap from the final observation's value.
            trunc_only = torch.as_tensor(truncated & ~terminated)
            if trunc_only.any():
                with torch.no_grad():
                    final_value = agent.get_value(next_obs).flatten()
                reward_t = reward_t + args.gamma * final_value * trunc_only
            rewards[step] = reward_t
            dones[step] = torch.as_tensor(done, dtype=torch.float32)
            next_is_reset = done

        with torch.no_grad():
            advantages, returns = compute_gae(
                rewards,
                values,
                dones,
                agent.get_value(next_obs).flatten(),
                args.gamma,
                args.gae_lambda,
            )

        # --- Learn from the valid (non-reset) steps only -----------------------------------
        keep = valid.reshape(-1)
        batch = {
            "obs": obs.reshape(-1, n_obs)[keep],
            "actions": actions.reshape(-1, n_act)[keep],
            "logprobs": logprobs.reshape(-1)[keep],
            "advantages": advantages.reshape(-1)[keep],
            "returns": returns.reshape(-1)[keep],
            "values": values.reshape(-1)[keep],
        }
        stats = ppo_update(agent, optimizer, batch, args, rng)

        # --- Report -------------------------------------------------------------------------
        tiw = float(np.mean(np.concatenate(in_window)))
        sps = int(global_step / (time.time() - start_time))
        stats.update(
            {
                "charts/learning_rate": optimizer.param_groups[0]["lr"],
                "charts/SPS": sps,
                "charts/time_in_window_frac": tiw,
                "losses/explained_variance": explained_variance(batch),
            }
        )
        if finished_returns:
            stats["charts/episodic_return"] = float(np.mean(finished_returns[-20:]))
        if writer is not None:
            for key, value in stats.items():
                writer.add_scalar(key, value, global_step)
        bar.update(batch_size)
        bar.set_postfix(in_window=f"{tiw:.3f}", sps=sps)
        if not args.progress:
            print(
                f"step {global_step}: time in window {tiw:.3f}, SPS {sps}, "
                f"episodes {len(finished_returns)}"
            )
    bar.close()
    envs.close()
    rows = finish(agent, obs_rms, args, writer, global_step)
    return agent, obs_rms, rows


def finish(
    agent: Agent, obs_rms: RunningMeanStd, args: Args, writer, global_step: int
) -> list[dict]:
    """Save the policy if asked, evaluate it on the validation patients, close TensorBoard."""
    if args.save_model:
        torch.save(
            {
                "agent": agent.state_dict(),
                "obs_mean": obs_rms.mean,
                "obs_var": obs_rms.var,
                "args": dataclasses.asdict(args),
            },
            args.save_model,
        )
        print(f"saved {args.save_model}")
    rows = evaluate(TorchPolicy(agent, obs_rms, args.obs_clip), args)
    if writer is not None:
        for key in ("time_in_window_frac", "time_above_discomfort_frac", "charge_per_pulse_uc"):
            if rows:
                writer.add_scalar(f"eval/{key}", np.mean([r[key] for r in rows]), global_step)
        writer.close()
    return rows


if __name__ == "__main__":
    main(parse_args())
