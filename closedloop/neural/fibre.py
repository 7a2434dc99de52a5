"""The fast model's single-fibre relations, in the configuration of the MRG comparison.

These functions expose what the patient model computes for one fibre (threshold, and later
the recovery cycle, conduction and initiation time) for a point source in a homogeneous medium,
so that :mod:`closedloop.fidelity` can compare them with MRG in NEURON.

Interim (issue 17 in progress): the threshold is still the single-node activating-function
rule of :mod:`closedloop.neural.geometry`; it will be replaced by the fitted multi-node
predictor.
"""

from __future__ import annotations

import numpy as np

from closedloop.neural import geometry
from closedloop.neural.params import ExcitabilityParams

SIGMA_S_PER_M = 0.6


def point_source_threshold_ma(diameter_um: float, distance_mm: float, pw_us: float, *,
                              offset_internodes: float = 0.0,
                              sigma_s_per_m: float = SIGMA_S_PER_M,
                              params: ExcitabilityParams | None = None) -> float:
    """Threshold (mA) of one fibre for a cathodic monophasic point source.

    Args:
        diameter_um: Fibre diameter (µm).
        distance_mm: Perpendicular source-fibre distance (mm).
        pw_us: Pulse width (µs).
        offset_internodes: Longitudinal offset of the source from a node, in internodes.
        sigma_s_per_m: Conductivity of the homogeneous isotropic medium (S/m).
        params: Excitability parameters (defaults if None).

    Returns:
        The threshold current (mA) without jitter, refractoriness or adaptation.
    """
    exc = params or ExcitabilityParams()
    sigma = sigma_s_per_m * 1e-3  # S/mm
    span = max(30.0, 10.0 * distance_mm)
    n = 2 * int(np.ceil(span / (0.1 * diameter_um))) + 3
    drive = geometry.fibre_drive(diameter_um, 0.0, distance_mm, offset_internodes % 1.0, 0.0,
                                 np.zeros(1), -np.ones(1), 0.0, sigma, sigma, span,
                                 np.empty(n), np.empty(n))
    rheo = exc.af_threshold_mv_per_mm2 * (geometry.REF_DIAMETER_UM / diameter_um) ** (
        exc.diameter_exponent) / drive
    chron = exc.chronaxie_us * (geometry.REF_DIAMETER_UM / diameter_um) ** (
        exc.chronaxie_diameter_exponent)
    return float(rheo * (1.0 + chron / pw_us))
