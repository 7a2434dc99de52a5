"""The fast fibre-threshold rule: a modified driving function fitted to MRG in NEURON.

A myelinated fibre of diameter D has nodes of Ranvier every ΔX(D) along its length (the
MRG-interpolation polynomial, McIntyre et al. 2002 as implemented in PyFibers/ASCENT). For a
potential Ve_n (mV per mA of cathodic current) at its nodes, the activating function is
``AF_n = Ve_{n-1} - 2 Ve_n + Ve_{n+1}``, and the modified driving function (Peterson, Izad &
Tyler 2011; Warman, Grill & Durand 1992) weighs it over neighbouring nodes::

    MDF_n = sum_k rho^|k| AF_{n+k}        (weights w_k = rho^|k|, w_0 = 1)
    I_th  = MDF_th / max_n MDF_n          (mA)

The geometric weights are the passive steady-state cable's (a weighted sum of the activating
function with weights decaying over a length of a few internodes, the Warman structure); their
decay ``rho`` and the critical value ``MDF_th`` depend on D and the pulse width and are fitted to
MRG thresholds for a point source in a homogeneous isotropic medium (``fidelity/fit.py``; the
table is ``data/fibre_mdf.json``). Between the table's diameters and pulse widths they are
interpolated bilinearly in (log D, log PW).

The patient model stores, per fibre and CSF thickness, a strength-duration law
``I_th(PW) = I_rh + Q * PW^-beta`` (:data:`SD_EXPONENT` beta, fitted to MRG) fitted over
:data:`SD_PWS_US` by least squares on relative error; :func:`point_source_threshold_ma` goes
through the same law, so the comparison with MRG tests what the kernel computes.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

import numpy as np
from numba import njit

from closedloop.neural.params import ExcitabilityParams

SIGMA_S_PER_M = 0.6
"""Conductivity of the comparison's homogeneous isotropic medium (S/m)."""
SD_PWS_US = (30.0, 60.0, 100.0, 200.0, 300.0, 500.0, 1000.0)
"""Pulse widths (µs) over which each fibre's strength-duration law is fitted."""
MDF_FILE = "fibre_mdf.json"


@njit(cache=True)
def internode_mm(diameter_um):
    """Node-to-node distance (mm) of an MRG fibre (MRG-interpolation polynomial, 2-16 µm)."""
    d = diameter_um
    return (-8.215284 * d * d + 272.4201 * d - 780.2411) * 1e-3


@njit(cache=True, nogil=True)
def mdf_peak(ve, rho, scratch):
    """Largest modified driving function over the nodes (mV per mA; ``ve`` in mV per mA).

    ``sum_k rho^|k| AF_{n+k}`` at every interior node, by one forward and one backward
    recursion (linear in the node count); ``scratch`` holds at least ``ve.size`` floats (any
    stride). At least 1e-12, so that thresholds stay finite. The only copy of the recursion:
    :func:`mdf_peaks` loops over it.
    """
    m = ve.size - 2
    fwd = 0.0
    for i in range(m):  # scratch[i] = sum_{k>=1} rho^k AF_{i-k}
        scratch[i] = fwd
        fwd = rho * (fwd + (ve[i] - 2.0 * ve[i + 1] + ve[i + 2]))
    best, bwd = 1e-12, 0.0
    for i in range(m - 1, -1, -1):
        af = ve[i] - 2.0 * ve[i + 1] + ve[i + 2]
        best = max(best, af + scratch[i] + bwd)
        bwd = rho * (bwd + af)
    return best


@lru_cache(maxsize=1)
def mdf_table() -> dict:
    """The fitted table, read once from the package data.

    Keys: ``diameter_um``, ``pw_us``, ``rho[D][PW]``, ``mdf_threshold_mv[D][PW]``,
    ``sd_exponent`` and the fit's provenance.
    """
    text = resources.files("closedloop.neural").joinpath("data", MDF_FILE).read_text()
    return json.loads(text)


def table_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(log D, log PW, rho, log MDF_th)`` of the table as float64 arrays for the kernels."""
    t = mdf_table()
    return (
        np.log(np.asarray(t["diameter_um"], float)),
        np.log(np.asarray(t["pw_us"], float)),
        np.asarray(t["rho"], float),
        np.log(np.asarray(t["mdf_threshold_mv"], float)),
    )


def sd_exponent() -> float:
    """The strength-duration exponent beta of ``I_rh + Q * PW^-beta`` (fitted to MRG)."""
    return float(mdf_table()["sd_exponent"])


@njit(cache=True, nogil=True)
def _bracket(grid, x):
    """Cell index and fraction of ``x`` on a sorted grid (clamped to its ends)."""
    if x <= grid[0]:
        return 0, 0.0
    if x >= grid[-1]:
        return grid.size - 2, 1.0
    j = np.searchsorted(grid, x) - 1
    return j, (x - grid[j]) / (grid[j + 1] - grid[j])


@njit(cache=True, nogil=True)
def mdf_params(log_d, log_pw, rho_tab, log_th_tab, diameter_um, pw_us):
    """``(rho, MDF_th in mV)`` for one diameter (µm) and pulse width (µs), bilinear in logs."""
    i, a = _bracket(log_d, math.log(diameter_um))
    j, b = _bracket(log_pw, math.log(pw_us))
    w00, w01, w10, w11 = (1 - a) * (1 - b), (1 - a) * b, a * (1 - b), a * b
    rho = (
        w00 * rho_tab[i, j]
        + w01 * rho_tab[i, j + 1]
        + w10 * rho_tab[i + 1, j]
        + w11 * rho_tab[i + 1, j + 1]
    )
    lt = (
        w00 * log_th_tab[i, j]
        + w01 * log_th_tab[i, j + 1]
        + w10 * log_th_tab[i + 1, j]
        + w11 * log_th_tab[i + 1, j + 1]
    )
    return rho, math.exp(lt)


@njit(cache=True, nogil=True)
def sd_fit(thresholds_ma, s):
    """Least-squares ``(I_rh, Q)`` of ``I = I_rh + Q s`` on relative error (``s = PW^-beta``)."""
    a11 = a12 = a22 = b1 = b2 = 0.0
    for k in range(s.size):
        u, v = 1.0 / thresholds_ma[k], s[k] / thresholds_ma[k]
        a11 += u * u
        a12 += u * v
        a22 += v * v
        b1 += u
        b2 += v
    det = a11 * a22 - a12 * a12
    return (a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det


@njit(cache=True, nogil=True)
def fibre_laws(diameter_um, tab, pws_us):
    """``(rho, MDF_th)`` arrays of one fibre at each pulse width (µs); ``tab``: table_arrays()."""
    rhos, ths = np.empty(pws_us.size), np.empty(pws_us.size)
    for k in range(pws_us.size):
        rhos[k], ths[k] = mdf_params(tab[0], tab[1], tab[2], tab[3], diameter_um, pws_us[k])
    return rhos, ths


@njit(cache=True, nogil=True)
def mdf_peaks(ve, rhos, scratch, out):
    """:func:`mdf_peak` at every decay of ``rhos``, into ``out``.

    A loop over :func:`mdf_peak` (one copy of the recursion). ``scratch`` is a C-contiguous
    array of at least ``ve.size * rhos.size`` floats (e.g. (``ve.size``, ``rhos.size``)), used
    as ``rhos.size`` contiguous blocks of ``ve.size``.
    """
    n, flat = ve.size, scratch.reshape(-1)
    for k in range(rhos.size):
        out[k] = mdf_peak(ve, rhos[k], flat[k * n : (k + 1) * n])


@njit(cache=True, nogil=True)
def sd_law(ve, rhos, ths, s, scale, th_buf, scratch):
    """``(I_rh, Q)`` (mA, mA·µs^beta) of a fibre with node potentials ``ve`` (mV per mA).

    ``rhos``, ``ths``: :func:`fibre_laws` at the anchor pulse widths, ``s`` their
    ``PW^-beta``; ``scale`` multiplies every threshold; ``th_buf`` (``s`` size) and
    ``scratch`` (``ve.size`` x ``s.size``) are scratch.
    """
    mdf_peaks(ve, rhos, scratch, th_buf)
    for k in range(s.size):
        th_buf[k] = scale * ths[k] / th_buf[k]
    return sd_fit(th_buf, s)


def node_potentials(
    diameter_um: float,
    distance_mm: float,
    offset_internodes: float = 0.0,
    sigma_s_per_m: float = SIGMA_S_PER_M,
    half_span_mm: float = 60.0,
) -> np.ndarray:
    """Potential (mV per mA of cathodic current) at the nodes of a straight fibre.

    Args:
        diameter_um: Fibre diameter (µm).
        distance_mm: Perpendicular distance of the point source (mm).
        offset_internodes: Longitudinal offset of the source from a node, in internodes.
        sigma_s_per_m: Conductivity of the homogeneous isotropic medium (S/m).
        half_span_mm: Fibre length on each side of the source (mm).
    """
    step = internode_mm(diameter_um)
    n = int(math.ceil(half_span_mm / step))
    x = (np.arange(-n, n + 1) - offset_internodes) * step
    return -1.0 / (4.0 * math.pi * sigma_s_per_m * 1e-3 * np.sqrt(x * x + distance_mm**2))


def point_source_threshold_ma(
    diameter_um: float,
    distance_mm: float,
    pw_us: float,
    *,
    offset_internodes: float = 0.0,
    sigma_s_per_m: float = SIGMA_S_PER_M,
    params: ExcitabilityParams | None = None,
    sd_law_fit: bool = True,
) -> float:
    """Threshold (mA) of one fibre for a cathodic monophasic point source, as the model sees it.

    Args:
        diameter_um: Fibre diameter (µm).
        distance_mm: Perpendicular source-fibre distance (mm).
        pw_us: Pulse width (µs).
        offset_internodes: Longitudinal offset of the source from a node, in internodes.
        sigma_s_per_m: Conductivity of the homogeneous isotropic medium (S/m).
        params: Excitability parameters; their ``threshold_scale`` multiplies the result
            (set to 1 for the comparison with MRG, which this function does by default).
        sd_law_fit: Go through the stored strength-duration law (as the patient model does);
            False evaluates the driving function at ``pw_us`` directly.

    Returns:
        The threshold current (mA) without jitter, refractoriness or adaptation.
    """
    scale = 1.0 if params is None else params.threshold_scale
    ve = node_potentials(diameter_um, distance_mm, offset_internodes, sigma_s_per_m)
    tab = table_arrays()
    if not sd_law_fit:
        rho, th = mdf_params(*tab, float(diameter_um), float(pw_us))
        return float(scale * th / mdf_peak(ve, rho, np.empty(ve.size)))
    beta = sd_exponent()
    pws = np.asarray(SD_PWS_US)
    s = np.array([pw**-beta for pw in SD_PWS_US])
    rhos, ths = fibre_laws(float(diameter_um), tab, pws)
    r, q = sd_law(ve, rhos, ths, s, scale, np.empty(pws.size), np.empty((ve.size, pws.size)))
    return float(r + q * pw_us**-beta)
