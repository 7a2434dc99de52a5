"""Adaptive inverse control: estimate the growth curve online, then invert it.

The growth curve above threshold is ``ECAP = slope (I - threshold)``. Recursive least squares
with exponential forgetting fits it to the (delivered current, measured ECAP) pairs of the steps
whose ECAP was detected, in the well-conditioned form ``ECAP = slope (I - I0) + e0`` around the
comfort current ``I0`` (so ``threshold = I0 - e0 / slope``). The prior is the calibrated
reference posture's curve. The current then moves towards the inverse of the estimate,
``I* = threshold + target / slope``, by the fraction ``dt / response_s`` per step.

A closed loop that holds the current steady barely excites the slope, and feedback biases it
(a disturbance that raises the ECAP lowers the current). A pseudo-observation of
``slope * threshold = slope * I0 - e0``, which stays nearly constant across postures (see
:class:`~closedloop.controllers.base.GrowthPrior`), keeps the two estimates consistent. The
two parameters forget at their own rates (vector forgetting). Guards keep the estimate sane:

* the slope stays within ``[s_ref / slope_range, s_ref * slope_range]``;
* each variance is capped at its prior, so forgetting cannot blow the covariance up;
* innovations are clipped at ``clip_sd`` noise sd;
* after ``search_after_s`` without a detected ECAP the current ramps up at ``search_ma_per_s``
  and the offset follows, so the inverse continues from the ramp (the linear curve does not
  hold below threshold).
"""

from __future__ import annotations

import dataclasses
import math

from closedloop._config import param, validate
from closedloop.controllers.base import Controller, GrowthPrior, Observation, current_limits

MAX_CORRELATION = 0.999
"""Largest |correlation| of the two estimates kept in the covariance (numerical guard)."""


@dataclasses.dataclass(frozen=True)
class AdaptiveInverseParams:
    """Parameters of :class:`AdaptiveInverse`."""

    forgetting: float = param(0.9, "1", "tuned on the training cohort", 0.5, 1.0,
                              doc="RLS forgetting factor of the offset, per detected step")
    slope_forgetting: float = param(0.9, "1", "tuned on the training cohort", 0.5, 1.0,
                                    doc="RLS forgetting factor of the slope, per detected step")
    noise_uv: float = param(3.0, "µV", "single-sweep noise floor, a few µV [M]", 0.0, 1e3,
                            lo_open=True, doc="assumed ECAP measurement noise sd")
    prior_slope_rel_sd: float = param(1.0, "1", "assumption", 0.0, 100.0, lo_open=True,
                                      doc="prior sd of the slope, relative to the calibrated")
    prior_ecap_sd_uv: float = param(20.0, "µV", "assumption", 0.0, 1e4, lo_open=True,
                                    doc="prior sd of the ECAP at the comfort current")
    scale_rel_sd: float = param(0.1, "1", "calibration: slope x threshold is nearly constant "
                                "across postures (within ~10 %)", 0.0, 100.0,
                                doc="sd of the slope x threshold prior, relative; 0: no prior")
    clip_sd: float = param(10.0, "1", "design choice", 0.0, 1e3, lo_open=True,
                           doc="innovations clipped at this many noise sd")
    response_s: float = param(0.05, "s", "tuned on the training cohort", 0.0, 100.0, lo_open=True,
                              doc="time constant of the move towards the inverse current")
    slope_range: float = param(4.0, "1", "design choice", 1.0, 100.0,
                               doc="slope kept within [s_ref / range, s_ref * range]")
    detect_min_frac: float = param(0.5, "1", "design choice", 0.0, 1.0,
                                   doc="a step counts as detected at this fraction of pulses")
    search_after_s: float = param(0.5, "s", "design choice", 0.0, 1e4,
                                  doc="time without a detected ECAP before ramping up")
    search_ma_per_s: float = param(1.0, "mA/s", "design choice", 0.0, 100.0,
                                   doc="ramp-up while no ECAP is detected")
    clinician_limits: bool = param(True, "1", "clinical practice", choices=(True, False),
                                   doc="clip to the clinician limits (else 0-25.5 mA)")

    def __post_init__(self) -> None:
        validate(self)


class AdaptiveInverse(Controller):
    """RLS estimate of the growth curve, inverted for the target (see the module docstring).

    Args:
        params: The parameters (defaults if None).
    """

    name = "adaptive-inverse"
    params_type = AdaptiveInverseParams

    def reset(self, context) -> None:
        """Start an episode from the calibrated growth curve."""
        super().reset(context)
        p, cal = self.params, context.calibration
        prior = GrowthPrior.from_calibration(cal)
        self.i0 = float(cal.comfort_ma)
        self.slope_ref, self.scale_uv = prior.slope_uv_per_ma, prior.scale_uv
        self.theta = [prior.slope_uv_per_ma, prior.slope_uv_per_ma * (self.i0 - prior.threshold_ma)]
        self.var0 = ((p.prior_slope_rel_sd * prior.slope_uv_per_ma / p.noise_uv) ** 2,
                     (p.prior_ecap_sd_uv / p.noise_uv) ** 2)
        self.cov = [self.var0[0], 0.0, self.var0[1]]          # [[c0, c1], [c1, c2]]
        self.limits = current_limits(context, p.clinician_limits)
        self.undetected_s = 0.0

    @property
    def slope_uv_per_ma(self) -> float:
        """Estimated growth-curve slope (µV/mA)."""
        return self.theta[0]

    @property
    def threshold_ma(self) -> float:
        """Estimated ECAP threshold (mA)."""
        return self.i0 - self.theta[1] / self.theta[0]

    def current_ma(self, obs: Observation) -> float:
        """Update the estimate with the last step, then move towards the inverse current."""
        p, dt = self.params, self.context.dt_s
        current = float(obs.current_ma[0])
        if self.steps == 0:
            return self._clip(current)
        if obs.detected[0] >= p.detect_min_frac:
            self.undetected_s = 0.0
            self._rls(current, float(obs.ecap_uv[0]))
        else:
            self.undetected_s += dt
            if self.undetected_s >= p.search_after_s - 1e-9:
                want = self._clip(current + p.search_ma_per_s * dt)
                self.theta[1] = obs.target_uv - self.theta[0] * (want - self.i0)
                return want
        want = self.threshold_ma + obs.target_uv / self.slope_uv_per_ma
        step = min(dt / p.response_s, 1.0)
        return self._clip(current + step * (want - current))

    def _rls(self, current_ma: float, ecap_uv: float) -> None:
        """One RLS step: forgetting, the measurement, the scale prior, guards."""
        p, c, th = self.params, self.cov, self.theta
        fs, fo = 1.0 / p.slope_forgetting, 1.0 / p.forgetting
        c[0], c[1], c[2] = c[0] * fs, c[1] * math.sqrt(fs * fo), c[2] * fo
        x = current_ma - self.i0
        lim = p.clip_sd * p.noise_uv
        self._update(x, 1.0, min(max(ecap_uv - x * th[0] - th[1], -lim), lim), 1.0)
        if p.scale_rel_sd > 0.0:  # slope * threshold = slope * I0 - e0 stays near A
            self._update(self.i0, -1.0, self.scale_uv - self.i0 * th[0] + th[1],
                         (p.scale_rel_sd * self.scale_uv / p.noise_uv) ** 2)
        d0 = math.sqrt(min(max(c[0], 1e-12 * self.var0[0]), self.var0[0]))
        d2 = math.sqrt(min(max(c[2], 1e-12 * self.var0[1]), self.var0[1]))
        rho = c[1] / math.sqrt(max(c[0] * c[2], 1e-300))
        rho = min(max(rho, -MAX_CORRELATION), MAX_CORRELATION)
        self.cov = [d0 * d0, rho * d0 * d2, d2 * d2]
        th[0] = min(max(th[0], self.slope_ref / p.slope_range), self.slope_ref * p.slope_range)

    def _update(self, x0: float, x1: float, innovation: float, noise_var: float) -> None:
        """Kalman/RLS update by one observation ``x . theta`` (variance in noise units)."""
        c = self.cov
        g0, g1 = c[0] * x0 + c[1] * x1, c[1] * x0 + c[2] * x1      # P x
        denom = noise_var + x0 * g0 + x1 * g1
        self.theta[0] += g0 * innovation / denom
        self.theta[1] += g1 * innovation / denom
        self.cov = [c[0] - g0 * g0 / denom, c[1] - g0 * g1 / denom, c[2] - g1 * g1 / denom]

    def _clip(self, current_ma: float) -> float:
        lo, hi = self.limits
        return min(max(current_ma, lo), hi) if math.isfinite(current_ma) else lo
