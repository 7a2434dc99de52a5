"""Overstimulation ceiling, the way Medtronic Inceptiv is described: open loop that only cuts.

The device delivers the calibrated comfort current, as open loop does. When the measured ECAP
exceeds a ceiling (``ceiling_rel * target``), it cuts the current in proportion to the excess,
compensated by the calibrated growth-curve slope: ``ΔI = -g (ECAP - ceiling) / s`` with
``g = cut_gain_per_s * dt``. It holds the reduced current for ``hold_s`` after the last
exceedance, then ramps back towards the comfort current at ``ramp_ma_per_s``. It never raises
the current above comfort, so it cannot help when the ECAP falls (e.g. lying prone).
"""

from __future__ import annotations

import dataclasses
import math

from closedloop._config import param, validate
from closedloop.controllers.base import Controller, GrowthPrior, Observation, current_limits


@dataclasses.dataclass(frozen=True)
class CeilingParams:
    """Parameters of :class:`Ceiling`."""

    ceiling_rel: float = param(1.3, "1", "tuned on the training cohort", 1.0, 10.0,
                               doc="ceiling as a multiple of the target ECAP")
    cut_gain_per_s: float = param(25.0, "1/s", "tuned on the training cohort", 0.0, 1000.0,
                                  lo_open=True, doc="fraction of the excess cut per second")
    hold_s: float = param(0.5, "s", "assumption", 0.0, 1e4,
                          doc="hold after the last exceedance before ramping back")
    ramp_ma_per_s: float = param(1.0, "mA/s", "assumption", 0.0, 100.0, lo_open=True,
                                 doc="ramp back towards the comfort current")
    clinician_limits: bool = param(True, "1", "clinical practice", choices=(True, False),
                                   doc="clip to the clinician limits (else 0-25.5 mA)")

    def __post_init__(self) -> None:
        validate(self)


class Ceiling(Controller):
    """Comfort current, cut only while the ECAP is above a ceiling (see the module docstring).

    Args:
        params: The parameters (defaults if None).
    """

    name = "ceiling"
    params_type = CeilingParams

    def reset(self, context) -> None:
        """Start an episode at the comfort current."""
        super().reset(context)
        self.slope = GrowthPrior.from_calibration(context.calibration).slope_uv_per_ma
        self.limits = current_limits(context, self.params.clinician_limits)
        self.last_cut_s = -math.inf

    def current_ma(self, obs: Observation) -> float:
        """Cut above the ceiling, hold, then ramp back to comfort."""
        p, dt = self.params, self.context.dt_s
        comfort = float(self.context.calibration.comfort_ma)
        current, y = float(obs.current_ma[0]), float(obs.ecap_uv[0])
        ceiling = p.ceiling_rel * obs.target_uv
        if self.steps == 0:
            want = comfort
        elif y > ceiling:
            self.last_cut_s = self.t_s
            want = current - min(p.cut_gain_per_s * dt, 1.0) * (y - ceiling) / self.slope
        elif self.t_s - self.last_cut_s < p.hold_s:
            want = current
        else:
            want = min(current + p.ramp_ma_per_s * dt, comfort)
        lo, hi = self.limits
        return min(max(min(want, comfort), lo), hi)
