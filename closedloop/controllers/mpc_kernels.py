"""Numba kernels of :class:`~closedloop.controllers.mpc.MPC`: the filter and the horizon solve.

**The horizon problem** is the bounded linear least-squares problem

    min ||A u - b||²   s.t.  lo <= u <= hi,    A = [diag(w); sqrt(mu) D],  b = [c; sqrt(mu) I_0 e_0]

with ``D = I - (I shifted down)`` the first differences (its first row ``u_0 - I_0``), ``w_j`` the
relative ECAP gain (1/mA), ``c_j`` the relative target, ``mu`` the move penalty (1/mA²) and
``I_0`` the delivered current (mA). Its normal matrix ``H = AᵀA = diag(w²) + mu DᵀD`` is
tridiagonal, with off-diagonal ``-mu``; for ``mu > 0`` it is symmetric positive definite (``DᵀD``
is: ``D`` is unit lower bidiagonal), so the problem is a strictly convex quadratic programme
with one minimiser. :func:`box_tridiag_solve` finds it exactly by a primal active-set method:
the free variables solve their tridiagonal system (Thomas algorithm, stable: ``H`` is weakly
diagonally dominant), a step that would leave the box stops at the first bound it meets and
fixes that variable, and a fixed variable whose multiplier has the wrong sign is freed again.
Each step lowers the objective, so no working set repeats and it ends in finitely many steps.

For ``mu = 0`` the problem is separable: ``u_j = clip(c_j / w_j, lo_j, hi_j)``, and a variable
with ``w_j = 0`` (it does not enter the objective) takes ``clip(0, lo_j, hi_j)``, the value of
the minimum-norm least-squares solution that :func:`scipy.optimize.lsq_linear` starts from.

All arrays are float64; currents in mA.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from closedloop.controllers.base import py_max, py_min

_EPS_TOL = 64.0 * 2.220446049250313e-16
"""Multipliers below this multiple of their terms' magnitude count as zero (round-off)."""
FREE, AT_LO, AT_HI, FIXED = 0, -1, 1, 2
"""Status of a variable in :func:`box_tridiag_solve` (FIXED: ``lo == hi``)."""

_HORIZON, _MU, _RATE, _NOISE = range(4)
"""The parameters array ``p`` of :func:`mpc_law`: horizon (steps), move penalty (1/mA²), rate
limit (mA/s), measurement noise sd (µV)."""
CONSTANTS = ("threshold_ref_ma", "scale_uv", "ecap_max_uv", "min_ma", "max_ma", "q_00", "q_11")
"""An episode's constants row: calibrated threshold and scale, discomfort ECAP bound, current
limits, process-noise variances of the log threshold and of its rate per step."""
STATE = ("z", "z_rate", "cov_00", "cov_01", "cov_10", "cov_11")
"""An episode's state row: log-threshold offset, its rate per step and their 2x2 covariance."""
_TH, _SCALE, _EMAX, _LO, _HI, _Q0, _Q1 = range(len(CONSTANTS))
_Z, _ZR, _C00, _C01, _C10, _C11 = range(len(STATE))


@numba.njit(cache=True)
def _tridiag_free_solve(d, off, g, x, status, cp, dp, out):
    """``out``: the free variables minimise the quadratic, the others stay at ``x``."""
    n = d.size
    for i in range(n):
        if status[i] == FREE:
            diag, rhs = d[i], g[i]
            lower = off if i > 0 and status[i - 1] == FREE else 0.0
            upper = off if i + 1 < n and status[i + 1] == FREE else 0.0
            if i > 0 and status[i - 1] != FREE:
                rhs -= off * x[i - 1]
            if i + 1 < n and status[i + 1] != FREE:
                rhs -= off * x[i + 1]
        else:
            diag, rhs, lower, upper = 1.0, x[i], 0.0, 0.0
        piv = diag - lower * cp[i - 1] if i > 0 else diag
        cp[i] = upper / piv
        dp[i] = (rhs - lower * dp[i - 1]) / piv if i > 0 else rhs / piv
    out[n - 1] = dp[n - 1]
    for i in range(n - 2, -1, -1):
        out[i] = dp[i] - cp[i] * out[i + 1]


@numba.njit(cache=True)
def _blocking_step(x, p, lo, hi, status):
    """Move the free variables from ``x`` towards ``p``; False if ``p`` is feasible (x = p).

    Otherwise stop at the first bound met, fix that variable there and return True.
    """
    alpha, block = 1.0, -1
    for i in range(x.size):
        if status[i] != FREE:
            continue
        if p[i] < lo[i] and (lo[i] - x[i]) / (p[i] - x[i]) < alpha:
            alpha, block = (lo[i] - x[i]) / (p[i] - x[i]), i
        elif p[i] > hi[i] and (hi[i] - x[i]) / (p[i] - x[i]) < alpha:
            alpha, block = (hi[i] - x[i]) / (p[i] - x[i]), i
    if block < 0:
        for i in range(x.size):
            if status[i] == FREE:
                x[i] = py_min(py_max(p[i], lo[i]), hi[i])
        return False
    alpha = py_max(alpha, 0.0)
    for i in range(x.size):
        if status[i] == FREE:
            x[i] = py_min(py_max(x[i] + alpha * (p[i] - x[i]), lo[i]), hi[i])
    status[block] = AT_LO if p[block] < lo[block] else AT_HI
    x[block] = lo[block] if status[block] == AT_LO else hi[block]
    return True


@numba.njit(cache=True)
def _worst_multiplier(d, off, g, x, status):
    """Index of the fixed-at-a-bound variable whose multiplier most wants it freed, or -1."""
    n, worst, worst_v = d.size, -1, 0.0
    for i in range(n):
        if status[i] != AT_LO and status[i] != AT_HI:
            continue
        left = x[i - 1] if i > 0 else 0.0
        right = x[i + 1] if i + 1 < n else 0.0
        grad = d[i] * x[i] + off * (left + right) - g[i]  # (H x - g)_i
        mag = abs(d[i] * x[i]) + abs(off) * (abs(left) + abs(right)) + abs(g[i])
        v = -grad if status[i] == AT_LO else grad  # > 0: wants freeing
        if v > _EPS_TOL * mag and v > worst_v:
            worst, worst_v = i, v
    return worst


@numba.njit(cache=True)
def box_tridiag_solve(d, off, g, lo, hi, x):
    """Minimise ``½ uᵀ H u - gᵀ u`` over ``lo <= u <= hi``, ``H`` SPD tridiagonal; into ``x``.

    Args:
        d: Diagonal of ``H`` (n,).
        off: Its off-diagonal, the same for every pair (``-mu``).
        g: The linear term (n,).
        lo: Lower bounds (n,).
        hi: Upper bounds (n,), ``hi >= lo``; ``hi == lo`` fixes the variable.
        x: Output (n,): the minimiser.

    Returns:
        The number of active-set iterations (at most ``10 n + 10``; then ``x`` is the last
        feasible iterate).
    """
    n = d.size
    status = np.zeros(n, np.int64)
    work = np.empty((3, n))
    for i in range(n):
        if hi[i] <= lo[i]:
            status[i], x[i] = FIXED, lo[i]
        else:
            x[i] = 0.0
    _tridiag_free_solve(d, off, g, x, status, work[0], work[1], work[2])
    for i in range(n):  # start: the unconstrained minimiser, clipped
        if status[i] == FREE:
            x[i] = py_min(py_max(work[2, i], lo[i]), hi[i])
            if work[2, i] <= lo[i]:
                status[i] = AT_LO
            elif work[2, i] >= hi[i]:
                status[i] = AT_HI
    for it in range(10 * n + 10):
        _tridiag_free_solve(d, off, g, x, status, work[0], work[1], work[2])
        if _blocking_step(x, work[2], lo, hi, status):
            continue
        worst = _worst_multiplier(d, off, g, x, status)
        if worst < 0:
            return it + 1
        status[worst] = FREE
    return 10 * n + 10


@numba.njit(cache=True)
def horizon_solve(w, c, mu, current_ma, lo, hi, x):
    """The horizon problem of the module docstring, solved exactly into ``x`` (mA).

    Args:
        w: Relative ECAP gains ``a_j / target`` (1/mA), (n,).
        c: Relative targets ``(scale + target) / target`` (1), (n,).
        mu: Move penalty (1/mA²), >= 0.
        current_ma: Delivered current ``I_0`` (mA).
        lo: Lower bounds (mA), (n,).
        hi: Upper bounds (mA), (n,), ``hi >= lo``.
        x: Output (n,): the optimal plan (mA).
    """
    n = w.size
    if mu == 0.0:
        for j in range(n):
            u = c[j] / w[j] if w[j] != 0.0 else 0.0
            x[j] = lo[j] if hi[j] <= lo[j] else py_min(py_max(u, lo[j]), hi[j])
        return
    d, g = np.empty(n), np.empty(n)
    for j in range(n):
        d[j] = w[j] * w[j] + (2.0 * mu if j + 1 < n else mu)
        g[j] = w[j] * c[j]
    g[0] += mu * current_ma
    box_tridiag_solve(d, -mu, g, lo, hi, x)


@numba.njit(cache=True)
def ekf_update(p, k, st, current_ma, ecap_uv):
    """One extended-Kalman step of the local-trend log-threshold model, in place on ``st``.

    ``p``: parameters, ``k``: the episode's constants (:data:`CONSTANTS`), ``st`` its state
    (:data:`STATE`); ``current_ma`` (mA) and ``ecap_uv`` (µV) are the last step's.
    """
    z = st[_Z] + st[_ZR]  # x = F x, F = [[1, 1], [0, 1]]
    r0, r1 = st[_C00] + st[_C10], st[_C01] + st[_C11]  # F cov
    c00, c01 = r0 + r1 + k[_Q0], r1  # F cov Fᵀ + Q
    c10, c11 = st[_C10] + st[_C11], st[_C11] + k[_Q1]
    gain_uv = k[_SCALE] * current_ma / (k[_TH] * math.exp(z))
    predicted = gain_uv - k[_SCALE]
    h = -gain_uv  # d ECAP / d z
    s = h * c00 * h + p[_NOISE] * p[_NOISE]
    k0, k1 = c00 * h / s, c10 * h / s
    innovation = ecap_uv - predicted
    st[_Z], st[_ZR] = z + k0 * innovation, st[_ZR] + k1 * innovation
    hc0, hc1 = h * c00, h * c01  # h cov
    st[_C00], st[_C01] = c00 - k0 * hc0, c01 - k0 * hc1
    st[_C10], st[_C11] = c10 - k1 * hc0, c11 - k1 * hc1


@numba.njit(cache=True)
def plan_first_move(p, k, st, current_ma, target_uv, dt_s):
    """The first move of the optimal horizon plan (mA) from the state ``st``."""
    n = int(p[_HORIZON])
    buf = np.empty((5, n))
    w, c, lo, hi, x = buf[0], buf[1], buf[2], buf[3], buf[4]
    all_tight = True
    for i in range(n):
        j = i + 1.0
        a = k[_SCALE] / (k[_TH] * math.exp(st[_Z] + j * st[_ZR]))
        w[i], c[i] = a / target_uv, (k[_SCALE] + target_uv) / target_uv
        step_ma = p[_RATE] * dt_s * j
        hi[i] = py_min(py_min(k[_HI], current_ma + step_ma), (k[_EMAX] + k[_SCALE]) / a)
        lo[i] = py_min(py_max(k[_LO], current_ma - step_ma), hi[i])  # discomfort wins
        all_tight = all_tight and hi[i] - lo[i] < 1e-9
    if all_tight:
        return hi[0]
    horizon_solve(w, c, p[_MU], current_ma, lo, hi, x)
    return x[0]


@numba.njit(cache=True)
def mpc_law(p, const, state, row, step, t_s, dt_s, ecap_uv, detected, current_ma, target_uv):
    """Episode ``row``: filter the disturbance with the last step, then plan (mA).

    ``p`` holds the parameters, ``const[row]`` the episode's constants (:data:`CONSTANTS`),
    ``state[row]`` its filter state (:data:`STATE`), updated in place.
    """
    k, st = const[row], state[row]
    if step > 0:
        ekf_update(p, k, st, current_ma, ecap_uv)
    return plan_first_move(p, k, st, current_ma, target_uv, dt_s)


@numba.njit(cache=True)
def mpc_many(
    p, const, state, rows, steps, t_s, dt_s, ecap_uv, detected, current_ma, target_uv, out
):
    """``out[i]``: :func:`mpc_law` on episode ``rows[i]``."""
    for i in range(rows.size):
        r = rows[i]
        out[i] = mpc_law(
            p,
            const,
            state,
            r,
            steps[r],
            t_s[r],
            dt_s,
            ecap_uv[i],
            detected[i],
            current_ma[i],
            target_uv[i],
        )
