"""Open loop: a fixed current at the calibrated comfort level, the standard of care."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from closedloop._config import param, validate
from closedloop.controllers.batch import BatchController


@dataclasses.dataclass(frozen=True)
class OpenLoopParams:
    """Parameters of :class:`OpenLoop`."""

    comfort_fraction: float = param(
        1.0,
        "1",
        "standard of care: the calibrated comfort current",
        0.0,
        4.0,
        doc="delivered current / calibrated comfort current",
    )

    def __post_init__(self) -> None:
        validate(self)


@numba.njit(cache=True)
def open_loop_law(p, const, state, row, step, t_s, dt_s, ecap_uv, detected, current_ma, target_uv):
    """The open-loop current (mA) of episode ``row`` (the batch protocol's kernel).

    ``p = [comfort_fraction]`` and ``const[row, 0]`` is the comfort current (mA); the other
    arguments of the law are not used.
    """
    return p[0] * const[row, 0]


@numba.njit(cache=True)
def _open_loop_many(
    p, const, state, rows, steps, t_s, dt_s, ecap_uv, detected, current_ma, target_uv, out
):
    for i in range(rows.size):
        r = rows[i]
        out[i] = open_loop_law(
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


class OpenLoop(BatchController):
    """Deliver ``comfort_fraction * calibration.comfort_ma`` whatever the ECAP does.

    Args:
        params: The parameters (defaults if None).
    """

    name = "open-loop"
    params_type = OpenLoopParams
    kernels = (open_loop_law, _open_loop_many)

    def _law_params(self) -> np.ndarray:
        return np.array([self.params.comfort_fraction])

    def _episode_arrays(self, contexts):
        comfort = np.array([[float(c.calibration.comfort_ma)] for c in contexts])
        return comfort, np.zeros((len(contexts), 0))
