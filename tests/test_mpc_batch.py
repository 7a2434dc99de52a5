"""MPC as a batched controller: its exact horizon solve, its filter, and one episode == many."""

import math

import numpy as np
import pytest
from _identity import differences
from scipy.optimize import lsq_linear

from closedloop import ConfigError
from closedloop.controllers import MPC, MPCParams
from closedloop.controllers.mpc_kernels import CONSTANTS, STATE, horizon_solve, mpc_law
from closedloop.evaluation.batch_runner import run_episodes
from closedloop.evaluation.episode_runner import run_episode

KINDS = ("plain", "all-fixed", "mu-zero", "tiny-gain", "some-fixed", "tight-box", "zero-gain")


def _problem(rng, kind):
    """A random horizon problem ``(w, c, mu, current_ma, lo, hi)`` of the given kind."""
    n = int(rng.choice([1, 2, 3, 5, 8, 20, 50, 100]))
    j = np.arange(1.0, n + 1)
    w = rng.uniform(0.1, 3.0, n) * np.exp(0.03 * rng.normal() * j)
    c = np.full(n, rng.uniform(1.2, 3.0))
    mu = 0.0 if kind in ("mu-zero", "zero-gain") else float(10 ** rng.uniform(-3, 6))
    cur = rng.uniform(0.0, 10.0)
    lo = np.maximum(0.0, cur - rng.uniform(0.0, 2.0) * j)
    hi = np.minimum(
        np.minimum(rng.uniform(2.0, 12.0), cur + rng.uniform(0.0, 2.0) * j),
        rng.uniform(1.0, 15.0, n),
    )
    if kind == "all-fixed":
        hi = lo.copy()
    elif kind == "some-fixed":
        fixed = rng.random(n) < 0.5
        hi[fixed] = lo[fixed]
    elif kind == "tiny-gain":
        w[rng.random(n) < 0.5] = 1e-12
        mu = mu if rng.random() < 0.5 else 0.0
    elif kind == "zero-gain":
        w[rng.random(n) < 0.5] = 0.0
    elif kind == "tight-box":  # the unconstrained plan far outside the box
        hi = np.minimum(hi, 0.1 + 0.01 * j)
    return w, c, mu, cur, np.minimum(lo, hi), hi


def _lsq(w, c, mu, cur):
    """``(A, b)`` of the horizon problem, as the MPC built it for scipy."""
    n = w.size
    a = np.zeros((2 * n, n))
    a[np.arange(n), np.arange(n)] = w
    a[n:, :] = math.sqrt(mu) * (np.eye(n) - np.eye(n, k=-1))
    b = np.zeros(2 * n)
    b[:n], b[n] = c, math.sqrt(mu) * cur
    return a, b


def _error_bound(a, b, x, lo, hi):
    """Upper bound on ``|x - x*|`` (mA) for a strictly convex problem, from the natural residual
    ``x - P(x - g / L)`` (``L`` the largest eigenvalue of ``AᵀA``, ``m`` the smallest):
    ``|x - x*| <= 2 L / m |r|``."""
    ev = np.linalg.eigvalsh(a.T @ a)
    r = x - np.clip(x - (a.T @ (a @ x - b)) / ev[-1], lo, hi)
    return 2.0 * ev[-1] / ev[0] * np.linalg.norm(r)


def _solve(w, c, mu, cur, lo, hi):
    x = np.full(w.size, np.nan)
    horizon_solve(w, c, mu, cur, lo, hi, x)
    return x


def test_the_horizon_solve_is_exact_and_agrees_with_scipy_bvls():
    rng = np.random.default_rng(2026)
    agreed = 0
    for i in range(210):
        kind = KINDS[i % len(KINDS)]
        w, c, mu, cur, lo, hi = _problem(rng, kind)
        x = _solve(w, c, mu, cur, lo, hi)
        a, b = _lsq(w, c, mu, cur)
        ref = np.minimum(
            lsq_linear(a, b, bounds=(lo, np.maximum(hi, lo + 1e-12)), method="bvls").x, hi
        )
        assert np.all((lo <= x) & (x <= hi)), kind
        if mu == 0.0:  # separable: u_j = clip(c_j / w_j), exact in both
            used = w != 0.0  # (w_j = 0: any u_j is optimal; this solve takes clip(0))
            assert np.abs(x - ref)[used].max(initial=0.0) <= 1e-8, kind
            assert np.array_equal(x[~used], np.clip(0.0, lo, hi)[~used]), kind
            agreed += 1
            continue
        assert _error_bound(a, b, x, lo, hi) <= 1e-8, kind
        cost, ref_cost = (0.5 * np.sum((a @ v - b) ** 2) for v in (x, ref))
        assert cost <= ref_cost * (1 + 1e-12) + 1e-12, kind
        if _error_bound(a, b, ref, lo, hi) <= 1e-9:  # scipy reached the optimum too
            assert np.abs(x - ref).max() <= 1e-8, kind
            agreed += 1
    # (scipy's BVLS stops early on some problems: cost change < tol * cost, or a variable
    # with lo == hi freed; there the exact solve has the lower cost, checked above.)
    assert agreed >= 190  # 203 of the 210 at this seed


def test_degenerate_problems_have_the_expected_solutions():
    lo, hi = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])
    assert _solve(np.ones(3), np.full(3, 2.0), 5.0, 0.0, lo, hi).tolist() == [1.0, 2.0, 3.0]
    lo, hi = np.zeros(3), np.full(3, 10.0)
    assert _solve(np.zeros(3), np.full(3, 2.0), 0.0, 4.0, lo + 1.0, hi).tolist() == [1.0] * 3
    x = _solve(np.full(3, 1e-12), np.full(3, 2.0), 0.0, 4.0, lo, hi)  # wants 2e12 mA
    assert x.tolist() == [10.0] * 3
    x = _solve(np.full(3, 1e-12), np.full(3, 2.0), 5.0, 4.0, lo, hi)  # only the move penalty
    assert np.abs(x - 4.0).max() <= 1e-9


def _row(horizon_steps=5, mu=5.0):
    """``p``, one episode's constants and state as :class:`MPC` builds them."""
    p = np.array([horizon_steps, mu, 10.0, 3.0])
    const = np.array([[3.0, 60.0, 45.0, 0.5, 8.0, 0.25**2 * 0.02, 0.01**2 * 0.02**3]])
    state = np.array([[0.0, 0.0, 0.25, 0.0, 0.0, 0.0]])
    assert const.shape[1] == len(CONSTANTS) and state.shape[1] == len(STATE)
    return p, const, state


def _reference_law(p, k, x, cov, step, ecap_uv, current_ma, target_uv, dt_s):
    """The MPC as written with numpy matrices and scipy (tight tolerance): (mA, x, cov)."""
    if step > 0:
        f = np.array([[1.0, 1.0], [0.0, 1.0]])
        x, cov = f @ x, f @ cov @ f.T + np.diag([k[5], k[6]])
        gain = k[1] * current_ma / (k[0] * math.exp(x[0]))
        h = np.array([-gain, 0.0])
        kg = cov @ h / (h @ cov @ h + p[3] ** 2)
        x, cov = x + kg * (ecap_uv - (gain - k[1])), cov - np.outer(kg, h @ cov)
    j = np.arange(1.0, int(p[0]) + 1)
    a = k[1] / (k[0] * np.exp(x[0] + j * x[1]))
    hi = np.minimum(np.minimum(k[4], current_ma + p[2] * dt_s * j), (k[2] + k[1]) / a)
    lo = np.minimum(np.maximum(k[3], current_ma - p[2] * dt_s * j), hi)
    if np.all(hi - lo < 1e-9):
        return float(hi[0]), x, cov
    m, b = _lsq(a / target_uv, np.full(j.size, (k[1] + target_uv) / target_uv), p[1], current_ma)
    res = lsq_linear(
        m, b, bounds=(lo, np.maximum(hi, lo + 1e-12)), method="bvls", tol=1e-15, max_iter=1000
    )
    return float(res.x[0]), x, cov


@pytest.mark.parametrize("horizon_steps", [1, 5, 30])
def test_the_kernel_plays_the_numpy_filter_and_plan(horizon_steps):
    """Open-loop observations (a threshold step, noise): the same plan to round-off each step."""
    p, const, state = _row(horizon_steps)
    x, cov, rng = np.zeros(2), np.diag([0.25, 0.0]), np.random.default_rng(5)
    worst = 0.0
    for step in range(200):
        current = 4.0 + 2.0 * math.sin(step / 15.0)
        th = 3.0 if step < 80 else 2.2
        ecap = 60.0 * (current / th - 1.0) + rng.normal(0.0, 3.0)
        got = mpc_law(p, const, state, 0, step, step * 0.02, 0.02, ecap, 1.0, current, 30.0)
        want, x, cov = _reference_law(p, const[0], x, cov, step, ecap, current, 30.0, 0.02)
        worst = max(worst, abs(got - want))
        assert state[0, :2] == pytest.approx(x, rel=1e-9, abs=1e-12)
    assert worst <= 1e-8
    assert state[0, 0] == pytest.approx(math.log(2.2 / 3.0), abs=0.05)  # it tracked the step


def test_early_exit_when_every_bound_is_tight():
    p, const, state = _row()
    const[0, 3] = const[0, 4] = 5.0  # min_ma == max_ma: nothing to plan
    assert mpc_law(p, const, state, 0, 0, 0.0, 0.02, 0.0, 1.0, 5.0, 30.0) == 5.0
    # below the limits the rate limit caps every step's bounds (upper bound 4 + 0.2 j mA)
    assert mpc_law(p, const, state, 0, 0, 0.0, 0.02, 0.0, 1.0, 4.0, 30.0) == 4.0 + 10.0 * 0.02


EPISODES = [("test-001", 0), ("test-002", 3), ("test-003", 1)]
SHORT = {"episode_s": 14.0}


@pytest.mark.parametrize("params", [MPCParams(), MPCParams(horizon_steps=12, move_penalty=0.0)])
def test_run_episodes_equals_run_episode_bit_for_bit(params):
    env_id = "closedloop/ECAPTracking-Test-v0"
    assert MPC(params).batch_ready
    got = run_episodes(lambda: MPC(params), env_id, EPISODES, SHORT)
    ref = [run_episode(MPC(params), env_id, pt, s, SHORT) for pt, s in EPISODES]
    for g, r in zip(got, ref, strict=True):
        assert differences(g, r) == [], (g.patient, g.seed)
    assert len({r.metrics["mad_uv"] for r in got}) == len(EPISODES)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("horizon_steps", 0),
        ("horizon_steps", 101),
        ("move_penalty", -1.0),
        ("rate_limit_ma_per_s", 0.0),
        ("noise_uv", 0.0),
        ("discomfort_margin", 0.0),
        ("ceiling_rel", 0.5),
        ("threshold_sd_per_s", math.nan),
    ],
)
def test_bad_params_raise_config_error_naming_the_parameter(field, value):
    with pytest.raises(ConfigError, match=field):
        MPCParams(**{field: value})
