"""Model cards of trained policies: ``card.json`` and a short ``card.md`` beside each model.

A card says what the model is and how to make it again: the env id and version (with the
resolved env configuration), the algorithm, policy and hyperparameters, the normalisation, the
steps and wall-clock time of training, the validation metrics it was selected on, the package
versions, and the ``closedloop train`` command that reproduces it.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from closedloop.envs.config import load_suite, with_overrides
from closedloop.evaluation.episode_runner import EPISODE_METRICS

CARD_FORMAT = "closedloop.model-card/1"
PACKAGES = (
    "closedloop",
    "stable-baselines3",
    "sb3-contrib",
    "torch",
    "gymnasium",
    "numpy",
    "numba",
    "scipy",
)
CARD_METRICS = (
    "time_in_window_frac",
    "mad_uv",
    "mean_rel_error",
    "overstim_frac",
    "understim_frac",
    "overstim_events_per_hour",
    "charge_per_pulse_uc",
    "env_return",
)
"""Validation metrics shown in the Markdown card (the JSON card has all of them)."""


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a model depends on, and Python's."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def env_section(env_id: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Env id, version, description and the resolved configuration (overrides applied)."""
    import gymnasium as gym

    spec = with_overrides(load_suite()[env_id], dict(overrides))
    return {
        "id": env_id,
        "version": gym.spec(env_id).version,
        "description": spec.description,
        "overrides": dict(overrides),
        "config": dataclasses.asdict(spec.config),
        "reward": dataclasses.asdict(spec.reward),
    }


def build_card(
    *,
    name: str,
    spec: Any,
    env_id: str,
    env_overrides: Mapping[str, Any],
    hyperparams: Mapping[str, Any],
    seed: int,
    n_envs: int,
    training: Mapping[str, Any],
    validation: Mapping[str, Any] | None,
    command: str,
) -> dict[str, Any]:
    """The card of one saved model.

    Args:
        name: Controller label of the model.
        spec: Its :class:`~closedloop.training.spec.RLAgentSpec`.
        env_id: The training env id.
        env_overrides: ``gymnasium.make`` overrides used in training.
        hyperparams: Resolved hyperparameters (spec sections and overrides merged).
        seed: Training seed.
        n_envs: Patients simulated in parallel.
        training: ``steps``, ``total_steps``, ``wall_clock_s``, ``env_steps_per_s``,
            ``resumed_at`` and ``selection`` (how this model was chosen).
        validation: The validation result of this model (:func:`validation_summary`), if any.
        command: The shell command that reproduces the run.
    """
    return {
        "format": CARD_FORMAT,
        "name": name,
        "agent": spec.name,
        "description": spec.description,
        "env": env_section(env_id, env_overrides),
        "algorithm": spec.algorithm,
        "policy": spec.policy,
        "hyperparameters": dict(hyperparams),
        "normalization": {
            "obs": spec.normalize_obs,
            "reward": spec.normalize_reward,
            "clip_obs": spec.clip_obs,
            "gamma": hyperparams.get("gamma", 0.99),
        },
        "n_envs": n_envs,
        "residual": residual_table(spec),
        "seed": seed,
        "training": dict(training),
        "validation": dict(validation) if validation else None,
        "packages": package_versions(),
        "command": command,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def residual_table(spec: Any) -> dict[str, Any] | None:
    """The spec's resolved ``[residual]`` table (every field), or None for a plain agent."""
    params = spec.residual_params()
    return None if params is None else dataclasses.asdict(params)


def validation_summary(
    rows: Sequence[Mapping[str, Any]], env_id: str, step: int, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Mean metrics over validation episodes, with the episodes' identities.

    Args:
        rows: Result rows (:meth:`closedloop.evaluation.EpisodeResult.row`).
        env_id: The env they were played on.
        step: Training step of the evaluated model.
        overrides: Env overrides of the episodes.
    """
    import numpy as np

    means = {}
    for key in EPISODE_METRICS:
        values = np.array([r.get(key) for r in rows], dtype=np.float64)  # None -> NaN
        ok = values[np.isfinite(values)]
        means[key] = float(ok.mean()) if ok.size else float("nan")
    return {
        "step": int(step),
        "env_id": env_id,
        "overrides": dict(overrides),
        "patients": sorted({r["patient"] for r in rows}),
        "seeds": sorted({int(r["seed"]) for r in rows}),
        "n_episodes": len(rows),
        "metrics": means,
    }


def card_markdown(card: Mapping[str, Any]) -> str:
    """A short human-readable card."""
    env, tr, val = card["env"], card["training"], card.get("validation")
    lines = [
        f"# {card['name']}: {card['algorithm']} on {env['id']}",
        "",
        card.get("description", ""),
        "",
        f"- env: `{env['id']}` (version {env['version']}), overrides `{env['overrides'] or {}}`",
        f"- algorithm: {card['algorithm']} ({card['policy']}), {card['n_envs']} parallel "
        f"patients, seed {card['seed']}",
        f"- normalisation: observations {card['normalization']['obs']}, rewards "
        f"{card['normalization']['reward']}",
        f"- residual: corrects `{card['residual']}`" if card.get("residual") else "- residual: no",
        f"- training: {tr['steps']:,} env steps in {tr['wall_clock_s']:.0f} s "
        f"({tr['env_steps_per_s']:,.0f} steps/s); selected: {tr['selection']}"
        + (f"; resumed at {tr['resumed_at']}" if tr.get("resumed_at") else ""),
        "",
        "## Hyperparameters",
        "",
        "| key | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | `{v}` |" for k, v in sorted(card["hyperparameters"].items())]
    if val:
        lines += [
            "",
            f"## Validation ({val['n_episodes']} episodes on {val['env_id']}, "
            f"patients {', '.join(val['patients'])}, seeds {val['seeds']})",
            "",
            "| metric | mean |",
            "|---|---|",
        ]
        lines += [f"| {k} | {val['metrics'][k]:.4g} |" for k in CARD_METRICS if k in val["metrics"]]
    pk = card["packages"]
    lines += [
        "",
        "## Reproduce",
        "",
        "```",
        card["command"],
        "```",
        "",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in pk.items()),
        "",
    ]
    return "\n".join(lines)
