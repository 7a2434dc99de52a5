"""``closedloop evaluate``: play one controller on one env, patient and seed, and look at it.

The controller is any reference :func:`closedloop.controllers.sources.resolve_controller`
accepts (a registered name, a spec file, ``module:Class``, ``path/to/file.py:Class``, a folder
written by ``closedloop train``, optionally ``LABEL=REFERENCE``). The episode is played by
:func:`closedloop.evaluation.run_episode`, so the printed metrics are the ones the API returns
for the same arguments.

Examples:
    $ closedloop evaluate pid --env closedloop/ECAPClinic-Test-v0 --patient test-003
    $ closedloop evaluate ./my_ctl.py:MyController --json
    $ closedloop evaluate runs/ppo/best --episode-s 60 --plot ppo.png
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

from closedloop._config import ConfigError
from closedloop._io import nan_to_none
from closedloop.cli._common import check_out_path

DEFAULT_ENV = "closedloop/ECAPTracking-v0"
"""Env of ``closedloop evaluate`` when ``--env`` is not given."""


def add_parsers(sub) -> None:
    """Add the ``evaluate`` subcommand."""
    e = sub.add_parser(
        "evaluate",
        help="play one controller on one env, patient and seed",
        description="Play one controller through one episode and print its clinical metrics. "
        "CONTROLLER is a registered name (an agents/ spec, a zoo policy, a "
        "plugin's; an unknown name lists them), a spec file "
        "(./my-pid.toml), module:Class, path/to/file.py:Class, or a folder written "
        "by closedloop train; LABEL=CONTROLLER names it.",
    )
    e.add_argument("controller", metavar="CONTROLLER", help="the controller reference")
    e.add_argument(
        "--env",
        default=DEFAULT_ENV,
        metavar="ID",
        help=f"registered env id (default {DEFAULT_ENV})",
    )
    e.add_argument(
        "--patient",
        default=None,
        metavar="ID",
        help="patient id, e.g. validation-003 or test-000 (default: the env's own "
        "choice, a patient of its cohort drawn with the seed)",
    )
    e.add_argument("--seed", type=int, default=0, help="episode seed, >= 0 (default 0)")
    e.add_argument(
        "--episode-s",
        type=float,
        default=None,
        metavar="S",
        help="episode length (s); default the env's",
    )
    e.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (metrics with NaN as null) and nothing else",
    )
    e.add_argument(
        "--plot",
        metavar="PATH.png",
        help="save the trace: ECAP vs target and window, current, sensation, posture, events",
    )
    e.add_argument("--save-trajectory", metavar="PATH.npz", help="save every step's record")
    e.set_defaults(run=run_evaluate)


def env_overrides(env_id: str, episode_s: float | None) -> dict[str, Any]:
    """The ``gymnasium.make`` overrides of ``--episode-s`` (checked), or ``{}``."""
    from closedloop.evaluation.episode_inputs import check_env_overrides

    if episode_s is None:
        return {}
    if not math.isfinite(episode_s) or episode_s <= 0:
        raise ConfigError(
            f"--episode-s={episode_s!r} is invalid; valid: a finite number of "
            "seconds > 0, longer than the warm-up"
        )
    try:
        return check_env_overrides(env_id, {"episode_s": episode_s})
    except ConfigError as exc:
        raise ConfigError(f"--episode-s={episode_s:g}: {exc}") from None


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the ``evaluate`` subcommand."""
    from closedloop.controllers.sources import build_controller, resolve_controller, source_id
    from closedloop.evaluation import run_episode
    from closedloop.evaluation.episode_inputs import check_env_id, check_patient, check_seed

    check_out_path("--plot", args.plot)
    check_out_path("--save-trajectory", args.save_trajectory)
    env_id = check_env_id(args.env, "--env")
    seed = check_seed(args.seed, "--seed")
    patient = "" if args.patient is None else check_patient(args.patient, "--patient")
    overrides = env_overrides(env_id, args.episode_s)
    label, source = resolve_controller(args.controller, "CONTROLLER")
    try:
        result = run_episode(build_controller(source), env_id, patient, seed, overrides, name=label)
    except ConfigError as exc:
        if args.episode_s is None or not str(exc).startswith("warmup_s="):
            raise
        raise ConfigError(
            f"--episode-s={args.episode_s:g} leaves nothing to score after the warm-up ({exc})"
        ) from None
    if args.json:
        doc = episode_document(result)
        doc["source"] = source_id(source)
        print(json.dumps(nan_to_none(doc), indent=2, allow_nan=False))
    else:
        print(format_episode(result))
    if args.save_trajectory:
        print(f"wrote {result.trajectory.save(args.save_trajectory)}", file=sys.stderr)
    if args.plot:
        print(f"wrote {plot_episode(result, args.plot, overrides)}", file=sys.stderr)
    return 0


def episode_document(result: Any) -> dict[str, Any]:
    """The JSON document of ``--json`` (NaN still NaN: pass it through ``nan_to_none``)."""
    traj = result.trajectory
    return {
        "label": result.controller,
        "env_id": result.env_id,
        "scenario": result.scenario,
        "patient": result.patient,
        "seed": result.seed,
        "target_uv": result.target_uv,
        "n_steps": result.n_steps,
        "episode_s": _duration_s(traj),
        "warmup_s": traj.warmup_s,
        "metrics": dict(result.metrics),
    }


def _duration_s(traj: Any) -> float:
    """Length of the played episode (s): the last step's time plus one step."""
    t = traj.t_s
    if t.size < 2:
        return float(t.size / traj.rate_hz)
    return float(t[-1] - t[0] + (t[-1] - t[-2]))


def format_episode(result: Any) -> str:
    """The episode's identity, then its metrics (:func:`format_metrics`)."""
    traj = result.trajectory
    head = (
        f"{result.controller} on {result.env_id} ({result.scenario}): patient "
        f"{result.patient}, seed {result.seed}\n"
        f"target {result.target_uv:.1f} µV; {result.n_steps:,} steps, "
        f"{_duration_s(traj):g} s (the first {traj.warmup_s:g} s not scored); played in "
        f"{result.wall_s:.1f} s"
    )
    return f"{head}\n{format_metrics(result.metrics)}"


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """Metrics as ``key  value unit  meaning`` lines (the meaning without its unit)."""
    from closedloop.evaluation import EPISODE_METRICS
    from closedloop.evaluation.numbers import with_unit

    lines = []
    for key, value in metrics.items():
        doc = re.sub(r"\s*\([^()]*\)$", "", EPISODE_METRICS.get(key, ""))
        lines.append(f"  {key:<36} {with_unit(key, value):>18}  {doc}".rstrip())
    return "\n".join(lines)


def plot_episode(result: Any, path: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """Save the trace of ``result``, with the patient's window and the env's unscored time.

    Args:
        result: An :class:`~closedloop.evaluation.EpisodeResult` with its trajectory.
        path: Output PNG path.
        overrides: The ``gymnasium.make`` overrides the episode was played with.
    """
    from closedloop.envs.config import load_suite, with_overrides
    from closedloop.evaluation.figures import with_window
    from closedloop.evaluation.numbers import with_unit
    from closedloop.metrics import unscored_mask
    from closedloop.plots import plot_trajectory

    cfg = with_overrides(load_suite()[result.env_id], dict(overrides or {})).config
    traj = result.trajectory
    unscored = unscored_mask(
        traj.t_s, traj.posture, cfg.unscored_posture_names, cfg.unscored_after_s
    )

    shown = ", ".join(
        f"{name} {with_unit(key, result.metrics.get(key))}"
        for name, key in (
            ("time in window", "time_in_window_frac"),
            ("MAD", "mad_uv"),
            ("above discomfort", "time_above_discomfort_frac"),
        )
    )
    title = (
        f"{result.controller} on {result.env_id}: patient {result.patient}, seed "
        f"{result.seed}\n{shown}"
    )
    return plot_trajectory(with_window(traj), path, title, unscored)
