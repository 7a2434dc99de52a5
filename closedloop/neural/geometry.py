"""Static geometry tables: fibre thresholds and SFAP weights on a grid of CSF thickness.

The volume conductor is a homogeneous anisotropic medium with point sources (shared/domain.md
section 3). A fibre runs along the cord (x) at depth ``d`` below the cord surface and lateral
position ``y``; the lead lies on the dura, ``csf`` above the cord. Its nodes of Ranvier sit every
MRG internode ``ΔX(D)``; from the potential at the nodes, :mod:`closedloop.neural.fibre` gives
its threshold by a modified driving function fitted to MRG in NEURON, and the patient model
stores each fibre's strength-duration law ``I_rh + Q PW^-beta`` (mA) at every grid point.

Tables are tabulated on a uniform CSF grid, so that moving the cord costs one linear
interpolation per fibre per pulse.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from closedloop.neural import fibre
from closedloop.neural.fibre import fibre_laws, internode_mm, sd_law

CSF_GRID_MM = (0.5, 12.0, 80)
"""Lowest and highest tabulated CSF thickness (mm) and the number of grid points."""
REF_DIAMETER_UM = 10.0
REF_DISTANCE_MM = 4.0
REF_FIBRES = 2048
SFAP_EXPONENT_REF_MM = 3.0
"""Distance (mm) at which the SFAP diameter exponent is ``sfap_diameter_exponent``."""


def csf_grid() -> np.ndarray:
    """The CSF thickness grid (mm)."""
    lo, hi, n = CSF_GRID_MM
    return np.linspace(lo, hi, n)


@njit(cache=True, error_model="numpy", nogil=True)
def node_potentials(
    diameter_um, lateral_mm, depth_mm, phase, csf_mm, src_x, src_w, y_lead, sl, st, span_mm, v_buf
):
    """Extracellular potential (mV per mA) at one fibre's nodes of Ranvier; a view of ``v_buf``.

    The potential at a node is the sum over the weighted point sources of
    ``w / (4 pi sqrt(st² dx² + sl st dy² + sl st z²))``; it is formed for all nodes at once,
    source by source, a loop the compiler vectorises (``error_model="numpy"``: no Python
    division check; distances are positive).

    Args:
        diameter_um: Fibre diameter (µm); nodes every ``fibre.internode_mm(D)`` mm (MRG).
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
        v_buf: Scratch, at least ``2 ceil(span / internode) + 3`` long.
    """
    length = internode_mm(diameter_um)
    n_half = int(math.ceil(span_mm / length))
    v = v_buf[: 2 * n_half + 3]
    z = -(csf_mm + depth_mm)
    dy = lateral_mm - y_lead
    a, b, c = st * st, sl * st * dy * dy, sl * st * z * z
    v[:] = 0.0
    for k in range(src_x.size):
        sx, w = src_x[k], src_w[k]
        for m in range(v.size):
            dx = (phase + (m - n_half - 1)) * length - sx
            v[m] += w / (4.0 * math.pi * math.sqrt(a * dx * dx + b + c))
    return v


def sd_tables(
    diameter_um, lateral_mm, depth_mm, phase, grid_mm, src_x, src_w, y_lead, sl, st, span_mm, scale
):
    """Strength-duration laws of every fibre on the CSF grid: ``(I_rh, Q)``, each (G, N).

    Fibre i's threshold at grid point g and pulse width PW (µs) is
    ``I_rh[g, i] + Q[g, i] * PW^-beta`` mA (:mod:`closedloop.neural.fibre`), ``scale`` times
    the fitted MRG value. The fibres are split among ``NUMBA_NUM_THREADS`` Python threads
    running the compiled, GIL-free :func:`_sd_columns` (not numba's threading layer, which
    stays free for the batch kernel; see :mod:`closedloop.neural.batch`).
    """
    rheo = np.empty((grid_mm.size, diameter_um.size))
    charge = np.empty_like(rheo)
    tab = fibre.table_arrays()
    pws = np.asarray(fibre.SD_PWS_US)
    beta = fibre.sd_exponent()
    s = np.array([pw**-beta for pw in fibre.SD_PWS_US])  # libm pow, as the reference
    n_parts = max(1, min(int(numba.config.NUMBA_NUM_THREADS), diameter_um.size // 256))
    bounds = np.linspace(0, diameter_um.size, n_parts + 1).astype(np.int64)

    def part(k: int) -> None:
        sl_k = slice(bounds[k], bounds[k + 1])
        _sd_columns(
            diameter_um[sl_k],
            lateral_mm[sl_k],
            depth_mm[sl_k],
            phase[sl_k],
            grid_mm,
            src_x,
            src_w,
            y_lead,
            sl,
            st,
            span_mm,
            scale,
            tab,
            pws,
            s,
            rheo[:, sl_k],
            charge[:, sl_k],
        )

    if n_parts == 1:
        part(0)
    else:
        with ThreadPoolExecutor(n_parts) as pool:
            list(pool.map(part, range(n_parts)))
    return rheo, charge


@njit(cache=True, nogil=True)
def _sd_columns(
    diameter_um,
    lateral_mm,
    depth_mm,
    phase,
    grid_mm,
    src_x,
    src_w,
    y_lead,
    sl,
    st,
    span_mm,
    scale,
    tab,
    pws,
    s,
    rheo,
    charge,
):
    """Fill ``rheo`` and ``charge`` (G, n) for the n given fibres on the CSF grid."""
    n_max = (
        2 * int(math.ceil(span_mm / internode_mm(diameter_um.min()))) + 3
        if (diameter_um.size)
        else 0
    )
    v_buf, scratch, th_buf = np.empty(n_max), np.empty((n_max, pws.size)), np.empty(pws.size)
    for i in range(diameter_um.size):
        rhos, ths = fibre_laws(diameter_um[i], tab, pws)
        for g in range(grid_mm.size):
            v = node_potentials(
                diameter_um[i],
                lateral_mm[i],
                depth_mm[i],
                phase[i],
                grid_mm[g],
                src_x,
                src_w,
                y_lead,
                sl,
                st,
                span_mm,
                v_buf,
            )
            rheo[g, i], charge[g, i] = sd_law(v, rhos, ths, s, scale, th_buf, scratch)


def sfap_weight_table(
    diameter_um: np.ndarray,
    lateral_mm: np.ndarray,
    depth_mm: np.ndarray,
    grid_mm: np.ndarray,
    y_lead: float,
    response,
) -> np.ndarray:
    """N1 depth (µV) each fibre adds to the ECAP at every grid CSF thickness, shape (G, N).

    With r the fibre's distance from the recording contact (mm) and ``response`` the
    :class:`~closedloop.neural.params.ResponseParams`, the SFAP is
    ``sfap_uv (D / 10 µm)^e(r) (4 mm / r)^sfap_distance_exponent`` with the diameter exponent
    ``e(r) = sfap_diameter_exponent + sfap_exponent_per_ln_mm ln(r / 3 mm)`` (MRG's exponent
    grows with distance), scaled by ``REF_FIBRES / N`` so that the ECAP does not depend on the
    modelled fibre count.
    """
    r = np.hypot(grid_mm[:, None] + depth_mm[None, :], lateral_mm[None, :] - y_lead)
    e = response.sfap_diameter_exponent + response.sfap_exponent_per_ln_mm * np.log(
        r / SFAP_EXPONENT_REF_MM
    )
    scale = response.sfap_uv * REF_FIBRES / diameter_um.size
    return (
        scale
        * (diameter_um[None, :] / REF_DIAMETER_UM) ** e
        * (REF_DISTANCE_MM / r) ** response.sfap_distance_exponent
    )
