"""The rows of the fast-vs-MRG table: each relation against its target of issue 17.

:func:`build_rows` turns both models' metrics (:func:`closedloop.fidelity.compare.side_metrics`)
into :class:`~closedloop.fidelity.table.Row` objects, in table order; the targets are read from
:mod:`closedloop.fidelity.targets` at call time.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.fidelity import targets as tg
from closedloop.fidelity.metrics import grouped_ratio_stats, ratio_stats
from closedloop.fidelity.table import Row

__all__ = ["GRIDS", "HELDOUT_LABELS", "build_rows", "threshold_comparison"]


def _finite(v) -> bool:
    """Whether ``v`` is a finite number."""
    return v is not None and math.isfinite(float(v))


def _row(group, relation, ref, got, unit, tol=None, *, rel=False, counted=True, note=""):
    """A row comparing ``got`` with ``ref``: |got - ref| <= tol (relative if ``rel``).

    Without ``tol`` the row informs; without a finite ``ref`` it has no verdict.
    """
    if tol is None:
        return Row(group, relation, ref, got, unit, note=note)
    if rel:
        target = f"within {100 * tol:g} %"
    else:
        target = f"within {tol:g}" + {"1": "", "%": " points"}.get(unit, f" {unit}")
    if not _finite(ref):
        return Row(group, relation, None, got, unit, target, None, counted, note)
    err = abs(float(got) - float(ref)) if _finite(got) else math.inf
    if rel:
        err /= abs(float(ref))
    return Row(group, relation, float(ref), got, unit, target, err <= tol + 1e-12, counted, note)


GRIDS = (
    ("thresholds", "node under the source"),
    ("thresholds_offset", "source ½ internode off the node"),
)
"""The threshold grids compared point by point, with their labels."""


HELDOUT_LABELS = {
    "point": "point source, intermediate D, d, PW and offset",
    "tripolar": "tripolar guarded cathode (+0.5/-1/+0.5, 7 mm pitch)",
}
"""Labels of the held-out configurations (section ``thresholds_heldout``, not in the fit)."""


def threshold_comparison(ref: dict, fst: dict) -> dict:
    """:func:`~closedloop.fidelity.metrics.ratio_stats` of every grid the reference has.

    The held-out points (``thresholds_heldout``) give
    :func:`~closedloop.fidelity.metrics.grouped_ratio_stats` per configuration.
    """
    out = {
        name: ratio_stats(
            fst[name]["threshold_ma"], ref[name]["threshold_ma"], tg.THRESHOLD_TOL_REL
        )
        for name, _ in GRIDS
        if name in ref
    }
    if "thresholds_heldout" in ref:
        h = ref["thresholds_heldout"]
        out["thresholds_heldout"] = grouped_ratio_stats(
            fst["thresholds_heldout"]["threshold_ma"],
            h["threshold_ma"],
            h["configuration"],
            tg.THRESHOLD_TOL_REL,
        )
    return out


def _heldout_rows(stats: dict) -> list[Row]:
    """Held-out thresholds: max |fast/MRG - 1| per configuration (counted), and the total."""
    g, tol = "held-out thresholds", tg.THRESHOLD_TOL_REL
    target = f"all within {100 * tol:g} %"
    if "thresholds_heldout" not in stats:
        return [
            Row(
                g,
                "threshold fast/MRG at points not in the fit: max |error|",
                None,
                None,
                "%",
                target,
            )
        ]
    rows = []
    for kind, st in stats["thresholds_heldout"].items():
        note = (
            f"median |error| {100 * st['median_abs_error']:.1f} %, median ratio "
            f"{st['median_ratio']:.3f}; {st['n_beyond']} of {st['n_points']} points "
            f"beyond {100 * tol:g} %"
        )
        if kind == "all":
            rows.append(
                Row(
                    g,
                    "threshold fast/MRG, all held-out points: max |error|",
                    None,
                    100.0 * st["max_abs_error"],
                    "%",
                    note=note,
                )
            )
        else:
            rows.append(
                Row(
                    g,
                    f"threshold fast/MRG, {HELDOUT_LABELS.get(kind, kind)}: max |error|",
                    None,
                    100.0 * st["max_abs_error"],
                    "%",
                    target,
                    st["n_beyond"] == 0,
                    note=note,
                )
            )
    return rows


def _grid_rows(stats: dict) -> list[Row]:
    """Threshold fast/MRG over the on-node grid and the half-internode-offset grid."""
    rows = []
    target = f"all within {100 * tg.THRESHOLD_TOL_REL:g} %"
    for name, label in GRIDS:
        relation = f"threshold fast/MRG, {label}: max |error|"
        if name not in stats:
            rows.append(Row("thresholds", relation, None, None, "%", target))
            continue
        st = stats[name]
        note = (
            f"median ratio {st['median_ratio']:.3f}; {st['n_beyond']} of {st['n_points']} "
            f"points beyond {100 * tg.THRESHOLD_TOL_REL:g} %"
        )
        rows.append(
            Row(
                "thresholds",
                relation,
                None,
                100.0 * st["max_abs_error"],
                "%",
                target,
                st["n_beyond"] == 0,
                note=note,
            )
        )
    return rows


def _pw_index(sec: dict) -> list[tuple[float, int]]:
    """(pw, index) of the report pulse widths present on the grid."""
    pws = [float(p) for p in sec["pw_us"]]
    return [(p, pws.index(p)) for p in tg.REPORT_PWS_US if p in pws]


def _slope_rows(ref: dict, mrg_m: dict, fast_m: dict) -> list[Row]:
    """Distance slope per (D, PW) and diameter slope per (d, PW), at the report PWs."""
    if "thresholds" not in mrg_m:
        return [
            Row(
                "slopes",
                "distance and diameter slopes",
                None,
                None,
                "1",
                f"within {tg.SLOPE_TOL:g}",
            )
        ]
    sec, mt, ft = ref["thresholds"], mrg_m["thresholds"], fast_m["thresholds"]
    lo, hi = tg.DISTANCE_SLOPE_RANGE_MM
    rows = [
        _row(
            "slopes",
            f"distance slope {lo:g}-{hi:g} mm, D {D:g} µm, {p:g} µs",
            mt["distance_slope"][i][k],
            ft["distance_slope"][i][k],
            "1",
            tg.SLOPE_TOL,
        )
        for p, k in _pw_index(sec)
        for i, D in enumerate(sec["diameter_um"])
    ]
    rows += [
        _row(
            "slopes",
            f"diameter slope, d {d:g} mm, {p:g} µs",
            mt["diameter_slope"][j][k],
            ft["diameter_slope"][j][k],
            "1",
            tg.SLOPE_TOL,
        )
        for p, k in _pw_index(sec)
        for j, d in enumerate(sec["distance_mm"])
    ]
    return rows


def _sd_rows(ref: dict, mrg_m: dict, fast_m: dict) -> list[Row]:
    """Chronaxie per diameter at ``targets.CHRONAXIE_DISTANCE_MM``, and the worst (D, d)."""
    if "thresholds" not in mrg_m:
        return [
            Row(
                "strength-duration",
                "chronaxie",
                None,
                None,
                "µs",
                f"within {100 * tg.CHRONAXIE_TOL_REL:g} %",
            )
        ]
    sec = ref["thresholds"]
    mc = np.asarray(mrg_m["thresholds"]["chronaxie_us"], float)
    fc = np.asarray(fast_m["thresholds"]["chronaxie_us"], float)
    rows = []
    dists = [float(d) for d in sec["distance_mm"]]
    if tg.CHRONAXIE_DISTANCE_MM in dists:
        j = dists.index(tg.CHRONAXIE_DISTANCE_MM)
        rows += [
            _row(
                "strength-duration",
                f"chronaxie, D {D:g} µm, d {dists[j]:g} mm",
                mc[i, j],
                fc[i, j],
                "µs",
                tg.CHRONAXIE_TOL_REL,
                rel=True,
            )
            for i, D in enumerate(sec["diameter_um"])
        ]
    err = np.abs(fc / mc - 1.0)
    i, j = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(err), err, np.inf))), err.shape)
    rows.append(
        _row(
            "strength-duration",
            f"chronaxie, worst of all (D, d): D {sec['diameter_um'][i]:g} µm, d {dists[j]:g} mm",
            mc[i, j],
            fc[i, j],
            "µs",
            tg.CHRONAXIE_TOL_REL,
            rel=True,
            note=f"{int(np.sum(~(err <= tg.CHRONAXIE_TOL_REL)))} of {err.size} (D, d) "
            f"beyond {100 * tg.CHRONAXIE_TOL_REL:g} %",
        )
    )
    return rows


def _cv_rows(mrg_m: dict, fast_m: dict) -> list[Row]:
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
        _row(
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
        _row(
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
        _row(
            "conduction",
            "CV fit intercept b",
            m["fit_intercept_m_s"],
            f["fit_intercept_m_s"],
            "m/s",
        )
    )
    return rows


def _recovery_rows(mrg_m: dict, fast_m: dict) -> list[Row]:
    """Recovery-cycle features, with the absolute refractory period against MRG and human."""
    m = mrg_m.get("recovery", {})
    f = fast_m["recovery"]
    t, p = tg.RECOVERY_TIME_TOL_MS, tg.RECOVERY_DEPTH_TOL_PCT
    g = "recovery cycle"
    return [
        _row(
            g,
            "absolute refractory period vs MRG",
            m.get("arp_ms"),
            f["arp_ms"],
            "ms",
            t,
            counted=tg.ARP_TARGET == "mrg",
        ),
        _row(
            g,
            "absolute refractory period vs human sensory [Tackmann & Lehmann 1974]",
            tg.HUMAN_ARP_MS,
            f["arp_ms"],
            "ms",
            t,
            counted=tg.ARP_TARGET == "human",
        ),
        _row(
            g,
            "end of the relative refractory period (ratio back to 1)",
            m.get("rrp_end_ms"),
            f["rrp_end_ms"],
            "ms",
            t,
        ),
        _row(g, "supernormal depth", m.get("supernormal_pct"), f["supernormal_pct"], "%", p),
        _row(g, "supernormal time", m.get("supernormal_ms"), f["supernormal_ms"], "ms", t),
        _row(g, "late subnormal depth", m.get("subnormal_pct"), f["subnormal_pct"], "%", p),
        _row(g, "late subnormal time", m.get("subnormal_ms"), f["subnormal_ms"], "ms"),
    ]


def _sfap_rows(ref: dict, mrg_m: dict, fast_m: dict) -> list[Row]:
    """SFAP exponent in D per radial distance vs MRG, and against the human range."""
    g, tol = "single-fibre potential", tg.SFAP_EXPONENT_TOL
    f_exp = fast_m["sfap"]["exponent"]
    if "sfap" in mrg_m:
        radial = ref["sfap"]["radial_mm"]
        wanted = tg.SFAP_TARGET_RADIAL_MM or radial
        rows = [
            _row(
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
            _row(
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


def _latency_rows(ref: dict, mrg_m: dict, fast_m: dict) -> list[Row]:
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


def _convergence_rows(ref: dict) -> list[Row]:
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


def build_rows(ref: dict, fst: dict, mrg_m: dict, fast_m: dict) -> list[Row]:
    """Every row of the table, in order (see the module docstring for the targets)."""
    stats = threshold_comparison(ref, fst)
    return [
        *_grid_rows(stats),
        *_heldout_rows(stats),
        *_slope_rows(ref, mrg_m, fast_m),
        *_sd_rows(ref, mrg_m, fast_m),
        *_cv_rows(mrg_m, fast_m),
        *_recovery_rows(mrg_m, fast_m),
        *_sfap_rows(ref, mrg_m, fast_m),
        *_latency_rows(ref, mrg_m, fast_m),
        *_convergence_rows(ref),
    ]
