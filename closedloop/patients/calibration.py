"""Clinical calibration: the programming session that precedes closed loop.

Every controller starts from the same :class:`CalibrationRecord`, made the way a clinic makes
it. In each calibration posture the clinician sweeps the current upwards (0.1 mA steps, 16 pulses
per level, at the programming pulse width and rate) while watching the ECAP and asking the patient
what they feel. That gives, per posture:

* the ECAP threshold and growth-curve slope (soft-knee fit, :func:`closedloop.neural.fit_growth`);
* the perception and discomfort currents, where the patient first feels the paresthesia and where
  it becomes uncomfortable (the patient model's sensation, :mod:`closedloop.patients.perception`);
* the ECAP (as measured) at those two currents: the therapeutic window in µV.

From the postures together:

* **target** ECAP: the patient's ``target_position`` (:attr:`Patient.target_position`) of the
  way from the highest perception ECAP to the lowest discomfort ECAP, so that holding it keeps
  the patient in the window in every calibration posture (if no common window exists, the
  reference posture's window is used). A negative position puts the target below perception:
  ``(1 + target_position)`` times the highest perception ECAP;
* **comfort current**: the current giving the target ECAP in the reference posture; the open-loop
  setting (standard of care) and the fixed-current fallback;
* **clinician limits**: 0 mA to the highest discomfort current across calibration postures;
* a **warm-up** period before scoring starts.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from closedloop._config import ConfigError, check_value, is_real, short_repr
from closedloop._io import nan_to_none, write_text_atomic
from closedloop._parallel import parallel_map
from closedloop.neural.validation import PW_RANGE_US, RATE_RANGE_HZ
from closedloop.patients.patient import REFERENCE_POSTURE, Patient
from closedloop.patients.perception import crossing_ma, programming_sweep
from closedloop.patients.postures import POSTURES, posture_code

CALIBRATION_POSTURES = ("supine", "sitting", "standing")
"""Postures of the programming session (assumption: those a clinic can test)."""
PROGRAMMING_NOISE_UV = 3.0
"""Single-sweep noise (µV rms) of the programming sweep at most: a clinic repeats the sweep of
a noisy patient until the growth curve is clean (assumption), modelled as the sweep at this
noise; the patient's own noise (``recording.noise_uv_rms``) applies in closed loop."""
WARMUP_S = 10.0
"""Simulated time before scoring starts (s)."""
MIN_SLOPE_UV_PER_MA = 1.0
"""A fitted slope below this (µV/mA) is artefact leakage, not an ECAP: reported as NaN."""
FORMAT = "closedloop.calibration/1"


@dataclasses.dataclass(frozen=True)
class PostureCalibration:
    """What the programming sweep found in one posture (NaN where not reached by 25.5 mA)."""

    posture: str
    csf_mm: float
    ecap_threshold_ma: float
    slope_uv_per_ma: float
    perception_ma: float
    discomfort_ma: float
    perception_ecap_uv: float
    """Measured ECAP at the perception current (µV): the bottom of the window."""
    discomfort_ecap_uv: float
    """Measured ECAP at the discomfort current (µV): the top of the window."""


@dataclasses.dataclass(frozen=True)
class CalibrationRecord:
    """The result of the programming session, handed to every controller before closed loop."""

    patient_id: str
    pw_us: float
    rate_hz: float
    reference_posture: str
    postures: tuple[PostureCalibration, ...]
    target_uv: float
    """ECAP to hold (µV)."""
    comfort_ma: float
    """Current giving the target ECAP in the reference posture (mA): the open-loop setting."""
    min_ma: float
    max_ma: float
    """Clinician current limits (mA)."""
    fallback_ma: float
    """Fixed current to use when the ECAP cannot be measured (mA)."""
    warmup_s: float

    @property
    def reference(self) -> PostureCalibration:
        """The reference posture's calibration."""
        return self.posture(self.reference_posture)

    def posture(self, name: str) -> PostureCalibration:
        """Calibration of posture ``name``; ConfigError if it was not calibrated."""
        for pc in self.postures:
            if pc.posture == name:
                return pc
        raise ConfigError(
            f"posture={name!r} was not calibrated; valid: "
            f"{', '.join(p.posture for p in self.postures)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as None)."""
        d = dataclasses.asdict(self)
        d["postures"] = [dataclasses.asdict(p) for p in self.postures]
        return {"format": FORMAT, **nan_to_none(d)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationRecord:
        """Inverse of :meth:`to_dict`; unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"calibration={short_repr(data)} must be a table (dict) of the "
                "fields of CalibrationRecord"
            )
        data = dict(data)
        if data.pop("format", FORMAT) != FORMAT:
            raise ConfigError(f"calibration format must be {FORMAT!r}")
        _check_keys(cls, data, "calibration")
        postures = data.pop("postures")
        if not isinstance(postures, list | tuple) or not postures:
            raise ConfigError("calibration.postures must be a non-empty list of tables")
        rows = []
        for i, row in enumerate(postures):
            _check_keys(PostureCalibration, row, f"calibration.postures[{i}]")
            rows.append(PostureCalibration(**_nan_for_none(row)))
        return cls(postures=tuple(rows), **_nan_for_none(data))

    def save(self, path: str | Path) -> Path:
        """Write as indented JSON (atomically)."""
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CalibrationRecord:
        """Read a record written by :meth:`save`; ConfigError naming ``path`` if unreadable."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"calibration file {str(path)!r} cannot be read: {exc}") from None
        return cls.from_dict(doc)


def calibrate_posture(
    patient: Patient, model, posture: str, pw_us: float = 250.0, rate_hz: float = 50.0, curve=None
) -> PostureCalibration:
    """Run the programming sweep in one posture.

    Args:
        patient: The patient (its perception model answers "do you feel it?").
        model: The patient's neural model (reset by the sweep).
        posture: Posture name.
        pw_us: Pulse width (µs).
        rate_hz: Pulse rate (Hz).
        curve: A sweep already made in that posture (:func:`programming_sweep`), to reuse.

    Returns:
        The posture's :class:`PostureCalibration`.
    """
    posture_code(posture)
    csf = patient.csf_mm(posture)
    if curve is None:
        curve = programming_sweep(model, csf, pw_us, rate_hz)
    return PostureCalibration(posture, csf, *sweep_summary(patient, curve))


def sweep_summary(patient: Patient, curve) -> tuple[float, ...]:
    """Threshold, slope, perception and discomfort currents and the window from a sweep.

    Returns:
        ``(ecap_threshold_ma, slope_uv_per_ma, perception_ma, discomfort_ma,
        perception_ecap_uv, discomfort_ecap_uv)``; NaN where not reached.
    """
    cur = curve.currents_ma
    feel = patient.perception.steady_sensation(curve.frac_recruited, curve.rate_hz)
    i_p = crossing_ma(cur, feel, 1.0)
    i_d = crossing_ma(cur, feel, patient.perception.discomfort_level)
    ecap = np.maximum.accumulate(curve.ecap_uv)
    at = [float(np.interp(i, cur, ecap)) if math.isfinite(i) else math.nan for i in (i_p, i_d)]
    th, slope = curve.threshold_ma, curve.slope_uv_per_ma
    if not slope >= MIN_SLOPE_UV_PER_MA:
        th = slope = math.nan
    return (th, slope, i_p, i_d, *at)


def window_table(
    patient: Patient, model, csf_mm, pw_us: float = 250.0, rate_hz: float = 50.0
) -> tuple[np.ndarray, np.ndarray]:
    """The therapeutic window in ECAP µV at each CSF thickness in ``csf_mm``.

    Returns:
        ``(lower_uv, upper_uv)`` arrays: the measured ECAP at perception and at discomfort
        (NaN where not reached by 25.5 mA).
    """
    rows = [
        sweep_summary(patient, programming_sweep(model, float(c), pw_us, rate_hz))[4:]
        for c in np.atleast_1d(csf_mm)
    ]
    lo, hi = np.array(rows).T
    return lo, hi


def calibrate(
    patient: Patient,
    postures: Sequence[str] = CALIBRATION_POSTURES,
    reference: str = REFERENCE_POSTURE,
    pw_us: float = 250.0,
    rate_hz: float = 50.0,
    target_position: float | None = None,
    warmup_s: float = WARMUP_S,
    model=None,
) -> CalibrationRecord:
    """Simulate the programming session and derive the target and current limits.

    Args:
        patient: The patient.
        postures: Calibration postures; must include ``reference``.
        reference: Posture whose growth curve sets the comfort current.
        pw_us: Programmed pulse width (µs).
        rate_hz: Programmed pulse rate (Hz).
        target_position: Target's place in the common window, in [-1, 1] (see the module
            docstring); None: the patient's own :attr:`~Patient.target_position`.
        warmup_s: Warm-up before scoring (s), >= 0.
        model: The patient's neural model, to avoid rebuilding it (it is reset); unused when
            the patient's noise exceeds :data:`PROGRAMMING_NOISE_UV`.

    Returns:
        The :class:`CalibrationRecord`.

    Raises:
        ConfigError: On bad arguments, or if the reference posture has no usable window.
    """
    _check_session(patient, postures, reference, pw_us, rate_hz)
    if target_position is None:
        target_position = patient.target_position
    check_value("target_position", target_position, {"lo": -1.0, "hi": 1.0})
    check_value("warmup_s", warmup_s, {"lo": 0.0, "unit": "s"})
    model = programming_model(patient, model)
    curves = {p: programming_sweep(model, patient.csf_mm(p), pw_us, rate_hz) for p in postures}
    rows = tuple(calibrate_posture(patient, model, p, pw_us, rate_hz, curves[p]) for p in postures)
    ref = rows[list(postures).index(reference)]
    if not math.isfinite(ref.discomfort_ma):
        raise ConfigError(
            f"patient {patient.patient_id}: no therapeutic window in the "
            f"reference posture {reference} within 25.5 mA"
        )
    lo = np.nanmax([r.perception_ecap_uv for r in rows])
    hi = np.nanmin([r.discomfort_ecap_uv for r in rows])
    if not hi > lo:
        lo, hi = ref.perception_ecap_uv, ref.discomfort_ecap_uv
    target = float(
        lo + target_position * (hi - lo) if target_position >= 0 else lo * (1.0 + target_position)
    )
    ref_curve = curves[reference]
    comfort = crossing_ma(ref_curve.currents_ma, ref_curve.ecap_uv, target)
    max_ma = float(np.nanmax([r.discomfort_ma for r in rows]))
    model.reset()
    return CalibrationRecord(
        patient.patient_id,
        float(pw_us),
        float(rate_hz),
        reference,
        rows,
        target,
        comfort,
        0.0,
        max_ma,
        comfort,
        float(warmup_s),
    )


def programming_model(patient: Patient, model=None):
    """The neural model the programming sweep measures (see :data:`PROGRAMMING_NOISE_UV`).

    Args:
        patient: The patient.
        model: Its neural model, reused when its noise is at most the programming noise.
    """
    if patient.params.recording.noise_uv_rms <= PROGRAMMING_NOISE_UV:
        return patient.model() if model is None else model
    quiet = patient.params.replace(recording={"noise_uv_rms": PROGRAMMING_NOISE_UV})
    return dataclasses.replace(patient, params=quiet).model()


def _check_session(patient: Any, postures: Any, reference: Any, pw_us: Any, rate_hz: Any) -> None:
    """Raise ConfigError naming the first bad argument of :func:`calibrate`."""
    if not isinstance(patient, Patient):
        raise ConfigError(f"patient={short_repr(patient)} must be a Patient (get_patient(id))")
    if (
        isinstance(postures, str)
        or not isinstance(postures, Sequence)
        or not postures
        or any(p not in POSTURES for p in postures)
    ):
        raise ConfigError(
            f"postures={short_repr(postures)} must be a non-empty list of "
            f"postures; valid: {', '.join(POSTURES)}"
        )
    if reference not in postures:
        raise ConfigError(f"reference={reference!r} must be one of postures={list(postures)}")
    check_value("pw_us", pw_us, {"lo": PW_RANGE_US[0], "hi": PW_RANGE_US[1], "unit": "µs"})
    check_value("rate_hz", rate_hz, {"lo": RATE_RANGE_HZ[0], "hi": RATE_RANGE_HZ[1], "unit": "Hz"})


def calibrate_many(
    patients: Sequence[Patient],
    postures: Sequence[str] = CALIBRATION_POSTURES,
    workers: int = 1,
    progress: bool = False,
    **kwargs,
) -> list[CalibrationRecord]:
    """Calibrate many patients, in parallel processes, with an optional progress bar.

    Args:
        patients: The patients.
        postures: Calibration postures.
        workers: Processes (1 = in this process).
        progress: Show a progress bar.
        **kwargs: Passed on to :func:`calibrate`.

    Returns:
        One record per patient, in order.
    """
    job = functools.partial(calibrate, postures=tuple(postures), **kwargs)
    return list(parallel_map(job, patients, workers, progress, "calibrating"))


def _check_keys(cls, data: Any, where: str) -> None:
    """Reject data that is not a table of exactly the fields of dataclass ``cls``, typed.

    Fields annotated ``float`` take a real number or None (a missing value); ``str`` fields
    take a string.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}={short_repr(data)} must be a table (dict)")
    fields = dataclasses.fields(cls)
    known = {f.name for f in fields}
    unknown = sorted(map(str, set(data) - known))
    missing = sorted(known - set(data))
    if unknown or missing:
        raise ConfigError(f"{where}: unknown key(s) {unknown}, missing key(s) {missing}")
    for f in fields:
        value = data[f.name]
        ok = {"float": value is None or is_real(value), "str": isinstance(value, str)}
        if not ok.get(str(f.type), True):
            what = "a number (or null)" if f.type == "float" else "a string"
            raise ConfigError(f"{where}.{f.name}={short_repr(value)} must be {what}")


def _nan_for_none(d: dict) -> dict:
    """Replace None values by NaN (one level)."""
    return {k: math.nan if v is None else v for k, v in d.items()}
