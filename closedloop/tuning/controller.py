"""Auto-tuning of controller gains on the training cohort, never the held-out test cohort.

:func:`tune` searches a controller spec's gains in log space with Nelder-Mead
(:func:`scipy.optimize.minimize`, bounded) for a fixed budget of objective evaluations. One
evaluation plays the controller with the candidate gains on a fixed set of training patients,
scenarios and seeds through :func:`closedloop.evaluation.run_grid`, and scores

    J = mean over episodes of ( mean_rel_error
                                + w_over * time_above_discomfort_frac
                                + w_under * time_below_perception_frac )

The whole search runs inside :func:`closedloop.patients.cohort.tuning_session`, so asking for the
test cohort raises :class:`~closedloop.patients.cohort.HeldOutError`. The result is a new agent
spec whose ``[tuning]`` table records the budget, the evaluations used, the objective before and
after, the patients, scenarios and seeds, and the wall-clock time.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from closedloop._config import ConfigError, check_value
from closedloop._io import toml_literal, write_text_atomic
from closedloop._ray import MAX_RETRIES, check_ray, check_retries
from closedloop.controllers.registry import load_agent_spec, make_controller
from closedloop.evaluation import run_grid
from closedloop.patients.cohort import load_cohort, tuning_session
from closedloop.training.spec import check_env_id

DEFAULT_GAINS: Mapping[str, Mapping[str, tuple[float, float]]] = {
    "pid": {"kp_ma_per_uv": (1e-4, 0.05), "ki_ma_per_uv_s": (0.01, 5.0)},
    "clinical-loop": {"loop_gain_per_s": (0.5, 50.0), "backoff_gain": (1.0, 10.0)},
}
"""Gains searched per base spec, with (low, high) bounds in the params' own units."""


@dataclasses.dataclass(frozen=True)
class TuningProblem:
    """What :func:`tune` optimises.

    Attributes:
        agent: Base agent spec (``agents/<agent>.toml``); its other params stay fixed.
        gains: Param name -> (low, high) bounds (> 0; searched in log space).
        env_ids: Training-cohort env ids the gains are scored on.
        split: ``train`` or ``validation`` (never ``test``).
        n_patients: First N patients of the split.
        seeds: Fixed episode seeds.
        budget: Objective evaluations allowed.
        w_over: Weight of the fraction of time above discomfort.
        w_under: Weight of the fraction of time below perception.
    """

    agent: str
    gains: Mapping[str, tuple[float, float]]
    env_ids: tuple[str, ...] = ("closedloop/ECAPClinic-v0", "closedloop/ECAPCoughStorm-v0")
    split: str = "train"
    n_patients: int = 6
    seeds: tuple[int, ...] = (0,)
    budget: int = 40
    w_over: float = 2.0
    w_under: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.agent, str) or not self.agent:
            raise ConfigError(f"agent={self.agent!r} must be an agent spec name")
        if self.split not in ("train", "validation"):
            raise ConfigError(
                f"split={self.split!r} is invalid for tuning; valid: train, "
                "validation (the test cohort is held out)"
            )
        _check_gains(self.gains)
        if not isinstance(self.env_ids, (tuple, list)) or not self.env_ids:
            raise ConfigError(f"env_ids={self.env_ids!r} must be a non-empty list of env ids")
        for env_id in self.env_ids:
            check_env_id(env_id)
        n = len(load_cohort(self.split))
        for name, lo, hi in (("budget", 2, MAX_BUDGET), ("n_patients", 1, n)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(
                    f"{name}={value!r} is out of range; valid: an integer in [{lo}, {hi}]"
                )
        seeds = self.seeds
        if (
            not isinstance(seeds, (tuple, list))
            or not seeds
            or not all(
                isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**32 for x in seeds
            )
        ):
            raise ConfigError(
                f"seeds={seeds!r} is invalid; valid: a non-empty list of integers in [0, 2**32)"
            )
        for name in ("w_over", "w_under"):
            check_value(name, getattr(self, name), {"lo": 0.0, "hi": MAX_WEIGHT, "unit": "1"})


MAX_BUDGET = 10_000
"""Most objective evaluations a tuning may ask for."""
MAX_WEIGHT = 1000.0
"""Largest weight of a time fraction in the objective."""
MAX_WORKERS = 256


def _check_gains(gains: Any) -> None:
    """Raise ConfigError unless ``gains`` maps param names to bounds ``0 < low < high < inf``."""
    if not isinstance(gains, Mapping) or not gains:
        raise ConfigError("gains is empty; name at least one param with (low, high) bounds")
    for key, bounds in gains.items():
        ok = isinstance(key, str) and isinstance(bounds, (tuple, list)) and len(bounds) == 2
        ok = ok and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        if not (ok and 0.0 < bounds[0] < bounds[1] and math.isfinite(bounds[1])):
            raise ConfigError(
                f"gains[{key!r}]={_text(bounds)} is out of range; valid: "
                "(low, high) with 0 < low < high < inf"
            )


def _text(bounds: Any) -> str:
    """Bounds as ``(low, high)`` for a message."""
    return (
        f"({bounds[0]}, {bounds[1]})"
        if isinstance(bounds, (tuple, list)) and len(bounds) == 2
        else repr(bounds)
    )


def objective(rows: list[Mapping[str, Any]], w_over: float, w_under: float) -> float:
    """The tuning objective of a set of result rows (lower is better)."""
    return float(
        np.mean(
            [
                r["mean_rel_error"]
                + w_over * r["time_above_discomfort_frac"]
                + w_under * r["time_below_perception_frac"]
                for r in rows
            ]
        )
    )


def _candidate(agent: str, params: Mapping[str, float]):
    """A controller of spec ``agent`` with ``params`` overridden (picklable via partial)."""
    return make_controller(agent, **params)


class _Evaluator:
    """Counts and caches objective evaluations of log-gain vectors."""

    def __init__(
        self, problem: TuningProblem, patients: list[str], workers: int, ray: dict[str, Any]
    ) -> None:
        self.problem, self.patients, self.workers, self.ray = problem, patients, workers, ray
        self.names = list(problem.gains)
        self.history: list[tuple[dict[str, float], float]] = []

    def params(self, x: np.ndarray) -> dict[str, float]:
        return {k: float(math.exp(v)) for k, v in zip(self.names, x, strict=True)}

    def __call__(self, x: np.ndarray) -> float:
        p = self.problem
        params = self.params(x)
        factory = functools.partial(_candidate, p.agent, params)
        rows = run_grid(
            {p.agent: factory},
            list(p.env_ids),
            self.patients,
            list(p.seeds),
            workers=self.workers,
            progress=False,
            **self.ray,
        )
        value = objective(rows, p.w_over, p.w_under)
        self.history.append((params, value))
        return value


def tune(
    problem: TuningProblem,
    workers: int = 1,
    progress: bool = True,
    out: str | Path | None = None,
    *,
    ray: bool | str = False,
    max_retries: int = MAX_RETRIES,
) -> dict[str, Any]:
    """Search the gains; returns the tuned spec as a dict with its ``[tuning]`` record.

    Args:
        problem: What to tune and on what.
        workers: Local worker processes per evaluation, in [1, 256].
        progress: Print one line per evaluation.
        out: If given, the tuned spec is written there (:func:`write_spec`) and named after
            the file (``my-pid.toml`` holds the spec ``my-pid``, the label a benchmark gives
            it); its folder is created and checked before the search, so a bad path fails at
            once. Without it the spec is called ``<agent>-tuned``.
        ray: Play each evaluation's episodes as Ray tasks (``workers`` is then ignored): True
            starts or joins a local Ray instance, a string is a cluster's address. The search
            itself (Nelder-Mead) is sequential; the episodes of one evaluation run at once.
        max_retries: With ``ray``, re-runs of a task whose worker or node died.

    Raises:
        ConfigError: On a bad argument, an unknown gain or an ``out`` that cannot be written.
    """
    from scipy.optimize import minimize

    if not isinstance(problem, TuningProblem):
        raise ConfigError(f"problem={problem!r} must be a TuningProblem")
    if (
        isinstance(workers, bool)
        or not isinstance(workers, int)
        or not (1 <= workers <= MAX_WORKERS)
    ):
        raise ConfigError(
            f"workers={workers!r} is out of range; valid: an integer in [1, {MAX_WORKERS}]"
        )
    check_ray(ray)
    on_ray = {} if ray is False else {"ray": ray, "max_retries": check_retries(max_retries)}
    path = None if out is None else prepare_out(out)
    base = load_agent_spec(problem.agent)
    fields = dataclasses.asdict(base.params)
    unknown = sorted(set(problem.gains) - set(fields))
    if unknown:
        raise ConfigError(
            f"gains {', '.join(unknown)} are not params of {problem.agent!r}; "
            f"valid: {', '.join(fields)}"
        )
    t0 = time.perf_counter()
    with tuning_session(f"tuning {problem.agent}"):
        patients = [p.patient_id for p in load_cohort(problem.split)[: problem.n_patients]]
        ev = _Evaluator(problem, patients, workers, on_ray)
        bounds = [(math.log(lo), math.log(hi)) for lo, hi in problem.gains.values()]
        x0 = np.array([_start(fields[k], lo, hi) for k, (lo, hi) in problem.gains.items()])
        before = ev(x0)
        fun = _verbose(ev) if progress else ev
        res = minimize(
            fun,
            x0,
            method="Nelder-Mead",
            bounds=bounds,
            options={"maxfev": problem.budget - 1, "xatol": 1e-2, "fatol": 1e-4},
        )
    best_params, best = min(ev.history, key=lambda h: h[1])
    name = f"{base.name}-tuned" if path is None else path.stem
    doc = _tuned_spec(
        name,
        base,
        fields,
        best_params,
        problem,
        patients,
        {
            "evaluations": len(ev.history),
            "objective_before": before,
            "objective_after": best,
            "optimizer": f"scipy.optimize.minimize Nelder-Mead (log gains), {res.message}",
            "wall_s": round(time.perf_counter() - t0, 1),
        },
    )
    if path is not None:
        write_spec(doc, path)
    return doc


def prepare_out(out: Any) -> Path:
    """The spec path ``out`` (a ``.toml`` file), its folder created; ConfigError if unwritable."""
    if not isinstance(out, (str, Path)) or Path(out).suffix != ".toml" or Path(out).is_dir():
        raise ConfigError(f"out={str(out)!r} is invalid; valid: a path to a .toml spec file")
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"out={str(out)!r}: its folder cannot be created ({exc})") from None
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"out={str(out)!r}: its folder {str(path.parent)!r} is not writable")
    return path


def _start(value: Any, lo: float, hi: float) -> float:
    """Log of the base spec's value clipped into the bounds (geometric mid if not positive)."""
    v = float(value) if isinstance(value, int | float) and value > 0 else math.sqrt(lo * hi)
    return math.log(min(max(v, lo), hi))


def _verbose(ev: _Evaluator):
    def fun(x):
        value = ev(x)
        print(f"  eval {len(ev.history):3d}: J={value:.4f} {ev.params(x)}", flush=True)
        return value

    return fun


def _tuned_spec(name, base, fields, best_params, problem, patients, record) -> dict[str, Any]:
    """The tuned agent spec document, called ``name``."""
    params = {**{k: v for k, v in fields.items() if v is not None}, **best_params}
    return {
        "name": name,
        "controller": base.controller,
        "description": f"{base.name} with gains auto-tuned on the {problem.split} cohort "
        f"({', '.join(problem.gains)}).",
        "params": params,
        "tuning": {
            "base": base.name,
            "budget": problem.budget,
            "split": problem.split,
            "patients": patients,
            "env_ids": list(problem.env_ids),
            "seeds": list(problem.seeds),
            "w_over": problem.w_over,
            "w_under": problem.w_under,
            **record,
        },
    }


def write_spec(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write an agent spec document as TOML, atomically."""
    lines = [f"{k} = {toml_literal(doc[k])}" for k in ("name", "description", "controller")]
    for table in ("params", "tuning"):
        lines += ["", f"[{table}]"]
        lines += [f"{k} = {toml_literal(v)}" for k, v in doc[table].items()]
    return write_text_atomic(Path(path), "\n".join(lines) + "\n")
