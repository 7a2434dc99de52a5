"""Hyperparameter search (optuna) for stable-baselines3 agents, scored on the validation cohort.

Each trial samples hyperparameters from the ranges, trains the algorithm for a small budget on
the native vector env (:class:`~closedloop.envs.vector.ECAPVectorEnv` through the SB3 adapter
:class:`~closedloop.envs.sb3.SB3VecEnv`, training-cohort patients), then plays the trained
policy as a controller (:class:`~closedloop.controllers.SB3Policy`) with
:func:`closedloop.evaluation.run_episode` on the first validation patients and scores the mean
time in the therapeutic window (``time_in_window_frac``, higher is better). The whole search
runs inside :func:`closedloop.patients.cohort.tuning_session`, so the held-out test cohort can
never be used: an env or split that needs it raises
:class:`~closedloop.patients.cohort.HeldOutError`.

Ranges come from a TOML file or a dict in the ``[search]`` format of the RL agent specs in
``agents/rl/``::

    n_envs = 8                       # optional: parallel patients (default 8)
    normalize_obs = true             # optional: VecNormalize on observations (default true)
    normalize_reward = false         # optional: VecNormalize on rewards (on-policy only)

    [hyperparams.default]            # optional: fixed constructor arguments
    policy_kwargs = { net_arch = [64, 64], activation_fn = "tanh" }

    [search]
    learning_rate = { low = 1e-5, high = 1e-3, log = true }   # log-uniform float
    gamma = { low = 0.9, high = 0.999 }                       # uniform float
    n_epochs = { low = 3, high = 20 }                         # integers: uniform int
    n_steps = { choices = [128, 256, 512] }                   # categorical

The best parameters are returned and written as a TOML fragment (``[hyperparams."<env id>"]``)
ready to paste into a spec, with every trial in ``trials.json``. Needs optuna
(``pip install 'closedloop[rl]'``).

Every argument is checked before the first trial (:mod:`closedloop.tuning.hpsearch_space`): the
counts and seeds, the env id (a closedloop id the native vector env simulates), the overrides,
the scoring episodes against the calibration warm-up, the storage URL (opened at once), the
output folder (created at once), and each range against its hyperparameter's declared type and
range (:mod:`closedloop.training.hyperparams`; an integer hyperparameter is drawn as an integer).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError
from closedloop._io import nan_to_none, toml_literal, write_text_atomic
from closedloop._parallel import check_workers
from closedloop._ray import MAX_RETRIES, check_ray, check_retries
from closedloop.patients.cohort import load_cohort, tuning_session
from closedloop.training.search_ranges import with_values
from closedloop.tuning.hpsearch_space import (  # noqa: F401  (re-exported: the public API)
    ACTIVATIONS,
    ALGOS,
    EXTRA,
    FILE_KEYS,
    OBJECTIVE,
    ON_POLICY,
    POLICIES,
    RANGE_KEYS,
    REPORTED,
    RESERVED,
    SearchSpace,
    algorithm_class,
    check_counts,
    check_envs,
    check_seeds,
    check_space,
    load_ranges,
    make_out_dir,
    open_storage,
    rule_kind,
    study_name_for,
)
from closedloop.tuning.hpsearch_trial import (  # noqa: F401  (re-exported: the public API)
    NormalizedPredictor,
    TrialSetup,
    sample,
    score,
    train_trial,
)


def _import_optuna():
    """optuna, or a ConfigError naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "the hyperparameter search needs optuna; install it with "
            f"pip install 'closedloop[{EXTRA}]' (or pip install optuna)"
        ) from None
    return optuna


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The outcome of :func:`search`.

    Attributes:
        algo: Algorithm searched.
        env_id: Env id trained on.
        study_name: Optuna study name.
        best_params: Sampled hyperparameters of the best trial.
        best_value: Its objective: mean ``time_in_window_frac`` on validation (1).
        best_metrics: Its mean clinical metrics on validation.
        trials: One dict per completed trial (number, params, value, metrics, wall_s).
        eval_patients: Validation patients scored.
        wall_s: Wall-clock time of the search (s).
    """

    algo: str
    env_id: str
    study_name: str
    best_params: dict[str, Any]
    best_value: float
    best_metrics: dict[str, float]
    trials: list[dict[str, Any]]
    eval_patients: tuple[str, ...]
    wall_s: float

    def to_toml(self) -> str:
        """The best parameters as a ``[hyperparams."<env id>"]`` fragment of an RL spec."""
        lines = [
            f"# closedloop hpsearch: best of {len(self.trials)} trial(s) of "
            f"{self.algo} on {self.env_id} (study {self.study_name})",
            f"# objective: mean {OBJECTIVE} on {', '.join(self.eval_patients)} = "
            f"{self.best_value:.4f}",
            f'[hyperparams."{self.env_id}"]',
        ]
        lines += [f"{k} = {toml_literal(v)}" for k, v in sorted(self.best_params.items())]
        return "\n".join(lines) + "\n"


def search(
    agent_algo: str,
    env_id: str,
    n_trials: int,
    steps_per_trial: int,
    ranges: str | Path | Mapping[str, Any] | SearchSpace,
    seed: int = 0,
    storage: str | None = None,
    *,
    study_name: str | None = None,
    eval_split: str = "validation",
    eval_patients: int = 4,
    eval_seeds: tuple[int, ...] = (0,),
    env_overrides: Mapping[str, Any] | None = None,
    eval_overrides: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    ray: bool | str = False,
    max_concurrent_trials: int | None = None,
    max_retries: int = MAX_RETRIES,
) -> SearchResult:
    """Search ``agent_algo``'s hyperparameters over ``ranges`` with optuna (TPE sampler).

    Args:
        agent_algo: Key of :data:`ALGOS`, e.g. ``ppo``.
        env_id: Registered env id to train on (training-cohort ids; a ``-Test`` id raises).
        n_trials: Trials to run (added to a resumed study's).
        steps_per_trial: Env steps of training per trial (over all sub-envs).
        ranges: A ranges file, its parsed dict, or a :class:`SearchSpace`.
        seed: Seed of the sampler; trial ``k`` trains with seed ``seed + k``.
        storage: Optuna storage URL (e.g. ``sqlite:///hp.db``) to resume a study; None: memory.
        study_name: Study name; default ``hpsearch-<algo>-<env id>``.
        eval_split: Cohort scored: ``validation`` (default) or ``train``; ``test`` raises.
        eval_patients: The first N patients of ``eval_split`` are scored.
        eval_seeds: Episode seeds of the scoring.
        env_overrides: ``gymnasium.make`` overrides of the training env (e.g. ``episode_s``).
        eval_overrides: ``gymnasium.make`` overrides of the scoring episodes.
        out_dir: If given, ``best.toml`` and ``trials.json`` are written there.
        ray: Run the trials on Ray Tune (:mod:`closedloop.tuning.hpsearch_ray`): True starts
            or joins a local Ray instance, a string is a cluster's address.
        max_concurrent_trials: With ``ray``, most trials at once (default: as many as the
            cluster has CPUs).
        max_retries: With ``ray``, re-runs of a trial whose worker or node died.

    Returns:
        The :class:`SearchResult`.

    Raises:
        ConfigError: On invalid arguments or ranges, or if optuna is missing.
        HeldOutError: If anything asks for the test cohort.
    """
    optuna = _import_optuna()
    space = ranges if isinstance(ranges, SearchSpace) else load_ranges(ranges)
    check_space(agent_algo, space)
    check_counts(
        n_trials=n_trials, steps_per_trial=steps_per_trial, eval_patients=eval_patients, seed=seed
    )
    address, max_retries = check_ray(ray), check_retries(max_retries)
    concurrent = (
        None
        if max_concurrent_trials is None
        else check_workers(max_concurrent_trials, "max_concurrent_trials")
    )
    start = time.perf_counter()
    with tuning_session("hpsearch"):
        check_envs(env_id, env_overrides, eval_overrides, eval_split, eval_patients)
        patients = tuple(p.patient_id for p in load_cohort(eval_split)[:eval_patients])
        setup = TrialSetup(
            agent_algo,
            env_id,
            steps_per_trial,
            space,
            dict(env_overrides or {}),
            patients,
            check_seeds(eval_seeds),
            dict(eval_overrides or {}),
        )
        if out_dir is not None:
            make_out_dir(out_dir)
        name, store = study_name_for(study_name, agent_algo, env_id), open_storage(storage)
        if ray is False:
            study = optuna.create_study(
                study_name=name,
                storage=store,
                direction="maximize",
                load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=seed),
            )
            study.optimize(lambda trial: _objective(trial, setup, seed), n_trials=n_trials)
        else:
            from closedloop.tuning.hpsearch_ray import run_on_ray

            study = run_on_ray(
                optuna,
                setup,
                n_trials=n_trials,
                seed=seed,
                study_name=name,
                storage=store,
                address=address,
                max_concurrent=concurrent,
                max_retries=max_retries,
                out_dir=out_dir,
            )
    result = _result(study, setup, time.perf_counter() - start)
    if out_dir is not None:
        write_result(result, out_dir)
    return result


def _objective(trial: Any, setup: TrialSetup, seed: int) -> float:
    """Train and score one trial; the mean validation time in window."""
    start = time.perf_counter()
    hp = with_values(setup.space.fixed, sample(trial, setup.space.ranges, setup.algo))
    metrics = score(train_trial(setup, hp, seed + trial.number), setup)
    trial.set_user_attr("metrics", metrics)
    trial.set_user_attr("wall_s", time.perf_counter() - start)
    return metrics[OBJECTIVE]


def _result(study: Any, setup: TrialSetup, wall_s: float) -> SearchResult:
    """Collect a finished study into a :class:`SearchResult`."""
    done = [t for t in study.trials if t.value is not None]
    trials = [
        {
            "number": t.number,
            "params": t.params,
            "value": t.value,
            "metrics": t.user_attrs.get("metrics", {}),
            "wall_s": t.user_attrs.get("wall_s"),
        }
        for t in done
    ]
    best = study.best_trial
    return SearchResult(
        setup.algo,
        setup.env_id,
        study.study_name,
        dict(best.params),
        float(best.value),
        dict(best.user_attrs.get("metrics", {})),
        trials,
        setup.eval_patients,
        wall_s,
    )


def write_result(result: SearchResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``best.toml`` (the spec fragment) and ``trials.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "algo": result.algo,
        "env_id": result.env_id,
        "study_name": result.study_name,
        "objective": OBJECTIVE,
        "eval_patients": list(result.eval_patients),
        "best_params": result.best_params,
        "best_value": result.best_value,
        "best_metrics": result.best_metrics,
        "wall_s": result.wall_s,
        "trials": result.trials,
    }
    return (
        write_text_atomic(out / "best.toml", result.to_toml()),
        write_text_atomic(
            out / "trials.json", json.dumps(nan_to_none(doc), indent=1, allow_nan=False) + "\n"
        ),
    )
