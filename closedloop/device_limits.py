"""The device's limit logic, compiled: the one copy of the five limits and of the ramp.

:func:`limit_one` applies the five limits of :mod:`closedloop.device` (bounds, clinician, slew,
charge density, compliance; see there for their order and sources) to one pulse; :func:`ramp`
is a control step of several pulses, each through :func:`limit_one` with the previous pulse's
current as its slew anchor. :func:`limit_many` and :func:`ramp_many` loop them over patients.
Scalars and arrays in, no validation: :func:`closedloop.device.apply_limits` is the validated
front end, and the environments' compiled steps call these directly.
"""

from __future__ import annotations

import numba

LIMIT_FLAGS: dict[str, int] = {
    "bounds": 1,
    "clinician": 2,
    "slew": 4,
    "charge_density": 8,
    "compliance": 16,
}
"""Bit of each limit in the flags, in the order applied."""

_B, _C, _S, _Q, _V = LIMIT_FLAGS.values()  # numba freezes these globals as constants


@numba.njit(cache=True)
def limit_one(
    requested_ma,
    previous_ma,
    pw_us,
    impedance_ohm,
    min_ma,
    max_ma,
    max_current_ma,
    max_change_ma,
    max_charge_uc,
    compliance_v,
):
    """The five limits, in order, for one patient and one pulse (the one copy of them).

    Scalar kernel, callable from Python and from other numba kernels. It does no validation:
    callers guarantee finite inputs, ``pw_us > 0``, ``impedance_ohm > 0`` and
    ``0 <= min_ma <= max_ma`` (as :func:`apply_limits` checks).

    Args:
        requested_ma: Current the controller asks for (mA).
        previous_ma: Current of the previous pulse (mA); brought into ``[0, max_current_ma]``
            before it anchors the slew window.
        pw_us: Pulse width per phase (µs).
        impedance_ohm: Electrode impedance (Ω).
        min_ma: Clinician minimum current (mA); capped at ``max_current_ma``.
        max_ma: Clinician maximum current (mA).
        max_current_ma: Hardware maximum current (mA), ``DeviceParams.max_current_ma``.
        max_change_ma: Largest change of current from the previous pulse (mA),
            ``DeviceParams.max_step_ma``.
        max_charge_uc: Largest charge per phase (µC), ``DeviceParams.max_charge_uc(length)``.
        compliance_v: Compliance voltage (V), ``DeviceParams.compliance_v``.

    Returns:
        ``(delivered_ma, flags)``: the delivered current (mA, float64) and the int64 bitmask of
        the limits that changed it (:data:`LIMIT_FLAGS`).
    """
    flags = 0
    # 1. bounds: hardware range [0, max_current_ma]
    out = min(max(requested_ma, 0.0), max_current_ma)
    if out != requested_ma:
        flags |= _B
    # 2. clinician window, intersected with the hardware range
    new = min(max(out, min(min_ma, max_current_ma)), max_ma)
    if new != out:
        flags |= _C
    out = new
    # 3. slew from the previous current, anchored inside the hardware range
    anchor = min(max(previous_ma, 0.0), max_current_ma)
    new = min(max(out, anchor - max_change_ma), anchor + max_change_ma)
    if new != out:
        flags |= _S
    out = new
    # 4. charge density: I * PW <= q_max
    new = min(out, max_charge_uc / (pw_us * 1e-3))
    if new != out:
        flags |= _Q
    out = new
    # 5. compliance: I * Z <= V
    new = min(out, compliance_v / impedance_ohm * 1e3)
    if new != out:
        flags |= _V
    return new, flags


@numba.njit(cache=True)
def limit_many(
    requested,
    previous,
    pw,
    imp,
    min_ma,
    max_ma,
    max_current_ma,
    max_change_ma,
    max_charge_uc,
    compliance_v,
    out_delivered,
    out_flags,
):
    """:func:`limit_one` for each patient of a batch, written into ``out_delivered``/``out_flags``.

    No validation and no broadcasting: every per-patient argument is a 1-D array of the same
    length ``N`` (the caller broadcasts and validates, as :func:`apply_limits` does).

    Args:
        requested: Requested currents (mA), shape ``(N,)``.
        previous: Previously delivered currents (mA), ``(N,)``.
        pw: Pulse widths per phase (µs), ``(N,)``.
        imp: Electrode impedances (Ω), ``(N,)``.
        min_ma: Clinician minimum currents (mA), ``(N,)``.
        max_ma: Clinician maximum currents (mA), ``(N,)``.
        max_current_ma: Hardware maximum current (mA), a scalar.
        max_change_ma: Largest change of current from the previous pulse (mA), ``(N,)``.
        max_charge_uc: Largest charge per phase (µC), ``(N,)``.
        compliance_v: Compliance voltage (V), a scalar.
        out_delivered: Output, delivered currents (mA), float ``(N,)``; overwritten.
        out_flags: Output, limit bitmasks (:data:`LIMIT_FLAGS`), integer ``(N,)``; overwritten.
    """
    for i in range(requested.size):
        out_delivered[i], out_flags[i] = limit_one(
            requested[i],
            previous[i],
            pw[i],
            imp[i],
            min_ma[i],
            max_ma[i],
            max_current_ma,
            max_change_ma[i],
            max_charge_uc[i],
            compliance_v,
        )


@numba.njit(cache=True)
def ramp(
    requested_ma,
    previous_ma,
    pw_us,
    impedance_ohm,
    min_ma,
    max_ma,
    max_current_ma,
    max_step_ma,
    max_charge_uc,
    compliance_v,
    out_current,
    out_flags,
):
    """One control step of ``P`` pulses: the device ramps pulse by pulse toward the request.

    Pulse ``j`` passes through :func:`limit_one` with the current of pulse ``j - 1`` (of the
    previous step for ``j = 0``) as its slew anchor and its own impedance, so no pulse changes by
    more than ``max_step_ma`` from the one before (the one copy of the ramp; callers never scale
    the slew limit by the pulse count). No validation (see :func:`limit_one`).

    Args:
        requested_ma: Current the controller asks for over the whole step (mA).
        previous_ma: Current of the previous step's last pulse (mA).
        pw_us: Pulse width per phase (µs).
        impedance_ohm: Electrode impedance each pulse sees (Ω), ``(P,)``.
        min_ma: Clinician minimum current (mA).
        max_ma: Clinician maximum current (mA).
        max_current_ma: Hardware maximum current (mA).
        max_step_ma: Largest change of current from one pulse to the next (mA).
        max_charge_uc: Largest charge per phase (µC).
        compliance_v: Compliance voltage (V).
        out_current: Output, each pulse's delivered current (mA), ``(P,)``; overwritten.
        out_flags: Output, each pulse's limit bitmask (:data:`LIMIT_FLAGS`), ``(P,)``.

    Returns:
        The bitwise OR of the pulses' flags (int): the step's flags.
    """
    current = previous_ma
    step_flags = 0
    for j in range(out_current.size):
        current, f = limit_one(
            requested_ma,
            current,
            pw_us,
            impedance_ohm[j],
            min_ma,
            max_ma,
            max_current_ma,
            max_step_ma,
            max_charge_uc,
            compliance_v,
        )
        out_current[j] = current
        out_flags[j] = f
        step_flags |= f
    return step_flags


@numba.njit(cache=True)
def ramp_many(
    requested,
    previous,
    pw,
    imp,
    min_ma,
    max_ma,
    max_current_ma,
    max_step_ma,
    max_charge_uc,
    compliance_v,
    out_current,
    out_flags,
    out_step_flags,
):
    """:func:`ramp` for each patient of a batch (a loop over the scalar function).

    Args:
        requested: Requested currents (mA), ``(N,)``.
        previous: Currents of each patient's previous pulse (mA), ``(N,)``.
        pw: Pulse widths per phase (µs), ``(N,)``.
        imp: Electrode impedance of each patient's pulses (Ω), ``(N, P)``.
        min_ma: Clinician minimum currents (mA), ``(N,)``.
        max_ma: Clinician maximum currents (mA), ``(N,)``.
        max_current_ma: Hardware maximum current (mA), a scalar.
        max_step_ma: Largest change of current from one pulse to the next (mA), a scalar.
        max_charge_uc: Largest charge per phase (µC), ``(N,)``.
        compliance_v: Compliance voltage (V), a scalar.
        out_current: Output, delivered currents (mA), ``(N, P)``; overwritten.
        out_flags: Output, per-pulse limit bitmasks, integer ``(N, P)``; overwritten.
        out_step_flags: Output, each patient's OR over its pulses, integer ``(N,)``.
    """
    for i in range(requested.size):
        out_step_flags[i] = ramp(
            requested[i],
            previous[i],
            pw[i],
            imp[i],
            min_ma[i],
            max_ma[i],
            max_current_ma,
            max_step_ma,
            max_charge_uc[i],
            compliance_v,
            out_current[i],
            out_flags[i],
        )
