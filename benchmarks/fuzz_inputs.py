"""Fuzz the public entry points with bad inputs and count how each one is answered.

Every case is one bad input to one public entry point: ``gymnasium.make`` keyword arguments,
reset options, actions of the scalar and the native vector env, controller and RL agent specs,
controller observations, scenario, suite and patient files, and the options of every CLI
subcommand (cases in ``fuzz_cases.py`` and ``fuzz_cli.py``, drawn by hypothesis with a fixed
seed). The one acceptable answer to a bad input is ``closedloop.ConfigError`` (exit status 2 for
the CLI). A case is counted as:

- **ConfigError**: refused with ``ConfigError`` (or a subclass), or CLI exit status 2;
- **accepted-ok**: an input the entry point may also accept (a finite action outside [-1, 1] is
  clipped; a list holding one action), which it did, with a sane result;
- **other exception**: any other exception (a raw ``TypeError``, ``KeyError``...), or a CLI exit
  status other than 0 and 2;
- **silent garbage**: accepted although it had to be refused (the call returned, exit status 0,
  or it started the real work: a benchmark episode, training, a long pulse train), or a result
  with NaN or a negative current, or a refusal that had already claimed a run folder.

Real work is never done: :func:`guard` replaces the expensive calls (the process-pool map behind
benchmarks, tuning and cohorts, SB3's ``learn``, hyperparameter trials, pulse trains longer than
:data:`PULSE_BUDGET`) by a :class:`WorkStarted` exception, which counts as acceptance.

Usage::

    python benchmarks/fuzz_inputs.py                      # >= 2,000 cases, a few minutes
    python benchmarks/fuzz_inputs.py --scale 0.1          # a tenth of each quota
    python benchmarks/fuzz_inputs.py --only env.make,cli.train
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PULSE_BUDGET = 20_000
"""Largest pulse train (pulses in one call) a fuzz case may deliver; longer is real work."""

KINDS = ("refused", "accepted-ok", "raw", "garbage")
"""Outcome kinds, in the order of the printed table."""


class WorkStarted(BaseException):  # noqa: N818 (a signal, not an error: BaseException on purpose)
    """Raised by :func:`guard` where the real work of a command would start."""


class Garbage(Exception):  # noqa: N818
    """Raised by a case when it sees a silently wrong result (NaN, negative current...)."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input to one entry point.

    Attributes:
        entry: Entry point (``env.make``, ``cli.train``...).
        text: A minimal reproducer (Python call or command line).
        call: Runs the case; returns the entry point's result.
        refuse: The input must be refused; if False, it may also be accepted with a sane result.
        check: For an accepted result: a description of what is wrong with it, or None.
        names: Names of the bad parameter; a refusal should contain one of them (checked
            case-insensitively, reported but not counted as a failure).
    """

    entry: str
    text: str
    call: Callable[[], Any]
    refuse: bool = True
    check: Callable[[Any], str | None] | None = None
    names: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"{self.entry}: {self.text}"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one case was answered: one of :data:`KINDS` and a detail text."""

    case: Case
    kind: str
    detail: str = ""

    @property
    def named(self) -> bool:
        """Whether a refusal names the bad parameter (True if the case names none)."""
        text = self.detail.lower()
        return not self.case.names or any(n.lower() in text for n in self.case.names)

    @property
    def ok(self) -> bool:
        """Whether the answer was acceptable (refused, or allowed and sane)."""
        return self.kind in ("refused", "accepted-ok")

    def report(self) -> str:
        """One line: the reproducer and what went wrong."""
        return f"{self.case.entry}: {self.case.text}  ->  {self.kind}: {self.detail}"


def is_config_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the documented answer to a bad input (``closedloop.ConfigError``)."""
    from closedloop import ConfigError

    return isinstance(exc, ConfigError)


def run_case(case: Case) -> Outcome:
    """Run one case with the real work guarded, output silenced; classify the answer."""
    sink = io.StringIO()
    try:
        with (
            guard(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            result = case.call()
    except WorkStarted as exc:
        if not case.refuse:
            return Outcome(case, "accepted-ok", f"the real work started ({exc})")
        return Outcome(case, "garbage", f"accepted: the real work started ({exc})")
    except Garbage as exc:
        return Outcome(case, "garbage", str(exc))
    except Exception as exc:
        if is_config_error(exc):
            return Outcome(case, "refused", " ".join(str(exc).split())[:400])
        if type(exc).__name__ == "CliExitError":
            return Outcome(case, "raw", str(exc)[:400])
        where = traceback.extract_tb(exc.__traceback__)[-1]
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        return Outcome(
            case,
            "raw",
            f"{type(exc).__name__}: {first} [{Path(where.filename).name}:{where.lineno}]",
        )
    if case.refuse:
        return Outcome(case, "garbage", f"accepted, returned {summary(result)}")
    problem = case.check(result) if case.check else None
    if problem:
        return Outcome(case, "garbage", problem)
    return Outcome(case, "accepted-ok")


def summary(value: Any) -> str:
    """A short text of a result."""
    text = repr(value).replace("\n", " ")
    return text if len(text) < 120 else text[:117] + "..."


def _raise_work(what: str) -> Callable[..., Any]:
    def stop(*args: Any, **kwargs: Any) -> Any:
        raise WorkStarted(what)

    return stop


def _kernel_guard(original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(state: Any, tables: Any, kparams: Any, inputs: Any, *args: Any) -> Any:
        n = inputs.current_ma.size
        if n > PULSE_BUDGET:
            raise WorkStarted(f"a train of {n:,} pulses")
        return original(state, tables, kparams, inputs, *args)

    return guarded


def _patches() -> list[tuple[Any, str, Any]]:
    """(object, attribute, replacement) of every guarded call."""
    import closedloop._parallel
    import closedloop.benchmark
    import closedloop.cli.cohort
    import closedloop.evaluation.grid
    import closedloop.neural.model as model
    import closedloop.patients.calibration
    import closedloop.patients.cohort_draw
    import closedloop.tuning.hpsearch

    pool = _raise_work("a process-pool map (episodes, trials or calibrations)")
    out = [
        (closedloop._parallel, "parallel_map", pool),
        (closedloop.benchmark, "parallel_map", pool),
        (closedloop.evaluation.grid, "parallel_map", pool),
        (closedloop.patients.calibration, "parallel_map", pool),
        (closedloop.patients.cohort_draw, "parallel_map", pool),
        (closedloop.tuning.hpsearch, "train_trial", _raise_work("an hpsearch trial")),
        (model, "run_pulses_unshared", _kernel_guard(model.run_pulses_unshared)),
    ]
    if hasattr(model.NeuralModel, "_run_chunked"):
        out.append((model.NeuralModel, "_run_chunked", _raise_work("a chunked pulse train")))
    for name in ("generate_cohort", "write_cohort", "write_calibrations"):
        if hasattr(closedloop.cli.cohort, name):
            out.append((closedloop.cli.cohort, name, _raise_work(name)))
    try:
        from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
        from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
    except ImportError:  # pragma: no cover - the rl extra is not installed
        return out
    learn = _raise_work("SB3 learn()")
    return out + [(OnPolicyAlgorithm, "learn", learn), (OffPolicyAlgorithm, "learn", learn)]


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Replace every expensive call by :class:`WorkStarted` for the duration of a case."""
    patches = _patches()
    saved = [(obj, name, obj.__dict__[name]) for obj, name, _ in patches]
    try:
        for obj, name, new in patches:
            setattr(obj, name, new)
        yield
    finally:
        for obj, name, old in saved:
            setattr(obj, name, old)


# -- the run ---------------------------------------------------------------------------------


def strategies(tmp: Path, extra: bool = False) -> dict[str, tuple[Any, int]]:
    """Entry point -> (hypothesis strategy of cases, quota of a full run).

    Args:
        tmp: Folder for the files the cases write.
        extra: Also the further Python entry points (``api.*``) beyond issue 16's list.
    """
    import fuzz_cases
    import fuzz_cli

    out = {**fuzz_cases.strategies(tmp), **fuzz_cli.strategies(tmp)}
    if extra:
        import fuzz_api

        out.update(fuzz_api.strategies(tmp))
    return out


def sample(strategy: Any, n: int, visit: Callable[[Case], None], seed: int = 0) -> None:
    """Draw up to ``n`` cases from ``strategy`` (reproducibly) and call ``visit`` on each."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    @hseed(seed)
    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def each(case: Case) -> None:
        visit(case)

    each()


def fuzz(
    only: list[str] | None = None,
    scale: float = 1.0,
    seed: int = 0,
    echo: Callable[[str], None] = print,
    extra: bool = False,
) -> dict[str, list[Outcome]]:
    """Run every entry point's quota (times ``scale``); outcomes by entry point."""
    results: dict[str, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        for entry, (strategy, quota) in strategies(Path(tmp), extra).items():
            if only and entry not in only:
                continue
            t0, got = time.perf_counter(), results.setdefault(entry, [])
            try:
                sample(
                    strategy,
                    max(1, round(quota * scale)),
                    lambda case, got=got: got.append(run_case(case)),
                    seed,
                )
            except Exception as exc:  # a bug of the harness: report it, go on with the others
                echo(f"{entry}: HARNESS ERROR after {len(got)} cases: {exc!r}")
                bug = Case("harness", f"drawing the cases of {entry}", lambda: None)
                results.setdefault("harness", []).append(Outcome(bug, "raw", repr(exc)))
            counts = {k: sum(o.kind == k for o in got) for k in KINDS}
            echo(
                f"{entry:<20} {len(got):5d} cases {time.perf_counter() - t0:7.1f} s  "
                + "  ".join(f"{k} {v}" for k, v in counts.items())
            )
    return results


def _revision() -> str:
    """The git revision of the closedloop package imported (``+dirty`` if files changed)."""
    import subprocess

    import closedloop

    root = Path(closedloop.__file__).resolve().parents[1]

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(root), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()

    try:
        rev, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "-uno")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return rev + ("+dirty" if dirty else "")


def _limit_memory(gib: float) -> None:
    """Cap this process's address space, so that an accepted huge allocation fails fast."""
    try:
        import resource

        limit = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on this platform
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer, print the counts and the failures; exit 1 if a case of the issue's
    entry points failed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="fraction of each quota")
    p.add_argument("--only", help="comma list of entry points")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    p.add_argument("--memory-gib", type=float, default=16.0, help="address-space cap (GiB)")
    p.add_argument("--no-extra", action="store_true", help="only the entry points of issue 16")
    args = p.parse_args(argv)
    _limit_memory(args.memory_gib)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import closedloop

    print(
        f"closedloop {closedloop.__version__} ({Path(closedloop.__file__).parent}), "
        f"git {_revision()}, seed {args.seed}, scale {args.scale:g}; "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    )
    t0 = time.perf_counter()
    results = fuzz(
        args.only.split(",") if args.only else None,
        args.scale,
        args.seed,
        echo=lambda s: print(s, flush=True),
        extra=not args.no_extra,
    )
    issue = {k: v for k, v in results.items() if not k.startswith("api.")}
    further = {k: v for k, v in results.items() if k.startswith("api.")}
    from fuzz_report import failures, table, unnamed

    print(f"\nThe entry points of issue 16:\n{table(issue)}")
    if further:
        print(f"\nFurther Python entry points (beyond the issue's list):\n{table(further)}")
    print(
        f"\nwall {time.perf_counter() - t0:.0f} s\n\nFailures "
        f"(grouped by entry point and kind):\n{failures(results)}\n\nRefusals that do not "
        f"name the parameter (not counted as failures):\n{unnamed(results)}"
    )
    bad = sum(not o.ok for outs in issue.values() for o in outs)
    return 1 if bad else 0


def finite(value: Any) -> bool:
    """Whether every number in ``value`` (scalar, array, nested list/dict) is finite."""
    import numpy as np

    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(finite(v) for v in value)
    if isinstance(value, (bool, np.bool_, str)):
        return True
    if isinstance(value, (int, float, np.number)):
        return math.isfinite(float(value))
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        return bool(np.isfinite(value).all())
    return True


if __name__ == "__main__":
    # run the importable module, so that the case modules share its classes (Case, Garbage)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fuzz_inputs

    raise SystemExit(fuzz_inputs.main())
