"""Threshold protocols run on MRG fibres in NEURON to make the stored validation reference.

Each protocol returns plain lists (JSON-ready); :func:`threshold_grid` is the strength-distance-
duration grid of issue 17: a cathodic monophasic point source in a homogeneous isotropic medium
(σ = 0.6 S/m), a straight fibre with a node under the electrode, MRG at 37 °C. The held-out
source sets and the dt / length convergence are threshold protocols too. The protocols of a
propagating AP (conduction velocity, SFAP, latency) are in
:mod:`closedloop.fidelity.mrg_propagation`, the paired-pulse recovery cycle in
:mod:`closedloop.fidelity.mrg_recovery`.
"""

from __future__ import annotations

import numpy as np

from closedloop.fidelity.mrg import MRGFibre, monophasic

DIAMETERS_UM = (5.7, 7.3, 8.7, 10.0, 11.5, 12.8, 14.0, 16.0)
DISTANCES_MM = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)
PWS_US = (30.0, 60.0, 100.0, 200.0, 300.0, 500.0, 1000.0)
LENGTH_MM = 60.0
DT_MS = 0.005


def first_guess_ma(diameter_um: float, distance_mm: float, pw_us: float) -> float:
    """A rough MRG threshold (mA) to start the bracket (only speeds up the search)."""
    return 0.37 * (10.0 / diameter_um) * distance_mm**1.9 * (1.0 + 100.0 / pw_us) / 2.0


def thresholds_for_diameter(
    diameter_um: float,
    distances_mm=DISTANCES_MM,
    pws_us=PWS_US,
    offset_internodes: float = 0.0,
    length_mm: float = LENGTH_MM,
    dt_ms: float = DT_MS,
) -> list[list[float]]:
    """Thresholds (mA) of one fibre diameter over distances x pulse widths.

    Args:
        diameter_um: Fibre diameter (µm).
        distances_mm: Source-fibre distances (mm).
        pws_us: Pulse widths (µs).
        offset_internodes: Longitudinal offset of the source from the centre node, in
            internodes (0: node under the electrode; 0.5: midway between two nodes).
        length_mm: Fibre length (mm).
        dt_ms: Time step (ms).

    Returns:
        ``[distance][pw]`` thresholds (mA).
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
    offset_mm = offset_internodes * fibre.internode_mm
    out = []
    prev_row = None
    for i, d in enumerate(distances_mm):
        ve = fibre.point_source(d, offset_mm)
        row = []
        for j, pw in enumerate(pws_us):
            if prev_row is not None:
                guess = prev_row[j] * (d / distances_mm[i - 1]) ** 2
            elif j:
                guess = row[-1] * (1.0 + 100.0 / pw) / (1.0 + 100.0 / pws_us[j - 1])
            else:
                guess = first_guess_ma(diameter_um, d, pw)
            th, _ = fibre.threshold(ve, monophasic(pw * 1e-3), guess)
            row.append(th)
        out.append(row)
        prev_row = row
    return out


def threshold_grid(
    diameters_um=DIAMETERS_UM,
    distances_mm=DISTANCES_MM,
    pws_us=PWS_US,
    offset_internodes: float = 0.0,
    processes: int = 2,
    progress=None,
) -> dict:
    """The threshold grid over diameters, distances and pulse widths (see module docstring).

    Args:
        diameters_um: Fibre diameters (µm).
        distances_mm: Distances (mm).
        pws_us: Pulse widths (µs).
        offset_internodes: Source offset from the centre node, in internodes.
        processes: Worker processes (one NEURON per process).
        progress: Optional callable ``(done, total)``.

    Returns:
        ``{"diameter_um", "distance_mm", "pw_us", "offset_internodes", "threshold_ma"}``, the
        last indexed ``[diameter][distance][pw]``.
    """
    from concurrent.futures import ProcessPoolExecutor

    order = sorted(range(len(diameters_um)), key=lambda k: diameters_um[k])  # slowest first
    results: dict[int, list] = {}
    with ProcessPoolExecutor(processes) as pool:
        futures = {
            k: pool.submit(
                thresholds_for_diameter, diameters_um[k], distances_mm, pws_us, offset_internodes
            )
            for k in order
        }
        for n, k in enumerate(order):
            results[k] = futures[k].result()
            if progress is not None:
                progress(n + 1, len(order))
    return {
        "diameter_um": list(diameters_um),
        "distance_mm": list(distances_mm),
        "pw_us": list(pws_us),
        "offset_internodes": offset_internodes,
        "threshold_ma": [results[k] for k in range(len(diameters_um))],
    }


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


# --- held-out thresholds (not used by fidelity/fit.py) ----------------------------------------

HELDOUT_DIAMETERS_UM = (6.5, 9.3, 13.4)
HELDOUT_DISTANCES_MM = (1.2, 2.5, 4.5)
HELDOUT_PWS_US = (45.0, 150.0, 400.0)
HELDOUT_OFFSETS = (0.0, 0.25)
TRIPOLE_DIAMETERS_UM = (7.3, 10.0, 12.8)
TRIPOLE_DISTANCES_MM = (2.0, 3.0, 4.0, 6.0)
TRIPOLE_PWS_US = (100.0, 300.0)
TRIPOLE_CONTACTS = ((-7.0, 0.5), (0.0, -1.0), (7.0, 0.5))
"""Guarded cathode: (contact centre along the fibre in mm, weight per mA of cathodic current)."""
TRIPOLE_CONTACT_MM = 3.0
TRIPOLE_SUBSOURCES = 5
TRIPOLE_LONG_FROM_MM = 6.0
"""Tripoles at this distance or more run on :data:`TRIPOLE_LONG_MM` fibres."""
TRIPOLE_LONG_MM = 90.0


def source_set(configuration: str, offset_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Point sources of a held-out configuration, as ``closedloop.neural.population``'s.

    Args:
        configuration: ``"point"`` (one source) or ``"tripolar"`` (:data:`TRIPOLE_CONTACTS`,
            each contact :data:`TRIPOLE_SUBSOURCES` equal sources over its length).
        offset_mm: Longitudinal shift of every source from the centre node (mm).

    Returns:
        ``(x_mm, weight)``: positions along the fibre and weights per mA of cathodic current
        (negative: cathodic).
    """
    if configuration == "point":
        return np.array([offset_mm]), np.array([-1.0])
    sub = ((np.arange(TRIPOLE_SUBSOURCES) + 0.5) / TRIPOLE_SUBSOURCES - 0.5) * TRIPOLE_CONTACT_MM
    x = np.concatenate([x0 + sub for x0, _ in TRIPOLE_CONTACTS]) + offset_mm
    w = np.repeat([w / TRIPOLE_SUBSOURCES for _, w in TRIPOLE_CONTACTS], TRIPOLE_SUBSOURCES)
    return x, w


def heldout_thresholds(
    diameter_um: float,
    configuration: str,
    distances_mm,
    pws_us,
    offset_internodes: float = 0.0,
    length_mm: float = LENGTH_MM,
    dt_ms: float = DT_MS,
) -> list[dict]:
    """Thresholds (mA per mA of cathodic current) of one fibre for a held-out source set.

    The potential is the sum of the sources' point-source potentials (σ = 0.6 S/m); the
    stimulus a cathodic monophasic pulse; the centre node is under the (central) cathode, or
    ``offset_internodes`` internodes from it.

    Returns:
        One point per distance and pulse width: ``{"diameter_um", "distance_mm", "pw_us",
        "offset_internodes", "configuration", "length_mm", "threshold_ma"}``.
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
    x_mm, w = source_set(configuration, offset_internodes * fibre.internode_mm)
    out = []
    for d in distances_mm:
        ve = -sum(wk * fibre.point_source(d, xk) for xk, wk in zip(x_mm, w, strict=True))
        guess = first_guess_ma(diameter_um, d, pws_us[0]) * (2.0 if len(w) > 1 else 1.0)
        for j, pw in enumerate(pws_us):
            th, _ = fibre.threshold(ve, monophasic(pw * 1e-3), guess)
            nxt = pws_us[min(j + 1, len(pws_us) - 1)]
            guess = th * (1.0 + 100.0 / nxt) / (1.0 + 100.0 / pw)
            out.append(
                {
                    "diameter_um": diameter_um,
                    "distance_mm": d,
                    "pw_us": pw,
                    "offset_internodes": offset_internodes,
                    "configuration": configuration,
                    "length_mm": length_mm,
                    "threshold_ma": th,
                }
            )
    return out


# --- convergence in dt and fibre length --------------------------------------------------------

CONV_DIAMETERS_UM = (5.7, 10.0)
CONV_DTS_MS = (0.01, 0.005, 0.0025, 0.00125)
CONV_LENGTHS_MM = (30.0, 60.0, 90.0, 120.0)
CONV_DISTANCE_MM = 3.0
CONV_PW_US = 100.0
CONV_REL_TOL = 1e-4


def convergence_point(
    diameter_um: float,
    dt_ms: float,
    length_mm: float,
    distance_mm: float = CONV_DISTANCE_MM,
    pw_us: float = CONV_PW_US,
) -> float:
    """Threshold (mA) of one fibre at one time step and length (node under the electrode).

    Bisection to a relative bracket of :data:`CONV_REL_TOL` (finer than the grid's 0.2 %).
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
    th, _ = fibre.threshold(
        fibre.point_source(distance_mm),
        monophasic(pw_us * 1e-3),
        first_guess_ma(diameter_um, distance_mm, pw_us),
        rel_tol=CONV_REL_TOL,
    )
    return th


def relative_changes(values, reference: float) -> list[float]:
    """(value - reference) / reference for each value."""
    return [float(v / reference - 1.0) for v in values]


__all__ = [
    "threshold_grid",
    "thresholds_for_diameter",
    "loglog_slope",
    "convergence_point",
    "relative_changes",
    "source_set",
    "heldout_thresholds",
    "first_guess_ma",
]
