"""The fast-vs-MRG table's rows of conduction, recovery and the recorded signal.

Conduction velocity, recovery after a spike, single-fibre action potentials, latencies and
the convergence of the fast model's estimates; :func:`closedloop.fidelity.rows.build_rows`
puts them after the threshold rows.
"""

from __future__ import annotations

import numpy as np

from closedloop.fidelity import targets as tg
from closedloop.fidelity.table import Row, comparison_row


def cv_rows(mrg_m: dict, fast_m: dict) -> list[Row]:
    """CV per diameter (dt -> 0) and the linear fit's slope and intercept."""
    if "cv" not in mrg_m:
        return [
            Row(
                "conduction",
                "CV per diameter (dt -> 0)",
                None,
                None,
                "m/s",
                f"within {100 * tg.CV_TOL_REL:g} %",
            )
        ]
    m, f = mrg_m["cv"], fast_m["cv"]
    rows = [
        comparison_row(
            "conduction",
            f"CV, D {D:g} µm",
            m["cv_m_s"][i],
            f["cv_m_s"][i],
            "m/s",
            tg.CV_TOL_REL,
            rel=True,
        )
        for i, D in enumerate(m["diameter_um"])
    ]
    rows.append(
        comparison_row(
            "conduction",
            "CV fit slope a (CV = a D + b)",
            m["fit_slope_m_s_per_um"],
            f["fit_slope_m_s_per_um"],
            "m/s per µm",
            tg.CV_TOL_REL,
            rel=True,
        )
    )
    rows.append(
        comparison_row(
            "conduction",
            "CV fit intercept b",
            m["fit_intercept_m_s"],
            f["fit_intercept_m_s"],
            "m/s",
        )
    )
    return rows


def recovery_rows(mrg_m: dict, fast_m: dict) -> list[Row]:
    """Recovery-cycle features, with the absolute refractory period against MRG and human."""
    m = mrg_m.get("recovery", {})
    f = fast_m["recovery"]
    t, p = tg.RECOVERY_TIME_TOL_MS, tg.RECOVERY_DEPTH_TOL_PCT
    g = "recovery cycle"
    return [
        comparison_row(
            g,
            "absolute refractory period vs MRG",
            m.get("arp_ms"),
            f["arp_ms"],
            "ms",
            t,
            counted=tg.ARP_TARGET == "mrg",
        ),
        comparison_row(
            g,
            "absolute refractory period vs human sensory [Tackmann & Lehmann 1974]",
            tg.HUMAN_ARP_MS,
            f["arp_ms"],
            "ms",
            t,
            counted=tg.ARP_TARGET == "human",
        ),
        comparison_row(
            g,
            "end of the relative refractory period (ratio back to 1)",
            m.get("rrp_end_ms"),
            f["rrp_end_ms"],
            "ms",
            t,
        ),
        comparison_row(
            g, "supernormal depth", m.get("supernormal_pct"), f["supernormal_pct"], "%", p
        ),
        comparison_row(
            g, "supernormal time", m.get("supernormal_ms"), f["supernormal_ms"], "ms", t
        ),
        comparison_row(
            g, "late subnormal depth", m.get("subnormal_pct"), f["subnormal_pct"], "%", p
        ),
        comparison_row(g, "late subnormal time", m.get("subnormal_ms"), f["subnormal_ms"], "ms"),
    ]


def sfap_rows(ref: dict, mrg_m: dict, fast_m: dict) -> list[Row]:
    """SFAP exponent in D per radial distance vs MRG, and against the human range."""
    g, tol = "single-fibre potential", tg.SFAP_EXPONENT_TOL
    f_exp = fast_m["sfap"]["exponent"]
    if "sfap" in mrg_m:
        radial = ref["sfap"]["radial_mm"]
        wanted = tg.SFAP_TARGET_RADIAL_MM or radial
        rows = [
            comparison_row(
                g,
                f"SFAP N1 exponent in D, {r:g} mm",
                mrg_m["sfap"]["exponent"][k],
                f_exp[k],
                "1",
                tol if r in wanted else None,
                counted=tg.SFAP_TARGET == "mrg",
            )
            for k, r in enumerate(radial)
        ]
    else:
        rows = [
            comparison_row(
                g,
                "SFAP N1 exponent in D",
                None,
                float(np.mean(f_exp)),
                "1",
                tol,
                counted=tg.SFAP_TARGET == "mrg",
            )
        ]
    lo, hi = tg.HUMAN_SFAP_EXPONENT
    mean = float(np.mean(f_exp))
    rows.append(
        Row(
            g,
            "SFAP exponent vs human single units [JNNP 1981 44(6):476]",
            (lo, hi),
            mean,
            "1",
            f"in [{lo:g}, {hi:g}]",
            lo <= mean <= hi,
            tg.SFAP_TARGET == "human",
        )
    )
    return rows


def latency_rows(ref: dict, mrg_m: dict, fast_m: dict) -> list[Row]:
    """Initiation time at I/I_th 1.05, 1.2 and 2 per (D, PW).

    Information rows unless ``targets.LATENCY_TOL_MS`` is set (then all three within it).
    """
    ratios = " / ".join(f"{r:g}" for r in tg.LATENCY_RATIOS)
    tol = tg.LATENCY_TOL_MS
    target = "" if tol is None else f"within {tol:g} ms"
    if "latency" not in mrg_m:
        return [
            Row(
                "latency",
                f"AP initiation time at I/I_th {ratios}",
                None,
                None,
                "ms",
                target,
                note="" if target else "no reference data",
            )
        ]
    sec, m, f = ref["latency"], mrg_m["latency"], fast_m["latency"]
    rows = []
    for i, D in enumerate(sec["diameter_um"]):
        for k, p in enumerate(sec["pw_us"]):
            a, b = np.asarray(m["initiation_ms"][i][k]), np.asarray(f["initiation_ms"][i][k])
            met = (
                None
                if tol is None or not np.isfinite(a).all()
                else bool(np.all(np.abs(b - a) <= tol + 1e-12))
            )
            rows.append(
                Row(
                    "latency",
                    f"AP initiation time at I/I_th {ratios}, D {D:g} µm, {p:g} µs",
                    tuple(a.tolist()),
                    tuple(b.tolist()),
                    "ms",
                    target,
                    met,
                )
            )
    return rows


def convergence_rows(ref: dict) -> list[Row]:
    """MRG's own convergence: threshold change at the default dt and length (information)."""
    sec = ref.get("convergence")
    if not sec:
        return []
    rows = []
    for i, D in enumerate(sec.get("diameter_um", [])):
        for key, axis, default in (
            ("rel_change_vs_dt", "dt_ms", "default_dt_ms"),
            ("rel_change_vs_length", "length_mm", "default_length_mm"),
        ):
            values, ref_axis = sec.get(key), sec.get(axis)
            if not values or not ref_axis or sec.get(default) not in ref_axis:
                continue
            k = ref_axis.index(sec[default])
            rows.append(
                Row(
                    "MRG convergence",
                    f"MRG threshold change at {axis[:-3]} "
                    f"{sec[default]:g} vs the finest/longest, D {D:g} µm",
                    100.0 * float(values[i][k]),
                    None,
                    "%",
                )
            )
    return rows
