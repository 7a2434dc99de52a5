"""The neural response model: fibres, thresholds, refractoriness, ECAP synthesis, recording.

Numba's threading layer defaults to ``forksafe`` here (unless ``NUMBA_THREADING_LAYER`` is set),
so that processes forked after a parallel kernel ran (``AsyncVectorEnv``, process pools) work:
GNU OpenMP aborts a forked child.
"""

import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "forksafe"

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
