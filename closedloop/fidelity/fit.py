"""Fit the fast threshold rule (:mod:`closedloop.neural.fibre`) to the stored MRG thresholds.

For each diameter D and pulse width PW of the MRG grid, the weight decay ``rho`` and the
critical value ``MDF_th`` minimise the spread of ``log(I_MRG * max MDF)`` over the distances
(and the half-internode offsets where the reference has them), so ``MDF_th`` is the geometric
mean of ``I_MRG * max MDF``. The strength-duration exponent ``beta`` of the per-fibre law
``I_rh + Q PW^-beta`` is then chosen to minimise the largest error of the whole fast path over
the grid. ``benchmarks/fit_fibre_model.py`` writes the result to
``closedloop/neural/data/fibre_mdf.json``.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
from scipy.optimize import minimize_scalar

from closedloop.neural import fibre

BETA_GRID = np.round(np.arange(0.80, 1.0001, 0.005), 3)


def _points(reference: dict, a: int, k: int) -> list[tuple[float, float, float]]:
    """(distance mm, offset internodes, MRG threshold mA) of diameter ``a``, pulse width ``k``."""
    pts = []
    for key in ("thresholds", "thresholds_offset"):
        sec = reference.get(key)
        if not sec:
            continue
        pw = reference["thresholds"]["pw_us"][k]
        if pw not in sec["pw_us"] or sec["diameter_um"] != reference["thresholds"]["diameter_um"]:
            continue
        kk = sec["pw_us"].index(pw)
        off = float(sec.get("offset_internodes", 0.0))
        pts += [(d, off, sec["threshold_ma"][a][b][kk]) for b, d in enumerate(sec["distance_mm"])]
    return pts


def _fit_cell(diameter_um: float, pts) -> tuple[float, float, float]:
    """``(rho, MDF_th mV, max relative error)`` for one diameter and pulse width."""
    ves = [fibre.node_potentials(diameter_um, d, off) for d, off, _ in pts]
    ths = np.array([t for *_, t in pts])
    scratch = np.empty(max(v.size for v in ves))

    def logs(rho: float) -> np.ndarray:
        return np.log(ths * np.array([fibre.mdf_peak(v, rho, scratch) for v in ves]))

    rho = minimize_scalar(
        lambda r: float(np.var(logs(r))),
        bounds=(0.0, 0.98),
        method="bounded",
        options={"xatol": 1e-5},
    ).x
    e = logs(rho)
    th = float(np.exp(e.mean()))
    return float(rho), th, float(np.max(np.abs(np.exp(e.mean() - e) - 1.0)))


def _sd_errors(reference: dict, table: dict, beta: float) -> np.ndarray:
    """Relative errors of the fast path (driving function, then the SD law) on the MRG grid."""
    sec = reference["thresholds"]
    tab = (
        np.log(np.asarray(table["diameter_um"], float)),
        np.log(np.asarray(table["pw_us"], float)),
        np.asarray(table["rho"], float),
        np.log(np.asarray(table["mdf_threshold_mv"], float)),
    )
    pws = np.asarray(fibre.SD_PWS_US)
    s = np.array([pw**-beta for pw in fibre.SD_PWS_US])
    errs = []
    for a, dia in enumerate(sec["diameter_um"]):
        for b, dist in enumerate(sec["distance_mm"]):
            ve = fibre.node_potentials(dia, dist)
            rhos, ths = fibre.fibre_laws(float(dia), tab, pws)
            r, q = fibre.sd_law(
                ve, rhos, ths, s, 1.0, np.empty(pws.size), np.empty((ve.size, pws.size))
            )
            for k, pw in enumerate(sec["pw_us"]):
                errs.append((r + q * pw**-beta) / sec["threshold_ma"][a][b][k] - 1.0)
    return np.asarray(errs)


def fit_mdf(reference: dict) -> dict:
    """The fitted table (JSON-ready) from a reference dict (``fidelity/data/mrg_reference.json``).

    Returns:
        ``{"format", "diameter_um", "pw_us", "rho", "mdf_threshold_mv", "sd_exponent", "fit",
        "made"}`` with the fit errors under ``"fit"``.
    """
    sec = reference["thresholds"]
    dias, pws = list(sec["diameter_um"]), list(sec["pw_us"])
    rho = np.zeros((len(dias), len(pws)))
    mth, err = np.zeros_like(rho), np.zeros_like(rho)
    for a, dia in enumerate(dias):
        for k in range(len(pws)):
            rho[a, k], mth[a, k], err[a, k] = _fit_cell(dia, _points(reference, a, k))
    table = {
        "format": "closedloop.fibre_mdf/1",
        "diameter_um": dias,
        "pw_us": pws,
        "rho": rho.round(6).tolist(),
        "mdf_threshold_mv": mth.round(6).tolist(),
    }
    worst = {float(b): float(np.max(np.abs(_sd_errors(reference, table, b)))) for b in BETA_GRID}
    beta = min(worst, key=worst.get)
    final = _sd_errors(reference, table, beta)
    table["sd_exponent"] = beta
    table["fit"] = {
        "direct_max_rel_error": float(err.max()),
        "direct_max_rel_error_per_cell": err.round(5).tolist(),
        "sd_law_max_rel_error": float(np.max(np.abs(final))),
        "sd_law_median_rel_error": float(np.median(np.abs(final))),
        "points": int(final.size),
        "offset_points_used": "thresholds_offset" in reference,
    }
    table["made"] = {
        "by": "benchmarks/fit_fibre_model.py (closedloop.fidelity.fit.fit_mdf)",
        "reference": reference.get("meta", {}),
        "date": _dt.date.today().isoformat(),
    }
    return table
