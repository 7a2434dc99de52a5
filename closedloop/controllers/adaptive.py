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

The law is one numba kernel on one episode's row (:func:`adaptive_law`), played on one row per
episode by the batch protocol (:mod:`closedloop.controllers.batch`).
"""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

from closedloop._config import param, validate
from closedloop.controllers.base import GrowthPrior, current_limits, py_max, py_min
from closedloop.controllers.batch import BatchController

MAX_CORRELATION = 0.999
"""Largest |correlation| of the two estimates kept in the covariance (numerical guard)."""


@dataclasses.dataclass(frozen=True)
class AdaptiveInverseParams:
    """Parameters of :class:`AdaptiveInverse`."""

    forgetting: float = param(
        0.9,
        "1",
        "tuned on the training cohort",
        0.5,
        1.0,
        doc="RLS forgetting factor of the offset, per detected step",
    )
    slope_forgetting: float = param(
        0.9,
        "1",
        "tuned on the training cohort",
        0.5,
        1.0,
        doc="RLS forgetting factor of the slope, per detected step",
    )
    noise_uv: float = param(
        3.0,
        "µV",
        "single-sweep noise floor, a few µV [M]",
        0.0,
        1e3,
        lo_open=True,
        doc="assumed ECAP measurement noise sd",
    )
    prior_slope_rel_sd: float = param(
        1.0,
        "1",
        "assumption",
        0.0,
        100.0,
        lo_open=True,
        doc="prior sd of the slope, relative to the calibrated",
    )
    prior_ecap_sd_uv: float = param(
        20.0,
        "µV",
        "assumption",
        0.0,
        1e4,
        lo_open=True,
        doc="prior sd of the ECAP at the comfort current",
    )
    scale_rel_sd: float = param(
        0.1,
        "1",
        "calibration: slope x threshold is nearly constant across postures (within ~10 %)",
        0.0,
        100.0,
        doc="sd of the slope x threshold prior, relative; 0: no prior",
    )
    clip_sd: float = param(
        10.0,
        "1",
        "design choice",
        0.0,
        1e3,
        lo_open=True,
        doc="innovations clipped at this many noise sd",
    )
    response_s: float = param(
        0.05,
        "s",
        "tuned on the training cohort",
        0.0,
        100.0,
        lo_open=True,
        doc="time constant of the move towards the inverse current",
    )
    slope_range: float = param(
        4.0,
        "1",
        "design choice",
        1.0,
        100.0,
        doc="slope kept within [s_ref / range, s_ref * range]",
    )
    detect_min_frac: float = param(
        0.5,
        "1",
        "design choice",
        0.0,
        1.0,
        doc="a step counts as detected at this fraction of pulses",
    )
    search_after_s: float = param(
        0.5, "s", "design choice", 0.0, 1e4, doc="time without a detected ECAP before ramping up"
    )
    search_ma_per_s: float = param(
        1.0, "mA/s", "design choice", 0.0, 100.0, doc="ramp-up while no ECAP is detected"
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


_P = (
    "forgetting",
    "slope_forgetting",
    "noise_uv",
    "scale_rel_sd",
    "clip_sd",
    "response_s",
    "slope_range",
    "detect_min_frac",
    "search_after_s",
    "search_ma_per_s",
)
"""The parameters array ``p`` of the kernel."""
_FORGET, _SLOPE_FORGET, _NOISE, _SCALE_SD, _CLIP, _RESPONSE, _RANGE, _DETECT, _AFTER, _SEARCH = (
    range(len(_P))
)
CONSTANTS = (
    "i0_ma",
    "slope_ref_uv_per_ma",
    "scale_uv",
    "var0_slope",
    "var0_offset",
    "scale_var",
    "min_ma",
    "max_ma",
)
"""An episode's constants row: comfort current, prior slope and scale, prior variances (noise
units), the variance of the scale pseudo-observation, current limits."""
STATE = ("slope_uv_per_ma", "offset_uv", "cov_00", "cov_01", "cov_11", "undetected_s")
"""An episode's state row: the estimate ``theta``, its covariance and the time undetected."""
_I0, _REF, _SCALE, _VAR0, _VAR1, _SCALE_VAR, _LO, _HI = range(len(CONSTANTS))
_TH0, _TH1, _C0, _C1, _C2, _UNDETECTED = range(len(STATE))


@numba.njit(cache=True, inline="always")
def _update(st, x0, x1, innovation, noise_var):
    """Kalman/RLS update by one observation ``x . theta`` (variance in noise units)."""
    c0, c1, c2 = st[_C0], st[_C1], st[_C2]
    g0, g1 = c0 * x0 + c1 * x1, c1 * x0 + c2 * x1  # P x
    denom = noise_var + x0 * g0 + x1 * g1
    st[_TH0] += g0 * innovation / denom
    st[_TH1] += g1 * innovation / denom
    st[_C0], st[_C1], st[_C2] = c0 - g0 * g0 / denom, c1 - g0 * g1 / denom, c2 - g1 * g1 / denom


@numba.njit(cache=True, inline="always")
def _rls(p, k, st, current_ma, ecap_uv):
    """One RLS step: forgetting, the measurement, the scale prior, guards.

    The guards act on the covariance the two updates leave. (Until issue 18 they acted on the
    covariance after forgetting and overwrote the updated one, so no measurement ever shrank
    it: the estimator ran at its capped prior gain and chased the recording noise.)
    """
    fs, fo = 1.0 / p[_SLOPE_FORGET], 1.0 / p[_FORGET]
    c0, c1, c2 = st[_C0] * fs, st[_C1] * math.sqrt(fs * fo), st[_C2] * fo
    st[_C0], st[_C1], st[_C2] = c0, c1, c2
    x = current_ma - k[_I0]
    lim = p[_CLIP] * p[_NOISE]
    _update(st, x, 1.0, py_min(py_max(ecap_uv - x * st[_TH0] - st[_TH1], -lim), lim), 1.0)
    if p[_SCALE_SD] > 0.0:  # slope * threshold = slope * I0 - e0 stays near A
        _update(st, k[_I0], -1.0, k[_SCALE] - k[_I0] * st[_TH0] + st[_TH1], k[_SCALE_VAR])
    c0, c1, c2 = st[_C0], st[_C1], st[_C2]
    d0 = math.sqrt(py_min(py_max(c0, 1e-12 * k[_VAR0]), k[_VAR0]))
    d2 = math.sqrt(py_min(py_max(c2, 1e-12 * k[_VAR1]), k[_VAR1]))
    rho = c1 / math.sqrt(py_max(c0 * c2, 1e-300))
    rho = py_min(py_max(rho, -MAX_CORRELATION), MAX_CORRELATION)
    st[_C0], st[_C1], st[_C2] = d0 * d0, rho * d0 * d2, d2 * d2
    st[_TH0] = py_min(py_max(st[_TH0], k[_REF] / p[_RANGE]), k[_REF] * p[_RANGE])


@numba.njit(cache=True, inline="always")
def _clip(k, current_ma):
    if not math.isfinite(current_ma):
        return k[_LO]
    return py_min(py_max(current_ma, k[_LO]), k[_HI])


@numba.njit(cache=True)
def adaptive_law(p, const, state, row, step, t_s, dt_s, ecap_uv, detected, current_ma, target_uv):
    """Episode ``row``: update the estimate with the last step, then move towards the inverse.

    ``p`` holds the parameters (:data:`_P`), ``const[row]`` the episode's constants
    (:data:`CONSTANTS`), ``state[row]`` its state (:data:`STATE`), updated in place.
    Returns the current (mA).
    """
    k, st = const[row], state[row]
    if step == 0:
        return _clip(k, current_ma)
    if detected >= p[_DETECT]:
        st[_UNDETECTED] = 0.0
        _rls(p, k, st, current_ma, ecap_uv)
    else:
        st[_UNDETECTED] += dt_s
        if st[_UNDETECTED] >= p[_AFTER] - 1e-9:
            want = _clip(k, current_ma + p[_SEARCH] * dt_s)
            st[_TH1] = target_uv - st[_TH0] * (want - k[_I0])
            return want
    want = (k[_I0] - st[_TH1] / st[_TH0]) + target_uv / st[_TH0]
    move = py_min(dt_s / p[_RESPONSE], 1.0)
    return _clip(k, current_ma + move * (want - current_ma))


@numba.njit(cache=True)
def _adaptive_many(
    p, const, state, rows, steps, t_s, dt_s, ecap_uv, detected, current_ma, target_uv, out
):
    for i in range(rows.size):
        r = rows[i]
        out[i] = adaptive_law(
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


class AdaptiveInverse(BatchController):
    """RLS estimate of the growth curve, inverted for the target (see the module docstring).

    Args:
        params: The parameters (defaults if None).
    """

    name = "adaptive-inverse"
    params_type = AdaptiveInverseParams
    kernels = (adaptive_law, _adaptive_many)

    def _law_params(self) -> np.ndarray:
        p = self.params
        return np.array(
            [
                p.forgetting,
                p.slope_forgetting,
                p.noise_uv,
                p.scale_rel_sd,
                p.clip_sd,
                p.response_s,
                p.slope_range,
                p.detect_min_frac,
                p.search_after_s,
                p.search_ma_per_s,
            ],
            np.float64,
        )

    def _episode_arrays(self, contexts):
        """Each episode starts from its calibrated growth curve."""
        p, const, state = self.params, [], []
        for ctx in contexts:
            cal = ctx.calibration
            prior = GrowthPrior.from_calibration(cal)
            i0, slope = float(cal.comfort_ma), prior.slope_uv_per_ma
            var0 = (
                (p.prior_slope_rel_sd * slope / p.noise_uv) ** 2,
                (p.prior_ecap_sd_uv / p.noise_uv) ** 2,
            )
            const.append(
                (
                    i0,
                    slope,
                    prior.scale_uv,
                    *var0,
                    (p.scale_rel_sd * prior.scale_uv / p.noise_uv) ** 2,
                    *current_limits(ctx, p.clinician_limits),
                )
            )
            state.append((slope, slope * (i0 - prior.threshold_ma), var0[0], 0.0, var0[1], 0.0))
        return np.array(const, np.float64), np.array(state, np.float64)

    @property
    def slope_uv_per_ma(self) -> float:
        """Estimated growth-curve slope (µV/mA) of the episode (the first after reset_many)."""
        return float(self._state[0, _TH0])

    @property
    def threshold_ma(self) -> float:
        """Estimated ECAP threshold (mA) of the episode (the first after reset_many)."""
        return float(self._const[0, _I0] - self._state[0, _TH1] / self._state[0, _TH0])
