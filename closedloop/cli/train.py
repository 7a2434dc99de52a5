"""``closedloop train``: train an RL agent from ``agents/rl/`` (:func:`closedloop.training.train`).

Example:
    $ closedloop train --agent ppo --env closedloop/ECAPTracking-v0 --steps 1000000 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from closedloop._config import ConfigError
from closedloop.cli._common import PROG, add_ray_options, check_ray_options, parse_int_list

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_ENV = "closedloop/ECAPTracking-v0"
SWITCHES = ("progress", "tensorboard")
"""TrainOptions fields set by ``--no-progress`` and ``--no-tensorboard``."""


def add_parsers(sub) -> None:
    """Add the ``train`` subcommand."""
    p = sub.add_parser(
        "train",
        help="train an RL agent (PPO, SAC, TD3, RecurrentPPO) on an env",
        description="Train an RL agent from agents/rl/ on the native vector env, with a progress "
        "bar, CSV and TensorBoard logs (with clinical metrics), periodic checkpoints, "
        "validation on the validation cohort (keeping the best model) and a model "
        "card. A run folder with checkpoints is resumed automatically (same "
        "command); --fresh starts over.",
    )
    p.add_argument(
        "--agent",
        default="ppo",
        help="RL spec name in agents/rl/ or a spec .toml path (default ppo; --list shows them)",
    )
    p.add_argument("--env", default=DEFAULT_ENV, help=f"training env id (default {DEFAULT_ENV})")
    p.add_argument("--steps", type=int, help="env steps, summed over parallel patients")
    p.add_argument("--out", help="run folder (default runs/train-<agent>)")
    seeding = p.add_mutually_exclusive_group()
    seeding.add_argument(
        "--seed", type=int, default=0, help="seed of every random draw (default 0)"
    )
    seeding.add_argument(
        "--seeds",
        metavar="S,S",
        help="train once per seed, each in OUT/seed-<seed>, then summarise across seeds "
        "(seeds.md, seeds.json, learning_curves.png)",
    )
    p.add_argument("--n-envs", type=int, help="parallel patients (default: the spec's)")
    p.add_argument("--name", help="label of the trained models (default: the agent's name)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="require a checkpoint to resume from (default: resume if any)",
    )
    mode.add_argument("--fresh", action="store_true", help="delete the run's files, start over")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter (TOML value; repeatable)",
    )
    p.add_argument(
        "--env-kw",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="gymnasium.make override, e.g. episode_s=60 (repeatable)",
    )
    _option_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard logs")
    p.add_argument("--list", action="store_true", help="list the RL agent specs and exit")
    sweep = p.add_argument_group("several seeds (--seeds)")
    sweep.add_argument(
        "--workers", type=int, default=1, help="local processes training seeds at once (default 1)"
    )
    add_ray_options(sweep, "seed's training")
    p.set_defaults(run=run_train)


def _option_arguments(p: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`~closedloop.training.TrainOptions` field (same names)."""
    from closedloop.training.run_config import TrainOptions

    for f in dataclasses.fields(TrainOptions):
        if f.name in SWITCHES:
            continue
        unit = f.metadata["unit"]
        kind = str if isinstance(f.default, tuple) else type(f.default)
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=kind,
            default=None,
            help=f"{f.metadata['doc']} ({unit}; default {shown})",
        )


def parse_assignments(option: str, items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict.

    Values parse as TOML (``3e-4``, ``[64, 64]``, ``true``, ``{net_arch = [32]}``); anything
    else is a string (``lin_3e-4``).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {item!r} must be KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        out[key.strip()] = value
    return out


def options_from_args(args: argparse.Namespace):
    """The :class:`~closedloop.training.TrainOptions` the arguments select."""
    from closedloop.training.run_config import TrainOptions

    changes: dict[str, Any] = {}
    for f in dataclasses.fields(TrainOptions):
        value = getattr(args, f.name, None)
        if f.name in SWITCHES:
            changes[f.name] = not getattr(args, f"no_{f.name}")
        elif value is not None and f.name == "eval_seeds":
            try:
                changes[f.name] = tuple(int(t) for t in value.split(",") if t.strip())
            except ValueError:
                raise ConfigError(
                    f"--eval-seeds={value!r} must be a comma-separated list of integers"
                ) from None
        elif value is not None:
            changes[f.name] = value
    return TrainOptions(**changes)


def run_train(args: argparse.Namespace) -> int:
    """Run the ``train`` subcommand."""
    from closedloop.training import list_rl_agents, load_rl_spec, train

    if args.list:
        for name in list_rl_agents():
            try:
                spec = load_rl_spec(name)
            except ConfigError as exc:  # e.g. sb3-contrib not installed
                print(f"{name:<18} unavailable: {exc}")
                continue
            print(f"{name:<18} {spec.algorithm:<13} {spec.description.splitlines()[0]}")
        return 0
    if args.steps is None:
        raise ConfigError("--steps is required (env steps, summed over parallel patients)")
    if args.seeds is None and (args.ray is not False or args.workers != 1):
        raise ConfigError("--ray and --workers train several seeds at once: give --seeds S,S")
    out = args.out or f"runs/train-{args.agent}"
    kwargs = dict(
        n_envs=args.n_envs,
        resume=True if args.resume else False if args.fresh else None,
        hyperparams=parse_assignments("--set", args.set),
        env_overrides=parse_assignments("--env-kw", args.env_kw),
        name=args.name,
        options=options_from_args(args),
    )
    try:
        if args.seeds is not None:
            return _train_seeds(args, out, kwargs)
        result = train(args.agent, args.env, args.steps, out, args.seed, **kwargs)
    except KeyboardInterrupt:
        print(
            f"{PROG} train: interrupted; the same command resumes from the newest checkpoint "
            f"in {out}/checkpoints",
            file=sys.stderr,
        )
        return 130
    val = result.card.get("validation") or {}
    metrics = val.get("metrics", {})
    print(
        f"trained {result.steps:,} steps in {result.wall_clock_s:.0f} s; model: "
        f"{result.model_dir} ({result.card['training']['selection']})"
    )
    print(
        f"validation: time in window {metrics.get('time_in_window_frac', float('nan')):.3f}, "
        f"mad {metrics.get('mad_uv', float('nan')):.2f} µV over {val.get('n_episodes', 0)} "
        f"episodes; card: {result.model_dir / 'card.md'}"
    )
    return 0


def _train_seeds(args: argparse.Namespace, out: str, kwargs: dict) -> int:
    """``train --seeds``: one run per seed (local processes or Ray tasks) and the summary."""
    from closedloop.training.seeds import train_seeds

    check_ray_options(args)
    sweep = train_seeds(
        args.agent,
        args.env,
        args.steps,
        out,
        parse_int_list("--seeds", args.seeds),
        workers=args.workers,
        ray=args.ray,
        max_retries=args.max_retries,
        progress=not args.no_progress,
        **kwargs,
    )
    print(sweep.paths["seeds.md"].read_text(encoding="utf-8"))
    print(f"runs: {', '.join(str(p) for p in sweep.runs.values())}", file=sys.stderr)
    return 0
