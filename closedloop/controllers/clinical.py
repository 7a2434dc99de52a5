"""The clinical ECAP loop, modelled on the published and patented Evoke (Saluda) design.

Per control period, with ``e = target - ECAP`` (µV), delivered current ``I`` and estimated
growth-curve slope ``s`` (µV/mA):

* **integral action with loop-gain compensation** (US 11,191,966): ``ΔI = g e / s``, so that each
  step corrects the fraction ``g = loop_gain_per_s * dt`` of the error whatever the patient's
  slope. The slope is the calibrated reference posture's (``slope_source = "calibration"``) or
  is re-estimated every step (``"online"``): slope and threshold change together with the
  cord's distance, their product ``A = s_ref th_ref`` staying nearly constant, so the growth
  curve ``ECAP = A (I / th - 1)`` gives ``s = (ECAP + A) / I`` at the operating point;
* **log-domain updates** (US 2023/0337962, optional): ``log I += g e / (s I)``, a multiplicative
  step that equals ``ΔI`` to first order and can never cross zero;
* **fast back-off** (US 2023/0337962): while ``ECAP > target (1 + overshoot_rel)`` the gain is
  multiplied by ``backoff_gain``;
* **fixed-current fallback** (US 12,533,518): after ``fallback_after_s`` without a detected
  ECAP, the current is held at ``calibration.fallback_ma`` until an ECAP is detected again;
* **clinician limits** (US 2024/0173550): requests are clipped to ``[min_ma, max_ma]``.

The integrator is the delivered current itself (velocity form), so the loop is bumpless and
cannot wind up against the device's limits.
"""

from __future__ import annotations

import dataclasses
import math

from closedloop._config import param, validate
from closedloop.controllers.base import Controller, GrowthPrior, Observation, current_limits

SLOPE_SOURCES = ("online", "calibration")


@dataclasses.dataclass(frozen=True)
class ClinicalLoopParams:
    """Parameters of :class:`ClinicalLoop`."""

    loop_gain_per_s: float = param(8.0, "1/s", "tuned on the training cohort", 0.0, 1000.0,
                                   doc="fraction of the ECAP error corrected per second")
    slope_source: str = param("online", "1", "US 11,191,966 (loop-gain compensation)",
                              choices=SLOPE_SOURCES, doc="growth-curve slope for the gain")
    slope_filter_s: float = param(0.2, "s", "design choice", 0.0, 100.0,
                                  doc="time constant of the ECAP filter of the online slope")
    slope_range: float = param(4.0, "1", "design choice", 1.0, 100.0,
                               doc="online slope kept within [s_ref / range, s_ref * range]")
    log_domain: bool = param(False, "1", "US 2023/0337962", choices=(False, True),
                             doc="multiplicative (log-current) updates")
    overshoot_rel: float = param(0.3, "1", "US 2023/0337962 (fast back-off)", 0.0, 10.0,
                                 doc="back-off above target * (1 + overshoot_rel)")
    backoff_gain: float = param(3.0, "1", "US 2023/0337962 (fast back-off)", 1.0, 100.0,
                                doc="gain multiplier while backing off")
    detect_min_frac: float = param(0.5, "1", "design choice", 0.0, 1.0,
                                   doc="a step counts as detected at this fraction of pulses")
    fallback_after_s: float = param(1.0, "s", "US 12,533,518 (fallback)", 0.0, 1e4, lo_open=True,
                                    doc="time without a detected ECAP before the fallback")
    clinician_limits: bool = param(True, "1", "US 2024/0173550", choices=(True, False),
                                   doc="clip to the clinician limits (else 0-25.5 mA)")

    def __post_init__(self) -> None:
        validate(self)


class ClinicalLoop(Controller):
    """The clinical ECAP loop (see the module docstring).

    Args:
        params: The parameters (defaults if None).
    """

    name = "clinical-loop"
    params_type = ClinicalLoopParams

    def reset(self, context) -> None:
        """Start an episode: prior slope from the calibration, fallback disarmed."""
        super().reset(context)
        self.prior = GrowthPrior.from_calibration(context.calibration)
        self.limits = current_limits(context, self.params.clinician_limits)
        self.slope = self.prior.slope_uv_per_ma
        self.ecap_f = math.nan
        self.undetected_s = 0.0
        self.in_fallback = False

    def current_ma(self, obs: Observation) -> float:
        """One loop update; the fallback current while the ECAP is lost."""
        p, dt = self.params, self.context.dt_s
        current, y = float(obs.current_ma[0]), float(obs.ecap_uv[0])
        if obs.detected[0] >= p.detect_min_frac:
            self.undetected_s, self.in_fallback = 0.0, False
        elif self.steps > 0:
            self.undetected_s += dt
            self.in_fallback = self.in_fallback or self.undetected_s >= p.fallback_after_s - 1e-9
        if self.in_fallback:
            return self._clip(float(self.context.calibration.fallback_ma))
        if self.steps == 0:  # nothing measured yet: continue the delivered current
            return self._clip(current)
        slope = self._slope(y, current)
        gain = min(p.loop_gain_per_s * dt, 1.0)
        if y > obs.target_uv * (1.0 + p.overshoot_rel):
            gain *= p.backoff_gain
        delta = gain * (obs.target_uv - y) / slope
        if p.log_domain:
            base = max(current, 0.1)
            return self._clip(base * math.exp(min(max(delta / base, -20.0), 5.0)))
        return self._clip(current + delta)

    def _slope(self, ecap_uv: float, current_ma: float) -> float:
        """The growth-curve slope for the loop-gain compensation (µV/mA)."""
        p, ref = self.params, self.prior.slope_uv_per_ma
        if p.slope_source == "calibration":
            return ref
        alpha = min(self.context.dt_s / max(p.slope_filter_s, 1e-9), 1.0)
        self.ecap_f = ecap_uv if math.isnan(self.ecap_f) else (
            self.ecap_f + alpha * (ecap_uv - self.ecap_f))
        est = (max(self.ecap_f, 0.0) + self.prior.scale_uv) / max(current_ma, 0.1)
        self.slope = min(max(est, ref / p.slope_range), ref * p.slope_range)
        return self.slope

    def _clip(self, current_ma: float) -> float:
        lo, hi = self.limits
        return min(max(current_ma, lo), hi)
