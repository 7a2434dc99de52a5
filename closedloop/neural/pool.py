"""Mean-field pool mode of the neural kernels (``ExcitabilityParams.pool_fraction``).

Each modelled fibre stands for a pool of real fibres with the same threshold law. All-or-none,
the fibre fires when ``current >= th (1 + jitter_rel z)`` for one jitter draw ``z`` per pulse
(:func:`~closedloop.neural.rng.hash_normal`); in pool mode it fires the expected fraction of
its pool, ``q = P(th (1 + jitter_rel z) <= current) = F((current / th - 1) / jitter_rel)``,
with ``F`` the CDF of the draw's law, and its processes move by that fraction (the pool's
mean). The draw is an Irwin-Hall(4) sum of four byte-uniforms, standardised; ``F`` is the
CDF of the continuous Irwin-Hall(4) law it quantises (the sum of four uniforms on [0, 1]:
piecewise quartic, within half a quantisation step of the draw's own staircase CDF), set to
0 below ``-Z_MAX`` and 1 above ``+Z_MAX`` (the draw's range; the tail mass dropped is 1.6e-10
per side), as the kernel's screening assumes. With ``jitter_rel = 0`` it is the step
``current >= th``, and the pulse is then bit for bit the all-or-none one. The standardised
argument is computed as ``(current / th - 1) * (1 / jitter_rel)`` everywhere (the reference
too), so that kernel and reference agree on which pools fire at all.

These helpers are inlined into :func:`closedloop.neural.kernels.recruit` like the others.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from closedloop.neural.latency import delay_at
from closedloop.neural.rng import IH_SCALE, Z_MAX

__all__ = [
    "IH_LOW",
    "IH_UNIT",
    "POOL_NODES",
    "POOL_TABLE_SIZE",
    "fired_fraction",
    "fired_ratio",
    "fired_regen",
    "irwin_hall_density",
    "irwin_hall_share",
    "pool_fire",
    "pool_regen_at",
    "pool_regen_table",
    "pool_rho_max",
    "pool_shares",
]

IH_UNIT = 1.0 / (256.0 * IH_SCALE)
"""Irwin-Hall(4) units (a sum of four uniforms on [0, 1]) per unit of the standardised jitter
draw :func:`~closedloop.neural.rng.hash_normal` (that sum's sd, about 0.577)."""
IH_LOW = 2.0 - Z_MAX * IH_UNIT
"""The smallest Irwin-Hall value a draw takes (``z = -Z_MAX``); the largest is ``4 - IH_LOW``."""
POOL_NODES = 8
"""Gauss-Legendre nodes of :func:`fired_regen` (within 1 µs of a fine quadrature, jitter 3-25 %)."""
_T, _W = np.polynomial.legendre.leggauss(POOL_NODES)
GL_T = np.ascontiguousarray(0.5 * (_T[::-1] + 1.0))  # nodes on [0, 1], ascending
GL_W = np.ascontiguousarray(0.5 * _W[::-1])
POOL_TABLE_SIZE = 4096
"""Grid points M of ``KernelTables.pool_regen_ms`` on rho = threshold / current in
[0, :func:`pool_rho_max`] (linear interpolation within 0.2 µs of :func:`fired_regen` at jitter
3-25 %, tests/test_pool_mode.py)."""


@njit(cache=True, inline="always")
def irwin_hall_share(z):
    """``(F(z), mean of the draws <= z)`` for the standardised jitter draw (module docstring).

    In Irwin-Hall units ``x = 2 + z IH_UNIT`` the CDF is ``G(y) = (y^4 - 4 (y - 1)_+^4) / 24``
    and its integral ``H(y) = (y^5 - 4 (y - 1)_+^5) / 120`` for ``y <= 2``, and by symmetry
    ``1 - G(4 - x)`` and ``x - 2 + H(4 - x)`` above; the mean of the draws below ``x`` is
    ``x - H / G``. The mean is 0 where F is 0 or 1.
    """
    x = 2.0 + z * IH_UNIT  # the Irwin-Hall variable, mean 2 on [0, 4]
    y = max(min(x, 4.0 - x), 0.0)  # distance from the nearer end of [0, 4]
    e = max(y - 1.0, 0.0)
    y4, e4 = (y * y) * (y * y), (e * e) * (e * e)
    g = (y4 - 4.0 * e4) * (1.0 / 24.0)
    h = (y4 * y - 4.0 * (e4 * e)) * (1.0 / 120.0)
    low = x <= 2.0  # selects, no branches: the pools' order is random (mispredictions)
    q = g if low else 1.0 - g
    h = h if low else (x - 2.0) + h
    q = 0.0 if z <= -Z_MAX else q
    q = 1.0 if z >= Z_MAX else q
    z_mean = (x - 2.0 - h / max(q, 1e-300)) * (1.0 / IH_UNIT)
    return q, (z_mean if q < 1.0 else 0.0)


@njit(cache=True, inline="always")
def fired_fraction(current_ma, th_ma, jitter_rel):
    """Fraction of a fibre's pool that fires at ``current_ma``; ``th_ma`` its nominal threshold.

    ``F((current / th - 1) / jitter_rel)`` (:func:`irwin_hall_share`); the step
    ``current >= th`` at ``jitter_rel = 0``. An infinite threshold (absolutely refractory)
    gives 0 (``jitter_rel * Z_MAX < 1``).
    """
    if jitter_rel <= 0.0:
        return 1.0 if current_ma >= th_ma else 0.0
    return irwin_hall_share((current_ma / th_ma - 1.0) * (1.0 / jitter_rel))[0]


@njit(cache=True, inline="always")
def fired_ratio(current_ma, th_ma, jitter_rel):
    """Mean ``th' / current`` over the members of a pool that fire (``th' <= current``).

    ``th' = th (1 + jitter_rel z)``, the jittered threshold of a member; the members that fire
    are those with ``z <= z* = (current / th - 1) / jitter_rel``, whose mean draw is
    :func:`irwin_hall_share`'s. ``th / current`` (the mean draw 0) where the whole pool fires,
    at most 1 otherwise; 0 where none fires.
    """
    if jitter_rel <= 0.0:
        return th_ma * (1.0 / current_ma) if current_ma >= th_ma else 0.0
    q, u = _share(current_ma, th_ma, jitter_rel)
    return u if q > 0.0 else 0.0


@njit(cache=True, inline="always")
def _share(current_ma, th_ma, jitter_rel):
    """``(q, u)``: a pool's fired fraction and its firing members' mean ``th' / current``.

    For ``jitter_rel > 0``; ``u`` is meaningless where ``q`` is 0 (the one formula of
    :func:`fired_fraction`, :func:`fired_ratio` and :func:`pool_shares`).
    """
    q, z_mean = irwin_hall_share((current_ma / th_ma - 1.0) * (1.0 / jitter_rel))
    u = th_ma * (1.0 / current_ma)
    v = min(u * (1.0 + jitter_rel * z_mean), 1.0)
    return q, (v if q < 1.0 else u)


@njit(cache=True, inline="always")
def irwin_hall_density(x):
    """Irwin-Hall(4) density at ``x``: ``(y^3 - 4 (y - 1)_+^3) / 6`` with ``y = min(x, 4 - x)``."""
    y = max(min(x, 4.0 - x), 0.0)
    e = max(y - 1.0, 0.0)
    return (y * y * y - 4.0 * (e * e * e)) * (1.0 / 6.0)


@njit(cache=True, inline="always")
def fired_regen(current_ma, th_ma, jitter_rel, table):
    """Mean regenerative initiation delay (ms) over the members of a pool that fire.

    A member with draw ``z`` fires at ``u = th (1 + jitter_rel z) / current`` and starts its
    spike the regenerative delay ``R(u)`` (``table``: ``KernelTables.init_delay_ms``, read as
    :func:`~closedloop.neural.latency.delay_at` does) after its charging time. ``R`` is
    convex and steep near ``u = 1`` (logarithmic, capped), so the mean ``E[R(u) | fired]`` of
    the members lies above ``R(E[u | fired])`` (Jensen; by up to ~0.04 ms for a partly firing
    pool), and all-or-none fibres fire at their own draws' delays. The mean is taken over the
    Irwin-Hall variable ``x = 2 + z IH_UNIT`` in ``[IH_LOW, b]``, ``b`` that of ``z*`` (or
    ``4 - IH_LOW`` if the whole pool fires), with ``x = b - (b - IH_LOW) t^2`` (the nodes
    gather at ``b``, where ``R`` has its logarithmic peak) and ``POOL_NODES`` Gauss-Legendre
    nodes in ``t``, normalised by the same rule's mass. Call only with jitter_rel > 0, q > 0.
    """
    inv_cur = 1.0 / current_ma
    b = min(2.0 + ((current_ma / th_ma - 1.0) * (1.0 / jitter_rel)) * IH_UNIT, 4.0 - IH_LOW)
    d = max(b - IH_LOW, 1e-12)  # > 0: a pool at the draw's edge (q ~ 1e-10) gets no 0 / 0
    scale = jitter_rel * (1.0 / IH_UNIT)
    m = np.float64(table.size - 2)
    num, den = 0.0, 0.0
    for k in range(POOL_NODES):
        t = GL_T[k]
        x = b - d * (t * t)
        w = GL_W[k] * t * irwin_hall_density(x)
        u = min(th_ma * (1.0 + scale * (x - 2.0)) * inv_cur, 1.0)
        y = u * m
        i = min(np.uint32(y), np.uint32(table.size - 2))
        g0 = table[i]
        num += w * (g0 + (y - i) * (table[i + 1] - g0))
        den += w
    return num / den


@njit(cache=True, inline="always")
def pool_rho_max(jitter_rel):
    """Largest rho = threshold / current at which part of a pool fires, ``1 / (1 - jitter Z_MAX)``.

    ``irwin_hall_share`` gives ``q = 0`` for ``z = (1 / rho - 1) / jitter_rel <= -Z_MAX``;
    ``jitter_rel * Z_MAX`` is below 1 over the parameter's range (0.25 x 3.46).
    """
    return 1.0 / (1.0 - jitter_rel * Z_MAX)


@njit(cache=True)
def pool_regen_table(jitter_rel, init_table):
    """``KernelTables.pool_regen_ms``: :func:`fired_regen` on rho in [0, rho_max] (ms).

    ``fired_regen`` depends on the current and the threshold only through rho = th / current,
    so the kernel reads it from this table (:func:`pool_regen_at`) instead of a quadrature per
    firing pool (which made pool mode 5-8x slower than all-or-none). Values at
    ``rho = k rho_max / (M - 1)``, k = 0..M-1 (M = ``POOL_TABLE_SIZE``; rho = 0, where every
    member fires at once, as the limit ``rho = 1e-12``), then a copy of the last; all zero at
    ``jitter_rel = 0`` (all-or-none reads ``init_table`` itself).
    """
    m = POOL_TABLE_SIZE
    out = np.zeros(m + 1)
    if jitter_rel <= 0.0:
        return out
    if not jitter_rel * Z_MAX < 1.0:  # the parameter's range keeps it below (0.25 x 3.45)
        raise ValueError("pool_regen_table: jitter_rel * Z_MAX must be below 1")
    step = pool_rho_max(jitter_rel) / (m - 1)
    for k in range(m):
        out[k] = fired_regen(1.0, max(k * step, 1e-12), jitter_rel, init_table)
    out[m] = out[m - 1]
    return out


@njit(cache=True, inline="always")
def pool_regen_at(rho, table, per_rho):
    """Mean regenerative delay (ms) of a pool's firing members at rho = th / current.

    Linear interpolation in ``table`` (``KernelTables.pool_regen_ms``); ``per_rho`` is
    ``(M - 1) / rho_max``. For pools with q > 0 (rho < rho_max).
    """
    x = rho * per_rho
    k = min(np.uint32(x), np.uint32(table.size - 2))  # unsigned: no wraparound code (rho >= 0)
    g0 = table[k]
    return g0 + (x - k) * (table[k + 1] - g0)


@njit(cache=True, error_model="numpy")
def pool_shares(th, lo, hi, current_ma, jitter_rel, q_out, u_out):
    """Fractions ``q`` and mean ratios ``u`` (:func:`fired_ratio`) of fibres ``lo:hi``.

    Written to ``q_out[:hi - lo]`` and ``u_out[:hi - lo]``; ``th``: nominal thresholds (mA),
    ``jitter_rel > 0``. A separate function, compiled with ``error_model="numpy"`` (a division
    then has no zero check, whose exception path kept the loop scalar) so that the compiler
    vectorises its branch-free loop: scalar, this took about as long as the rest of a pulse.
    """
    for k in range(hi - lo):
        q_out[k], u_out[k] = _share(current_ma, th[lo + k], jitter_rel)


@njit(cache=True, inline="always")
def pool_fire(state, work, tables, kparams, current_ma, pw_us, j, f, n):
    """Fire fraction ``q_i`` of the pool of each fibre among ``0:n``; return the sum of ``q``.

    ``work.th`` holds the nominal thresholds (mA,
    :func:`~closedloop.neural.kernels.nominal_thresholds`). Each fibre with ``q > 0`` adds
    ``q w`` (``w`` its SFAP weight, µV) to its class in ``work.class_acc`` and ``q w`` times
    its initiation delay (ms: the charging time at the mean ``u = th' / current`` of the
    members that fire, :func:`fired_ratio`, and their mean regenerative delay,
    :func:`fired_regen` read from ``tables.pool_regen_ms``, :func:`pool_regen_at`) into
    ``work.class_delay``; its refractory and supernormal values
    become ``x + q (1 - x)`` and each adaptation process ``a + q inc (1 - a)`` (at ``q = 1``
    exactly the all-or-none reset). The fractions are computed in chunks of a sweep's length
    (:func:`pool_shares`, into ``work.sweeps``, free until the sweep is synthesised), the
    fibres with ``q > 0`` of a chunk compacted into ``work.idx``. At zero jitter ``q`` is 1
    for ``th <= current`` and 0 otherwise, and this is :func:`~closedloop.neural.kernels.fire`
    bit for bit.
    """
    th, idx, acc, dacc = work.th, work.idx, work.class_acc, work.class_delay
    acc[:] = 0.0
    dacc[:] = 0.0
    jit, inv_cur = kparams.jitter_rel, 1.0 / current_ma if current_ma > 0.0 else 0.0
    qs, us, table = work.sweeps[0], work.sweeps[1], tables.init_delay_ms
    regen = tables.pool_regen_ms
    per_rho = (regen.size - 2) / pool_rho_max(jit) if jit > 0.0 else 0.0
    size = qs.size if jit > 0.0 else max(n, 1)  # zero jitter: one chunk, no buffers
    total = 0.0
    for lo in range(0, n, size):
        hi = min(lo + size, n)
        n_pos = 0
        if jit > 0.0:
            pool_shares(th, lo, hi, current_ma, jit, qs, us)
            for k in range(hi - lo):  # branch-free compaction of the chunk's firing pools
                idx[n_pos] = k
                n_pos += qs[k] > 0.0
        else:
            for k in range(hi - lo):
                idx[n_pos] = k
                n_pos += current_ma >= th[lo + k]
        for m in range(n_pos):
            k = idx[m]
            i = lo + k
            if jit > 0.0:
                q = qs[k]
                dly = (
                    kparams.init_offset_ms
                    + kparams.init_pw_fraction * (pw_us * 1e-3) * us[k]
                    + pool_regen_at(th[i] * inv_cur, regen, per_rho)
                )
            else:
                q = 1.0
                dly = delay_at(
                    th[i] * inv_cur, pw_us, kparams.init_offset_ms, kparams.init_pw_fraction, table
                )
            total += q
            _pool_add(state, work, tables, kparams, j, f, i, q, dly)
    return total


@njit(cache=True, inline="always")
def _pool_add(state, work, tables, kparams, j, f, i, q, dly):
    """Add pool ``i``'s fraction ``q`` (mean delay ``dly``, ms) to the class sums; move it."""
    cls = tables.fibre_class[i]
    a, b = np.float64(tables.sfap_uv[j, i]), np.float64(tables.sfap_uv[j + 1, i])
    qw = q * (a + f * (b - a))
    work.class_acc[cls] += qw
    work.class_delay[cls] += qw * dly
    ref, decay, gain = state.decay_ref, work.factors[0], work.factors[1]
    r = 1.0 - q
    for k in range(2):  # refractory, supernormal: x + q (1 - x), stored lazily (x gain)
        ref[k, i] = np.float32((1.0 - r * (1.0 - ref[k, i] * decay[k])) * gain[k])
    incs = (kparams.adapt_inc0, kparams.adapt_inc1, kparams.adapt_inc2)
    for k in range(3):  # adaptation: a + q inc (1 - a)
        a_k = ref[2 + k, i] * decay[2 + k]
        ref[2 + k, i] = np.float32((a_k + (q * incs[k]) * (1.0 - a_k)) * gain[2 + k])
