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

The algorithm is written once, as the numba kernels :func:`pid_reset` and :func:`pid_update` on
a constants row ``c`` (:data:`CONSTANTS`) and a state row ``s`` (:data:`STATE`): :class:`PIDCore`
plays them on its own rows, :class:`PID` on one row per episode (it is a
:class:`~closedloop.controllers.batch.BatchController`).
"""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

from closedloop._config import ConfigError, is_real, param, validate
from closedloop.controllers.base import GrowthPrior, current_limits, py_max, py_min
from closedloop.controllers.batch import BatchController

ANTI_WINDUP = ("back-calculation", "clamp", "none")
NOMINAL_SLOPE_UV_PER_MA = 15.0
"""Slope at which scheduled gains hold as written (µV/mA; Pilitsis 2021 example [C])."""


@dataclasses.dataclass(frozen=True)
class PIDParams:
    """Gains and limits of a P/PI/PID controller (all gains >= 0; zero switches a term off)."""

    kp_ma_per_uv: float = param(
        0.005, "mA/µV", "tuned on the training cohort", 0.0, 10.0, doc="proportional gain"
    )
    ki_ma_per_uv_s: float = param(
        0.25, "mA/(µV·s)", "tuned on the training cohort", 0.0, 1000.0, doc="integral gain"
    )
    kd_ma_s_per_uv: float = param(
        0.0,
        "mA·s/µV",
        "tuned on the training cohort",
        0.0,
        10.0,
        doc="derivative gain (on the measurement)",
    )
    derivative_tau_s: float = param(
        0.05,
        "s",
        "design choice",
        0.0,
        100.0,
        doc="time constant of the derivative's first-order filter",
    )
    anti_windup: str = param(
        "back-calculation",
        "1",
        "Åström & Hägglund",
        choices=ANTI_WINDUP,
        doc="integrator anti-windup scheme",
    )
    tracking_tau_s: float = param(
        0.1,
        "s",
        "design choice",
        0.0,
        100.0,
        lo_open=True,
        doc="back-calculation time constant T_t (at least dt)",
    )
    rate_limit_ma_per_s: float = param(
        0.0, "mA/s", "0: none", 0.0, 1e4, doc="largest change of the output per second"
    )
    clinician_limits: bool = param(
        True,
        "1",
        "clinical practice",
        choices=(True, False),
        doc="clip the output to the clinician limits (else 0-25.5 mA)",
    )
    slope_scheduled: bool = param(
        False,
        "1",
        "gain scheduling on the calibration",
        choices=(False, True),
        doc="gains hold at 15 µV/mA; scaled by 15 / calibrated slope",
    )

    def __post_init__(self) -> None:
        validate(self)

    def scheduled(self, slope_uv_per_ma: float) -> PIDParams:
        """The gains for a patient of growth-curve slope ``slope_uv_per_ma`` (if scheduled)."""
        if not self.slope_scheduled:
            return self
        k = NOMINAL_SLOPE_UV_PER_MA / slope_uv_per_ma
        return dataclasses.replace(
            self,
            kp_ma_per_uv=self.kp_ma_per_uv * k,
            ki_ma_per_uv_s=self.ki_ma_per_uv_s * k,
            kd_ma_s_per_uv=self.kd_ma_s_per_uv * k,
            slope_scheduled=False,
        )


CONSTANTS = (
    "kp",
    "ki",
    "kd",
    "derivative_tau_s",
    "anti_windup",
    "tracking_tau_s",
    "rate_limit_ma_per_s",
    "out_min",
    "out_max",
)
"""The constants row ``c`` of the kernels (``anti_windup``: index in :data:`ANTI_WINDUP`)."""
STATE = ("output", "fresh", "integral", "derivative", "last_measurement")
"""The state row ``s`` of the kernels (``fresh``: 1.0 until the first update sets the bias)."""
_KP, _KI, _KD, _TAU_D, _AW, _TT, _RATE, _LO, _HI = range(len(CONSTANTS))
_OUT, _FRESH, _INT, _DER, _LAST = range(len(STATE))
_BACK_CALCULATION, _CLAMP = ANTI_WINDUP.index("back-calculation"), ANTI_WINDUP.index("clamp")


def pid_constants(params: PIDParams, out_min: float, out_max: float) -> np.ndarray:
    """The constants row (:data:`CONSTANTS`) of ``params`` and the output limits."""
    p = params
    return np.array(
        [
            p.kp_ma_per_uv,
            p.ki_ma_per_uv_s,
            p.kd_ma_s_per_uv,
            p.derivative_tau_s,
            ANTI_WINDUP.index(p.anti_windup),
            p.tracking_tau_s,
            p.rate_limit_ma_per_s,
            out_min,
            out_max,
        ],
        np.float64,
    )


@numba.njit(cache=True, inline="always")
def pid_reset(c, s, output, error, has_error):
    """Forget the past and continue from ``output`` (see :meth:`PIDCore.reset`)."""
    s[_OUT] = output
    s[_FRESH] = 0.0 if has_error else 1.0
    s[_INT] = output - (c[_KP] * error if has_error else 0.0)
    s[_DER] = 0.0
    s[_LAST] = math.nan


@numba.njit(cache=True, inline="always")
def _filtered_derivative(c, s, measurement, dt_s):
    """First-order-filtered ``-d(measurement)/dt`` (the derivative of the error)."""
    if c[_KD] == 0.0:
        return 0.0
    if not math.isnan(s[_LAST]):
        raw = -(measurement - s[_LAST]) / dt_s
        alpha = dt_s / (c[_TAU_D] + dt_s)
        s[_DER] += alpha * (raw - s[_DER])
    s[_LAST] = measurement
    return s[_DER]


@numba.njit(cache=True, inline="always")
def _integrate(c, s, error, u, v, dt_s):
    """Advance the integrator with the chosen anti-windup scheme."""
    if c[_KI] == 0.0:  # P or PD: the integrator is a fixed bias
        return
    step = c[_KI] * error * dt_s
    if c[_AW] == _BACK_CALCULATION:
        s[_INT] += step + (u - v) * dt_s / py_max(c[_TT], dt_s)
    elif c[_AW] == _CLAMP:  # conditional integration
        if not ((u < v and step > 0.0) or (u > v and step < 0.0)):
            s[_INT] += step
    else:
        s[_INT] += step


@numba.njit(cache=True)
def pid_update(c, s, error, measurement, dt_s, applied, has_applied):
    """One control period of the PID (see :meth:`PIDCore.update`): the new output."""
    if has_applied and s[_FRESH] == 0.0:
        if c[_AW] == _BACK_CALCULATION and c[_KI] > 0.0:
            s[_INT] += (applied - s[_OUT]) * dt_s / py_max(c[_TT], dt_s)
        s[_OUT] = applied
    prop = c[_KP] * error
    deriv = c[_KD] * _filtered_derivative(c, s, measurement, dt_s)
    if s[_FRESH] != 0.0:  # bumpless: the first output equals the one being delivered
        s[_INT] = s[_OUT] - prop - deriv
        s[_FRESH] = 0.0
    v = prop + s[_INT] + deriv
    u = py_min(py_max(v, c[_LO]), c[_HI])
    if c[_RATE] > 0.0:
        step = c[_RATE] * dt_s
        u = py_min(py_max(u, s[_OUT] - step), s[_OUT] + step)
    _integrate(c, s, error, u, v, dt_s)
    s[_OUT] = u
    return u


class PIDCore:
    """The PID algorithm on a generic plant, in simulated time.

    Args:
        params: Gains, filter and limits (``clinician_limits`` is ignored here).
        out_min: Lowest output.
        out_max: Highest output.
    """

    def __init__(
        self, params: PIDParams, out_min: float = -math.inf, out_max: float = math.inf
    ) -> None:
        if not isinstance(params, PIDParams):
            raise ConfigError(
                f"params={type(params).__name__} is not valid for PIDCore; expected PIDParams"
            )
        if not (is_real(out_min) and is_real(out_max) and out_min <= out_max):
            raise ConfigError(f"out_min={out_min!r} must be <= out_max={out_max!r} (numbers)")
        self.params = params
        self.out_min, self.out_max = float(out_min), float(out_max)
        self._c = pid_constants(params, self.out_min, self.out_max)
        self._s = np.zeros(len(STATE))
        self.reset(0.0)

    @property
    def output(self) -> float:
        """The last output."""
        return float(self._s[_OUT])

    @property
    def integral(self) -> float:
        """The integrator (the output's bias)."""
        return float(self._s[_INT])

    def reset(self, output: float, error: float | None = None) -> None:
        """Forget the past and continue from ``output`` without a bump.

        Args:
            output: The output being delivered.
            error: The error now, if known: the integrator is set so that ``output`` is the
                output at this error. If None, the next :meth:`update` sets it from its error,
                so that update's output equals ``output``.
        """
        pid_reset(
            self._c,
            self._s,
            float(output),
            0.0 if error is None else float(error),
            error is not None,
        )

    def update(
        self, error: float, measurement: float, dt_s: float, applied: float | None = None
    ) -> float:
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
        return pid_update(
            self._c,
            self._s,
            float(error),
            float(measurement),
            float(dt_s),
            0.0 if applied is None else float(applied),
            applied is not None,
        )


@numba.njit(cache=True)
def pid_law(p, const, state, row, step, t_s, dt_s, ecap_uv, detected, current_ma, target_uv):
    """:class:`PID`'s law on episode ``row`` (the batch protocol's kernel): the current (mA).

    ``const[row]`` is the episode's constants row (its scheduled gains and limits), ``state[row]``
    its state row; ``p`` is not used. The first step continues the delivered current.
    """
    if step == 0:  # nothing measured yet: continue the delivered current
        pid_reset(const[row], state[row], current_ma, 0.0, True)
        return current_ma
    return pid_update(const[row], state[row], target_uv - ecap_uv, ecap_uv, dt_s, current_ma, True)


@numba.njit(cache=True)
def _pid_many(
    p, const, state, rows, steps, t_s, dt_s, ecap_uv, detected, current_ma, target_uv, out
):
    for i in range(rows.size):
        r = rows[i]
        out[i] = pid_law(
            p,
            const,
            state,
            r,
            steps[r],
            t_s[r],
            dt_s,
            ecap_uv[i],
            detected[i],
            current_ma[i],
            target_uv[i],
        )


class PID(BatchController):
    """P, PI or PID on the ECAP error; output clipped to the clinician limits.

    Args:
        params: The parameters (defaults if None).
    """

    name = "pid"
    params_type = PIDParams
    kernels = (pid_law, _pid_many)
    core: PIDCore | None = None
    """After a one-episode reset: the episode's core (scheduled gains), on the law's rows."""

    def _law_params(self) -> np.ndarray:
        return np.zeros(0)

    def _episode_arrays(self, contexts):
        """Each episode's scheduled gains and limits; for one episode, :attr:`core` plays it."""
        rows = []
        for ctx in contexts:
            gains = self.params.scheduled(
                GrowthPrior.from_calibration(ctx.calibration).slope_uv_per_ma
            )
            rows.append(pid_constants(gains, *current_limits(ctx, self.params.clinician_limits)))
        const, state = np.array(rows), np.zeros((len(contexts), len(STATE)))
        self.core = None
        if len(contexts) == 1:  # the one episode's core, on the rows the law updates
            self.core = PIDCore(gains, *current_limits(contexts[0], self.params.clinician_limits))
            self.core._c, self.core._s = const[0], state[0]
        return const, state
