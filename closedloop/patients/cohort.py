"""Cohorts of virtual patients: explicit distributions, fixed seeds, train/validation/test splits.

Each patient is drawn from :class:`~closedloop.patients.cohort_distribution.CohortDistribution`
(every parameter with unit and source) and then goes through an implant screening
(:mod:`closedloop.patients.cohort_draw`). This module ships, loads and guards the cohorts.

The three named cohorts are generated deterministically from
:data:`~closedloop.patients.cohort_draw.SPLITS` and shipped as JSON
files in ``closedloop/cohorts/`` (``closedloop cohort --regenerate`` rewrites them). The test
cohort is **held out**: code that tunes anything (gains, hyperparameters, distributions) runs
inside :func:`tuning_session`, where loading the test cohort raises :class:`HeldOutError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError, short_repr
from closedloop._io import write_text_atomic
from closedloop.patients.cohort_draw import (
    SPLITS,
    CohortDistribution,
    check_split,
)
from closedloop.patients.patient import NAMED_PATIENTS, Patient, named_patient

HELD_OUT = "test"
FORMAT = "closedloop.cohort/1"
_TUNING: contextvars.ContextVar[str | None] = contextvars.ContextVar("tuning", default=None)


class HeldOutError(ConfigError):
    """The held-out test cohort was requested inside a tuning session."""


def check_cohort_run(split: str, report_test: bool, seeds: Any, patients: Any) -> None:
    """Check a cohort run's choices (the benchmark scripts' shared command-line rules).

    Args:
        split: Cohort split; ``test`` is refused unless ``report_test`` (reporting the held-out
            cohort, never tuning on it).
        report_test: Whether the run reports the held-out cohort.
        seeds: Episode seeds, distinct integers >= 0.
        patients: First N patients (0: all), >= 0.

    Raises:
        ConfigError: Naming the offending choice and its valid range.
    """
    if split == HELD_OUT and not report_test:
        raise ConfigError(
            f"split={split!r} is the held-out cohort; pass --report-test to "
            "report it (calibrate on train or validation)"
        )
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"seeds={seeds!r} must be distinct integers >= 0")
    if patients < 0:
        raise ConfigError(f"patients={patients!r} is out of range; valid: >= 0")


def cohort_path(split: str) -> Path:
    """The shipped JSON file of cohort ``split``."""
    check_split(split)
    return Path(str(resources.files("closedloop") / "cohorts" / f"{split}.json"))


def write_cohort(split: str, patients: list[Patient], path: str | Path | None = None) -> Path:
    """Save ``patients`` as the JSON file of cohort ``split`` (atomically)."""
    doc = {
        "format": FORMAT,
        "split": split,
        "seed": SPLITS[split][1],
        "distribution": dataclasses.asdict(CohortDistribution()),
        "patients": [p.to_dict() for p in patients],
    }
    written = write_text_atomic(
        cohort_path(split) if path is None else path, json.dumps(doc, indent=1) + "\n"
    )
    _read.cache_clear()
    return written


@functools.cache
def _read(split: str) -> tuple[Patient, ...]:
    """Parse a shipped cohort file (cached)."""
    path = cohort_path(split)
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT or doc.get("split") != split:
        raise ConfigError(f"{path}: not a {FORMAT} file of split {split!r}")
    return tuple(
        Patient.from_dict(p, where=f"{path.name}[{i}]") for i, p in enumerate(doc["patients"])
    )


def load_cohort(split: str) -> list[Patient]:
    """The patients of a named cohort.

    Raises:
        ConfigError: If ``split`` is unknown.
        HeldOutError: If ``split`` is the test cohort and a tuning session is active.
    """
    check_split(split)
    purpose = _TUNING.get()
    if split == HELD_OUT and purpose is not None:
        raise HeldOutError(
            f"the {HELD_OUT} cohort is held out from tuning ({purpose}); use train or validation"
        )
    return list(_read(split))


def cohort_patient(patient_id: str) -> Patient:
    """One cohort patient by id, e.g. ``validation-004``."""
    split, _, num = patient_id.rpartition("-")
    patients = load_cohort(split)
    if not num.isdigit() or int(num) >= len(patients):
        raise ConfigError(
            f"patient={patient_id!r} is unknown; cohort {split} has ids "
            f"{split}-000 to {split}-{len(patients) - 1:03d}"
        )
    return patients[int(num)]


def get_patient(name: str) -> Patient:
    """A named patient (:data:`~closedloop.patients.patient.NAMED_PATIENTS`) or a cohort patient id.

    Args:
        name: ``default``, ``thin-csf``, ... or ``<split>-<NNN>``, e.g. ``train-007``.

    Raises:
        ConfigError: Naming the valid choices if ``name`` is unknown.
    """
    if not isinstance(name, str):
        raise ConfigError(
            f"patient={short_repr(name)} must be a string: one of "
            f"{', '.join(NAMED_PATIENTS)} or a cohort id <split>-<NNN>"
        )
    if name in NAMED_PATIENTS:
        return named_patient(name)
    if name.rsplit("-", 1)[0] in SPLITS:
        return cohort_patient(name)
    raise ConfigError(
        f"patient={name!r} is unknown; valid: {', '.join(NAMED_PATIENTS)} or a cohort id "
        f"<split>-<NNN> with split in {', '.join(SPLITS)}"
    )


@contextlib.contextmanager
def tuning_session(purpose: str) -> Iterator[None]:
    """Mark a block as tuning: inside it, :func:`load_cohort` refuses the test cohort.

    Args:
        purpose: What is being tuned (named in the error message).
    """
    token = _TUNING.set(purpose)
    try:
        yield
    finally:
        _TUNING.reset(token)


TUNING_ENTRY_POINTS: dict[str, Callable] = {}
"""Every registered tuning entry point (name -> wrapped function); tests check the guard."""


def tuning_entry_point(purpose: str) -> Callable[[Callable], Callable]:
    """Decorator: run the function inside :func:`tuning_session` and register it.

    Args:
        purpose: What the function tunes (named in :class:`HeldOutError` messages).
    """

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            with tuning_session(purpose):
                return fn(*args, **kwargs)

        TUNING_ENTRY_POINTS[f"{fn.__module__}.{fn.__qualname__}"] = guarded
        return guarded

    return wrap
