"""Static geometry tables: fibre thresholds and SFAP weights on a grid of CSF thickness.

The volume conductor is a homogeneous anisotropic medium with point sources (shared/domain.md
section 3). A fibre runs along the cord (x) at depth ``d`` below the cord surface and lateral
position ``y``; the lead lies on the dura, ``csf`` above the cord. The drive on a fibre is the
largest second difference of the extracellular potential over its nodes of Ranvier (internode
100 x diameter), divided by the internode squared: a discrete activating function in mV/mm² per
mA. Its threshold at rheobase is ``af_threshold * (10 µm / D)^diameter_exponent / drive``.

Tables are tabulated on a uniform CSF grid, so that moving the cord costs one linear
interpolation per fibre per pulse.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

CSF_GRID_MM = (0.5, 12.0, 80)
"""Lowest and highest tabulated CSF thickness (mm) and the number of grid points."""
REF_DIAMETER_UM = 10.0
REF_DISTANCE_MM = 4.0
REF_FIBRES = 2048


def csf_grid() -> np.ndarray:
    """The CSF thickness grid (mm)."""
    lo, hi, n = CSF_GRID_MM
    return np.linspace(lo, hi, n)


@njit(cache=True, error_model="numpy")
def fibre_drive(diameter_um, lateral_mm, depth_mm, phase, csf_mm, src_x, src_w, y_lead, sl, st,
                span_mm, x_buf, v_buf):
    """Peak discrete activating function of one fibre (mV/mm² per mA of cathodic current).

    The extracellular potential (mV per mA) at a node is the sum over the weighted point sources
    of ``w / (4 pi sqrt(st² dx² + sl st dy² + sl st z²))``; it is formed for all nodes at once,
    source by source, a loop the compiler vectorises (``error_model="numpy"``: no Python
    division check; distances are positive).

    Args:
        diameter_um: Fibre diameter (µm); internode length is 0.1 * diameter mm.
        lateral_mm: Mediolateral position of the fibre (mm).
        depth_mm: Depth below the cord surface (mm).
        phase: Node offset from the cathode, in internodes [0, 1).
        csf_mm: Dorsal CSF thickness (mm).
        src_x: Source positions along the cord (mm), cathode at 0.
        src_w: Source weights per mA (negative = cathodic).
        y_lead: Lead mediolateral position (mm).
        sl: Longitudinal conductivity (S/mm).
        st: Transverse conductivity (S/mm).
        span_mm: Half length of fibre examined on either side of the cathode (mm).
        x_buf: Scratch for the node positions, at least ``2 ceil(span / internode) + 3`` long.
        v_buf: Scratch for the node potentials, as long.

    Returns:
        The largest depolarising second difference divided by internode² (>= 1e-12).
    """
    length = 0.1 * diameter_um
    n_half = int(math.ceil(span_mm / length))
    n_nodes = 2 * n_half + 3
    xs, v = x_buf[:n_nodes], v_buf[:n_nodes]      # node positions (mm) and potentials
    xs[0] = (phase - n_half - 1) * length
    xs[1] = (phase - n_half) * length
    for m in range(2, n_nodes):
        xs[m] = (phase + (m - 2 - n_half) + 1) * length
    z = -(csf_mm + depth_mm)
    dy = lateral_mm - y_lead
    a, b, c = st * st, sl * st * dy * dy, sl * st * z * z
    v[:] = 0.0
    for k in range(src_x.size):
        sx, w = src_x[k], src_w[k]
        for m in range(n_nodes):
            dx = xs[m] - sx
            v[m] += w / (4.0 * math.pi * math.sqrt(a * dx * dx + b + c))
    best = 1e-12
    for m in range(1, n_nodes - 1):
        best = max(best, (v[m - 1] - 2.0 * v[m] + v[m + 1]) / (length * length))
    return best


def threshold_table(diameter_um, lateral_mm, depth_mm, phase, grid_mm, src_x, src_w, y_lead, sl,
                    st, span_mm, af_threshold, diameter_exponent):
    """Rheobase threshold (mA) of every fibre at every grid CSF thickness, shape (G, N).

    The fibres are split among ``NUMBA_NUM_THREADS`` Python threads running the compiled,
    GIL-free :func:`_threshold_columns` (not numba's threading layer, which stays free for the
    batch kernel; see :mod:`closedloop.neural.batch`).
    """
    out = np.empty((grid_mm.size, diameter_um.size))
    n_parts = max(1, min(int(numba.config.NUMBA_NUM_THREADS), diameter_um.size // 256))
    bounds = np.linspace(0, diameter_um.size, n_parts + 1).astype(np.int64)

    def part(k: int) -> None:
        sl_k = slice(bounds[k], bounds[k + 1])
        _threshold_columns(diameter_um[sl_k], lateral_mm[sl_k], depth_mm[sl_k], phase[sl_k],
                           grid_mm, src_x, src_w, y_lead, sl, st, span_mm, af_threshold,
                           diameter_exponent, out[:, sl_k])

    if n_parts == 1:
        part(0)
    else:
        with ThreadPoolExecutor(n_parts) as pool:
            list(pool.map(part, range(n_parts)))
    return out


@njit(cache=True, nogil=True)
def _threshold_columns(diameter_um, lateral_mm, depth_mm, phase, grid_mm, src_x, src_w, y_lead,
                       sl, st, span_mm, af_threshold, diameter_exponent, out):
    """Fill ``out`` (G, n): the thresholds (mA) of the n given fibres on the CSF grid."""
    n_max = 2 * int(math.ceil(span_mm / (0.1 * diameter_um.min()))) + 3 if diameter_um.size else 0
    x_buf, v_buf = np.empty(n_max), np.empty(n_max)
    for i in range(diameter_um.size):
        scale = af_threshold * (REF_DIAMETER_UM / diameter_um[i]) ** diameter_exponent
        for g in range(grid_mm.size):
            drive = fibre_drive(diameter_um[i], lateral_mm[i], depth_mm[i], phase[i], grid_mm[g],
                                src_x, src_w, y_lead, sl, st, span_mm, x_buf, v_buf)
            out[g, i] = scale / drive


def sfap_weight_table(diameter_um: np.ndarray, lateral_mm: np.ndarray, depth_mm: np.ndarray,
                      grid_mm: np.ndarray, y_lead: float, sfap_uv: float, d_exp: float,
                      r_exp: float) -> np.ndarray:
    """N1 depth (µV) each fibre adds to the ECAP at every grid CSF thickness, shape (G, N).

    The SFAP grows as D^d_exp, falls as distance^-r_exp from the recording contact, and is
    scaled by ``REF_FIBRES / N`` so that the ECAP does not depend on the modelled fibre count.
    """
    r = np.hypot(grid_mm[:, None] + depth_mm[None, :], lateral_mm[None, :] - y_lead)
    per_fibre = sfap_uv * (diameter_um / REF_DIAMETER_UM) ** d_exp * (REF_FIBRES / diameter_um.size)
    return per_fibre[None, :] * (REF_DISTANCE_MM / r) ** r_exp
