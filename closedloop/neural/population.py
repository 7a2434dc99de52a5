"""Drawing a dorsal-column fibre population and laying out the lead.

The population is an importance sample of the large-fibre tail of the dorsal-column diameter
distribution: diameters follow a lognormal law (Feirabend et al. 2002: skewed to small fibres,
0.5 % above 10.7 µm) truncated to ``[diameter_min_um, diameter_max_um]``; depth below the cord
surface and mediolateral position are uniform. Fibres smaller than ``diameter_min_um`` are left
out because their thresholds exceed the 25.5 mA hardware limit at any realistic depth.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri
from scipy.stats import qmc

from closedloop.neural.params import LeadParams, PopulationParams


class Fibres(NamedTuple):
    """One patient's modelled fibres (arrays of length ``n_fibres``)."""

    diameter_um: np.ndarray
    depth_mm: np.ndarray
    lateral_mm: np.ndarray
    node_phase: np.ndarray
    """Position of the nearest node relative to the cathode, in internodes, in [0, 1)."""
    fibre_id: np.ndarray
    """Index of the fibre in the draw (int64): keys its per-pulse jitter, whatever the order."""

    def take(self, order: np.ndarray) -> Fibres:
        """The same fibres in the order ``order`` (indices into these)."""
        return Fibres(*(a[order] for a in self))


def draw_fibres(pop: PopulationParams, rng: np.random.Generator) -> Fibres:
    """Draw a fibre population.

    Args:
        pop: Population parameters.
        rng: The generator every draw comes from.

    Returns:
        The fibres, sorted by diameter (descending), with ``fibre_id`` 0, 1, ...

    The (diameter quantile, depth, lateral position, node phase) points are a scrambled Sobol
    sequence rather than independent draws: the ECAP near threshold comes from the few largest
    shallow fibres, and stratifying them keeps the threshold from depending on which few were
    drawn (the model's thresholds then converge with the fibre count).
    """
    if pop.diameter_min_um >= pop.diameter_max_um:
        raise ValueError(
            f"population.diameter_min_um={pop.diameter_min_um} must be below "
            f"diameter_max_um={pop.diameter_max_um}"
        )
    n = pop.n_fibres
    mu, sig = np.log(pop.diameter_median_um), pop.diameter_sigma_ln
    lo, hi = ndtr((np.log([pop.diameter_min_um, pop.diameter_max_um]) - mu) / sig)
    with warnings.catch_warnings():  # balance properties need a power of 2; any n is valid
        warnings.simplefilter("ignore", UserWarning)
        q = qmc.Sobol(d=4, scramble=True, seed=rng).random(n)
    u = lo + (hi - lo) * q[:, 0]
    order = np.argsort(u)[::-1]  # descending diameter, as before
    q = q[order]
    diameter = np.exp(mu + sig * ndtri(lo + (hi - lo) * q[:, 0]))
    depth = pop.depth_max_mm * q[:, 1]
    lateral = pop.half_width_mm * (2.0 * q[:, 2] - 1.0)
    phase = q[:, 3].copy()
    return Fibres(diameter, depth, lateral, phase, np.arange(n, dtype=np.int64))


def tail_fraction(pop: PopulationParams) -> float:
    """Fraction of all dorsal-column fibres that the modelled diameter range represents."""
    mu, sig = np.log(pop.diameter_median_um), pop.diameter_sigma_ln
    lo, hi = ndtr((np.log([pop.diameter_min_um, pop.diameter_max_um]) - mu) / sig)
    return float(hi - lo)


def contact_sources(lead: LeadParams, n_sub: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Point sources that stand for the stimulating contacts.

    Each contact is a line of ``n_sub`` equal point sources along its length; the cathode lies
    at x = 0.

    Returns:
        ``(x_mm, weight)``: source positions along the cord and weights per mA of cathodic
        current (negative for cathodic current).
    """
    xs, ws = [], []
    offsets = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    for contact, w in lead.stim_weights():
        x0 = (contact - lead.cathode) * lead.pitch_mm
        xs.extend(x0 + offsets * lead.contact_length_mm)
        ws.extend([w / n_sub] * n_sub)
    return np.asarray(xs), np.asarray(ws)
