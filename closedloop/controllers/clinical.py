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
  multiplied by ``backoff_gain``. The test reads the ECAP low-pass filtered with the time
  constant ``backoff_filter_s`` (default 0.05 s; 0: each reading as measured), so that single
  noisy readings at small targets do not trigger it (assumption: the device tests a few
  pulses, not one);
* **fixed-current fallback** (US 12,533,518): after ``fallback_after_s`` without a detected
  ECAP, the current is held at ``calibration.fallback_ma`` until an ECAP is detected again;
* **clinician limits** (US 2024/0173550): requests are clipped to ``[min_ma, max_ma]``.

The integrator is the delivered current itself (velocity form), so the loop is bumpless and
cannot wind up against the device's limits. The law is one numba kernel on one episode's row
(:func:`clinical_law`), played on one row per episode by the batch protocol
(:mod:`closedloop.controllers.batch`).
"""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

from closedloop._config import param, validate
from closedloop.controllers.base import GrowthPrior, current_limits, py_max, py_min
from closedloop.controllers.batch import BatchController

SLOPE_SOURCES = ("online", "calibration")


@dataclasses.dataclass(frozen=True)
class ClinicalLoopParams:
    """Parameters of :class:`ClinicalLoop`."""

    loop_gain_per_s: float = param(
        8.0,
        "1/s",
        "tuned on the training cohort",
        0.0,
        1000.0,
        doc="fraction of the ECAP error corrected per second",
    )
    slope_source: str = param(
        "online",
        "1",
        "US 11,191,966 (loop-gain compensation)",
        choices=SLOPE_SOURCES,
        doc="growth-curve slope for the gain",
    )
    slope_filter_s: float = param(
        0.2,
        "s",
        "design choice",
        0.0,
        100.0,
        doc="time constant of the ECAP filter of the online slope",
    )
    slope_range: float = param(
        4.0,
        "1",
        "design choice",
        1.0,
        100.0,
        doc="online slope kept within [s_ref / range, s_ref * range]",
    )
    log_domain: bool = param(
        False,
        "1",
        "US 2023/0337962",
        choices=(False, True),
        doc="multiplicative (log-current) updates",
    )
    overshoot_rel: float = param(
        0.3,
        "1",
        "US 2023/0337962 (fast back-off)",
        0.0,
        10.0,
        doc="back-off above target * (1 + overshoot_rel)",
    )
    backoff_gain: float = param(
        3.0,
        "1",
        "US 2023/0337962 (fast back-off)",
        1.0,
        100.0,
        doc="gain multiplier while backing off",
    )
    backoff_filter_s: float = param(
        0.05,
        "s",
        "assumption: the device tests a few pulses, not "
        "one (issue 18: 0, each reading, fires on noise at small "
        "targets)",
        0.0,
        10.0,
        doc="time constant of the ECAP filter of the back-off test",
    )
    detect_min_frac: float = param(
        0.5,
        "1",
        "design choice",
        0.0,
        1.0,
        doc="a step counts as detected at this fraction of pulses",
    )
    fallback_after_s: float = param(
        1.0,
        "s",
        "US 12,533,518 (fallback)",
        0.0,
        1e4,
        lo_open=True,
        doc="time without a detected ECAP before the fallback",
    )
    clinician_limits: bool = param(
        True,
        "1",
        "US 2024/0173550",
        choices=(True, False),
        doc="clip to the clinician limits (else 0-25.5 mA)",
    )

    def __post_init__(self) -> None:
        validate(self)


_P = (
    "loop_gain_per_s",
    "slope_online",
    "slope_filter_s",
    "slope_range",
    "log_domain",
    "overshoot_rel",
    "backoff_gain",
    "detect_min_frac",
    "fallback_after_s",
    "backoff_filter_s",
)
"""The parameters array ``p`` of the kernel (booleans as 0.0 / 1.0)."""
_GAIN, _ONLINE, _FILTER, _RANGE, _LOG, _OVER, _BACKOFF, _DETECT, _AFTER, _BFILTER = range(len(_P))
CONSTANTS = ("slope_ref_uv_per_ma", "scale_uv", "min_ma", "max_ma", "fallback_ma")
"""An episode's constants row: prior slope and scale, current limits, fallback current."""
STATE = ("slope_uv_per_ma", "ecap_filtered_uv", "undetected_s", "in_fallback", "backoff_ecap_uv")
"""An episode's state row (``in_fallback`` as 0.0 / 1.0)."""
_REF, _SCALE, _LO, _HI, _FALLBACK = range(len(CONSTANTS))
_SLOPE, _ECAP_F, _UNDETECTED, _IN_FALLBACK, _BACKOFF_F = range(len(STATE))


@numba.njit(cache=True, inline="always")
def _online_slope(p, k, st, dt_s, ecap_uv, current_ma):
    """The growth-curve slope for the loop-gain compensation (µV/mA)."""
    ref = k[_REF]
    if p[_ONLINE] == 0.0:
        return ref
    alpha = py_min(dt_s / py_max(p[_FILTER], 1e-9), 1.0)
    st[_ECAP_F] = (
        ecap_uv if math.isnan(st[_ECAP_F]) else (st[_ECAP_F] + alpha * (ecap_uv - st[_ECAP_F]))
    )
    est = (py_max(st[_ECAP_F], 0.0) + k[_SCALE]) / py_max(current_ma, 0.1)
    st[_SLOPE] = py_min(py_max(est, ref / p[_RANGE]), ref * p[_RANGE])
    return st[_SLOPE]


@numba.njit(cache=True, inline="always")
def _backoff_reading(p, st, dt_s, ecap_uv):
    """The ECAP (µV) the back-off tests: the reading, or its first-order low-pass filter."""
    if p[_BFILTER] == 0.0:
        return ecap_uv
    alpha = py_min(dt_s / p[_BFILTER], 1.0)
    prev = st[_BACKOFF_F]
    st[_BACKOFF_F] = ecap_uv if math.isnan(prev) else prev + alpha * (ecap_uv - prev)
    return st[_BACKOFF_F]


@numba.njit(cache=True)
def clinical_law(p, const, state, row, step, t_s, dt_s, ecap_uv, detected, current_ma, target_uv):
    """One loop update of episode ``row``: the current (mA); the fallback while the ECAP is lost.

    ``p`` holds the parameters (:data:`_P`), ``const[row]`` the episode's constants
    (:data:`CONSTANTS`), ``state[row]`` its state (:data:`STATE`), updated in place.
    """
    k, st = const[row], state[row]
    if detected >= p[_DETECT]:
        st[_UNDETECTED], st[_IN_FALLBACK] = 0.0, 0.0
    elif step > 0:
        st[_UNDETECTED] += dt_s
        if st[_IN_FALLBACK] == 0.0 and st[_UNDETECTED] >= p[_AFTER] - 1e-9:
            st[_IN_FALLBACK] = 1.0
    if st[_IN_FALLBACK] != 0.0:
        st[_BACKOFF_F] = math.nan  # the back-off filter restarts from the next reading
        return py_min(py_max(k[_FALLBACK], k[_LO]), k[_HI])
    if step == 0:  # nothing measured yet: continue the delivered current
        return py_min(py_max(current_ma, k[_LO]), k[_HI])
    slope = _online_slope(p, k, st, dt_s, ecap_uv, current_ma)
    gain = py_min(p[_GAIN] * dt_s, 1.0)
    if _backoff_reading(p, st, dt_s, ecap_uv) > target_uv * (1.0 + p[_OVER]):
        gain *= p[_BACKOFF]
    delta = gain * (target_uv - ecap_uv) / slope
    if p[_LOG] != 0.0:
        base = py_max(current_ma, 0.1)
        want = base * math.exp(py_min(py_max(delta / base, -20.0), 5.0))
    else:
        want = current_ma + delta
    return py_min(py_max(want, k[_LO]), k[_HI])


@numba.njit(cache=True)
def _clinical_many(
    p, const, state, rows, steps, t_s, dt_s, ecap_uv, detected, current_ma, target_uv, out
):
    for i in range(rows.size):
        r = rows[i]
        out[i] = clinical_law(
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


class ClinicalLoop(BatchController):
    """The clinical ECAP loop (see the module docstring).

    Args:
        params: The parameters (defaults if None).
    """

    name = "clinical-loop"
    params_type = ClinicalLoopParams
    kernels = (clinical_law, _clinical_many)

    def _law_params(self) -> np.ndarray:
        p = self.params
        return np.array(
            [
                p.loop_gain_per_s,
                p.slope_source == "online",
                p.slope_filter_s,
                p.slope_range,
                p.log_domain,
                p.overshoot_rel,
                p.backoff_gain,
                p.detect_min_frac,
                p.fallback_after_s,
                p.backoff_filter_s,
            ],
            np.float64,
        )

    def _episode_arrays(self, contexts):
        """Prior slope from each calibration, fallback disarmed."""
        const, state = [], []
        for ctx in contexts:
            prior = GrowthPrior.from_calibration(ctx.calibration)
            const.append(
                (
                    prior.slope_uv_per_ma,
                    prior.scale_uv,
                    *current_limits(ctx, self.params.clinician_limits),
                    float(ctx.calibration.fallback_ma),
                )
            )
            state.append((prior.slope_uv_per_ma, math.nan, 0.0, 0.0, math.nan))
        return np.array(const, np.float64), np.array(state, np.float64)
