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

import numba
import numpy as np

from closedloop._config import param, validate
from closedloop.controllers.base import GrowthPrior, current_limits, py_max, py_min
from closedloop.controllers.batch import BatchController


@dataclasses.dataclass(frozen=True)
class CeilingParams:
    """Parameters of :class:`Ceiling`."""

    ceiling_rel: float = param(
        1.3,
        "1",
        "tuned on the training cohort",
        1.0,
        10.0,
        doc="ceiling as a multiple of the target ECAP",
    )
    cut_gain_per_s: float = param(
        25.0,
        "1/s",
        "tuned on the training cohort",
        0.0,
        1000.0,
        lo_open=True,
        doc="fraction of the excess cut per second",
    )
    hold_s: float = param(
        0.5, "s", "assumption", 0.0, 1e4, doc="hold after the last exceedance before ramping back"
    )
    ramp_ma_per_s: float = param(
        1.0,
        "mA/s",
        "assumption",
        0.0,
        100.0,
        lo_open=True,
        doc="ramp back towards the comfort current",
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


_CEILING, _CUT, _HOLD, _RAMP = range(4)  # p: ceiling_rel, cut_gain_per_s, hold_s, ramp
_SLOPE, _COMFORT, _LO, _HI = range(4)  # const row: slope, comfort, limits (µV/mA, mA)
_LAST_CUT = 0  # state row: time of the last cut (s)


@numba.njit(cache=True)
def ceiling_law(p, const, state, row, step, t_s, dt_s, ecap_uv, detected, current_ma, target_uv):
    """Episode ``row``'s current (mA): cut above the ceiling, hold, then ramp back to comfort.

    ``p`` = (ceiling_rel, cut_gain_per_s, hold_s, ramp_ma_per_s); ``const[row]`` = (calibrated
    slope (µV/mA), comfort, lower and upper limit (mA)); ``state[row, 0]`` the last cut (s).
    """
    k, st = const[row], state[row]
    comfort = k[_COMFORT]
    ceiling = p[_CEILING] * target_uv
    if step == 0:
        want = comfort
    elif ecap_uv > ceiling:
        st[_LAST_CUT] = t_s
        want = current_ma - py_min(p[_CUT] * dt_s, 1.0) * (ecap_uv - ceiling) / k[_SLOPE]
    elif t_s - st[_LAST_CUT] < p[_HOLD]:
        want = current_ma
    else:
        want = py_min(current_ma + p[_RAMP] * dt_s, comfort)
    return py_min(py_max(py_min(want, comfort), k[_LO]), k[_HI])


@numba.njit(cache=True)
def _ceiling_many(
    p, const, state, rows, steps, t_s, dt_s, ecap_uv, detected, current_ma, target_uv, out
):
    for i in range(rows.size):
        r = rows[i]
        out[i] = ceiling_law(
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


class Ceiling(BatchController):
    """Comfort current, cut only while the ECAP is above a ceiling (see the module docstring).

    Args:
        params: The parameters (defaults if None).
    """

    name = "ceiling"
    params_type = CeilingParams
    kernels = (ceiling_law, _ceiling_many)

    def _law_params(self) -> np.ndarray:
        p = self.params
        return np.array([p.ceiling_rel, p.cut_gain_per_s, p.hold_s, p.ramp_ma_per_s])

    def _episode_arrays(self, contexts):
        """Each episode starts at the comfort current, with no cut yet."""
        const = [
            (
                GrowthPrior.from_calibration(ctx.calibration).slope_uv_per_ma,
                float(ctx.calibration.comfort_ma),
                *current_limits(ctx, self.params.clinician_limits),
            )
            for ctx in contexts
        ]
        return np.array(const, np.float64), np.full((len(contexts), 1), -math.inf)
