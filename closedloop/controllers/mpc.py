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
``I_j``, so the problem is a bounded linear least-squares problem, solved exactly by an
active-set method on its tridiagonal normal equations
(:func:`~closedloop.controllers.mpc_kernels.horizon_solve`; it agrees with
:func:`scipy.optimize.lsq_linear`'s BVLS to round-off); only the first move is applied (receding
horizon). The filter and the solve are numba kernels, so one instance plays many episodes at
once (:class:`~closedloop.controllers.batch.BatchController`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from closedloop._config import param, validate
from closedloop.controllers.base import GrowthPrior, current_limits
from closedloop.controllers.batch import BatchController
from closedloop.controllers.mpc_kernels import CONSTANTS, STATE, mpc_law, mpc_many

MIN_HEADROOM = 1.1
"""ECAP_max is at least this multiple of the target, so the target itself stays feasible."""


@dataclasses.dataclass(frozen=True)
class MPCParams:
    """Parameters of :class:`MPC`."""

    horizon_steps: int = param(
        5,
        "1",
        "design choice (speed: < 1 ms per step)",
        1,
        100,
        doc="prediction horizon in control steps",
    )
    move_penalty: float = param(
        5.0,
        "1/mA²",
        "tuned on the training cohort",
        0.0,
        1e6,
        doc="weight of (ΔI)² against (relative ECAP error)²",
    )
    rate_limit_ma_per_s: float = param(
        10.0,
        "mA/s",
        "design choice",
        0.0,
        1e4,
        lo_open=True,
        doc="largest change of current per second",
    )
    noise_uv: float = param(
        3.0,
        "µV",
        "single-sweep noise floor, a few µV [M]",
        0.0,
        1e3,
        lo_open=True,
        doc="ECAP measurement noise sd of the filter",
    )
    threshold_sd_per_s: float = param(
        0.5,
        "1/√s",
        "tuned on the training cohort",
        0.0,
        100.0,
        doc="random-walk sd of log(threshold) per √s",
    )
    trend_sd_per_s: float = param(
        0.0, "1/s^1.5", "0: no trend", 0.0, 100.0, doc="random-walk sd of the log-threshold rate"
    )
    discomfort_margin: float = param(
        0.9,
        "1",
        "design choice",
        0.0,
        10.0,
        lo_open=True,
        doc="ECAP_max / lowest calibrated discomfort ECAP",
    )
    ceiling_rel: float = param(
        2.0,
        "1",
        "assumption",
        1.0,
        100.0,
        doc="ECAP_max / target when no discomfort ECAP is calibrated",
    )
    clinician_limits: bool = param(
        True,
        "1",
        "clinical practice",
        choices=(True, False),
        doc="clip to the clinician limits (else 0-25.5 mA)",
    )

    def __post_init__(self) -> None:
        validate(self)


class MPC(BatchController):
    """Receding-horizon control on an identified growth-curve + disturbance model.

    The filter and the horizon solve are numba kernels over one episode's row
    (:func:`~closedloop.controllers.mpc_kernels.mpc_law`), played on one row per episode by the
    batch protocol (:mod:`closedloop.controllers.batch`).

    Args:
        params: The parameters (defaults if None).
    """

    name = "mpc"
    params_type = MPCParams
    kernels = (mpc_law, mpc_many)

    def _law_params(self) -> np.ndarray:
        p = self.params
        return np.array(
            [p.horizon_steps, p.move_penalty, p.rate_limit_ma_per_s, p.noise_uv], np.float64
        )

    def _episode_arrays(self, contexts):
        """Each episode: its calibrated model and discomfort bound, the disturbance zero."""
        p, const, state = self.params, [], []
        for ctx in contexts:
            cal = ctx.calibration
            prior = GrowthPrior.from_calibration(cal)
            tops = [
                pc.discomfort_ecap_uv for pc in cal.postures if math.isfinite(pc.discomfort_ecap_uv)
            ]
            top = p.discomfort_margin * min(tops) if tops else p.ceiling_rel * ctx.target_uv
            dt = ctx.dt_s
            const.append(
                (
                    prior.threshold_ma,
                    prior.scale_uv,
                    max(top, MIN_HEADROOM * ctx.target_uv),
                    *current_limits(ctx, p.clinician_limits),
                    p.threshold_sd_per_s**2 * dt,
                    p.trend_sd_per_s**2 * dt**3,
                )
            )
            state.append((0.0, 0.0, 0.25, 0.0, 0.0, 0.0))
        return np.array(const, np.float64), np.array(state, np.float64)

    @property
    def ecap_max_uv(self) -> float:
        """ECAP bound of the discomfort constraint (µV) of the episode (the first after reset)."""
        return float(self._const[0, CONSTANTS.index("ecap_max_uv")])

    @property
    def log_threshold_offset(self) -> float:
        """Filtered ``z = log(th / th_ref)`` of the episode (the first after reset_many)."""
        return float(self._state[0, STATE.index("z")])
