"""Slow pure-NumPy reference of the patient tables (:mod:`closedloop.neural.geometry`), for testing.

Part of the independent NumPy implementation of the neural response model
(:mod:`closedloop.neural.reference`): the fibres' strength-duration tables on the CSF grid from
the modified driving function along each fibre, the SFAP weights, the screening floors and the
tabulated initiation delay, with the kernels' expressions in the same order.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.neural import fibre
from closedloop.neural.build import MIX_RECRUITED_FRACTION
from closedloop.neural.geometry import csf_grid, sfap_weight_table
from closedloop.neural.kernels import FLOOR_BLOCK, KernelTables
from closedloop.neural.model import NeuralModel
from closedloop.neural.params import ModelParams
from closedloop.neural.population import Fibres, contact_sources
from closedloop.neural.recording import ORDER_PW_US, RECRUITED_RATIO
from closedloop.neural.reference_pool import pool_regen_table_reference
from closedloop.neural.rng import fmix32_np

__all__ = ["build_tables_reference", "sd_tables_reference"]


def _exp(x) -> np.ndarray:
    """Elementwise ``math.exp`` (libm, like the kernels), as a float64 array of ``x``'s shape."""
    x = np.asarray(x, dtype=np.float64)
    return np.array([math.exp(v) for v in x.ravel().tolist()]).reshape(x.shape)


def _seq_sum(x: np.ndarray) -> float:
    """Left-to-right sum of a 1-D array (the kernels' loop order, not pairwise), 0 if empty."""
    return float(np.cumsum(x)[-1]) if x.size else 0.0


# --- geometry --------------------------------------------------------------------------------


def _node_positions(phase: np.ndarray, n_half: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Node positions (mm) along each fibre, shape (N, 2 * max(n_half) + 3), padded at the end.

    Column ``j`` is node ``j - n_half - 1``; the expressions mirror the kernel's bit for bit.
    """
    j = np.arange(2 * int(n_half.max()) + 3)[None, :]
    return (phase[:, None] + (j - n_half[:, None] - 1)) * length[:, None]


def _potential(x, y, z, src_x, src_w, y_lead, sl, st) -> np.ndarray:
    """Extracellular potential (mV per mA) at (x, y, z) (mm, broadcast) from point sources."""
    v = 0.0
    dy = y - y_lead
    a, b, c = st * st, sl * st * dy * dy, sl * st * z * z
    for k in range(src_x.size):
        dx = x - src_x[k]
        v = v + src_w[k] / (4.0 * math.pi * np.sqrt(a * dx * dx + b + c))
    return v


def _mdf_peaks_reference(v: np.ndarray, n_nodes: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Largest modified driving function of every fibre (rows of ``v``; ``n_nodes`` valid)."""
    m = n_nodes - 2
    af = v[:, :-2] - 2.0 * v[:, 1:-1] + v[:, 2:]
    fwd = np.zeros(v.shape[0])
    acc = np.zeros_like(af)
    for i in range(af.shape[1]):
        acc[:, i] = fwd
        fwd = rho * (fwd + af[:, i])
    best, bwd = np.full(v.shape[0], 1e-12), np.zeros(v.shape[0])
    for i in range(af.shape[1] - 1, -1, -1):
        ok = i < m
        best = np.where(ok, np.maximum(best, af[:, i] + acc[:, i] + bwd), best)
        bwd = np.where(ok, rho * (bwd + af[:, i]), bwd)
    return best


def _bracket_reference(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell index and fraction of each ``x`` on a sorted grid, clamped (as the kernel's)."""
    j = np.clip(np.searchsorted(grid, x) - 1, 0, grid.size - 2)
    frac = (x - grid[j]) / (grid[j + 1] - grid[j])
    j = np.where(x <= grid[0], 0, np.where(x >= grid[-1], grid.size - 2, j))
    return j, np.where(x <= grid[0], 0.0, np.where(x >= grid[-1], 1.0, frac))


def _mdf_params_reference(log_d_fibres: np.ndarray, pw_us: float) -> tuple[np.ndarray, np.ndarray]:
    """``(rho, MDF_th mV)`` per fibre at one pulse width (µs), bilinear in (log D, log PW)."""
    log_d, log_pw, rho_tab, log_th = fibre.table_arrays()
    i, a = _bracket_reference(log_d, log_d_fibres)
    j, b = _bracket_reference(log_pw, np.full(log_d_fibres.size, math.log(pw_us)))
    w00, w01, w10, w11 = (1 - a) * (1 - b), (1 - a) * b, a * (1 - b), a * b
    out = []
    for tab in (rho_tab, log_th):
        out.append(
            w00 * tab[i, j] + w01 * tab[i, j + 1] + w10 * tab[i + 1, j] + w11 * tab[i + 1, j + 1]
        )
    return out[0], _exp(out[1])


def sd_tables_reference(fibres: Fibres, params: ModelParams) -> tuple[np.ndarray, np.ndarray]:
    """Strength-duration laws ``(I_rh, Q)`` (mA) of every fibre on the CSF grid, each (G, N).

    The potential (mV per mA) at each fibre's MRG nodes within ``2 * pitch + contact length``
    mm of the cathode gives the modified driving function at each pulse width of
    ``fibre.SD_PWS_US``; ``I_rh + Q PW^-beta`` is fitted to those thresholds by least squares
    on relative error (see :mod:`closedloop.neural.fibre`).

    Args:
        fibres: The patient's fibres (diameters µm, depths and lateral positions mm).
        params: Model parameters (lead layout and excitability).

    Returns:
        ``(I_rh, Q)`` in mA, rows on :func:`closedloop.neural.geometry.csf_grid`.
    """
    lead, exc = params.lead, params.excitability
    src_x, src_w = contact_sources(lead)
    span = 2.0 * lead.pitch_mm + lead.contact_length_mm
    d = fibres.diameter_um
    length = (-8.215284 * d * d + 272.4201 * d - 780.2411) * 1e-3
    n_half = np.array([math.ceil(span / v) for v in length.tolist()], np.int64)
    x = _node_positions(fibres.node_phase, n_half, length)
    log_d = np.array([math.log(v) for v in d.tolist()])
    beta = fibre.sd_exponent()
    pws = fibre.SD_PWS_US
    s = [pw**-beta for pw in pws]
    laws = [_mdf_params_reference(log_d, pw) for pw in pws]
    grid = csf_grid()
    rheo, q = np.empty((grid.size, d.size)), np.empty((grid.size, d.size))
    for g, csf in enumerate(grid):
        z = -(csf + fibres.depth_mm)
        v = _potential(
            x,
            fibres.lateral_mm[:, None],
            z[:, None],
            src_x,
            src_w,
            lead.lateral_offset_mm,
            exc.sigma_long_s_per_mm,
            exc.sigma_trans_s_per_mm,
        )
        a11 = a12 = a22 = b1 = b2 = 0.0
        for k, (rho, th) in enumerate(laws):
            t = exc.threshold_scale * th / _mdf_peaks_reference(v, 2 * n_half + 3, rho)
            u, w = 1.0 / t, s[k] / t
            a11, a12, a22, b1, b2 = a11 + u * u, a12 + u * w, a22 + w * w, b1 + u, b2 + w
        det = a11 * a22 - a12 * a12
        rheo[g], q[g] = (a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det
    return rheo, q


def build_tables_reference(params: ModelParams, fibres: Fibres, words: np.ndarray) -> KernelTables:
    """The patient's static tables, as :func:`closedloop.neural.build.build_tables`.

    Args:
        params: Model parameters.
        fibres: The patient's fibres.
        words: Two uint64 seed words (fibre hashes, sample hashes).

    Returns:
        ``KernelTables`` (strength-duration laws mA, SFAP weights µV, delays ms).
    """
    lead, pop, resp, recp = params.lead, params.population, params.response, params.recording
    grid = csf_grid()
    f32 = np.float32  # the tables are stored in float32 (values computed in float64)
    rheo, q = (t.astype(f32) for t in sd_tables_reference(fibres, params))
    sfap = sfap_weight_table(
        fibres.diameter_um, fibres.lateral_mm, fibres.depth_mm, grid, lead.lateral_offset_mm, resp
    ).astype(f32)
    edges = np.linspace(pop.diameter_min_um, pop.diameter_max_um, pop.n_classes + 1)
    cls = np.clip(np.searchsorted(edges, fibres.diameter_um) - 1, 0, pop.n_classes - 1)
    delay = lead.recording_distance_mm / (
        resp.cv_per_um * (0.5 * (edges[:-1] + edges[1:])) + resp.cv_intercept_m_s
    )
    n_fib, n_s = fibres.diameter_um.size, int(round(recp.window_ms * recp.fs_hz * 1e-3))
    g_ref = int(np.argmin(np.abs(grid - NeuralModel.default_csf_mm)))
    key = rheo[g_ref].astype(np.float64) + q[g_ref].astype(np.float64) * (
        ORDER_PW_US ** -fibre.sd_exponent()
    )
    first = np.argsort(key)
    first = first[: max(1, int(MIX_RECRUITED_FRACTION * n_fib))]
    mix = np.bincount(
        cls[first], weights=sfap[g_ref, first].astype(np.float64), minlength=pop.n_classes
    )
    init = _init_table_reference(
        resp.initiation_log_ms, resp.initiation_ratio_scale, resp.initiation_log_max_ms
    )
    ref = np.zeros((3, pop.n_classes))
    if recp.template_shape == "recruited":
        ref = _recruited_reference(key, sfap[g_ref].astype(np.float64), cls, init, ref)
    return KernelTables(
        rheo_ma=rheo,
        sfap_uv=sfap,
        sd_q_ma=q,
        fibre_class=cls.astype(np.uint8),
        fibre_hash=fmix32_np(fibres.fibre_id.astype(np.uint64) ^ words[0]).astype(np.uint32),
        class_delay_ms=delay,
        class_mix=mix / mix.sum(),
        sample_hash=fmix32_np(
            np.arange(n_s, dtype=np.uint64) * np.uint64(0x27D4EB2F) ^ words[1]
        ).astype(np.uint32),
        cell_floor=_cell_floors_reference(rheo, q),
        sd_ratio_range=_sd_ratio_range_reference(rheo, q),
        init_delay_ms=init,
        template_ref=ref,
        pool_regen_ms=pool_regen_table_reference(
            params.excitability.jitter_rel if params.excitability.pool_fraction else 0.0, init
        ),
    )


def _recruited_reference(
    key: np.ndarray, sfap: np.ndarray, cls: np.ndarray, init: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """Per class: SFAP weight share, mean u = key / I and mean regenerative delay (ms).

    The fibres with screening key ``key`` (mA) at most ``I = RECRUITED_RATIO`` times the
    lowest; means weighted by the SFAP weights ``sfap`` (µV); the delay interpolated in the
    regenerative delay table ``init`` at u.
    """
    current = RECRUITED_RATIO * key.min()
    chosen = key <= current
    total = sfap[chosen].sum()
    for b in range(out.shape[1]):
        sel = chosen & (cls == b)
        w = sfap[sel]
        if w.sum() > 0.0:
            u = key[sel] / current
            x = u * (init.size - 2)
            k = np.minimum(x.astype(np.int64), init.size - 2)
            regen = init[k] + (x - k) * (init[k + 1] - init[k])
            out[:, b] = (w.sum() / total, (w * u).sum() / w.sum(), (w * regen).sum() / w.sum())
    return out


INIT_TABLE_SIZE = 1024
"""Grid points of the tabulated regenerative initiation delay (as the kernels')."""


def _init_table_reference(log_ms: float, ratio_scale: float, log_max_ms: float) -> np.ndarray:
    """``min(log_ms ln(1 + c u / (1 - u)), max)`` (ms) at u = k / (M - 1), then the last again."""
    n = INIT_TABLE_SIZE
    out = np.empty(n + 1)
    for k in range(n):
        u = k / (n - 1)
        d = 1.0 - u
        out[k] = (
            log_max_ms if d <= 0.0 else min(log_ms * math.log1p(ratio_scale * u / d), log_max_ms)
        )
    out[n] = out[n - 1]
    return out


def _sd_ratio_range_reference(rheo: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Smallest and largest ``Q / rheo`` over fibres and grid, widened by 1e-6."""
    c = q.astype(np.float64) / rheo.astype(np.float64)
    return np.array([c.min() * (1.0 - 1e-6), c.max() * (1.0 + 1e-6)])


def _cell_floors_reference(rheo: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per grid cell and block of fibres, the smallest screening key of the fibres from there on.

    The key is the threshold at 250 µs from the cell's lowest corners, float32 rounded down.
    """
    rheo, q = rheo.astype(np.float64), q.astype(np.float64)
    s = ORDER_PW_US ** -fibre.sd_exponent()
    n_cells, n_fib = rheo.shape[0] - 1, rheo.shape[1]
    n_blocks = -(-n_fib // FLOOR_BLOCK)
    out = np.empty((n_cells, n_blocks), np.float32)
    for j in range(n_cells):
        key = np.minimum(rheo[j], rheo[j + 1]) + np.minimum(q[j], q[j + 1]) * s
        k32 = key.astype(np.float32)
        k32 = np.where(
            k32.astype(np.float64) <= key,
            k32,  # round half-way down, not up
            np.nextafter(k32, np.float32(-np.inf)),
        )
        for b in range(n_blocks):
            out[j, b] = k32[b * FLOOR_BLOCK :].min()
    return out
