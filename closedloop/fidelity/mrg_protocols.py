"""Protocols run on MRG fibres in NEURON to make the stored validation reference.

Each protocol returns plain lists (JSON-ready); :func:`threshold_grid` is the strength-distance-
duration grid of issue 17: a cathodic monophasic point source in a homogeneous isotropic medium
(σ = 0.6 S/m), a straight fibre with a node under the electrode, MRG at 37 °C.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.fidelity.mrg import MRGFibre, monophasic

DIAMETERS_UM = (5.7, 7.3, 8.7, 10.0, 11.5, 12.8, 14.0, 16.0)
DISTANCES_MM = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)
PWS_US = (30.0, 60.0, 100.0, 200.0, 300.0, 500.0, 1000.0)
LENGTH_MM = 60.0
DT_MS = 0.005


def _first_guess_ma(diameter_um: float, distance_mm: float, pw_us: float) -> float:
    """A rough MRG threshold (mA) to start the bracket (only speeds up the search)."""
    return 0.37 * (10.0 / diameter_um) * distance_mm ** 1.9 * (1.0 + 100.0 / pw_us) / 2.0


def thresholds_for_diameter(diameter_um: float, distances_mm=DISTANCES_MM, pws_us=PWS_US,
                            offset_internodes: float = 0.0, length_mm: float = LENGTH_MM,
                            dt_ms: float = DT_MS) -> list[list[float]]:
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
                guess = _first_guess_ma(diameter_um, d, pw)
            th, _ = fibre.threshold(ve, monophasic(pw * 1e-3), guess)
            row.append(th)
        out.append(row)
        prev_row = row
    return out


def threshold_grid(diameters_um=DIAMETERS_UM, distances_mm=DISTANCES_MM, pws_us=PWS_US,
                   offset_internodes: float = 0.0, processes: int = 2, progress=None) -> dict:
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
        futures = {k: pool.submit(thresholds_for_diameter, diameters_um[k], distances_mm,
                                  pws_us, offset_internodes) for k in order}
        for n, k in enumerate(order):
            results[k] = futures[k].result()
            if progress is not None:
                progress(n + 1, len(order))
    return {"diameter_um": list(diameters_um), "distance_mm": list(distances_mm),
            "pw_us": list(pws_us), "offset_internodes": offset_internodes,
            "threshold_ma": [results[k] for k in range(len(diameters_um))]}


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y on log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


__all__ = ["threshold_grid", "thresholds_for_diameter", "loglog_slope", "math"]
