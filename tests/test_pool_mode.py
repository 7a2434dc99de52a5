"""Mean-field pool mode of the neural model (``excitability.pool_fraction``).

The kernel against the NumPy reference (whose Irwin-Hall CDF is the summation formula, not the
kernel's piecewise form), the CDF against the jitter draws it stands for, the limits in which
pool mode is the all-or-none model, and the physics claim: a steady ECAP at a fixed current.
"""

import copy

import numpy as np
import pytest
from _identity import assert_records_close
from numpy.testing import assert_allclose, assert_array_equal

import closedloop.neural.reference as reference
from closedloop._config import ConfigError
from closedloop.neural import PULSE_DTYPE, ModelParams, NeuralModel
from closedloop.neural.batch import run_pulses_batch, stack
from closedloop.neural.kernels import PulseInputs, run_pulses
from closedloop.neural.latency import initiation_table
from closedloop.neural.params import ExcitabilityParams, ResponseParams
from closedloop.neural.pool import (
    fired_fraction,
    fired_ratio,
    fired_regen,
    pool_regen_at,
    pool_regen_table,
    pool_rho_max,
)
from closedloop.neural.rng import Z_MAX, fmix32_np, hash_normal_np

N_FIBRES = 256
SMALL = ModelParams().replace(population={"n_fibres": N_FIBRES})


def _pool(jitter_rel=0.03, base=SMALL, pool=True):
    return base.replace(excitability={"pool_fraction": pool, "jitter_rel": jitter_rel})


def _train(seed=0, n=300):
    """Random currents (0-15 mA), two pulse widths, CSF 1.5-6 mm, rates 2 Hz - 10 kHz."""
    rng = np.random.default_rng(seed)
    cur = rng.uniform(0.0, 15.0, n)
    cur[::29] = 0.0
    cur[100:140] = 6.0  # a steady stretch: adaptation builds up
    pw = np.where(np.arange(n) % 100 < 60, 210.0, 460.0)
    csf = 3.5 + 2.0 * np.sin(np.arange(n) / 15.0) + rng.uniform(-0.5, 0.5, n)
    rate = rng.choice([2.0, 50.0, 455.0, 1000.0, 10_000.0], n)
    return PulseInputs(cur, pw, csf, 1.0 / rate)


def _kernel(model, state, inputs):
    out = np.empty(inputs.current_ma.size, PULSE_DTYPE)
    run_pulses(
        state, model.tables, model.kparams, inputs, out, np.empty((0, model.n_samples)), model.work
    )
    return out


@pytest.mark.parametrize("jitter_rel", [0.03, 0.25])
def test_pool_kernel_matches_reference(jitter_rel, monkeypatch):
    model = NeuralModel(_pool(jitter_rel), seed=5)
    model.reset(9)
    inputs = _train()
    k_state, r_state = copy.deepcopy(model.state), copy.deepcopy(model.state)
    k_out = _kernel(model, k_state, inputs)
    r_out, _ = reference.run_pulses_reference(r_state, model.tables, model.kparams, inputs)
    assert_records_close(k_out, r_out, atol=1e-12)
    assert_allclose(k_state.decay_ref, r_state.decay_ref, rtol=1e-9, atol=0.0)
    # the per-class sums, pulse by pulse (the reference's recruit, captured)
    sums = []

    def spy(*args):
        res = real(*args)
        sums.append(res)
        return res

    real = reference.recruit_reference
    monkeypatch.setattr(reference, "recruit_reference", spy)
    for p in range(40):
        one = PulseInputs(*(a[p : p + 1] for a in inputs))
        _kernel(model, k_state, one)
        reference.run_pulses_reference(r_state, model.tables, model.kparams, one)
        total, acc, dacc = sums[-1]
        assert_allclose(model.work.class_acc, acc, rtol=1e-9, atol=1e-12)
        assert_allclose(model.work.class_delay, dacc, rtol=1e-9, atol=1e-12)
    # the train exercises pools firing in part: fractional sums, none to all fibres
    frac = k_out["frac_recruited"] * N_FIBRES
    assert k_out["n_recruited"].min() == 0 and k_out["n_recruited"].max() == N_FIBRES
    assert (np.abs(frac - np.round(frac)) > 1e-3).mean() > 0.3
    assert_array_equal(k_out["n_recruited"], np.floor(frac + 0.5))
    # no latency without half a fibre's worth of ECAP, as all-or-none without a fibre
    assert_array_equal(np.isnan(k_out["n1_latency_ms"]), k_out["n_recruited"] == 0)
    assert ((k_out["n_recruited"] == 0) & (frac > 0.0)).any()


def test_pool_fraction_is_the_cdf_of_the_jitter_draws():
    z = np.sort(hash_normal_np(fmix32_np(np.arange(2_000_000, dtype=np.uint64))))
    grid = np.linspace(-3.6, 3.6, 721)
    jit, th = 0.25, 1.0
    current = th * (1.0 + jit * grid)  # P(th (1 + jit z) <= I) = P(z <= grid)
    q = np.array([fired_fraction(c, th, jit) for c in current])
    ecdf = np.searchsorted(z, grid, side="right") / z.size
    # the draw is discrete (steps up to ~0.0026): within half a step plus sampling error
    assert np.abs(q - ecdf).max() < 0.004
    assert q[grid <= -Z_MAX].max() == 0.0 and q[grid >= Z_MAX].min() == 1.0
    assert np.all(np.diff(q) >= 0.0)
    # the kernel's piecewise form against the reference's summation formula
    fine = np.linspace(-3.5, 3.5, 7001)
    cur = th * (1.0 + jit * fine)
    k = np.array([fired_fraction(c, th, jit) for c in cur])
    assert_allclose(k, reference.pool_fraction_reference(cur, th, jit), rtol=0.0, atol=1e-13)
    # the mean th' / I of the members that fire, against the draws
    for zs in (-2.0, -0.5, 0.0, 1.5):
        c = th * (1.0 + jit * zs)
        qs = fired_fraction(c, th, jit)
        fired = z[z <= zs]
        u_emp = np.mean(th * (1.0 + jit * fired)) / c
        assert qs > 0.0 and abs(fired_ratio(c, th, jit) - u_emp) < 2e-3
        assert fired_ratio(c, th, jit) <= 1.0


@pytest.mark.parametrize("jitter_rel", [0.03, 0.25])
def test_pool_delay_is_the_members_mean_delay(jitter_rel):
    # the regenerative delay is convex and steep near threshold: a partly firing pool's mean
    # delay E[R(u)] over its members lies 16-44 us above R(E[u]) (the earlier pool mode, which
    # put the N1 ~15 us early at 7 mA; tests/test_neural_validation.py's conduction velocity)
    table = initiation_table(ResponseParams())
    z = np.sort(hash_normal_np(fmix32_np(np.arange(2_000_000, dtype=np.uint64))))
    th = 1.0

    def regen(u):
        x = u * (table.size - 2)
        k = np.minimum(x.astype(np.int64), table.size - 2)
        return table[k] + (x - k) * (table[k + 1] - table[k])

    for zs in (-2.0, -0.5, 0.0, 1.5, 3.0, 4.0):
        c = th * (1.0 + jitter_rel * zs)
        fired = z[z <= zs]
        emp = regen(th * (1.0 + jitter_rel * fired) / c).mean()  # the members' own delays
        got = fired_regen(c, th, jitter_rel, table)
        assert abs(got - emp) < 2e-3, zs  # within 2 us (quadrature, discrete draws)
        assert got == pytest.approx(
            reference.fired_regen_reference(c, np.array([th]), jitter_rel, table)[0], rel=1e-12
        )
        at_mean = regen(np.array([fired_ratio(c, th, jitter_rel)]))[0]
        if zs < 1.0:
            assert got - at_mean > 0.015  # Jensen: the delay at the mean u is 16-44 us early


@pytest.mark.parametrize("jitter_rel", [0.03, 0.1, 0.25])
def test_pool_delay_table_reads_the_quadrature(jitter_rel):
    # the kernel reads a pool's mean regenerative delay from a table on rho = th / current;
    # between its grid points (kinks included: the whole pool fires from rho = 1 / (1 + jitter
    # Z_MAX)) it stays within 0.2 us of the quadrature it tabulates
    init = initiation_table(ResponseParams())
    table = pool_regen_table(jitter_rel, init)
    rho_max = pool_rho_max(jitter_rel)
    per_rho = (table.size - 2) / rho_max
    rho = np.random.default_rng(0).uniform(0.02, rho_max * (1.0 - 1e-9), 20_000)
    got = np.array([pool_regen_at(r, table, per_rho) for r in rho])
    want = np.array([fired_regen(1.0, r, jitter_rel, init) for r in rho])
    assert np.abs(got - want).max() < 2e-4  # ms (largest at the pool edge, where q ~ 0)
    assert fired_fraction(1.0, rho_max * (1.0 + 1e-9), jitter_rel) == 0.0  # none fire above
    assert fired_fraction(1.0, rho_max * (1.0 - 1e-6), jitter_rel) > 0.0
    assert_allclose(table, reference.pool_regen_table_reference(jitter_rel, init), rtol=1e-12)
    assert not pool_regen_table(0.0, init).any()


def test_zero_jitter_pool_is_bit_for_bit_all_or_none():
    # q is 0 or 1: the pool update at q = 1 is the all-or-none reset, bit for bit
    inputs = _train(1)
    outs, states = [], []
    for pool in (False, True):
        model = NeuralModel(_pool(0.0, pool=pool), seed=3)
        model.reset(4)
        outs.append(_kernel(model, model.state, inputs))
        states.append(model.state)
    for name in PULSE_DTYPE.names:
        assert_array_equal(outs[0][name], outs[1][name], err_msg=name)
    for name in states[0]._fields:
        assert_array_equal(getattr(states[0], name), getattr(states[1], name), err_msg=name)
    assert outs[0]["n_recruited"].max() == N_FIBRES


def test_pool_of_certain_fibres_is_the_all_or_none_reset():
    # far above every threshold each pool fires whole (q = 1, jitter 3 %): the fibre state is
    # the all-or-none one bit for bit (the delays differ: nominal vs jittered thresholds)
    inputs = PulseInputs(np.full(3, 25.0), np.full(3, 460.0), np.full(3, 1.0), np.ones(3))
    res = []
    for pool in (False, True):
        model = NeuralModel(_pool(0.03, pool=pool), seed=2)
        model.reset(3)
        res.append((_kernel(model, model.state, inputs), model.state))
    (a, sa), (b, sb) = res
    assert_array_equal(a["n_recruited"], N_FIBRES)
    assert_array_equal(b["frac_recruited"], 1.0)
    for name in ("decay_ref", "clock_ms"):
        assert_array_equal(getattr(sa, name), getattr(sb, name), err_msg=name)


def test_pool_mode_in_the_batch_kernel():
    models = [NeuralModel(_pool(0.03, pool=p), seed=s) for s, p in ((0, True), (1, False))]
    rng = np.random.default_rng(2)
    n = 80
    per = [
        PulseInputs(
            rng.uniform(0.0, 12.0, n), np.full(n, 300.0), rng.uniform(2.0, 5.0, n), np.full(n, 0.02)
        )
        for _ in models
    ]
    state = stack([m.state for m in models])
    out = np.empty((2, n), PULSE_DTYPE)
    run_pulses_batch(
        state,
        stack([m.tables for m in models]),
        stack([m.kparams for m in models]),
        stack(per),
        out,
        np.empty((2, 0, models[0].n_samples)),
    )
    for i, (m, inp) in enumerate(zip(models, per, strict=True)):
        rec = m.stimulate(*inp)
        for name in PULSE_DTYPE.names:
            assert_array_equal(out[i][name], rec[name], err_msg=name)


@pytest.mark.parametrize("current_ma", [5.0, 6.0])
def test_pool_mode_steadies_the_ecap_at_a_fixed_current(current_ma):
    # Default patient, 50 Hz, no disturbance: 2 s of warm-up, then 3 s. Measured (seed 0,
    # reset 1): all-or-none CV 17.6 % (5 mA, 57 fibres, 28.7 µV) and 17.7 % (6 mA, 138
    # fibres, 50.1 µV); pool mode 1.2 % and 0.6 %, mean ECAP 29.9 and 49.7 µV.
    stats = {}
    for pool in (False, True):
        model = NeuralModel(ModelParams().replace(excitability={"pool_fraction": pool}), seed=0)
        model.reset(1)
        model.pulse_train(current_ma, 50.0, 100)
        ecap = model.pulse_train(current_ma, 50.0, 150)["ecap_true_uv"]
        stats[pool] = (ecap.mean(), ecap.std() / ecap.mean())
    assert 15.0 < stats[True][0] < 80.0  # a clinical target's size
    assert stats[True][1] < 0.03
    assert stats[False][1] > 0.08
    assert abs(stats[True][0] / stats[False][0] - 1.0) < 0.1  # the same growth curve


@pytest.mark.parametrize("bad", [1, 0, "yes", None, 1.0])
def test_bad_pool_fraction_raises(bad):
    with pytest.raises(ConfigError, match="excitability.pool_fraction"):
        ExcitabilityParams(pool_fraction=bad)
    with pytest.raises(ConfigError, match="pool_fraction"):
        ModelParams().replace(excitability={"pool_fraction": bad})


def test_pool_flag_reaches_the_kernel():
    assert NeuralModel(_pool(pool=False), seed=0).kparams.pool_fraction == 0.0
    assert NeuralModel(_pool(), seed=0).kparams.pool_fraction == 1.0
