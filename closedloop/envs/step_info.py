"""The scalar env's ``info`` dict: the same keys at reset and at every step.

Minari's ``DataCollector(record_infos=True)`` stacks every info key over an episode, starting
with the reset's info, so reset and step must return the same keys with values of the same type.
:class:`EpisodeInfo` builds both. Before the first pulse the measured values are NaN
(``ecap_true_uv``, ``sensation``, ``charge_uc``; the comparisons ``in_window``, ``overstim``
and ``understim`` are then False), the device has delivered nothing (``device_flags`` 0, every
``device_limits`` count 0) and the state values are the episode's start: the comfort current,
and the scenario trace's CSF thickness, posture, event and impedance at time 0.

The info is a plain ``dict``: pytree libraries (jax, which Minari uses; optree; torch's) treat
subclasses of ``dict`` as leaves.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.device import InterventionCounter
from closedloop.disturbances.events import EVENT_TYPES
from closedloop.patients.postures import POSTURES

POSTURE_NAMES = POSTURES
"""``info["posture_code"]`` indexes this tuple (``info["posture"]`` is the name itself)."""
EVENT_NAMES = ("none", *EVENT_TYPES)
"""``info["event"]`` indexes this tuple: 0 is no event, then the event types."""


STEP_KEYS = (
    "ecap_true_uv",
    "sensation",
    "in_window",
    "overstim",
    "understim",
    "current_ma",
    "charge_uc",
    "csf_mm",
    "posture",
    "posture_code",
    "event",
    "device_flags",
    "impedance_ohm",
    "csf_clipped",
)
"""The per-step info keys, in order: every env's ``info`` has them (the scalar env's values are
scalars, the vector env's arrays over its patients). The docstring of
:class:`~closedloop.envs.ecap_env.ECAPTrackingEnv` says what each holds."""
EPISODE_KEYS = ("patient_id", "target_uv", "comfort_ma", "min_ma", "max_ma", "device_limits")
"""The scalar env's further keys: the episode's constants and its device-limit counts so far."""
PULSE_INFO_KEYS = ("pulse_current_ma", "pulse_impedance_ohm", "pulse_flags")
"""Further keys with several pulses per step: each pulse's delivered current (mA), electrode
impedance (Ω) and device flags (the vector env's arrays are (num_envs, pulses_per_step))."""
PW_RATE_INFO_KEYS = ("pw_us", "rate_hz")
"""Further keys with ``control_pw_rate``: the step's pulse width (µs) and rate (Hz)."""

RESULT_FIELDS = {
    "posture_code": "posture",
    **{k: k for k in STEP_KEYS if k not in ("understim", "posture", "posture_code")},
}
"""Step keys held in a field of the step's result record (:data:`~closedloop.envs.step.
RESULT_DTYPE`), and the field; ``understim`` and ``posture`` are computed from them."""
_POSTURE_NAMES = np.array(POSTURES)


def step_columns(result: np.ndarray, keys=STEP_KEYS) -> dict:
    """The info columns ``keys`` (of :data:`STEP_KEYS`) of a batch's result records, copies.

    Args:
        result: The step's result records (:data:`~closedloop.envs.step_data.RESULT_DTYPE`), (N,).
        keys: Which step keys.

    Returns:
        ``{key: array (N,)}``; ``posture`` holds names, ``understim`` is sensation < 1.
    """
    out = {}
    for key in keys:
        if key == "understim":
            out[key] = result["sensation"] < 1.0
        elif key == "posture":
            out[key] = _POSTURE_NAMES[result["posture"]]
        else:
            out[key] = result[RESULT_FIELDS[key]].copy()
    return out


class EpisodeInfo:
    """One episode's info dicts, with its constants and the device-limit counts so far.

    Args:
        patient_id: The episode's patient.
        target_uv: The episode's ECAP target (µV).
        calibration: The patient's calibration (``comfort_ma``, ``min_ma``, ``max_ma``, mA).
        discomfort_level: The sensation level at and above which a pulse is uncomfortable.
    """

    __slots__ = ("constants", "counter", "discomfort")

    def __init__(
        self, patient_id: str, target_uv: float, calibration, discomfort_level: float
    ) -> None:
        self.constants = {
            "patient_id": patient_id,
            "target_uv": float(target_uv),
            "comfort_ma": float(calibration.comfort_ma),
            "min_ma": float(calibration.min_ma),
            "max_ma": float(calibration.max_ma),
        }
        self.discomfort = discomfort_level
        self.counter = InterventionCounter()
        """The device-limit counts so far in the episode (``counter.add`` a pulse's flags)."""

    def step(
        self,
        mean_true: float,
        feel: float,
        above: float | None,
        current: float,
        charge: float,
        csf: float,
        posture: int,
        event: int,
        flags: int,
        impedance: float,
        clipped: bool,
    ) -> dict:
        """A step's info: the keys of :data:`STEP_KEYS` then :data:`EPISODE_KEYS`, in order.

        Args are the step's mean true ECAP (µV), last sensation, fraction of its pulses above
        discomfort (None: the one pulse's sensation decides), delivered current (mA), mean
        charge per pulse (µC), the trace's CSF thickness (mm), posture and event codes, device
        flags, the impedance the last pulse saw (Ω) and whether a pulse's CSF thickness was
        clamped into the model's range. The flags must already be counted (``counter.add``).
        """
        disc = self.discomfort
        return {
            "ecap_true_uv": mean_true,
            "sensation": feel,
            "in_window": 1.0 <= feel < disc,
            "overstim": feel >= disc if above is None else above > 0,
            "understim": feel < 1.0,
            "current_ma": current,
            "charge_uc": charge,
            "csf_mm": csf,
            "posture": POSTURES[posture],
            "posture_code": posture,
            "event": event,
            "device_flags": flags,
            "impedance_ohm": impedance,
            "csf_clipped": clipped,
            **self.constants,
            "device_limits": self.counter.counts.copy(),
        }

    def reset(
        self, trace, impedance_ohm: float, pulses_per_step: int, pw_rate: tuple[float, float] | None
    ) -> dict:
        """The reset's info: the step keys before any pulse (see the module docstring).

        Args:
            trace: The episode's scenario trace.
            impedance_ohm: The patient's electrode impedance before the trace's scaling (Ω).
            pulses_per_step: Pulses per step; above 1 the per-pulse arrays are added.
            pw_rate: The starting pulse width (µs) and rate (Hz) with ``control_pw_rate``.
        """
        nan = math.nan
        info = self.step(
            nan,
            nan,
            None,
            self.constants["comfort_ma"],
            nan,
            float(trace.csf_mm[0]),
            int(trace.posture[0]),
            int(trace.event[0]),
            0,
            float(impedance_ohm * trace.impedance_scale[0]),
            bool(trace.csf_clipped[0]),
        )
        if pulses_per_step > 1:
            info.update(
                pulse_current_ma=np.full(pulses_per_step, nan),
                pulse_impedance_ohm=np.full(pulses_per_step, nan),
                pulse_flags=np.zeros(pulses_per_step, np.int64),
            )
        if pw_rate is not None:
            info["pw_us"], info["rate_hz"] = float(pw_rate[0]), float(pw_rate[1])
        return info
