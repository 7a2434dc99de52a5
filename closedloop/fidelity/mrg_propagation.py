"""Protocols of a propagating AP on MRG fibres in NEURON: conduction velocity, SFAP, latency.

Part of the stored validation reference (:mod:`closedloop.fidelity.mrg_reference`); the
threshold protocols are in :mod:`closedloop.fidelity.mrg_protocols`. Each protocol returns
plain lists (JSON-ready).
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.fidelity.mrg import SIGMA_S_PER_M, MRGFibre, monophasic
from closedloop.fidelity.mrg_protocols import LENGTH_MM, first_guess_ma

# --- conduction velocity ---------------------------------------------------------------------

CV_DTS_MS = (0.005, 0.0025, 0.00125, 0.000625)
CLAMP_NODE = 2
"""The AP is started by an intracellular pulse at this node (near one end of the fibre)."""
CLAMP_NA = 10.0
"""Intracellular start pulse (nA, 0.1 ms): suprathreshold at every diameter."""
V_DETECT_MV = -30.0


def crossing_time_ms(t_ms: np.ndarray, v_mv: np.ndarray, v_thresh_mv: float = V_DETECT_MV) -> float:
    """First upward crossing of ``v_thresh_mv``, linearly interpolated (ms; NaN: none)."""
    above = np.flatnonzero(v_mv > v_thresh_mv)
    if above.size == 0 or above[0] == 0:
        return math.nan
    k = above[0]
    frac = (v_thresh_mv - v_mv[k - 1]) / (v_mv[k] - v_mv[k - 1])
    return float(t_ms[k - 1] + frac * (t_ms[k] - t_ms[k - 1]))


def _propagate(fibre: MRGFibre, last_node: int) -> np.ndarray:
    """Start an AP at :data:`CLAMP_NODE`, run until it passes ``last_node``; crossing times."""
    fibre.clear_iclamps()
    fibre.add_iclamp(CLAMP_NODE, CLAMP_NA)
    z_mm = fibre.z_um[fibre.node_sections] * 1e-3
    tstop = 1.0 + (z_mm[last_node] - z_mm[CLAMP_NODE]) / (2.0 * fibre.diameter_um)  # CV > 2 D
    fibre.run(np.zeros(len(fibre.sections)), [], tstop, stop_node=last_node, record_vm=True)
    vm = fibre.vm
    return np.array([crossing_time_ms(fibre.t_ms, v) for v in vm])


def cv_for_diameter(diameter_um: float, dts_ms=CV_DTS_MS, length_mm: float = LENGTH_MM) -> dict:
    """Conduction velocity (m/s) of one fibre at several time steps, and its dt -> 0 limit.

    The AP is started at one end by an intracellular pulse; CV = distance / time between the
    -30 mV crossings (linearly interpolated in time) at the nodes at 25 % and 75 % of the fibre.
    The limit is the intercept of a straight-line fit of CV against dt (backward Euler: error
    of first order in dt).

    Args:
        diameter_um: Fibre diameter (µm).
        dts_ms: Time steps (ms).
        length_mm: Fibre length (mm).

    Returns:
        ``{"dt_ms", "cv_m_per_s", "cv_dt0_m_per_s"}``.
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dts_ms[0])
    a, b = round(0.25 * (fibre.n_nodes - 1)), round(0.75 * (fibre.n_nodes - 1))
    z_mm = fibre.z_um[fibre.node_sections] * 1e-3
    cvs = []
    for dt in dts_ms:
        fibre.dt_ms = dt
        times = _propagate(fibre, b)
        cvs.append(float((z_mm[b] - z_mm[a]) / (times[b] - times[a])))
    intercept = float(np.polyfit(dts_ms, cvs, 1)[1]) if len(dts_ms) > 1 else cvs[0]
    return {"dt_ms": list(dts_ms), "cv_m_per_s": cvs, "cv_dt0_m_per_s": intercept}


# --- single-fibre action potential ------------------------------------------------------------

SFAP_DISTANCES_MM = (1.0, 3.0, 5.0)
SFAP_LENGTH_MM = 100.0
SFAP_DT_MS = 0.0025


def sfap_for_diameter(
    diameter_um: float,
    distances_mm=SFAP_DISTANCES_MM,
    length_mm: float = SFAP_LENGTH_MM,
    dt_ms: float = SFAP_DT_MS,
    sigma: float = SIGMA_S_PER_M,
) -> dict:
    """Single-fibre AP at point electrodes opposite the middle of the fibre.

    An AP started at one end runs along the fibre; the membrane current of every section
    (NEURON ``i_membrane_``, the current into the medium) is a point source at the section's
    centre in a homogeneous isotropic medium: phi = sum I / (4 pi sigma r). N1 and the
    peak-to-peak are taken while the AP runs between the nodes at 20 % and 80 % of the fibre
    (no start or end effects).

    Args:
        diameter_um: Fibre diameter (µm).
        distances_mm: Radial electrode distances (mm).
        length_mm: Fibre length (mm).
        dt_ms: Time step (ms).
        sigma: Conductivity (S/m).

    Returns:
        ``{"distance_mm", "n1_uv", "p2p_uv"}`` (N1: the most negative potential, µV).
    """
    fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
    a, b = round(0.2 * (fibre.n_nodes - 1)), round(0.8 * (fibre.n_nodes - 1))
    fibre.clear_iclamps()
    fibre.add_iclamp(CLAMP_NODE, CLAMP_NA)
    z_mm = fibre.z_um[fibre.node_sections] * 1e-3
    tstop = 1.0 + (z_mm[-1] - z_mm[CLAMP_NODE]) / (2.0 * diameter_um)
    fibre.run(
        np.zeros(len(fibre.sections)), [], tstop, stop_node=b + 2, record_vm=True, record_imem=True
    )
    t_ms, vm = fibre.t_ms, fibre.vm
    window = (t_ms >= crossing_time_ms(t_ms, vm[a])) & (t_ms <= crossing_time_ms(t_ms, vm[b]))
    dz_m = (fibre.z_um - fibre.z_centre_um) * 1e-6
    n1, p2p = [], []
    for d in distances_mm:
        r_m = np.sqrt(dz_m**2 + (d * 1e-3) ** 2)
        phi_uv = (1e-3 / (4.0 * math.pi * sigma * r_m)) @ fibre.imem_na[:, window]  # nA -> µV
        n1.append(float(phi_uv.min()))
        p2p.append(float(phi_uv.max() - phi_uv.min()))
    return {"distance_mm": list(distances_mm), "n1_uv": n1, "p2p_uv": p2p}


# --- latency vs current ---------------------------------------------------------------------

LATENCY_DIAMETERS_UM = (5.7, 10.0, 16.0)
LATENCY_PWS_US = (100.0, 300.0)
LATENCY_RATIOS = (1.001, 1.02, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0)
LATENCY_DISTANCE_MM = 3.0
LATENCY_FAR_MM = 10.0


def latency_for_diameter(
    diameter_um: float,
    pws_us=LATENCY_PWS_US,
    ratios=LATENCY_RATIOS,
    distance_mm: float = LATENCY_DISTANCE_MM,
    far_mm: float = LATENCY_FAR_MM,
) -> dict:
    """AP time (ms after pulse onset) at the centre node and at a node ``far_mm`` away.

    Args:
        diameter_um: Fibre diameter (µm).
        pws_us: Pulse widths (µs).
        ratios: Currents as multiples of the threshold.
        distance_mm: Source-fibre distance (mm).
        far_mm: Distance along the fibre of the second recording node (mm).

    Returns:
        ``{"pw_us", "ratio", "threshold_ma"[pw], "t_centre_ms"[pw][ratio],
        "t_far_ms"[pw][ratio], "far_node_mm"}``.
    """
    fibre = MRGFibre(diameter_um)
    ve = fibre.point_source(distance_mm)
    far = fibre.centre + round(far_mm / fibre.internode_mm)
    ths, t_c, t_f = [], [], []
    for pw in pws_us:
        shape = monophasic(pw * 1e-3)
        th, _ = fibre.threshold(
            ve, shape, first_guess_ma(diameter_um, distance_mm, pw), rel_tol=1e-4
        )
        times = [fibre.run(ve, shape(r * th), pw * 1e-3 + 4.0, stop_node=far) for r in ratios]
        ths.append(th)
        t_c.append([float(t[fibre.centre]) for t in times])
        t_f.append([float(t[far]) for t in times])
    far_mm_exact = (fibre.z_um[fibre.node_sections[far]] - fibre.z_centre_um) * 1e-3
    return {
        "pw_us": list(pws_us),
        "ratio": list(ratios),
        "threshold_ma": ths,
        "t_centre_ms": t_c,
        "t_far_ms": t_f,
        "far_node_mm": float(far_mm_exact),
    }


__all__ = ["crossing_time_ms", "cv_for_diameter", "sfap_for_diameter", "latency_for_diameter"]
