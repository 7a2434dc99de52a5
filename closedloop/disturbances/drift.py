"""Chronic drift over days and weeks: lead migration and fibrosis.

Simulated days elapsed at time ``t`` (s) of the trace::

    days(t) = t * time_compression            if time_compression > 0
    days(t) = t / 86400                       otherwise (real time)

so with ``time_compression = 0.05`` (days per simulated second) a 560 s episode spans 28 days,
while the respiration, heartbeat and events still run on the ordinary clock. In real time the
drift over a few minutes is negligible.

* **Migration** changes the dorsal CSF seen by the lead (mm; positive = the cord is further
  from the lead): ``migration_mm_per_day * days(t)`` plus an optional Brownian random walk with
  standard deviation ``migration_sd_mm * sqrt(days(t))``. It is zero at ``t = 0``: the patient's
  posture CSF describes the state at the start of the trace.
* **Fibrosis** raises the contact impedance towards ``1 + impedance_rise`` times its
  fresh-implant value with time constant ``fibrosis_tau_days``. The trace starts ``age_days``
  after implantation and reports the factor relative to ``t = 0``::

      g(d) = 1 + impedance_rise * (1 - exp(-d / fibrosis_tau_days))
      impedance_scale(t) = g(age_days + days(t)) / g(age_days)
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from closedloop._config import param
from closedloop.disturbances._spec import Grid, check_fields

SECONDS_PER_DAY = 86_400.0


@dataclasses.dataclass(frozen=True)
class DriftSpec:
    """Lead migration and fibrosis over days (see module docstring)."""

    WHERE: ClassVar[str] = "drift"

    migration_mm_per_day: float = param(
        0.02,
        "mm/day",
        "assumption: a slow drift of the lead-cord distance, ~0.6 mm a month",
        -1.0,
        1.0,
        doc="mean CSF change per day (signed)",
    )
    migration_sd_mm: float = param(
        0.0,
        "mm/√day",
        "assumption: no random walk by default",
        0.0,
        1.0,
        doc="random-walk sd of the CSF per sqrt(day)",
    )
    impedance_rise: float = param(
        0.3,
        "1",
        "assumption: impedance rises by tens of % over the first weeks after implantation",
        0.0,
        5.0,
        doc="asymptotic fractional impedance rise from fibrosis",
    )
    fibrosis_tau_days: float = param(
        14.0,
        "day",
        "assumption: encapsulation over ~2 weeks",
        0.0,
        3650.0,
        lo_open=True,
        doc="time constant of the impedance rise",
    )
    age_days: float = param(
        0.0,
        "day",
        "assumption: fresh implant",
        0.0,
        36500.0,
        doc="days since implantation at t = 0",
    )
    time_compression: float = param(
        0.0,
        "day/s",
        "design choice: 0 = real time",
        0.0,
        1000.0,
        doc="simulated days per second of trace (0: real time)",
    )

    def __post_init__(self) -> None:
        check_fields(self, self.WHERE)

    def days(self, t_s: np.ndarray) -> np.ndarray:
        """Simulated days elapsed at trace times ``t_s`` (s)."""
        per_second = self.time_compression if self.time_compression > 0 else 1 / SECONDS_PER_DAY
        return np.asarray(t_s, dtype=np.float64) * per_second

    def impedance_scale(self, t_s: np.ndarray) -> np.ndarray:
        """Impedance factor relative to ``t = 0`` at trace times ``t_s`` (s); 1 at ``t = 0``."""

        def g(days: np.ndarray | float) -> np.ndarray:
            return 1.0 + self.impedance_rise * -np.expm1(-np.asarray(days) / self.fibrosis_tau_days)

        return g(self.age_days + self.days(t_s)) / g(self.age_days)

    def sample(self, grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Migration CSF contribution (mm) and impedance factor at each pulse.

        Args:
            grid: Pulse times.
            rng: The drift component's generator (random-walk steps).

        Returns:
            ``(csf_mm, impedance_scale)``, float64 arrays; both start at 0 and 1 respectively.
        """
        days = self.days(grid.t_s)
        csf = self.migration_mm_per_day * days
        if self.migration_sd_mm > 0 and len(days) > 1:
            steps = rng.standard_normal(len(days) - 1) * np.sqrt(np.diff(days))
            csf = csf + self.migration_sd_mm * np.concatenate(([0.0], np.cumsum(steps)))
        return csf, self.impedance_scale(grid.t_s)

    def describe(self) -> str:
        """One line summarising the component."""
        clock = f"{self.time_compression:g} days/s" if self.time_compression > 0 else "real time"
        return (
            f"drift {self.migration_mm_per_day:+g} mm/day, impedance +"
            f"{100 * self.impedance_rise:g} % (tau {self.fibrosis_tau_days:g} d), {clock}"
        )
