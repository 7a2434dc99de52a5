"""The sections of the stored MRG reference: their settings, their jobs and their assembly.

:func:`tasks` splits a section into independent jobs (one MRG fibre each) and :func:`assemble`
turns the jobs' results into the section of ``data/mrg_reference.json``;
:mod:`closedloop.fidelity.mrg_reference` runs the jobs and writes the file.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.fidelity import mrg_propagation as prop
from closedloop.fidelity import mrg_protocols as proto
from closedloop.fidelity import mrg_recovery as rec
from closedloop.fidelity.mrg import SIGMA_S_PER_M

SECTIONS = (
    "thresholds",
    "thresholds_offset",
    "thresholds_heldout",
    "cv",
    "recovery",
    "sfap",
    "latency",
    "convergence",
)
GRID_SECTIONS = ("thresholds", "thresholds_offset")
OFFSET_PWS_US = (100.0, 300.0)

FULL = {
    "thresholds": {
        "diameters_um": proto.DIAMETERS_UM,
        "distances_mm": proto.DISTANCES_MM,
        "pws_us": proto.PWS_US,
    },
    "thresholds_offset": {
        "diameters_um": proto.DIAMETERS_UM,
        "distances_mm": proto.DISTANCES_MM,
        "pws_us": OFFSET_PWS_US,
    },
    "thresholds_heldout": {
        "point": {
            "diameters_um": proto.HELDOUT_DIAMETERS_UM,
            "distances_mm": proto.HELDOUT_DISTANCES_MM,
            "pws_us": proto.HELDOUT_PWS_US,
            "offsets_internodes": proto.HELDOUT_OFFSETS,
        },
        "tripolar": {
            "diameters_um": proto.TRIPOLE_DIAMETERS_UM,
            "distances_mm": proto.TRIPOLE_DISTANCES_MM,
            "pws_us": proto.TRIPOLE_PWS_US,
            "offsets_internodes": (0.0,),
        },
    },
    "cv": {"diameters_um": proto.DIAMETERS_UM, "dts_ms": prop.CV_DTS_MS},
    "recovery": {
        "diameters_um": rec.RECOVERY_DIAMETERS_UM,
        "intervals_ms": rec.RECOVERY_INTERVALS_MS,
    },
    "sfap": {
        "diameters_um": proto.DIAMETERS_UM,
        "distances_mm": prop.SFAP_DISTANCES_MM,
        "length_mm": prop.SFAP_LENGTH_MM,
    },
    "latency": {
        "diameters_um": prop.LATENCY_DIAMETERS_UM,
        "pws_us": prop.LATENCY_PWS_US,
        "ratios": prop.LATENCY_RATIOS,
    },
    "convergence": {
        "diameters_um": proto.CONV_DIAMETERS_UM,
        "dts_ms": proto.CONV_DTS_MS,
        "lengths_mm": proto.CONV_LENGTHS_MM,
    },
}
"""Protocol settings of the stored reference."""
QUICK = {
    "thresholds": {"diameters_um": (10.0,), "distances_mm": (2.0, 3.0), "pws_us": (100.0,)},
    "thresholds_offset": {"diameters_um": (10.0,), "distances_mm": (3.0,), "pws_us": (100.0,)},
    "thresholds_heldout": {
        "point": {
            "diameters_um": (9.3,),
            "distances_mm": (2.5,),
            "pws_us": (150.0,),
            "offsets_internodes": (0.25,),
        },
        "tripolar": {
            "diameters_um": (10.0,),
            "distances_mm": (3.0,),
            "pws_us": (100.0,),
            "offsets_internodes": (0.0,),
        },
    },
    "cv": {"diameters_um": (10.0,), "dts_ms": (0.005, 0.0025)},
    "recovery": {"diameters_um": (10.0,), "intervals_ms": (0.6, 1.0, 1.5, 2.0, 3.0, 5.0)},
    "sfap": {"diameters_um": (10.0, 16.0), "distances_mm": (1.0, 3.0), "length_mm": 40.0},
    "latency": {"diameters_um": (10.0,), "pws_us": (100.0,), "ratios": (1.02, 2.0)},
    "convergence": {"diameters_um": (10.0,), "dts_ms": (0.005, 0.0025), "lengths_mm": (30.0, 60.0)},
}
"""A tiny version of every protocol (minutes on one core), for the slow test."""


def _heldout_tasks(cfg: dict) -> list[tuple[tuple, object, dict]]:
    """Jobs of ``thresholds_heldout``: one fibre per configuration, D, offset and length."""
    out = []
    for kind, c in cfg.items():
        for d, off in ((d, off) for d in c["diameters_um"] for off in c["offsets_internodes"]):
            long = [
                r
                for r in c["distances_mm"]
                if kind == "tripolar" and r >= proto.TRIPOLE_LONG_FROM_MM
            ]
            short = [r for r in c["distances_mm"] if r not in long]
            for rs, length in ((short, proto.LENGTH_MM), (long, proto.TRIPOLE_LONG_MM)):
                if rs:
                    out.append(
                        (
                            (kind, d, off, length),
                            proto.heldout_thresholds,
                            {
                                "diameter_um": d,
                                "configuration": kind,
                                "distances_mm": rs,
                                "pws_us": c["pws_us"],
                                "offset_internodes": off,
                                "length_mm": length,
                            },
                        )
                    )
    return out


def tasks(section: str, cfg: dict) -> list[tuple[tuple, object, dict]]:
    """Independent jobs of one section: ``(key, function, kwargs)``, one fibre each."""
    if section == "thresholds_heldout":
        return _heldout_tasks(cfg)
    D = cfg["diameters_um"]
    if section in GRID_SECTIONS:
        off = 0.5 if section == "thresholds_offset" else 0.0
        return [
            (
                (d,),
                proto.thresholds_for_diameter,
                {
                    "diameter_um": d,
                    "distances_mm": cfg["distances_mm"],
                    "pws_us": cfg["pws_us"],
                    "offset_internodes": off,
                },
            )
            for d in D
        ]
    if section == "cv":
        return [
            ((d,), prop.cv_for_diameter, {"diameter_um": d, "dts_ms": cfg["dts_ms"]}) for d in D
        ]
    if section == "recovery":
        return [
            ((d,), rec.recovery_cycle, {"diameter_um": d, "intervals_ms": cfg["intervals_ms"]})
            for d in D
        ]
    if section == "sfap":
        return [
            (
                (d,),
                prop.sfap_for_diameter,
                {
                    "diameter_um": d,
                    "distances_mm": cfg["distances_mm"],
                    "length_mm": cfg["length_mm"],
                },
            )
            for d in D
        ]
    if section == "latency":
        return [
            (
                (d,),
                prop.latency_for_diameter,
                {"diameter_um": d, "pws_us": cfg["pws_us"], "ratios": cfg["ratios"]},
            )
            for d in D
        ]
    points = {(d, dt, proto.LENGTH_MM) for d in D for dt in cfg["dts_ms"]}
    points |= {(d, proto.DT_MS, L) for d in D for L in cfg["lengths_mm"]}
    return [
        (p, proto.convergence_point, {"diameter_um": p[0], "dt_ms": p[1], "length_mm": p[2]})
        for p in sorted(points)
    ]


def _assemble_grid(cfg: dict, res: dict, offset: float) -> dict:
    return {
        "diameter_um": list(cfg["diameters_um"]),
        "distance_mm": list(cfg["distances_mm"]),
        "pw_us": list(cfg["pws_us"]),
        "offset_internodes": offset,
        "threshold_ma": [res[(d,)] for d in cfg["diameters_um"]],
    }


def _assemble_cv(cfg: dict, res: dict) -> dict:
    D = list(cfg["diameters_um"])
    cv0 = [res[(d,)]["cv_dt0_m_per_s"] for d in D]
    a, b = np.polyfit(D, cv0, 1) if len(D) > 1 else (math.nan, math.nan)
    cv = [res[(d,)]["cv_m_per_s"] for d in D]
    k1, k2 = np.argsort(cfg["dts_ms"])[:2]  # the two finest steps
    ratio = cfg["dts_ms"][k2] / cfg["dts_ms"][k1]
    rich = [(ratio * c[k1] - c[k2]) / (ratio - 1.0) for c in cv] if len(cv[0]) > 1 else cv0
    return {
        "diameter_um": D,
        "dt_ms": list(cfg["dts_ms"]),
        "cv_m_s": cv,
        "cv_m_s_dt0": cv0,
        "cv_m_s_richardson": rich,
        "fit_slope_m_s_per_um": float(a),
        "fit_intercept_m_s": float(b),
        "length_mm": proto.LENGTH_MM,
        "method": "AP started by a 10 nA, 0.1 ms intracellular pulse at node 2; CV = "
        "distance / time between the -30 mV crossings (interpolated) at the "
        "nodes at 25 % and 75 % of the fibre; dt -> 0 by the intercept of a "
        "linear least-squares fit of CV on dt (cv_m_s_richardson: first-order "
        "Richardson extrapolation from the two finest steps, for comparison); "
        "then CV = a D + b over D (least squares)",
    }


def _assemble_recovery(cfg: dict, res: dict) -> dict:
    return {
        "pw_us": rec.RECOVERY_PW_US,
        "distance_mm": rec.RECOVERY_DISTANCE_MM,
        "conditioning_ratio": rec.RECOVERY_CONDITIONING,
        "max_test_ratio": rec.RECOVERY_MAX_RATIO,
        "dt_ms": proto.DT_MS,
        "length_mm": proto.LENGTH_MM,
        "curves": [res[(d,)] for d in cfg["diameters_um"]],
        "method": "cathodic monophasic point source; conditioning pulse at 2x the resting "
        "threshold at t = 0; test threshold (0.1 % bisection) = smallest test "
        "current giving a second AP at the node 8 nodes from the centre; null: "
        "none up to 10x (absolutely refractory); ARP by bisection on the "
        "interval at 10x to 0.02 ms (midpoint of arp_bracket_ms)",
    }


def _assemble_sfap(cfg: dict, res: dict) -> dict:
    D, r = list(cfg["diameters_um"]), list(cfg["distances_mm"])
    n1 = [res[(d,)]["n1_uv"] for d in D]
    p2p = [res[(d,)]["p2p_uv"] for d in D]
    slope = (
        (lambda y: [proto.loglog_slope(D, np.abs(np.asarray(y)[:, k])) for k in range(len(r))])
        if len(D) > 1
        else (lambda y: [math.nan] * len(r))
    )
    return {
        "diameter_um": D,
        "radial_mm": r,
        "n1_uv": n1,
        "p2p_uv": p2p,
        "exponent_n1": slope(n1),
        "exponent_p2p": slope(p2p),
        "length_mm": cfg["length_mm"],
        "dt_ms": prop.SFAP_DT_MS,
        "sigma_s_per_m": SIGMA_S_PER_M,
        "method": "i_membrane_ of every section as a point source at its centre "
        "(phi = sum I / (4 pi sigma r)), electrode opposite the centre node; "
        "N1 and peak-to-peak while the AP runs between the nodes at 20 % and "
        "80 % of the fibre; exponent: log-log slope of |value| on D",
    }


def _assemble_latency(cfg: dict, res: dict) -> dict:
    D = list(cfg["diameters_um"])
    return {
        "diameter_um": D,
        "pw_us": list(cfg["pws_us"]),
        "current_ratio": list(cfg["ratios"]),
        "distance_mm": prop.LATENCY_DISTANCE_MM,
        "threshold_ma": [res[(d,)]["threshold_ma"] for d in D],
        "ap_time_centre_ms": [res[(d,)]["t_centre_ms"] for d in D],
        "ap_time_far_ms": [res[(d,)]["t_far_ms"] for d in D],
        "far_node_mm": [res[(d,)]["far_node_mm"] for d in D],
        "method": "AP time = -30 mV crossing (APCount, time-step resolution) after the "
        "onset of a cathodic monophasic pulse, at the centre node (under the "
        "electrode) and at the node about 10 mm away",
    }


def _assemble_convergence(cfg: dict, res: dict) -> dict:
    D, dts, lens = cfg["diameters_um"], cfg["dts_ms"], cfg["lengths_mm"]
    by_dt = [[res[(d, dt, proto.LENGTH_MM)] for dt in dts] for d in D]
    by_len = [[res[(d, proto.DT_MS, L)] for L in lens] for d in D]
    i_fine, i_long = int(np.argmin(dts)), int(np.argmax(lens))
    return {
        "diameter_um": list(D),
        "distance_mm": proto.CONV_DISTANCE_MM,
        "pw_us": proto.CONV_PW_US,
        "default_dt_ms": proto.DT_MS,
        "default_length_mm": proto.LENGTH_MM,
        "dt_ms": list(dts),
        "threshold_vs_dt_ma": by_dt,
        "rel_change_vs_dt": [proto.relative_changes(row, row[i_fine]) for row in by_dt],
        "length_mm": list(lens),
        "threshold_vs_length_ma": by_len,
        "threshold_resolution_rel": proto.CONV_REL_TOL,
        "rel_change_vs_length": [proto.relative_changes(row, row[i_long]) for row in by_len],
    }


def _assemble_heldout(cfg: dict, res: dict) -> list[dict]:
    """All held-out points, ordered by configuration, D, offset, distance and pulse width."""
    del cfg
    pts = [p for key in res for p in res[key]]
    return sorted(
        pts,
        key=lambda p: (
            p["configuration"],
            p["diameter_um"],
            p["offset_internodes"],
            p["distance_mm"],
            p["pw_us"],
        ),
    )


def assemble(section: str, cfg: dict, res: dict) -> dict | list:
    """The section of the reference file from its jobs' results (``{key: result}``)."""
    if section == "thresholds_heldout":
        return _assemble_heldout(cfg, res)
    if section in GRID_SECTIONS:
        return _assemble_grid(cfg, res, 0.5 if section == "thresholds_offset" else 0.0)
    return {
        "cv": _assemble_cv,
        "recovery": _assemble_recovery,
        "sfap": _assemble_sfap,
        "latency": _assemble_latency,
        "convergence": _assemble_convergence,
    }[section](cfg, res)
