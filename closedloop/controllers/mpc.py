"""Model predictive control of the ECAP with discomfort as a constraint.

**Model.** Across postures the growth-curve slope and threshold change together with their
product ``A = s th`` nearly constant (see :class:`~closedloop.controllers.base.GrowthPrior`), so
the calibrated curve becomes ``ECAP = A (I / th - 1)`` with one posture-dependent unknown, the
threshold. The disturbance state is its log offset from calibration,
``z = log(th / th_ref)``, with a local-trend model (``z`` and its rate per step, random-walk
process noise), estimated by an extended Kalman filter from the measured ECAP.

**Problem.** Over ``horizon_steps`` future steps, with ``a_j = A / (th_ref exp(z_j))`` (µV/mA)::

    min  sum_j ((a_j I_j - A - target) / target)^2 + move_penalty sum_j (I_j - I_{j-1})^2
    s.t. clinician limits  <= I_j <=  clinician limits
         |I_j - I_0| <= j r dt                          (rate limit, exact for the first move)
         a_j I_j - A  <= ECAP_max                       (discomfort constraint)

``ECAP_max`` is ``discomfort_margin`` times the lowest calibrated discomfort ECAP (the window's
top), or ``ceiling_rel * target`` if the calibration has none; at least 1.1 target. Every
constraint is a bound on
``I_j``, so the problem is a bounded linear least-squares problem, solved exactly by
:func:`scipy.optimize.lsq_linear` (BVLS); only the first move is applied (receding horizon).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy.optimize import lsq_linear

from closedloop._config import param, validate
from closedloop.controllers.base import Controller, GrowthPrior, Observation, current_limits

MIN_HEADROOM = 1.1
"""ECAP_max is at least this multiple of the target, so the target itself stays feasible."""


@dataclasses.dataclass(frozen=True)
class MPCParams:
    """Parameters of :class:`MPC`."""

    horizon_steps: int = param(5, "1", "design choice (speed: < 1 ms per step)", 1, 100,
                               doc="prediction horizon in control steps")
    move_penalty: float = param(5.0, "1/mA²", "tuned on the training cohort", 0.0, 1e6,
                                doc="weight of (ΔI)² against (relative ECAP error)²")
    rate_limit_ma_per_s: float = param(10.0, "mA/s", "design choice", 0.0, 1e4, lo_open=True,
                                       doc="largest change of current per second")
    noise_uv: float = param(3.0, "µV", "single-sweep noise floor, a few µV [M]", 0.0, 1e3,
                            lo_open=True, doc="ECAP measurement noise sd of the filter")
    threshold_sd_per_s: float = param(0.5, "1/√s", "tuned on the training cohort", 0.0, 100.0,
                                      doc="random-walk sd of log(threshold) per √s")
    trend_sd_per_s: float = param(0.0, "1/s^1.5", "0: no trend", 0.0, 100.0,
                                  doc="random-walk sd of the log-threshold rate")
    discomfort_margin: float = param(0.9, "1", "design choice", 0.0, 10.0, lo_open=True,
                                     doc="ECAP_max / lowest calibrated discomfort ECAP")
    ceiling_rel: float = param(2.0, "1", "assumption", 1.0, 100.0,
                               doc="ECAP_max / target when no discomfort ECAP is calibrated")
    clinician_limits: bool = param(True, "1", "clinical practice", choices=(True, False),
                                   doc="clip to the clinician limits (else 0-25.5 mA)")

    def __post_init__(self) -> None:
        validate(self)


class MPC(Controller):
    """Receding-horizon control on an identified growth-curve + disturbance model.

    Args:
        params: The parameters (defaults if None).
    """

    name = "mpc"
    params_type = MPCParams

    def reset(self, context) -> None:
        """Start an episode: model from the calibration, disturbance zero."""
        super().reset(context)
        p, cal = self.params, context.calibration
        prior = GrowthPrior.from_calibration(cal)
        self.th_ref, self.scale_uv = prior.threshold_ma, prior.scale_uv
        tops = [pc.discomfort_ecap_uv for pc in cal.postures
                if math.isfinite(pc.discomfort_ecap_uv)]
        top = p.discomfort_margin * min(tops) if tops else p.ceiling_rel * context.target_uv
        self.ecap_max_uv = max(top, MIN_HEADROOM * context.target_uv)
        self.limits = current_limits(context, p.clinician_limits)
        self.x = np.zeros(2)                       # log-threshold offset and its rate per step
        self.cov = np.diag([0.25, 0.0])
        dt = context.dt_s
        self.q = np.diag([p.threshold_sd_per_s ** 2 * dt, p.trend_sd_per_s ** 2 * dt ** 3])
        n = p.horizon_steps
        self._a = np.zeros((2 * n, n))
        self._a[n:, :] = math.sqrt(p.move_penalty) * (np.eye(n) - np.eye(n, k=-1))
        self._b = np.zeros(2 * n)
        self._j = np.arange(1, n + 1, dtype=float)

    def current_ma(self, obs: Observation) -> float:
        """Filter the disturbance with the last step, then solve the horizon problem."""
        current = float(obs.current_ma[0])
        if self.steps > 0:
            self._filter(current, float(obs.ecap_uv[0]))
        return self._solve(current, obs.target_uv)

    def _filter(self, current_ma: float, ecap_uv: float) -> None:
        """One extended-Kalman step of the local-trend log-threshold model."""
        f = np.array([[1.0, 1.0], [0.0, 1.0]])
        x = f @ self.x
        cov = f @ self.cov @ f.T + self.q
        gain_uv = self.scale_uv * current_ma / (self.th_ref * math.exp(x[0]))
        predicted = gain_uv - self.scale_uv
        h = np.array([-gain_uv, 0.0])              # d ECAP / d z
        s = h @ cov @ h + self.params.noise_uv ** 2
        k = cov @ h / s
        self.x = x + k * (ecap_uv - predicted)
        self.cov = cov - np.outer(k, h @ cov)

    def _solve(self, current_ma: float, target_uv: float) -> float:
        """The first move of the optimal horizon plan (mA)."""
        p, n, j = self.params, self.params.horizon_steps, self._j
        a = self.scale_uv / (self.th_ref * np.exp(self.x[0] + j * self.x[1]))
        rows, b = self._a, self._b
        rows[np.arange(n), np.arange(n)] = a / target_uv
        b[:n] = (self.scale_uv + target_uv) / target_uv
        b[n] = math.sqrt(p.move_penalty) * current_ma
        step = p.rate_limit_ma_per_s * self.context.dt_s * j
        lo = np.maximum(self.limits[0], current_ma - step)
        hi = np.minimum(self.limits[1], current_ma + step)
        hi = np.minimum(hi, (self.ecap_max_uv + self.scale_uv) / a)
        lo = np.minimum(lo, hi)                   # the discomfort bound wins over the others
        if np.all(hi - lo < 1e-9):
            return float(hi[0])
        res = lsq_linear(rows, b, bounds=(lo, np.maximum(hi, lo + 1e-12)), method="bvls")
        return float(res.x[0])
