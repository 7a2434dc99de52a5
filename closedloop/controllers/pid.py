"""P, PI and PID control of the ECAP, on simulated time.

:class:`PIDCore` is the plant-independent algorithm (usable on any plant, e.g. an analytic one in
the tests); :class:`PID` plays it on an ECAP environment: error = target - measured ECAP (µV),
output = current (mA).

The core, per update of period ``dt``::

    P = kp e
    D = kd * lowpass(-dy/dt, tau_d)          derivative on the measurement (no setpoint kick),
                                             first-order filter with time constant tau_d
    v = P + I + D                            unsaturated output
    u = rate_limit(clip(v, lo, hi))          output limits, then |du/dt| <= rate limit
    I += ki e dt  (+ anti-windup)            back-calculation: + (u - v) dt / T_t
                                             clamp: skip the integration while saturated in
                                             the direction the error pushes

Bumpless transfer: the first update after :meth:`PIDCore.reset` sets the integrator so that
the output equals the output being delivered (``reset(output)``). When the actuator reports what
it really delivered (``update(..., applied=...)``, the device's limits can cut a request), the
rate limit starts from it and back-calculation also unwinds against those unknown limits.
"""

from __future__ import annotations

import dataclasses
import math

from closedloop._config import ConfigError, is_real, param, validate
from closedloop.controllers.base import Controller, GrowthPrior, Observation, current_limits

ANTI_WINDUP = ("back-calculation", "clamp", "none")
NOMINAL_SLOPE_UV_PER_MA = 15.0
"""Slope at which scheduled gains hold as written (µV/mA; Pilitsis 2021 example [C])."""


@dataclasses.dataclass(frozen=True)
class PIDParams:
    """Gains and limits of a P/PI/PID controller (all gains >= 0; zero switches a term off)."""

    kp_ma_per_uv: float = param(0.005, "mA/µV", "tuned on the training cohort", 0.0, 10.0,
                                doc="proportional gain")
    ki_ma_per_uv_s: float = param(0.25, "mA/(µV·s)", "tuned on the training cohort", 0.0,
                                  1000.0, doc="integral gain")
    kd_ma_s_per_uv: float = param(0.0, "mA·s/µV", "tuned on the training cohort", 0.0, 10.0,
                                  doc="derivative gain (on the measurement)")
    derivative_tau_s: float = param(0.05, "s", "design choice", 0.0, 100.0,
                                    doc="time constant of the derivative's first-order filter")
    anti_windup: str = param("back-calculation", "1", "Åström & Hägglund", choices=ANTI_WINDUP,
                             doc="integrator anti-windup scheme")
    tracking_tau_s: float = param(0.1, "s", "design choice", 0.0, 100.0, lo_open=True,
                                  doc="back-calculation time constant T_t (at least dt)")
    rate_limit_ma_per_s: float = param(0.0, "mA/s", "0: none", 0.0, 1e4,
                                       doc="largest change of the output per second")
    clinician_limits: bool = param(True, "1", "clinical practice", choices=(True, False),
                                   doc="clip the output to the clinician limits (else 0-25.5 mA)")
    slope_scheduled: bool = param(False, "1", "gain scheduling on the calibration",
                                  choices=(False, True),
                                  doc="gains hold at 15 µV/mA; scaled by 15 / calibrated slope")

    def __post_init__(self) -> None:
        validate(self)

    def scheduled(self, slope_uv_per_ma: float) -> PIDParams:
        """The gains for a patient of growth-curve slope ``slope_uv_per_ma`` (if scheduled)."""
        if not self.slope_scheduled:
            return self
        k = NOMINAL_SLOPE_UV_PER_MA / slope_uv_per_ma
        return dataclasses.replace(self, kp_ma_per_uv=self.kp_ma_per_uv * k,
                                   ki_ma_per_uv_s=self.ki_ma_per_uv_s * k,
                                   kd_ma_s_per_uv=self.kd_ma_s_per_uv * k, slope_scheduled=False)


class PIDCore:
    """The PID algorithm on a generic plant, in simulated time.

    Args:
        params: Gains, filter and limits (``clinician_limits`` is ignored here).
        out_min: Lowest output.
        out_max: Highest output.
    """

    def __init__(self, params: PIDParams, out_min: float = -math.inf,
                 out_max: float = math.inf) -> None:
        if not isinstance(params, PIDParams):
            raise ConfigError(f"params={type(params).__name__} is not valid for PIDCore; "
                              "expected PIDParams")
        if not (is_real(out_min) and is_real(out_max) and out_min <= out_max):
            raise ConfigError(f"out_min={out_min!r} must be <= out_max={out_max!r} (numbers)")
        self.params = params
        self.out_min, self.out_max = float(out_min), float(out_max)
        self.reset(0.0)

    def reset(self, output: float, error: float | None = None) -> None:
        """Forget the past and continue from ``output`` without a bump.

        Args:
            output: The output being delivered.
            error: The error now, if known: the integrator is set so that ``output`` is the
                output at this error. If None, the next :meth:`update` sets it from its error,
                so that update's output equals ``output``.
        """
        self.output = float(output)
        self.fresh = error is None
        self.integral = self.output - (0.0 if error is None else self.params.kp_ma_per_uv * error)
        self.derivative = 0.0
        self.last_measurement = math.nan

    def update(self, error: float, measurement: float, dt_s: float,
               applied: float | None = None) -> float:
        """One control period: the new output.

        Args:
            error: Setpoint minus measurement.
            measurement: The measured plant output (for the derivative term).
            dt_s: Time since the previous update (s), > 0.
            applied: What the actuator really delivered after the previous update, if known
                (e.g. after limits the controller does not know of). The rate limit starts
                from it and back-calculation unwinds the integrator by the difference.

        Returns:
            The output, within the output and rate limits.
        """
        p = self.params
        if applied is not None and not self.fresh:
            if p.anti_windup == "back-calculation" and p.ki_ma_per_uv_s > 0.0:
                self.integral += (applied - self.output) * dt_s / max(p.tracking_tau_s, dt_s)
            self.output = float(applied)
        prop = p.kp_ma_per_uv * error
        deriv = p.kd_ma_s_per_uv * self._filtered_derivative(measurement, dt_s)
        if self.fresh:  # bumpless: the first output equals the one being delivered
            self.integral = self.output - prop - deriv
            self.fresh = False
        v = prop + self.integral + deriv
        u = min(max(v, self.out_min), self.out_max)
        if p.rate_limit_ma_per_s > 0.0:
            step = p.rate_limit_ma_per_s * dt_s
            u = min(max(u, self.output - step), self.output + step)
        self._integrate(error, u, v, dt_s)
        self.output = u
        return u

    def _filtered_derivative(self, measurement: float, dt_s: float) -> float:
        """First-order-filtered ``-d(measurement)/dt`` (the derivative of the error)."""
        if self.params.kd_ma_s_per_uv == 0.0:
            return 0.0
        if not math.isnan(self.last_measurement):
            raw = -(measurement - self.last_measurement) / dt_s
            alpha = dt_s / (self.params.derivative_tau_s + dt_s)
            self.derivative += alpha * (raw - self.derivative)
        self.last_measurement = measurement
        return self.derivative

    def _integrate(self, error: float, u: float, v: float, dt_s: float) -> None:
        """Advance the integrator with the chosen anti-windup scheme."""
        p = self.params
        if p.ki_ma_per_uv_s == 0.0:  # P or PD: the integrator is a fixed bias
            return
        step = p.ki_ma_per_uv_s * error * dt_s
        if p.anti_windup == "back-calculation":
            tt = max(p.tracking_tau_s, dt_s)
            self.integral += step + (u - v) * dt_s / tt
        elif p.anti_windup == "clamp":  # conditional integration
            if not ((u < v and step > 0.0) or (u > v and step < 0.0)):
                self.integral += step
        else:
            self.integral += step


class PID(Controller):
    """P, PI or PID on the ECAP error; output clipped to the clinician limits.

    Args:
        params: The parameters (defaults if None).
    """

    name = "pid"
    params_type = PIDParams

    def __init__(self, params: PIDParams | None = None) -> None:
        super().__init__(params)
        self.core = PIDCore(self.params)

    def reset(self, context) -> None:
        """Start an episode; the first step continues the delivered current (bumpless)."""
        super().reset(context)
        gains = self.params.scheduled(GrowthPrior.from_calibration(context.calibration)
                                      .slope_uv_per_ma)
        self.core = PIDCore(gains, *current_limits(context, self.params.clinician_limits))

    def current_ma(self, obs: Observation) -> float:
        """PID update on ``target - ECAP``."""
        delivered = float(obs.current_ma[0])
        if self.steps == 0:  # nothing measured yet: continue the delivered current
            self.core.reset(delivered, error=0.0)
            return delivered
        y = float(obs.ecap_uv[0])
        return self.core.update(obs.target_uv - y, y, self.context.dt_s, applied=delivered)
