"""The mechanics of one training run: set up or resume, learn, checkpoint, validate, save.

:func:`closedloop.training.train` validates its arguments into a
:class:`~closedloop.training.train.RunConfig` and hands it to :class:`Run`; the run folder's
layout and the resume rules are documented in :mod:`closedloop.training.train`.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError
from closedloop.training import card as cards
from closedloop.training.checkpoints import (
    REPLAY_FILE,
    latest_checkpoint,
    save_checkpoint,
    save_model_dir,
    to_json,
    write_json,
)
from closedloop.training.env import env_config, make_training_env, restore_stats
from closedloop.training.policy import CARD_FILE, MODEL_FILE, NORM_FILE, model_dir
from closedloop.training.resume import RESUME_FILE, capture, isolated_rng, load_env, restore
from closedloop.training.run_config import (
    EVALUATIONS_FILE,
    RUN_FILE,
    RunConfig,
    TrainResult,
    clear_run,
)
from closedloop.training.sb3_args import sb3_kwargs
from closedloop.training.spec import algorithm_class
from closedloop.training.validation import evaluate, is_better, validation_patients


class Run:
    """One training run (see :mod:`closedloop.training.train`).

    Args:
        cfg: The validated run configuration.
    """

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.model: Any = None
        self.norm: Any = None
        self.evaluations: list[dict] = []
        self.best: dict | None = None
        self.wall_before = 0.0
        self.resumed_at: list[int] = []
        self._t0 = time.perf_counter()
        self._last_eval = self._last_ckpt = -1
        self._stopped_by = "steps"
        self._log: Any = None

    # -- set-up -----------------------------------------------------------------------------
    def execute(self, resume: bool | None, callbacks: list) -> TrainResult:
        """Set up (fresh or from the newest checkpoint), learn to the total, save."""
        found = None if resume is False else latest_checkpoint(self.out)
        if resume is True and found is None:
            raise ConfigError(
                f"resume=True but {self.out} has no checkpoint; run without --resume to start"
            )
        if found is None:  # nothing to resume: start from a clean folder
            clear_run(self.out)
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / RUN_FILE, self.cfg.identity())
            self._fresh()
        else:
            self._check_identity(found[1].get("identity", {}))
            if (
                found[1]["num_timesteps"] >= self.cfg.total_steps
                and (self.out / "final" / MODEL_FILE).is_file()
            ):
                return self._result()
            self._resume(*found)
        try:
            self._learn(callbacks)
            self._finish()
        finally:
            if self._log is not None:
                self._log.close()
        return self._result()

    def _check_identity(self, saved: dict) -> None:
        """Raise ConfigError unless the checkpoint's identity is this run's (may not change)."""
        mine = json.loads(to_json(self.cfg.identity()))
        diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
        if diff:
            raise ConfigError(
                f"{self.out} holds a different run ({', '.join(diff)} differ); "
                "use another --out, or --fresh to start over"
            )

    def _env(self):
        spec = self.cfg.spec
        return make_training_env(
            self.cfg.env_id,
            self.cfg.n_envs,
            normalize_obs=spec.normalize_obs,
            normalize_reward=spec.normalize_reward,
            gamma=float(self.cfg.hyperparams.get("gamma", 0.99)),
            clip_obs=spec.clip_obs,
            overrides=self.cfg.env_overrides,
            residual=spec.residual_params(),
        )

    def _fresh(self) -> None:
        spec = self.cfg.spec
        self._threads()
        self.norm = self._env()
        n_actions = int(self.norm.action_space.shape[0])
        kwargs = sb3_kwargs(self.cfg.hyperparams, n_actions)
        self.model = algorithm_class(spec.algorithm)(
            spec.policy, self.norm, seed=self.cfg.seed, device="cpu", verbose=0, **kwargs
        )

    def _resume(self, path: Path, state: dict) -> None:
        self._threads()
        cls = algorithm_class(self.cfg.spec.algorithm)
        steps = int(state["num_timesteps"])
        if (path / RESUME_FILE).is_file():
            self._continue(cls, path)
        else:  # a checkpoint of an earlier version
            self._restart(cls, path, steps)
        if not self.cfg.spec.on_policy:
            self.model.load_replay_buffer(str(path / REPLAY_FILE))
        self.wall_before = float(state["wall_clock_s"])
        self.resumed_at = [*state.get("resumed_at", []), steps]
        self.evaluations = [e for e in state.get("evaluations", []) if e["step"] <= steps]
        self.best = self._best_on_disk(state.get("best"))
        self._last_eval = self.evaluations[-1]["step"] if self.evaluations else -1
        self._last_ckpt = steps

    def _continue(self, cls, path: Path) -> None:
        """Load the model and its env as they were, with every random state (bit-exact)."""
        self.norm, state = load_env(path / RESUME_FILE)
        self.model = cls.load(str(path / MODEL_FILE), env=None, device="cpu", force_reset=False)
        self.model.set_env(self.norm, force_reset=False)
        restore(self.model, state)

    def _restart(self, cls, path: Path, steps: int) -> None:
        """Load the model and statistics; the episodes restart, reseeded with seed + steps."""
        self.norm = self._env()
        restore_stats(self.norm, path / NORM_FILE)
        self.model = cls.load(str(path / MODEL_FILE), env=self.norm, device="cpu")
        self.model._last_obs = None  # SB3 resets the env at the next learn()
        self.model.set_random_seed(self.cfg.seed + steps)

    def _best_on_disk(self, best: dict | None) -> dict | None:
        """The checkpoint's best, or the saved best model's if that is better.

        A best model kept after the checkpoint, before an interruption, stays the one to beat.
        """
        path = self.out / "best" / CARD_FILE
        if not path.is_file():
            return best
        val = json.loads(path.read_text(encoding="utf-8")).get("validation") or {}
        metrics = val.get("metrics") or {}
        if metrics and is_better(metrics, best and best["metrics"], self.cfg.options.select_by):
            return {"step": val.get("step"), "metrics": metrics}
        return best

    def _threads(self) -> None:
        if self.cfg.options.torch_threads:
            import torch

            torch.set_num_threads(self.cfg.options.torch_threads)

    # -- learning ---------------------------------------------------------------------------
    def _learn(self, extra: list) -> None:
        from closedloop.training.callbacks import (
            ClinicalMetricsCallback,
            PeriodicCallback,
            WallClockBudget,
            progress_callback,
        )

        opts = self.cfg.options
        budget = max(opts.max_wall_s - self.wall_before, 1e-9) if opts.max_wall_s else 0.0
        stop = WallClockBudget(budget)
        target = 3 * env_config(self.cfg.env_id, self.cfg.env_overrides).history
        # validation before the checkpoint, so that a checkpoint holds its step's validation
        cbs = [
            ClinicalMetricsCallback(opts.log_every, target),
            PeriodicCallback(opts.eval_every, self.validate),
            PeriodicCallback(opts.checkpoint_every, self.checkpoint),
            stop,
            *extra,
        ]
        if opts.progress:
            cbs.append(progress_callback())
        self._log = self._logger()
        self.model.set_logger(self._log)
        self._t0 = time.perf_counter()
        remaining = self.cfg.total_steps - self.model.num_timesteps
        self.model.learn(remaining, callback=cbs, reset_num_timesteps=False)
        if stop.stopped:
            self._stopped_by = "wall-clock budget"

    def _logger(self):
        import importlib.util

        from stable_baselines3.common.logger import (
            CSVOutputFormat,
            Logger,
            TensorBoardOutputFormat,
        )

        folder = self.out / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        start = self.model.num_timesteps
        formats = [CSVOutputFormat(str(folder / f"progress-{start:012d}.csv"))]
        if self.cfg.options.tensorboard:
            if importlib.util.find_spec("tensorboard") is None:
                warnings.warn(
                    "tensorboard is not installed: no TensorBoard logs (pip install "
                    "'closedloop[rl]'); CSV logs only",
                    stacklevel=4,
                )
            else:
                formats.append(TensorBoardOutputFormat(str(folder)))
        return Logger(str(folder), formats)

    def wall_clock_s(self) -> float:
        """Training wall-clock time so far, all segments (s)."""
        return self.wall_before + time.perf_counter() - self._t0

    # -- periodic actions -------------------------------------------------------------------
    def checkpoint(self, step: int) -> None:
        """Save a checkpoint at ``step`` (model, statistics, replay buffer, state)."""
        state = {
            "num_timesteps": int(step),
            "wall_clock_s": self.wall_clock_s(),
            "resumed_at": self.resumed_at,
            "evaluations": self.evaluations,
            "best": self.best,
            "identity": self.cfg.identity(),
        }
        save_checkpoint(
            self.out,
            self.model,
            self.norm,
            state,
            replay=not self.cfg.spec.on_policy,
            keep=self.cfg.options.keep_checkpoints,
            resume=capture(self.model, self.norm),
        )
        self._last_ckpt = step

    def validate(self, step: int) -> None:
        """Score the current policy on the validation patients; keep it if it is the best."""
        opts, overrides = self.cfg.options, dict(self.cfg.env_overrides)
        if opts.eval_episode_s:
            overrides["episode_s"] = opts.eval_episode_s
        with isolated_rng():  # draws nothing the training would draw afterwards
            rows = evaluate(
                self.model,
                self.norm,
                self.cfg.name,
                self.cfg.env_id,
                validation_patients(opts.eval_patients),
                opts.eval_seeds,
                overrides,
                self.cfg.spec.residual_params(),
            )
        summary = cards.validation_summary(rows, self.cfg.env_id, step, overrides)
        summary["wall_clock_s"] = self.wall_clock_s()
        self.evaluations.append(summary)
        for key in (
            "time_in_window_frac",
            "mad_uv",
            "mean_rel_error",
            "overstim_frac",
            "charge_per_pulse_uc",
            "env_return",
        ):
            self.model.logger.record(
                f"validation/{key}", float(summary["metrics"].get(key, float("nan")))
            )
        select = self.cfg.options.select_by
        if is_better(summary["metrics"], self.best and self.best["metrics"], select):
            self.best = {"step": step, "metrics": summary["metrics"]}
            value = summary["metrics"].get(select, float("nan"))
            what = "time in window" if select == "time_in_window_frac" else select
            self._save_model(
                "best",
                summary,
                f"best validation {what} ({value:.4f}; "
                f"ties: lower mad_uv) of {len(self.evaluations)} evaluations, "
                f"at step {step}",
            )
        write_json(self.out / EVALUATIONS_FILE, self.evaluations)
        self._last_eval = step

    # -- the end ----------------------------------------------------------------------------
    def _finish(self) -> None:
        steps = int(self.model.num_timesteps)
        if self._last_eval != steps:
            self.validate(steps)
        if self._last_ckpt != steps:
            self.checkpoint(steps)
        self._log.dump(steps)
        self._save_model("final", self.evaluations[-1], f"final model ({self._stopped_by})")

    def _save_model(self, folder: str, validation: dict, selection: str) -> None:
        steps, wall = int(self.model.num_timesteps), self.wall_clock_s()
        training = {
            "steps": steps,
            "total_steps": self.cfg.total_steps,
            "wall_clock_s": wall,
            "env_steps_per_s": steps / max(wall, 1e-9),
            "resumed_at": self.resumed_at,
            "selection": selection,
        }
        if folder == "final":
            training["stopped_by"] = self._stopped_by
        card = cards.build_card(
            name=self.cfg.name,
            spec=self.cfg.spec,
            env_id=self.cfg.env_id,
            env_overrides=self.cfg.env_overrides,
            hyperparams=self.cfg.hyperparams,
            seed=self.cfg.seed,
            n_envs=self.cfg.n_envs,
            training=training,
            validation=validation,
            command=self.cfg.command(),
        )
        save_model_dir(
            self.out / folder,
            self.model,
            self.norm,
            {CARD_FILE: to_json(card), "card.md": cards.card_markdown(card)},
        )

    def _result(self) -> TrainResult:
        def read(path: Path):
            return json.loads(path.read_text(encoding="utf-8"))

        folder = model_dir(self.out)
        final = read(self.out / "final" / CARD_FILE)["training"]
        evals_path = self.out / EVALUATIONS_FILE
        evals = read(evals_path) if evals_path.is_file() else []
        return TrainResult(
            self.out,
            folder,
            int(final["steps"]),
            float(final["wall_clock_s"]),
            read(folder / CARD_FILE),
            evals,
        )
