"""Safety model of the implanted pulse generator: every pulse's current passes through it.

Each controller action passes through the limits below before it reaches the tissue, **pulse by
pulse**: a control step of several pulses (``pulses_per_step > 1``) is a ramp (:func:`ramp`)
in which every pulse goes through :func:`limit_one` with the previous pulse's current as its
slew anchor and the electrode impedance at that pulse. The limits act in this order, so that a
later limit overrides an earlier one and the two tissue-safety limits (charge density,
compliance) always hold:

1. **bounds** (hardware): the output stage delivers 0-25.5 mA (``max_current_ma``;
   shared/domain.md §1 [M]). Negative requests become 0.
2. **clinician**: the programmed per-patient window ``[min_ma, max_ma]``
   (:class:`~closedloop.patients.calibration.CalibrationRecord`). It is intersected with the
   hardware range, so a clinician limit can never lift the current above ``max_current_ma``.
3. **slew**: the current changes by at most ``max_step_ma`` from one pulse to the next, however
   many pulses a control step holds (assumption: gradual ramps avoid jolts; a per-pulse figure
   is not published). Slew overrides the clinician window: after the window narrows the current
   ramps into it rather than jumping.
4. **charge_density**: charge per phase ``I · PW`` may not exceed the Shannon-criterion limit
   ``charge_density_limit_uc_per_cm2 · A`` (about 30 µC/cm² for platinum; domain.md Safety row
   [M]), with ``A = π · contact_diameter_mm · contact_length_mm`` the lateral area of the
   cylindrical cathode (assumption: the whole contact surface counts). Pulses are charge-balanced
   and biphasic, so the limit applies to each phase; in a tripolar configuration the cathode
   carries the full current and is the binding contact. ``I ≤ q_max / PW``, at the width of the
   pulse being delivered.
5. **compliance**: the generator cannot drive more than ``compliance_v`` across the electrode
   impedance, ``I · Z ≤ V`` (impedance 0.5-1.5 kΩ [M]; compliance 10-18 V in current IPGs, 12 V
   modelled, is an assumption). ``I ≤ V / Z``, with the impedance at that pulse.

Limits 4 and 5 only lower the current and come last, so they win over the clinician minimum and
over the slew limit: a safety cut is applied at once, never ramped. Limits 1-3 keep the current
inside ``[0, max_current_ma]`` and 4-5 only lower it, so the hardware range always holds too.

**Hard ceilings.** :class:`DeviceParams` (the spec's ``[device]`` table, ``device={...}`` at
make) can only tighten the limits, never loosen them: ``max_current_ma`` ≤ 25.5 mA (hardware),
``max_step_ma`` ≤ 1 mA per pulse, ``charge_density_limit_uc_per_cm2`` ≤ 30 µC/cm² (Shannon),
``compliance_v`` ≤ 12 V (the generator) and ``contact_diameter_mm`` ≤ 1.3 mm (a larger contact
would loosen the charge limit). A larger value is a :class:`~closedloop.ConfigError` naming the
field and its valid range.

Every call also returns a bitmask (:data:`LIMIT_FLAGS`) of the limits that changed the current.
:func:`limit_report` counts interventions per limit over an array of flags, and
:class:`InterventionCounter` accumulates those counts over an episode; the environments report
them in their ``info`` dict (one count per pulse at which a limit acted), so that a controller
that leans on the safety model is visible.

The limit logic is written once, as the numba kernel :func:`limit_one` (scalars in, scalars
out, no validation), and the ramp once, as :func:`ramp` over it, both in
:mod:`closedloop.device_limits` and re-exported here. :func:`limit_many` and
:func:`ramp_many` loop them over per-patient arrays; the environments' compiled steps call
:func:`limit_one` (one pulse per step) and :func:`ramp` / :func:`ramp_many` (several).
:func:`apply_limits` is the validated NumPy front end: inputs broadcast (shape ``()``, ``(1,)``
or ``(N,)`` patients), ``n_pulses`` gives every pulse of a ramp, and no input array is
modified. :func:`apply_limits_scalar` is a validation-free one-pulse scalar entry whose inputs
are already checked.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from closedloop._config import ConfigError, param, validate
from closedloop.device_inputs import check_limit_inputs, check_n_pulses, flat_f64
from closedloop.device_limits import LIMIT_FLAGS, limit_many, limit_one, ramp, ramp_many
from closedloop.device_report import (
    InterventionCounter,
    limit_report,
)
from closedloop.neural.params import PLATINUM_SHANNON

__all__ = [
    "LIMIT_FLAGS",
    "DeviceParams",
    "InterventionCounter",
    "apply_limits",
    "apply_limits_scalar",
    "limit_many",
    "limit_one",
    "limit_report",
    "ramp",
    "ramp_many",
]


@dataclasses.dataclass(frozen=True)
class DeviceParams:
    """Hardware and tissue-safety limits of the implanted pulse generator."""

    max_current_ma: float = param(
        25.5,
        "mA",
        "hardware ceiling: the output stage delivers "
        "0-25.5 mA [M domain.md §1]; settings may only lower it",
        0.0,
        25.5,
        lo_open=True,
        doc="largest current the output stage delivers",
    )
    max_step_ma: float = param(
        1.0,
        "mA",
        "assumption: ramp limit per pulse, not published; a ceiling, settings may only lower it",
        0.0,
        1.0,
        lo_open=True,
        doc="largest change of current from one pulse to the next",
    )
    charge_density_limit_uc_per_cm2: float = param(
        30.0,
        "µC/cm²",
        PLATINUM_SHANNON + "; a ceiling, settings may only lower it",
        0.0,
        30.0,
        lo_open=True,
        doc="charge per phase per contact area",
    )
    contact_diameter_mm: float = param(
        1.3,
        "mm",
        "percutaneous lead diameter 1.3 mm [M]; a "
        "larger value would enlarge the area and loosen the "
        "charge limit, so 1.3 mm is the ceiling",
        0.1,
        1.3,
        doc="contact diameter; area = π · d · length",
    )
    compliance_v: float = param(
        12.0,
        "V",
        "assumption: the modelled IPG's compliance 12 V "
        "(current IPGs 10-18 V); a ceiling, settings may only lower it",
        0.0,
        12.0,
        lo_open=True,
        doc="largest voltage across the electrode impedance",
    )

    def __post_init__(self) -> None:
        validate(self, "device.")

    def contact_area_cm2(self, contact_length_mm: float | np.ndarray) -> float | np.ndarray:
        """Lateral area π · d · length of the cylindrical contact (cm²)."""
        return math.pi * self.contact_diameter_mm * contact_length_mm * 1e-2

    def max_charge_uc(self, contact_length_mm: float | np.ndarray) -> float | np.ndarray:
        """Charge per phase allowed by the charge-density limit (µC).

        Args:
            contact_length_mm: Length of the stimulating contact along the lead (mm); a float or
                an array of per-patient lengths.

        Returns:
            ``charge_density_limit_uc_per_cm2 · π · contact_diameter_mm · contact_length_mm``.
        """
        return self.charge_density_limit_uc_per_cm2 * self.contact_area_cm2(contact_length_mm)


def apply_limits(
    requested_ma,
    previous_ma,
    pw_us,
    impedance_ohm,
    min_ma,
    max_ma,
    params: DeviceParams,
    contact_length_mm=3.0,
    n_pulses: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Limit requested currents to what the device may deliver (see the module docstring).

    All array arguments broadcast against each other (scalars, shape ``()``, ``(1,)`` or
    ``(N,)`` patients); none is modified. Validates, broadcasts, then calls :func:`limit_many`
    (one pulse) or :func:`ramp_many` (several).

    Args:
        requested_ma: Current the controller asks for (mA); must be finite.
        previous_ma: Current of the previous pulse (mA); finite. It is first brought into the
            hardware range, so the slew window is always anchored inside it.
        pw_us: Pulse width per phase (µs), > 0.
        impedance_ohm: Electrode impedance (Ω), > 0 (the same for every pulse of the step).
        min_ma: Clinician minimum current (mA), >= 0.
        max_ma: Clinician maximum current (mA), >= ``min_ma``.
        params: The device limits.
        contact_length_mm: Length of the stimulating contact (mm), > 0; sets the contact area.
        n_pulses: Pulses delivered at this request, an int in [1,
            :data:`~closedloop.device_inputs.MAX_PULSES`]. The device ramps pulse by pulse
            (:func:`ramp`): each pulse changes by at most ``params.max_step_ma`` from the one
            before.

    Returns:
        ``(delivered_ma, flags)``: the delivered current (float64 array of the broadcast shape)
        and an int8 bitmask of the limits that changed it (:data:`LIMIT_FLAGS`). With
        ``n_pulses > 1`` both have a trailing axis of ``n_pulses``: every pulse's current and
        flags.

    Raises:
        ConfigError: If an input is non-finite or out of range; the message names the argument
            and, for arrays, the first offending index.
    """
    if not isinstance(params, DeviceParams):
        raise ConfigError(f"params must be a DeviceParams, got {type(params).__name__}")
    req, prev, pw, imp, lo, hi, length = check_limit_inputs(
        requested_ma, previous_ma, pw_us, impedance_ohm, min_ma, max_ma, contact_length_mm
    )
    n = check_n_pulses(n_pulses)
    try:
        shape = np.broadcast(req, prev, pw, imp, lo, hi, length).shape
    except ValueError as err:
        raise ConfigError(f"apply_limits: input shapes do not broadcast ({err})") from None
    if not shape and n == 1:  # one patient, one pulse: the scalar kernel directly
        d, f = apply_limits_scalar(req, prev, pw, imp, lo, hi, params, length)
        return np.array(d), np.array(f, dtype=np.int8)
    size = math.prod(shape)
    flat = [
        flat_f64(v, shape, size) for v in (req, prev, pw, imp, lo, hi, params.max_charge_uc(length))
    ]
    if n == 1:
        delivered, flags = np.empty(size), np.empty(size, dtype=np.int8)
        limit_many(
            flat[0],
            flat[1],
            flat[2],
            flat[3],
            flat[4],
            flat[5],
            float(params.max_current_ma),
            np.full(size, float(params.max_step_ma)),
            flat[6],
            float(params.compliance_v),
            delivered,
            flags,
        )
        return delivered.reshape(shape), flags.reshape(shape)
    delivered, flags = np.empty((size, n)), np.empty((size, n), dtype=np.int8)
    ramp_many(
        flat[0],
        flat[1],
        flat[2],
        np.repeat(flat[3][:, None], n, axis=1),
        flat[4],
        flat[5],
        float(params.max_current_ma),
        float(params.max_step_ma),
        flat[6],
        float(params.compliance_v),
        delivered,
        flags,
        np.empty(size, dtype=np.int8),
    )
    return delivered.reshape(*shape, n), flags.reshape(*shape, n)


def apply_limits_scalar(
    requested_ma: float,
    previous_ma: float,
    pw_us: float,
    impedance_ohm: float,
    min_ma: float,
    max_ma: float,
    params: DeviceParams,
    contact_length_mm: float,
) -> tuple[float, int]:
    """Scalar one-pulse :func:`apply_limits` for one patient whose inputs are already validated.

    Only ``requested_ma`` is checked (it must be finite, a cheap ``math.isfinite`` test); the
    other inputs must satisfy the conditions listed in :func:`apply_limits`, which are not
    checked here. Every argument is converted to ``float``, so one compiled specialisation of
    :func:`limit_one` serves all callers. For several pulses call :func:`ramp`: there is no
    scalar entry that applies a step-sized slew to one pulse.

    Args:
        requested_ma: Current the controller asks for (mA); must be finite.
        previous_ma: Current of the previous pulse (mA); finite.
        pw_us: Pulse width per phase (µs), > 0.
        impedance_ohm: Electrode impedance (Ω), > 0.
        min_ma: Clinician minimum current (mA), >= 0.
        max_ma: Clinician maximum current (mA), >= ``min_ma``.
        params: The device limits.
        contact_length_mm: Length of the stimulating contact (mm), > 0.

    Returns:
        ``(delivered_ma, flags)``: the delivered current (mA) as a float and the bitmask of the
        limits that changed it (:data:`LIMIT_FLAGS`) as an int; equal to :func:`apply_limits`.

    Raises:
        ConfigError: If ``requested_ma`` is not finite.
    """
    if not math.isfinite(requested_ma):
        raise ConfigError(f"requested_ma={float(requested_ma)!r} must be finite")
    return limit_one(
        float(requested_ma),
        float(previous_ma),
        float(pw_us),
        float(impedance_ohm),
        float(min_ma),
        float(max_ma),
        float(params.max_current_ma),
        float(params.max_step_ma),
        float(params.max_charge_uc(contact_length_mm)),
        float(params.compliance_v),
    )
