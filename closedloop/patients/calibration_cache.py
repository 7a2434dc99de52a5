"""Calibration records of the cohort patients, computed once and shipped with the cohorts.

A programming session (:func:`closedloop.patients.calibration.calibrate`) takes about a second per
patient; environments that draw a new patient at every reset read the shipped record instead.
``closedloop cohort --regenerate`` rewrites these files together with the cohorts, and
``tests/test_cohort.py`` recomputes some records and compares them with the files.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from closedloop._io import nan_to_none, write_text_atomic
from closedloop.patients.calibration import CalibrationRecord, calibrate, calibrate_many
from closedloop.patients.cohort import load_cohort
from closedloop.patients.cohort_draw import SPLITS
from closedloop.patients.patient import Patient

FORMAT = "closedloop.patients.cohort-calibration/1"


def calibration_path(split: str) -> Path:
    """The shipped calibration file of cohort ``split``."""
    return Path(str(resources.files("closedloop") / "cohorts" / f"{split}.calibration.json"))


def write_calibrations(split: str, workers: int = 1, progress: bool = False) -> Path:
    """Calibrate every patient of cohort ``split`` and write the file (atomically)."""
    records = calibrate_many(load_cohort(split), workers=workers, progress=progress)
    doc = {"format": FORMAT, "split": split, "records": [nan_to_none(r.to_dict()) for r in records]}
    _read.cache_clear()
    return write_text_atomic(calibration_path(split), json.dumps(doc, indent=1) + "\n")


@functools.cache
def _read(split: str) -> dict[str, CalibrationRecord]:
    """Parse a shipped calibration file (cached); empty if it does not exist."""
    path = calibration_path(split)
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {r["patient_id"]: CalibrationRecord.from_dict(r) for r in doc["records"]}


def patient_calibration(patient: Patient) -> CalibrationRecord:
    """The default calibration of ``patient``.

    The shipped record for an unchanged cohort patient, otherwise a fresh programming session
    (cached per patient in this process).

    Raises:
        HeldOutError: For a test-cohort patient inside a tuning session.
    """
    split = patient.patient_id.rpartition("-")[0]
    if split in SPLITS:
        cohort = load_cohort(split)  # enforces the held-out guard
        index = int(patient.patient_id.rpartition("-")[2])
        if index < len(cohort) and cohort[index] == patient:
            stored = _read(split).get(patient.patient_id)
            if stored is not None:
                return stored
    return _fresh(patient)


@functools.lru_cache(maxsize=64)
def _fresh(patient: Patient) -> CalibrationRecord:
    """Calibrate a patient not covered by the shipped files."""
    return calibrate(patient)
