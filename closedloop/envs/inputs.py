"""Checks of what a user hands the environments: reset options and actions.

Both raise :class:`~closedloop.ConfigError` naming the input and its valid range. The action
check keeps a fast path for the usual case (a float ndarray of the right shape inside [-1, 1]),
which the RL loop pays on every step of the general (several-pulse) path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from closedloop._config import ConfigError, as_real_array, check_value, short_repr
from closedloop.disturbances import Scenario
from closedloop.envs.config import EnvConfig
from closedloop.patients.calibration import CalibrationRecord
from closedloop.patients.patient import Patient

ECAP_BOUND_UV = 2000.0
"""Bound of the observed and targeted ECAP (µV)."""
RESET_OPTIONS = ("patient", "split", "scenario", "target_uv", "calibration")
"""Keys ``reset(options=...)`` accepts."""
OBJECT_OPTIONS = {"patient": Patient, "scenario": Scenario, "calibration": CalibrationRecord}
"""Options that may also be given as the object itself (a patient not in a cohort, a scenario
built in Python, a calibration record made with other postures)."""

_TARGET_META = {"lo": 0.0, "lo_open": True, "hi": ECAP_BOUND_UV, "unit": "µV"}


def reset_options(options: Any) -> dict:
    """``reset``'s options checked: a dict of :data:`RESET_OPTIONS` with values of their types.

    ``patient``, ``split`` and ``scenario`` are checked as the fields of
    :class:`~closedloop.envs.config.EnvConfig`, unless they are a
    :class:`~closedloop.patients.patient.Patient` or a :class:`~closedloop.disturbances.Scenario`;
    ``calibration`` must be a :class:`~closedloop.patients.calibration.CalibrationRecord`;
    ``target_uv`` is a real number in (0, 2000] µV.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(
            f"options={short_repr(options)} must be a dict with keys among "
            f"{', '.join(RESET_OPTIONS)}"
        )
    unknown = sorted(map(str, set(options) - set(RESET_OPTIONS)))
    if unknown:
        raise ConfigError(
            f"unknown reset option(s) {', '.join(unknown)}; valid: {', '.join(RESET_OPTIONS)}"
        )
    fields = EnvConfig.__dataclass_fields__
    for key, value in options.items():
        if key in OBJECT_OPTIONS and isinstance(value, OBJECT_OPTIONS[key]):
            continue
        if key == "calibration":
            raise ConfigError(
                f"options['calibration']={short_repr(value)} must be a CalibrationRecord"
            )
        meta = _TARGET_META if key == "target_uv" else fields[key].metadata
        check_value(f"options[{key!r}]", value, meta, "real" if key == "target_uv" else None)
    return dict(options)


def check_action(action, shape) -> list[float]:
    """The action as floats of ``shape``, clipped to [-1, 1]; ConfigError if malformed."""
    if type(action) is np.ndarray and action.shape == shape and action.dtype.char in "fd":
        a = action.tolist()  # the usual case: float32/64 values inside [-1, 1]
        for x in a:
            if type(x) is not float or not -1.0 <= x <= 1.0:
                break
        else:
            return a
    a = as_real_array("action", action)
    if a.shape != shape:
        if a.size != shape[0]:
            raise ConfigError(f"action has shape {a.shape}; expected {shape}")
        a = a.reshape(shape)
    lo, hi = a.min(), a.max()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"action={a.tolist()} must be finite; valid range [-1, 1]")
    return (a if (lo >= -1.0 and hi <= 1.0) else np.clip(a, -1.0, 1.0)).tolist()
