"""The rows of the fast-vs-MRG table: each relation against its target of issue 17.

:func:`build_rows` turns both models' metrics (:func:`closedloop.fidelity.compare.side_metrics`)
into :class:`~closedloop.fidelity.table.Row` objects, in table order; the targets are read from
:mod:`closedloop.fidelity.targets` at call time.
"""

from __future__ import annotations

import numpy as np

from closedloop.fidelity import targets as tg
from closedloop.fidelity.metrics import grouped_ratio_stats, ratio_stats
from closedloop.fidelity.rows_signal import (
    convergence_rows,
    cv_rows,
    latency_rows,
    recovery_rows,
    sfap_rows,
)
from closedloop.fidelity.table import Row, comparison_row

__all__ = ["GRIDS", "HELDOUT_LABELS", "build_rows", "threshold_comparison"]


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
        comparison_row(
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
        comparison_row(
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
            comparison_row(
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
        comparison_row(
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


def build_rows(ref: dict, fst: dict, mrg_m: dict, fast_m: dict) -> list[Row]:
    """Every row of the table, in order (see the module docstring for the targets)."""
    stats = threshold_comparison(ref, fst)
    return [
        *_grid_rows(stats),
        *_heldout_rows(stats),
        *_slope_rows(ref, mrg_m, fast_m),
        *_sd_rows(ref, mrg_m, fast_m),
        *cv_rows(mrg_m, fast_m),
        *recovery_rows(mrg_m, fast_m),
        *sfap_rows(ref, mrg_m, fast_m),
        *latency_rows(ref, mrg_m, fast_m),
        *convergence_rows(ref),
    ]
