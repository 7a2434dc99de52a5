"""Within-posture variability: the slow shifts of the cord inside one posture.

A posture is not one position. Sitting ranges from upright to slumped and reclined, lying from
flat to propped on a pillow, standing from straight to leaning; the dorsal CSF thickness moves
with each shift. The component is an Ornstein-Uhlenbeck process in millimetres, stationary
from the first pulse (the trace joins it at a random moment), scaled per posture::

    x[i+1]   = a x[i] + sd_mm sqrt(1 - a^2) e[i],   a = exp(-dt / tau_s),  e ~ N(0, 1)
    csf[i]   = posture_scale(posture at i) * x[i]            (the scale ramps with transitions)

Sources: reclining moves a thoracic lead's threshold toward the supine one (Olin 1998, Ross &
Abejón 2014 [M]); the ECAP at a fixed current varies with a standard deviation of about 20 µV
in daily living on open loop (ECHO-MAC [C], clinic-calibration.md 3.10), more than breathing
and the heartbeat explain. ``sd_mm`` and ``tau_s`` are assumptions calibrated on the train and
validation cohorts (model card).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from scipy import signal

from closedloop._config import param
from closedloop.disturbances._spec import Grid, check_fields, posture_mapping
from closedloop.patients.postures import POSTURES

DEFAULT_POSTURE_SCALE = tuple((p, 1.0) for p in POSTURES)
"""Default sway scale per posture (1: the same in every posture)."""


@dataclasses.dataclass(frozen=True)
class SwaySpec:
    """Within-posture CSF variability, an Ornstein-Uhlenbeck process (see module docstring)."""

    WHERE: ClassVar[str] = "sway"

    sd_mm: float = param(
        0.34,
        "mm",
        "assumption calibrated on train+validation: open loop "
        "about half its time in window (EVOKE [C])",
        0.0,
        3.0,
        doc="stationary standard deviation of the CSF shift",
    )
    tau_s: float = param(
        60.0,
        "s",
        "assumption: shifts last about a minute",
        0.0,
        86_400.0,
        lo_open=True,
        doc="correlation time of the shifts",
    )
    posture_scale: Any = param(
        DEFAULT_POSTURE_SCALE,
        "1",
        "assumption: 1 in every posture",
        0.0,
        10.0,
        doc="factor on the shift per posture (missing: 1)",
    )

    def __post_init__(self) -> None:
        scale = posture_mapping(f"{self.WHERE}.posture_scale", self.posture_scale)
        object.__setattr__(
            self, "posture_scale", MappingProxyType({**dict(DEFAULT_POSTURE_SCALE), **scale})
        )
        check_fields(self, self.WHERE)

    def scale_levels(self) -> np.ndarray:
        """The per-posture scale, in :data:`~closedloop.patients.postures.POSTURES` order."""
        return np.array([float(self.posture_scale[p]) for p in POSTURES])

    def sample(self, grid: Grid, rng: np.random.Generator, scale: np.ndarray) -> np.ndarray:
        """CSF contribution (mm) at each pulse.

        Args:
            grid: Pulse times.
            rng: The sway component's generator.
            scale: The posture scale at each pulse (ramped with the transitions).

        Returns:
            float64 array (mm).
        """
        n = len(grid.t_s)
        a = float(np.exp(-1.0 / (grid.rate_hz * self.tau_s)))
        x0 = self.sd_mm * rng.standard_normal()
        kicks = self.sd_mm * np.sqrt(1.0 - a * a) * rng.standard_normal(n - 1)
        x = np.empty(n)
        x[0] = x0
        if n > 1:
            x[1:], _ = signal.lfilter([1.0], [1.0, -a], kicks, zi=[a * x0])
        return scale * x

    def describe(self) -> str:
        """One line summarising the component."""
        return f"sway ±{self.sd_mm:g} mm sd, tau {self.tau_s:g} s"
