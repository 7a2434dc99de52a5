"""NumPy reference of the pool mode's fractions and delay ratios (see :mod:`.reference`).

Independent of the kernel's piecewise form (:mod:`closedloop.neural.pool`): the Irwin-Hall CDF
and its integral come from the summation formula.
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.neural.rng import IH_SCALE, Z_MAX

__all__ = [
    "fired_ratio_reference",
    "fired_regen_reference",
    "irwin_hall_cdf_reference",
    "pool_delay_reference",
    "pool_fraction_reference",
    "pool_regen_table_reference",
]

POOL_TABLE_SIZE = 4096
"""Grid points of the pool delay table (``closedloop.neural.pool.POOL_TABLE_SIZE``)."""


def irwin_hall_cdf_reference(x: np.ndarray, n: int = 4, power: int | None = None) -> np.ndarray:
    """CDF of the Irwin-Hall law (the sum of ``n`` uniforms on [0, 1]) at ``x`` in [0, n].

    The summation formula ``sum_k (-1)^k C(n, k) (x - k)_+^p / p!`` over ``k = 0..n`` with
    ``p = n``; with ``power = n + 1``, the integral of the CDF from 0 to ``x``.
    """
    p = n if power is None else power
    x = np.asarray(x, dtype=np.float64)
    total = np.zeros_like(x)
    for k in range(n + 1):
        total += (-1.0) ** k * math.comb(n, k) * np.maximum(x - k, 0.0) ** p
    return total / math.factorial(p)


def pool_fraction_reference(current_ma: float, th_ma: np.ndarray, jitter_rel: float) -> np.ndarray:
    """Fraction of each fibre's pool that fires (pool mode): ``P(th (1 + jitter z) <= I)``.

    ``z`` is the standardised Irwin-Hall(4) jitter draw (``rng.hash_normal``: the sum of four
    uniforms less 2, divided by its sd ``1 / (256 IH_SCALE)``), taken as 0 / 1 beyond
    ``-Z_MAX`` / ``+Z_MAX`` (the draw's range); the step ``I >= th`` at zero jitter.
    """
    th = np.asarray(th_ma, dtype=np.float64)
    if jitter_rel <= 0.0:
        return (current_ma >= th).astype(np.float64)
    with np.errstate(divide="ignore"):
        z = (current_ma / th - 1.0) * (1.0 / jitter_rel)  # the kernel's expression
    x = np.clip(2.0 + z / (256.0 * IH_SCALE), 0.0, 4.0)
    q = np.clip(irwin_hall_cdf_reference(x), 0.0, 1.0)
    return np.where(z <= -Z_MAX, 0.0, np.where(z >= Z_MAX, 1.0, q))


def fired_ratio_reference(
    current_ma: float, th_ma: np.ndarray, jitter_rel: float, q: np.ndarray
) -> np.ndarray:
    """Mean ``th (1 + jitter z) / current`` over the members of each pool that fire (q > 0).

    ``E[X | X <= x*] = x* - (integral of the CDF to x*) / q`` in Irwin-Hall units, the draw
    ``z = (X - 2) 256 IH_SCALE``; ``th / current`` where ``q = 1``; at most 1.
    """
    if th_ma.size == 0:
        return th_ma.copy()
    u = th_ma * (1.0 / current_ma)
    if jitter_rel <= 0.0:
        return u
    x = 2.0 + (current_ma / th_ma - 1.0) * (1.0 / jitter_rel) / (256.0 * IH_SCALE)
    x_mean = x - irwin_hall_cdf_reference(np.clip(x, 0.0, 4.0), power=5) / q
    z_mean = (x_mean - 2.0) * (256.0 * IH_SCALE)
    return np.where(q >= 1.0, u, np.minimum(u * (1.0 + jitter_rel * z_mean), 1.0))


def fired_regen_reference(
    current_ma: float, th_ma: np.ndarray, jitter_rel: float, table: np.ndarray, n_nodes: int = 8
) -> np.ndarray:
    """Mean regenerative initiation delay (ms) over the members of each pool that fire.

    ``E[R(u) | z <= z*]``, ``u = th (1 + jitter z) / current``, ``R`` read linearly in
    ``table`` (``KernelTables.init_delay_ms`` on u in [0, 1]); over the Irwin-Hall variable
    ``x`` from its lowest value ``x0`` (``z = -Z_MAX``) to that of ``z*`` (capped at
    ``4 - x0``), by ``n_nodes``-point Gauss-Legendre in ``t`` with ``x = b - (b - x0) t^2``,
    the density from the summation formula, normalised by the rule's own mass. For pools with
    q > 0 at jitter_rel > 0.
    """
    th = np.asarray(th_ma, dtype=np.float64)
    t, w = np.polynomial.legendre.leggauss(n_nodes)
    t, w = 0.5 * (t[::-1] + 1.0), 0.5 * w[::-1]
    unit = 1.0 / (256.0 * IH_SCALE)
    x0 = 2.0 - Z_MAX * unit
    b = np.minimum(2.0 + ((current_ma / th - 1.0) * (1.0 / jitter_rel)) * unit, 4.0 - x0)
    d = np.maximum(b - x0, 1e-12)
    num, den = np.zeros(th.size), np.zeros(th.size)
    m = table.size - 2
    for tk, wk in zip(t, w, strict=True):  # node by node: the kernel's order of summation
        x = b - d * (tk * tk)
        wx = wk * tk * irwin_hall_cdf_reference(np.clip(x, 0.0, 4.0), power=3)
        u = np.minimum(th * (1.0 + jitter_rel * ((x - 2.0) / unit)) / current_ma, 1.0)
        y = u * m
        i = np.minimum(y.astype(np.int64), m)
        num += wx * (table[i] + (y - i) * (table[i + 1] - table[i]))
        den += wx
    return num / den


def pool_regen_table_reference(jitter_rel: float, table: np.ndarray) -> np.ndarray:
    """``KernelTables.pool_regen_ms``: :func:`fired_regen_reference` on rho = th / current.

    At ``rho = k rho_max / (M - 1)``, k = 0..M-1, ``rho_max = 1 / (1 - jitter_rel Z_MAX)``
    (the largest rho at which part of a pool fires; rho = 0 as 1e-12), then a copy of the
    last; zeros at ``jitter_rel = 0``. ``table``: ``KernelTables.init_delay_ms``.
    """
    out = np.zeros(POOL_TABLE_SIZE + 1)
    if jitter_rel <= 0.0:
        return out
    rho = np.arange(POOL_TABLE_SIZE) * (_rho_max(jitter_rel) / (POOL_TABLE_SIZE - 1))
    out[:-1] = fired_regen_reference(1.0, np.maximum(rho, 1e-12), jitter_rel, table)
    out[-1] = out[-2]
    return out


def _rho_max(jitter_rel: float) -> float:
    return 1.0 / (1.0 - jitter_rel * Z_MAX)


def pool_delay_reference(
    current_ma: float,
    pw_us: float,
    th_ma: np.ndarray,
    q: np.ndarray,
    kparams,
    table: np.ndarray,
    regen: np.ndarray,
) -> np.ndarray:
    """Mean initiation delay (ms) of the members that fire, for pools with fraction ``q > 0``.

    ``offset + pw_fraction * PW * E[u | fired]`` (:func:`fired_ratio_reference`; linear in u)
    plus ``E[R(u) | fired]`` read linearly at rho = th / current in ``regen``
    (``KernelTables.pool_regen_ms``, :func:`pool_regen_table_reference`); at zero jitter the
    all-or-none delay at ``u = th / current``. ``kparams``: the ``KernelParams``; ``table``:
    ``KernelTables.init_delay_ms``.
    """
    u = fired_ratio_reference(current_ma, th_ma, kparams.jitter_rel, q)
    charge = kparams.init_offset_ms + kparams.init_pw_fraction * (pw_us * 1e-3) * u
    if kparams.jitter_rel > 0.0 and th_ma.size:
        x = (th_ma * (1.0 / current_ma)) * ((regen.size - 2) / _rho_max(kparams.jitter_rel))
        k = np.minimum(x.astype(np.int64), regen.size - 2)
        return charge + (regen[k] + (x - k) * (regen[k + 1] - regen[k]))
    x = u * (table.size - 2)
    k = np.minimum(x.astype(np.int64), table.size - 2)
    return charge + (table[k] + (x - k) * (table[k + 1] - table[k]))
