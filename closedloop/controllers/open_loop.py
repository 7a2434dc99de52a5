"""Open loop: a fixed current at the calibrated comfort level, the standard of care."""

from __future__ import annotations

import dataclasses

from closedloop._config import param, validate
from closedloop.controllers.base import Controller, Observation


@dataclasses.dataclass(frozen=True)
class OpenLoopParams:
    """Parameters of :class:`OpenLoop`."""

    comfort_fraction: float = param(1.0, "1", "standard of care: the calibrated comfort current",
                                    0.0, 4.0, doc="delivered current / calibrated comfort current")

    def __post_init__(self) -> None:
        validate(self)


class OpenLoop(Controller):
    """Deliver ``comfort_fraction * calibration.comfort_ma`` whatever the ECAP does.

    Args:
        params: The parameters (defaults if None).
    """

    name = "open-loop"
    params_type = OpenLoopParams

    def current_ma(self, obs: Observation) -> float:
        """The comfort current (mA), scaled."""
        return self.params.comfort_fraction * float(self.context.calibration.comfort_ma)
