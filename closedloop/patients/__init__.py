"""The physical parts of a virtual patient: the patient, its cohort, calibration and perception.

* :mod:`~closedloop.patients.patient`: :class:`Patient` (anatomy, lead, neural model
  parameters, recording, perception) and :func:`episode_seeds`;
* :mod:`~closedloop.patients.cohort`: the train/validation/test cohorts, :func:`get_patient`,
  :func:`load_cohort` and the held-out guard (:class:`HeldOutError`);
* :mod:`~closedloop.patients.calibration` (and its shipped cache,
  :mod:`~closedloop.patients.calibration_cache`): the clinic's programming session;
* :mod:`~closedloop.patients.perception`: sensation from recruitment; :mod:`~closedloop.
  patients.postures`: the posture names.

The names below are re-exported lazily: importing one module does not import the others.
"""

from closedloop._lazy import lazy_exports

_EXPORTS = {
    "Patient": "patient",
    "episode_seeds": "patient",
    "load_patient": "patient",
    "named_patient": "patient",
    "NAMED_PATIENTS": "patient",
    "get_patient": "cohort",
    "load_cohort": "cohort",
    "HeldOutError": "cohort",
    "tuning_session": "cohort",
    "CalibrationRecord": "calibration",
    "calibrate": "calibration",
    "POSTURES": "postures",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
