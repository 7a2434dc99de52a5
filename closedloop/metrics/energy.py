"""Charge, energy and the battery-life projection of a stimulation record."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from closedloop._config import ConfigError, param, validate
from closedloop.metrics._checks import _per_pulse, _scalar, _time

HOURS_PER_YEAR = 8766.0
"""Mean hours per year (365.25 d), for battery-life projections."""


@dataclasses.dataclass(frozen=True)
class BatterySpec:
    """Implanted pulse generator battery and power budget for battery-life projections."""

    capacity_mah: float = param(
        4000.0,
        "mAh",
        "assumption: primary-cell IPG ~3-4.5 Ah",
        0.0,
        1e5,
        lo_open=True,
        doc="usable battery capacity",
    )
    voltage_v: float = param(
        3.2,
        "V",
        "assumption: Li/CFx-type cell",
        0.0,
        10.0,
        lo_open=True,
        doc="mean cell voltage over discharge",
    )
    efficiency: float = param(
        0.5,
        "1",
        "assumption: conversion and compliance-drive efficiency of the output stage",
        0.0,
        1.0,
        lo_open=True,
        doc="tissue energy / battery energy spent on stimulation",
    )
    quiescent_uw: float = param(
        30.0,
        "µW",
        "assumption: electronics incl. ECAP sensing",
        0.0,
        1e5,
        doc="battery power drawn besides stimulation",
    )

    def __post_init__(self) -> None:
        validate(self, "battery.")

    @property
    def capacity_wh(self) -> float:
        """Usable energy of the cell (Wh)."""
        return self.capacity_mah * 1e-3 * self.voltage_v


DEFAULT_BATTERY = BatterySpec()
"""The default :class:`BatterySpec` (immutable, safe as an argument default)."""


def charge_metrics(t_s: Any, charge_uc: Any) -> dict[str, float]:
    """Charge delivered by charge-balanced biphasic pulses (counted per phase).

    Args:
        t_s: Pulse times (s), strictly increasing.
        charge_uc: Charge per phase per pulse (µC), finite, >= 0.

    Returns:
        ``charge_per_pulse_uc`` (mean, µC), ``total_charge_uc`` and ``charge_rate_uc_per_s``.
    """
    _, w = _time(t_s)
    q = _per_pulse("charge_uc", charge_uc, w.size, lo=0.0, unit="µC")
    total = float(np.sum(q))
    return {
        "charge_per_pulse_uc": float(np.mean(q)),
        "total_charge_uc": total,
        "charge_rate_uc_per_s": total / float(np.sum(w)),
    }


def battery_life_years(stim_power_uw: float, battery: BatterySpec = DEFAULT_BATTERY) -> float:
    """Projected battery life: ``capacity_wh / (stim_power / efficiency + quiescent) / 8766 h``.

    Args:
        stim_power_uw: Mean stimulation power into the tissue (µW), >= 0.
        battery: Battery and power budget.

    Returns:
        Life in years (inf if nothing draws power).
    """
    if not isinstance(battery, BatterySpec):
        raise ConfigError(f"battery must be a BatterySpec, got {type(battery).__name__}")
    p_uw = _scalar("stim_power_uw", stim_power_uw, lo=0.0, unit="µW")
    draw_w = (p_uw / battery.efficiency + battery.quiescent_uw) * 1e-6
    return math.inf if draw_w == 0 else battery.capacity_wh / draw_w / HOURS_PER_YEAR


def energy_metrics(
    t_s: Any,
    current_ma: Any,
    pw_us: Any,
    impedance_ohm: Any,
    battery: BatterySpec = DEFAULT_BATTERY,
) -> dict[str, float]:
    """Energy into the tissue, ``E = 2 I^2 R PW`` per biphasic pulse, and battery life.

    Args:
        t_s: Pulse times (s), strictly increasing.
        current_ma: Current amplitude per pulse (mA), finite, >= 0.
        pw_us: Pulse width per phase (µs), >= 0: scalar or per pulse.
        impedance_ohm: Electrode-tissue impedance (Ω), > 0: scalar or per pulse.
        battery: Battery and power budget for :func:`battery_life_years`.

    Returns:
        ``energy_per_pulse_uj`` (mean), ``total_energy_mj``, ``stim_power_uw`` (total energy
        / scored duration) and ``battery_life_years``.
    """
    _, w = _time(t_s)
    n = w.size
    i_ma = _per_pulse("current_ma", current_ma, n, lo=0.0, unit="mA")
    pw = _per_pulse("pw_us", pw_us, n, lo=0.0, unit="µs", scalar_ok=True)
    r = _per_pulse(
        "impedance_ohm", impedance_ohm, n, lo=0.0, lo_open=True, unit="Ω", scalar_ok=True
    )
    e_uj = 2.0 * (i_ma * 1e-3) ** 2 * r * pw  # A^2 * Ω * µs = µJ
    total_uj = float(np.sum(e_uj))
    power_uw = total_uj / float(np.sum(w))
    return {
        "energy_per_pulse_uj": float(np.mean(e_uj)),
        "total_energy_mj": total_uj * 1e-3,
        "stim_power_uw": power_uw,
        "battery_life_years": battery_life_years(power_uw, battery),
    }
