"""The neural response model: fibres, thresholds, refractoriness, ECAP synthesis, recording.

Only the batch kernels use numba's threading layer (see :mod:`closedloop.neural.batch` for
fork safety); building a patient's tables uses Python threads.
"""

from closedloop.neural.growth import GrowthCurve, fit_growth, growth_curve, soft_knee
from closedloop.neural.kernels import PULSE_DTYPE
from closedloop.neural.model import NeuralModel
from closedloop.neural.params import (
    ExcitabilityParams,
    LeadParams,
    ModelParams,
    PopulationParams,
    RecordingParams,
    ResponseParams,
)

__all__ = [
    "PULSE_DTYPE",
    "ExcitabilityParams",
    "GrowthCurve",
    "LeadParams",
    "ModelParams",
    "NeuralModel",
    "PopulationParams",
    "RecordingParams",
    "ResponseParams",
    "fit_growth",
    "growth_curve",
    "soft_knee",
]
