"""The hyperparameter search on Ray Tune: the same optuna study, trials run as Ray actors.

:func:`closedloop.tuning.hpsearch.search` with ``ray=`` hands the trials to Ray Tune
(``tune.Tuner``) with the same optuna TPE sampler through Tune's ``OptunaSearch`` (same seed,
study name and storage, so a study started locally continues on Ray and back), at most
``max_concurrent_trials`` at a time. Each trial trains and scores exactly as a local trial
(:func:`~closedloop.tuning.hpsearch_trial.train_trial` and
:func:`~closedloop.tuning.hpsearch_trial.score`, on the validation cohort) inside its own
:func:`~closedloop.patients.cohort.tuning_session`, so the held-out test cohort stays out of
reach in the workers too. Trial ``k`` of the study trains with
seed ``seed + k``, as locally. Tune keeps its own records under ``<out_dir>/ray-tune``.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from closedloop._ray import connect, require_ray
from closedloop.training.search_ranges import with_values
from closedloop.tuning.hpsearch_space import OBJECTIVE, REPORTED
from closedloop.tuning.hpsearch_trial import sample

TRIAL_NUMBER = "_trial_number"
"""Config key carrying the optuna trial number (the trial's seed offset)."""


def _define(ranges: Mapping[str, Mapping[str, Any]], algo: str, trial: Any) -> dict[str, int]:
    """Define-by-run space of ``OptunaSearch``: draw as a local trial does, pass its number."""
    sample(trial, ranges, algo)
    return {TRIAL_NUMBER: trial.number}


def _trainable(config: Mapping[str, Any], setup: Any, seed: int) -> None:
    """A Tune trial: train and score one sampled set of hyperparameters, report the metrics."""
    from ray import tune

    from closedloop.patients.cohort import tuning_session
    from closedloop.tuning.hpsearch_trial import score, train_trial

    start = time.perf_counter()
    number = int(config[TRIAL_NUMBER])
    drawn = {k: v for k, v in config.items() if k != TRIAL_NUMBER}
    hp = with_values(setup.space.fixed, drawn)
    with tuning_session(f"hpsearch trial {number}"):
        metrics = score(train_trial(setup, hp, seed + number), setup)
    tune.report({**metrics, "wall_s": time.perf_counter() - start})


def _searcher(optuna: Any, setup: Any, seed: int, study_name: str, storage: Any):
    """Tune's ``OptunaSearch`` that also records each trial's metrics on the optuna trial."""
    from ray.tune.search.optuna import OptunaSearch

    class RecordingSearch(OptunaSearch):
        def on_trial_complete(self, trial_id, result=None, error=False):
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is not None and result and not error:
                ot_trial.set_user_attr("metrics", {k: float(result[k]) for k in REPORTED})
                ot_trial.set_user_attr("wall_s", float(result["wall_s"]))
            super().on_trial_complete(trial_id, result, error)

    return RecordingSearch(
        space=functools.partial(_define, dict(setup.space.ranges), setup.algo),
        metric=OBJECTIVE,
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=seed),
        study_name=study_name,
        storage=storage,
    )


def run_on_ray(
    optuna: Any,
    setup: Any,
    *,
    n_trials: int,
    seed: int,
    study_name: str,
    storage: Any,
    address: str | None,
    max_concurrent: int,
    max_retries: int,
    out_dir: str | Path | None,
):
    """Run ``n_trials`` trials on Ray Tune; the optuna study (every trial, as locally)."""
    require_ray()
    connect(address)
    from ray import tune

    searcher = _searcher(optuna, setup, seed, study_name, storage)
    where = Path(out_dir) / "ray-tune" if out_dir is not None else Path(tempfile.mkdtemp())
    tuner = tune.Tuner(
        tune.with_resources(functools.partial(_trainable, setup=setup, seed=seed), {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=n_trials, max_concurrent_trials=max_concurrent
        ),
        run_config=tune.RunConfig(
            name=study_name,
            storage_path=str(where.resolve()),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_retries),
        ),
    )
    grid = tuner.fit()
    errors = [r.error for r in grid if r.error is not None]
    if errors and len(errors) == len(grid):
        raise errors[0]
    return searcher._ot_study
