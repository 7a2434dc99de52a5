"""What a training run is and what it produced: its options, configuration and result.

The run folder's file names (:data:`RUN_FILE`, :data:`RUN_PARTS`), :class:`TrainOptions`,
:class:`RunConfig` and :class:`TrainResult`, below both :func:`closedloop.training.train` (which
validates the arguments into a :class:`RunConfig`) and :class:`closedloop.training.run.Run`
(which executes it).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError, param, validate
from closedloop.training.card import residual_table
from closedloop.training.spec import RLAgentSpec
from closedloop.training.validation import SELECT_BY

RUN_FILE = "run.json"
EVALUATIONS_FILE = "evaluations.json"
RUN_PARTS = ("checkpoints", "best", "final", "logs", RUN_FILE, EVALUATIONS_FILE)
"""What ``resume=False`` deletes from a run folder (nothing else is touched)."""


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How a run is observed, checkpointed and validated (not what is learned).

    Env-step counts are summed over the parallel patients.
    """

    eval_every: int = param(
        200_000,
        "steps",
        "measured: ~10 % of PPO's time at 5 patients",
        0,
        None,
        doc="validation period (0: only at the end)",
    )
    eval_patients: int = param(
        5, "1", "design choice", 1, 20, doc="first N validation-cohort patients"
    )
    eval_seeds: tuple[int, ...] = param(
        (0,), "1", "design choice", 0, None, doc="episode seeds of the validation"
    )
    eval_episode_s: float = param(
        0.0, "s", "design choice", 0.0, 86_400.0, doc="validation episode length (0: the env's)"
    )
    select_by: str = param(
        "time_in_window_frac",
        "1",
        "design choice",
        choices=SELECT_BY,
        doc="validation metric that picks the best model: time in window (ties: lower "
        "mad_uv), or env_return (the reward's own trade-off, e.g. with a charge price)",
    )
    checkpoint_every: int = param(
        100_000, "steps", "design choice", 0, None, doc="checkpoint period (0: only at the end)"
    )
    keep_checkpoints: int = param(2, "1", "design choice", 1, 1000, doc="newest checkpoints kept")
    log_every: int = param(
        10_000,
        "steps",
        "design choice",
        1,
        None,
        doc="off-policy: period of the clinical-metrics logs",
    )
    max_wall_s: float = param(
        0.0,
        "s",
        "design choice",
        0.0,
        None,
        doc="stop after this wall-clock time (0: no limit; such a run "
        "is not reproduced exactly by its command)",
    )
    progress: bool = param(
        True, "1", "design choice", choices=(True, False), doc="show a progress bar"
    )
    tensorboard: bool = param(
        True,
        "1",
        "design choice",
        choices=(True, False),
        doc="write TensorBoard logs (if tensorboard is installed)",
    )
    torch_threads: int = param(
        1,
        "1",
        "measured: small MLPs are fastest on one thread",
        0,
        256,
        doc="torch CPU threads of the process (0: torch's default)",
    )

    def __post_init__(self) -> None:
        validate(self, "options.")
        if not self.eval_seeds:
            raise ConfigError("options.eval_seeds is empty; give at least one seed >= 0")

    def changed(self) -> dict[str, Any]:
        """Fields that affect the result and differ from the defaults (for the command)."""
        quiet = ("progress", "tensorboard", "torch_threads")
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in quiet and getattr(self, f.name) != f.default
        }


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run, validated (built by :func:`train`)."""

    spec: RLAgentSpec
    agent: str
    env_id: str
    total_steps: int
    out_dir: Path
    seed: int
    n_envs: int
    hp_overrides: Mapping[str, Any]
    hyperparams: Mapping[str, Any]
    env_overrides: Mapping[str, Any]
    name: str
    options: TrainOptions

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the checkpointed one (``run.json``)."""
        return {
            "agent": self.spec.name,
            "algorithm": self.spec.algorithm,
            "policy": self.spec.policy,
            "env_id": self.env_id,
            "seed": self.seed,
            "n_envs": self.n_envs,
            "hyperparams": dict(self.hyperparams),
            "env_overrides": dict(self.env_overrides),
            **({"residual": residual_table(self.spec)} if self.spec.residual else {}),
        }

    def command(self) -> str:
        """The ``closedloop train`` command that reproduces this run."""
        import shlex

        argv = [
            "closedloop",
            "train",
            "--agent",
            self.agent,
            "--env",
            self.env_id,
            "--steps",
            str(self.total_steps),
            "--seed",
            str(self.seed),
            "--n-envs",
            str(self.n_envs),
            "--out",
            str(self.out_dir),
        ]
        for key, value in self.hp_overrides.items():
            argv += ["--set", f"{key}={toml_value(value)}"]
        for key, value in self.env_overrides.items():
            argv += ["--env-kw", f"{key}={toml_value(value)}"]
        for key, value in self.options.changed().items():
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            argv += [f"--{key.replace('_', '-')}", text]
        return shlex.join(argv)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a run produced.

    Attributes:
        out_dir: The run folder.
        model_dir: The selected model (``best/``, else ``final/``); load with
            :func:`~closedloop.training.load_trained`.
        steps: Env steps trained (summed over the parallel patients).
        wall_clock_s: Training wall-clock time over all segments (s).
        card: The selected model's card.
        evaluations: Every validation of the run (step, mean clinical metrics).
    """

    out_dir: Path
    model_dir: Path
    steps: int
    wall_clock_s: float
    card: dict
    evaluations: list


def toml_value(value: Any) -> str:
    """``value`` as a TOML inline value (what ``--set`` and ``--env-kw`` parse)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def clear_run(out_dir: Path) -> None:
    """Delete a run's files (:data:`RUN_PARTS`) from ``out_dir``; nothing else."""
    for part in RUN_PARTS:
        path = Path(out_dir) / part
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
