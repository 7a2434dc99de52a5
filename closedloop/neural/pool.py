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
``current >= th``, and the pulse is then bit for bit the all-or-none one.

These helpers are inlined into :func:`closedloop.neural.kernels.recruit` like the others.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from closedloop.neural.recording import delay_at
from closedloop.neural.rng import IH_SCALE, Z_MAX

__all__ = ["IH_UNIT", "fired_fraction", "fired_ratio", "pool_fire"]

IH_UNIT = 1.0 / (256.0 * IH_SCALE)
"""Irwin-Hall(4) units (a sum of four uniforms on [0, 1]) per unit of the standardised jitter
draw :func:`~closedloop.neural.rng.hash_normal` (that sum's sd, about 0.577)."""


@njit(cache=True, inline="always")
def fired_fraction(current_ma, th_ma, jitter_rel):
    """Fraction of a fibre's pool that fires at ``current_ma``; ``th_ma`` its nominal threshold.

    ``F((current / th - 1) / jitter_rel)``, ``F`` the Irwin-Hall(4) CDF on the standardised
    draw (see the module docstring); the step ``current >= th`` at ``jitter_rel = 0``. An
    infinite threshold (absolutely refractory) gives 0 (``jitter_rel * Z_MAX < 1``).
    """
    if jitter_rel <= 0.0:
        return 1.0 if current_ma >= th_ma else 0.0
    z = (current_ma / th_ma - 1.0) / jitter_rel
    x = 2.0 + z * IH_UNIT          # the Irwin-Hall variable, mean 2 on [0, 4]
    y = max(min(x, 4.0 - x), 0.0)  # distance from the nearer end of [0, 4]
    e = max(y - 1.0, 0.0)
    y2, e2 = y * y, e * e
    g = (y2 * y2 - 4.0 * (e2 * e2)) * (1.0 / 24.0)  # CDF at y <= 2: y^4/24 - 4 (y - 1)_+^4/24
    q = g if x <= 2.0 else 1.0 - g
    q = 0.0 if z <= -Z_MAX else q
    return 1.0 if z >= Z_MAX else q


@njit(cache=True, inline="always")
def fired_ratio(current_ma, th_ma, jitter_rel, q, inv_cur):
    """Mean ``th' / current`` over the members of a pool that fire (``th' <= current``).

    ``th' = th (1 + jitter_rel z)``, the jittered threshold of a member; ``q`` the fraction
    that fires (:func:`fired_fraction`, > 0), ``inv_cur = 1 / current_ma``. The members that
    fire are those with ``z <= z*``, ``z* = (current / th - 1) / jitter_rel``; in Irwin-Hall
    units ``x`` their mean is ``x* - H(x*) / q``, ``H`` the integral of the CDF (piecewise
    quintic). At ``q = 1`` it is ``th / current`` (the mean draw is 0), bit for bit the
    all-or-none ratio at zero jitter.
    """
    u = th_ma * inv_cur
    if q >= 1.0 or jitter_rel <= 0.0:
        return u
    x = 2.0 + (current_ma / th_ma - 1.0) / jitter_rel * IH_UNIT
    y = max(min(x, 4.0 - x), 0.0)
    e = max(y - 1.0, 0.0)
    y2, e2 = y * y, e * e
    h = (y2 * y2 * y - 4.0 * (e2 * e2 * e)) * (1.0 / 120.0)  # integral of the CDF to y <= 2
    h = h if x <= 2.0 else (x - 2.0) + h                       # by the law's symmetry
    z_mean = (x - h / q - 2.0) * (1.0 / IH_UNIT)
    return min(u * (1.0 + jitter_rel * z_mean), 1.0)


@njit(cache=True, inline="always")
def pool_fire(state, work, tables, kp, current_ma, pw_us, j, f, n):
    """Fire fraction ``q_i`` of the pool of each fibre among ``0:n``; return the sum of ``q``.

    ``work.th`` holds the nominal thresholds (mA,
    :func:`~closedloop.neural.kernels.nominal_thresholds`). The fibres with ``q > 0`` are
    compacted into ``work.idx``; each adds ``q w`` (``w`` its SFAP weight, µV) to its class in
    ``work.class_acc`` and ``q w`` times its initiation delay (ms, at the mean ``u = th' /
    current`` of the members that fire, :func:`fired_ratio`) into ``work.class_delay``; its
    refractory and supernormal values become ``x + q (1 - x)`` and each adaptation process
    ``a + q inc (1 - a)`` (at ``q = 1`` exactly the all-or-none reset).
    """
    th, idx, acc, dacc = work.th, work.idx, work.class_acc, work.class_delay
    acc[:] = 0.0
    dacc[:] = 0.0
    jit = kp.jitter_rel
    n_pos = 0
    for i in range(n):  # branch-free compaction of the fibres with a nonzero fraction
        idx[n_pos] = i
        n_pos += fired_fraction(current_ma, th[i], jit) > 0.0
    if n_pos == 0:
        return 0.0
    w0, w1, cls = tables.sfap_uv[j], tables.sfap_uv[j + 1], tables.fibre_class
    t0, kpw, table = kp.init_offset_ms, kp.init_pw_fraction, tables.init_delay_ms
    ref, decay, gain = state.decay_ref, work.factors[0], work.factors[1]
    p0, p1, p2, p3, p4 = ref[0], ref[1], ref[2], ref[3], ref[4]
    d0, d1, d2, d3, d4 = decay[0], decay[1], decay[2], decay[3], decay[4]
    e0, e1, e2, e3, e4 = gain[0], gain[1], gain[2], gain[3], gain[4]
    i0, i1, i2 = kp.adapt_inc0, kp.adapt_inc1, kp.adapt_inc2
    inv_cur = 1.0 / current_ma
    total = 0.0
    for k in range(n_pos):
        i = idx[k]
        q = fired_fraction(current_ma, th[i], jit)
        total += q
        a, b = np.float64(w0[i]), np.float64(w1[i])
        qw = q * (a + f * (b - a))
        acc[cls[i]] += qw
        u = fired_ratio(current_ma, th[i], jit, q, inv_cur)
        dacc[cls[i]] += qw * delay_at(u, pw_us, t0, kpw, table)
        r = 1.0 - q
        p0[i] = np.float32((1.0 - r * (1.0 - p0[i] * d0)) * e0)  # x + q (1 - x), stored lazily
        p1[i] = np.float32((1.0 - r * (1.0 - p1[i] * d1)) * e1)
        b0, b1, b2 = p2[i] * d2, p3[i] * d3, p4[i] * d4
        p2[i] = np.float32((b0 + (q * i0) * (1.0 - b0)) * e2)
        p3[i] = np.float32((b1 + (q * i1) * (1.0 - b1)) * e3)
        p4[i] = np.float32((b2 + (q * i2) * (1.0 - b2)) * e4)
    return total
