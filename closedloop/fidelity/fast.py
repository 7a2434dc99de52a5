"""The fast model's side of every comparison protocol, in the schema of the MRG reference.

Each function runs one protocol of :mod:`closedloop.fidelity.compare` on the fast (numba)
model, on the axes the reference used, and returns the same layout as the normalised reference
section, so that one set of metric functions serves both models:

* :func:`thresholds`: the point-source threshold grid (``threshold_ma[D][d][pw]``);
* :func:`heldout`: thresholds at the held-out points (point sources and a tripolar guarded
  cathode), through the patient model's strength-duration law;
* :func:`conduction`: conduction velocity per diameter;
* :func:`recovery`: the paired-pulse recovery cycle, measured on the real kernel;
* :func:`sfap`: the single-fibre N1 per diameter and radial distance;
* :func:`latency`: the AP time at the initiation node and 10 mm away against I/I_th;
* :func:`results_like`: all of them on the axes of a reference.

All calls into the fast model's single-fibre API go through :func:`_threshold_ma`,
:func:`_cv_m_s` and :func:`_initiation_ms`, so that a vectorised or renamed API changes one
place.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.fidelity import mrg_protocols
from closedloop.fidelity.fast_recovery import (
    RECOVERY_INTERVALS_MS,
    recovery,
)
from closedloop.neural import fibre, geometry
from closedloop.neural import latency as fibre_latency
from closedloop.neural.params import ModelParams, ResponseParams

FAR_NODE_MM = 10.0
"""Distance (mm) of the far recording point of the latency protocol."""


def _threshold_ma(
    diameter_um: float, distance_mm: float, pw_us: float, offset_internodes: float
) -> float:
    """The fast model's point-source threshold (mA): the one call into its threshold rule."""
    return fibre.point_source_threshold_ma(
        diameter_um, distance_mm, pw_us, offset_internodes=offset_internodes
    )


HALF_SPAN_MM = 60.0
"""Fibre length (mm) on each side of the centre node in :func:`sources_threshold_ma`."""


def sources_threshold_ma(
    diameter_um: float, distance_mm: float, pw_us: float, x_mm, weights
) -> float:
    """Threshold (mA of cathodic current) of one fibre for a set of point sources.

    As the patient model computes it: node potentials at the MRG internode spacing (σ = 0.6
    S/m, the centre node at x = 0), the fibre's modified-driving-function laws at the anchor
    pulse widths (:func:`~closedloop.neural.fibre.fibre_laws`), the strength-duration law
    ``I_rh + Q PW^-beta`` (:func:`~closedloop.neural.fibre.sd_law`), evaluated at ``pw_us``.
    One source with weight -1 at ``offset * internode`` gives
    :func:`~closedloop.neural.fibre.point_source_threshold_ma`.

    Args:
        diameter_um: Fibre diameter (µm).
        distance_mm: Perpendicular distance of the sources from the fibre (mm).
        pw_us: Pulse width (µs).
        x_mm: Source positions along the fibre, from the centre node (mm).
        weights: Source weights per mA of cathodic current (negative: cathodic).

    Returns:
        The threshold (mA) without jitter, refractoriness or adaptation.
    """
    step = float(fibre.internode_mm(float(diameter_um)))
    n = int(math.ceil(HALF_SPAN_MM / step))
    nodes = np.arange(-n, n + 1)[:, None] * step
    r_m = 1e-3 * np.sqrt((nodes - np.asarray(x_mm, float)[None, :]) ** 2 + distance_mm**2)
    ve = (np.asarray(weights, float)[None, :] / (4.0 * math.pi * fibre.SIGMA_S_PER_M * r_m)).sum(
        axis=1
    )
    beta = fibre.sd_exponent()
    pws = np.asarray(fibre.SD_PWS_US, float)
    rhos, ths = fibre.fibre_laws(float(diameter_um), fibre.table_arrays(), pws)
    r, q = fibre.sd_law(
        ve, rhos, ths, pws**-beta, 1.0, np.empty(pws.size), np.empty((ve.size, pws.size))
    )
    return float(r + q * pw_us**-beta)


def heldout(points: dict) -> dict:
    """The fast model's thresholds at the held-out points of a normalised reference.

    Args:
        points: Columns ``diameter_um``, ``distance_mm``, ``pw_us``, ``offset_internodes``,
            ``configuration`` ("point" or "tripolar", see
            :func:`~closedloop.fidelity.mrg_protocols.source_set`).

    Returns:
        The same columns with the fast ``threshold_ma`` (mA).
    """
    cols = ("diameter_um", "distance_mm", "pw_us", "offset_internodes", "configuration")
    out = {k: list(points[k]) for k in cols}
    th = []
    for D, d, pw, off, kind in zip(*(points[k] for k in cols), strict=True):
        x_mm, w = mrg_protocols.source_set(kind, off * float(fibre.internode_mm(float(D))))
        th.append(sources_threshold_ma(D, d, pw, x_mm, w))
    out["threshold_ma"] = th
    return out


def _cv_m_s(diameter_um: float, response: ResponseParams) -> float:
    """The fast model's conduction velocity (m/s) of one diameter."""
    return float(fibre_latency.conduction_velocity_m_s(diameter_um, response))


def _initiation_ms(current_ratio: float, pw_us: float, response: ResponseParams) -> float:
    """AP time (ms after pulse onset) at the initiation node of the fast model."""
    return float(fibre_latency.initiation_delay_ms(current_ratio, pw_us, response))


def thresholds(diameters_um, distances_mm, pws_us, offset_internodes: float = 0.0) -> dict:
    """Threshold grid of the fast model for a cathodic monophasic point source (σ = 0.6 S/m).

    Args:
        diameters_um: Fibre diameters (µm).
        distances_mm: Source-fibre distances (mm).
        pws_us: Pulse widths (µs).
        offset_internodes: Longitudinal source offset from a node, in internodes.

    Returns:
        ``{"diameter_um", "distance_mm", "pw_us", "offset_internodes", "threshold_ma"}``,
        ``threshold_ma`` indexed ``[diameter][distance][pw]`` (mA).
    """
    grid = [
        [[_threshold_ma(D, d, pw, offset_internodes) for pw in pws_us] for d in distances_mm]
        for D in diameters_um
    ]
    return {
        "diameter_um": list(diameters_um),
        "distance_mm": list(distances_mm),
        "pw_us": list(pws_us),
        "offset_internodes": offset_internodes,
        "threshold_ma": grid,
    }


def conduction(diameters_um, params: ModelParams | None = None) -> dict:
    """Conduction velocity (m/s) of the fast model per diameter.

    Args:
        diameters_um: Fibre diameters (µm).
        params: Model parameters (defaults if None).

    Returns:
        ``{"diameter_um", "cv_m_s"}``.
    """
    response = (params or ModelParams()).response
    return {
        "diameter_um": list(diameters_um),
        "cv_m_s": [_cv_m_s(D, response) for D in diameters_um],
    }


def sfap(diameters_um, radial_mm, params: ModelParams | None = None) -> dict:
    """Single-fibre N1 depth (µV) of the fast model per diameter and radial distance.

    Measured from :func:`closedloop.neural.geometry.sfap_weight_table` (the recording chain's
    weights) for one fibre at a time, with the table's per-population scaling undone.

    Args:
        diameters_um: Fibre diameters (µm).
        radial_mm: Distances from the recording contact (mm).
        params: Model parameters (defaults if None).

    Returns:
        ``{"diameter_um", "radial_mm", "n1_uv"}``, ``n1_uv`` indexed ``[diameter][distance]``.
    """
    resp = (params or ModelParams()).response
    n1 = []
    for D in diameters_um:
        table = geometry.sfap_weight_table(
            np.full(1, float(D)), np.zeros(1), np.zeros(1), np.asarray(radial_mm, float), 0.0, resp
        )
        n1.append([float(v) / geometry.REF_FIBRES for v in table[:, 0]])
    return {"diameter_um": list(diameters_um), "radial_mm": list(radial_mm), "n1_uv": n1}


def latency(diameters_um, pws_us, current_ratios, params: ModelParams | None = None) -> dict:
    """AP times (ms after pulse onset) at the initiation node and 10 mm away.

    Args:
        diameters_um: Fibre diameters (µm).
        pws_us: Pulse widths (µs).
        current_ratios: Stimulus currents relative to threshold (I/I_th).
        params: Model parameters (defaults if None).

    Returns:
        ``{"diameter_um", "pw_us", "current_ratio", "ap_time_ms", "ap_time_far_ms",
        "far_mm"}``, the times indexed ``[diameter][pw][ratio]``.
    """
    resp = (params or ModelParams()).response
    near = [
        [[_initiation_ms(r, pw, resp) for r in current_ratios] for pw in pws_us]
        for _D in diameters_um
    ]
    far = [
        [[t + FAR_NODE_MM / _cv_m_s(D, resp) for t in row] for row in block]
        for D, block in zip(diameters_um, near, strict=True)
    ]
    return {
        "diameter_um": list(diameters_um),
        "pw_us": list(pws_us),
        "current_ratio": list(current_ratios),
        "ap_time_ms": near,
        "ap_time_far_ms": far,
        "far_mm": FAR_NODE_MM,
    }


def results_like(reference: dict, latency_ratios=(1.05, 1.2, 2.0)) -> dict:
    """Every protocol of the fast model on the axes of a normalised reference.

    Args:
        reference: The MRG reference (:func:`closedloop.fidelity.loader.load_reference`);
            a missing section gets the protocol's default axes.
        latency_ratios: I/I_th of the latency protocol when the reference has none.

    Returns:
        ``{"thresholds", ["thresholds_offset"], ["thresholds_heldout"], "cv", "recovery",
        "sfap", "latency"}`` in the reference's layout.
    """
    th = reference.get("thresholds", {})
    axes = [
        th.get(k, v)
        for k, v in (
            ("diameter_um", mrg_protocols.DIAMETERS_UM),
            ("distance_mm", mrg_protocols.DISTANCES_MM),
            ("pw_us", mrg_protocols.PWS_US),
        )
    ]
    out = {"thresholds": thresholds(*axes)}
    off = reference.get("thresholds_offset")
    if off is not None:
        out["thresholds_offset"] = thresholds(
            off["diameter_um"], off["distance_mm"], off["pw_us"], off["offset_internodes"]
        )
    if "thresholds_heldout" in reference:
        out["thresholds_heldout"] = heldout(reference["thresholds_heldout"])
    out["cv"] = conduction(reference.get("cv", {}).get("diameter_um", axes[0]))
    rec = reference.get("recovery", {})
    out["recovery"] = recovery(
        rec.get("interval_ms", RECOVERY_INTERVALS_MS),
        rec.get("pw_us", 100.0),
        rec.get("max_test_ratio", 10.0),
    )
    sf = reference.get("sfap", {})
    out["sfap"] = sfap(sf.get("diameter_um", axes[0]), sf.get("radial_mm", (1.0, 3.0, 5.0)))
    lat = reference.get("latency", {})
    out["latency"] = latency(
        lat.get("diameter_um", (5.7, 10.0, 16.0)),
        lat.get("pw_us", (100.0, 300.0)),
        lat.get("current_ratio", latency_ratios),
    )
    return out
