"""The numba kernels against the pure-NumPy reference, and the batched kernel against a loop.

The reference (closedloop.neural.reference) evaluates every floating-point expression in the
kernel's order, so recruitment must agree exactly and the recorded sweeps to rounding.
"""

import copy
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from _identity import assert_records_close, assert_records_identical
from numpy.testing import assert_allclose, assert_array_equal

from closedloop.neural import PULSE_DTYPE, ModelParams, NeuralModel
from closedloop.neural.batch import run_batch, run_pulses_batch, stack
from closedloop.neural.kernels import FLUSH, PulseInputs, run_pulses, run_pulses_unshared
from closedloop.neural.params import MAX_ABS_OVER_TAU_REL
from closedloop.neural.reference import (
    build_tables_reference,
    run_pulses_reference,
    sd_tables_reference,
)
from closedloop.neural.rng import seed_words

N_FIBRES = 256
SMALL = ModelParams().replace(population={"n_fibres": N_FIBRES})
FIBRE_STATE = ("decay_ref", "clock_ms")


def _train(seed: int = 0) -> PulseInputs:
    """Mixed pulse train: random and fixed currents, two pulse widths, 2 Hz - 10 kHz."""
    rng = np.random.default_rng(seed)
    segments = [  # (n, rate Hz, pw µs, current mA or None for random)
        (60, 50.0, 210.0, None),
        (30, 2.0, 460.0, None),
        (40, 10_000.0, 210.0, 15.0),
        (40, 1000.0, 460.0, 12.0),
        (40, 10_000.0, 210.0, None),
        (30, 455.0, 330.0, None),
    ]
    cur, pw, rate = [], [], []
    for n, r, w, c in segments:
        cur.append(rng.uniform(0.0, 15.0, n) if c is None else np.full(n, c))
        pw.append(np.full(n, w))
        rate.append(np.full(n, r))
    cur = np.concatenate(cur)
    cur[::23] = 0.0
    n = cur.size
    csf = 3.5 + 2.0 * np.sin(np.arange(n) / 15.0) + rng.uniform(-0.5, 0.5, n)
    csf[[7, 130]], csf[[8, 131]] = 0.5, 12.0  # grid edges
    return PulseInputs(cur, np.concatenate(pw), csf, 1.0 / np.concatenate(rate))


def _chunk(inputs: PulseInputs, sl: slice) -> PulseInputs:
    return PulseInputs(*(np.ascontiguousarray(a[sl]) for a in inputs))


def _kernel(state, model, inputs, waveforms):
    n = inputs.current_ma.size
    out = np.empty(n, PULSE_DTYPE)
    wave = np.empty((n if waveforms else 0, model.n_samples))
    run_pulses(state, model.tables, model.kparams, inputs, out, wave, model.work)
    return out, wave


@pytest.mark.parametrize("configuration", ["monopolar", "bipolar", "tripolar"])
def test_threshold_and_tables_match_reference(configuration):
    params = SMALL.replace(lead={"configuration": configuration})
    model = NeuralModel(params, seed=3)
    # float32 tables: within one float32 rounding (2**-24) of the float64 reference
    rheo, q = sd_tables_reference(model.fibres, params)
    assert_allclose(rheo, model.tables.rheo_ma, rtol=2.0**-24, atol=0.0)
    assert_allclose(q, model.tables.sd_q_ma, rtol=2.0**-24, atol=0.0)
    pop_ss, _ = np.random.SeedSequence(3).spawn(2)
    ref = build_tables_reference(params, model.fibres, seed_words(pop_ss)[2:])
    for name, r, k in zip(ref._fields, ref, model.tables, strict=True):
        assert np.asarray(r).dtype == np.asarray(k).dtype, name
        if np.asarray(k).dtype.kind == "f":
            assert_allclose(r, k, rtol=2.0**-23, atol=0.0, err_msg=name)
        else:
            assert_array_equal(r, k, err_msg=name)


@pytest.mark.parametrize("waveforms", [False, True])
@pytest.mark.parametrize(
    "variant",
    [
        {},
        {
            "excitability": {"jitter_rel": 0.25},
            "lead": {"lateral_offset_mm": 1.0},
            "recording": {"estimator": "n1p2", "adc_range_uv": 200.0},
            "response": {"motor_fraction": 0.1},
        },
    ],
    ids=["default", "variant"],
)
def test_pulse_train_matches_reference(waveforms, variant):
    model = NeuralModel(SMALL.replace(**variant), seed=5)
    model.reset(9)
    inputs = _train()
    k_state, r_state = copy.deepcopy(model.state), copy.deepcopy(model.state)
    halves = (slice(0, 110), slice(110, None))  # two calls: state carries over between them
    k = [_kernel(k_state, model, _chunk(inputs, h), waveforms) for h in halves]
    r = [
        run_pulses_reference(r_state, model.tables, model.kparams, _chunk(inputs, h), waveforms)
        for h in halves
    ]
    k_out, r_out = (np.concatenate([o for o, _ in x]) for x in (k, r))
    assert_array_equal(k_out["n_recruited"], r_out["n_recruited"])
    assert_records_close(k_out, r_out)
    for (_, kw), (_, rw) in zip(k, r, strict=True):
        assert kw.shape == rw.shape == ((kw.shape[0] if waveforms else 0), model.n_samples)
        assert_allclose(kw, rw, rtol=1e-9, atol=1e-9)
    for name in FIBRE_STATE + ("templates", "mf", "shapes", "cache"):
        assert_allclose(
            getattr(k_state, name),
            getattr(r_state, name),
            rtol=1e-12,
            atol=0.0,
            equal_nan=True,
            err_msg=name,
        )
    assert k_state.pulse_count[0] == r_state.pulse_count[0] == inputs.current_ma.size
    assert (k_state.clock_ms[1:3] > 0.0).all()  # the fast processes were rebased on the way
    # The train exercises what it is meant to: recruitment from none to all fibres, absolute
    # refractoriness (15 mA pulses at 10 kHz right after a weaker pulse recruit far fewer),
    # adaptation, late muscle responses and, in the variant, ADC clipping.
    n_rec = k_out["n_recruited"]
    assert n_rec.min() == 0 and n_rec.max() == N_FIBRES
    assert inputs.current_ma[89] <= 15.0 and n_rec[90:96].max() < n_rec[89] // 4
    assert k_state.decay_ref[2:].min(axis=1).max() > 0.0 and (k_out["emg_uv"] > 0.0).any()
    assert k_out["saturated"].any() == bool(variant)


def _batch_setup(seeds=(0, 1, 2), reset_seeds=(10, 11, 12), params=(SMALL,) * 3):
    models = [NeuralModel(p, seed=s) for s, p in zip(seeds, params, strict=True)]
    for m, r in zip(models, reset_seeds, strict=True):
        m.reset(r)
    rng = np.random.default_rng(1)
    n = 120
    per = [
        PulseInputs(
            rng.uniform(0.0, 15.0, n),
            np.where(np.arange(n) < 60, 210.0, 400.0),
            rng.uniform(2.0, 6.0, n),
            np.full(n, 1.0 / rate),
        )
        for rate in (50.0, 1000.0, 10_000.0)
    ]
    return models, per


@pytest.mark.parametrize("waveforms", [False, True])
def test_batch_equals_loop_of_scalar_calls(waveforms):
    models, per = _batch_setup()
    state = stack([m.state for m in models])
    tables = stack([m.tables for m in models])
    kparams = stack([m.kparams for m in models])
    n_p, n_s = per[0].current_ma.size, models[0].n_samples
    out = np.empty((len(models), n_p), PULSE_DTYPE)
    wave = np.empty((len(models), n_p if waveforms else 0, n_s))
    run_pulses_batch(state, tables, kparams, stack(per), out, wave)
    for i, (m, inp) in enumerate(zip(models, per, strict=True)):
        res = m.stimulate(*inp, waveforms=waveforms)
        rec = res[0] if waveforms else res
        assert_records_identical(out[i], rec)
        if waveforms:
            assert_array_equal(wave[i], res[1])
        for name in m.state._fields:
            assert_array_equal(getattr(state, name)[i], getattr(m.state, name), err_msg=name)
    assert len({int(o["n_recruited"].sum()) for o in out}) == len(models)  # patients differ


@pytest.mark.parametrize("waveforms", [False, True])
def test_kernel_without_reference_counting_is_the_same_kernel(waveforms):
    inputs = _train(3)
    models = [NeuralModel(SMALL, seed=7) for _ in range(2)]
    for m in models:
        m.reset(8)
    n = inputs.current_ma.size
    out = [np.empty(n, PULSE_DTYPE) for _ in models]
    wave = [np.empty((n if waveforms else 0, m.n_samples)) for m in models]
    for m, fn, o, w in zip(models, (run_pulses, run_pulses_unshared), out, wave, strict=True):
        fn(m.state, m.tables, m.kparams, inputs, o, w, m.work)
    assert_records_identical(out[0], out[1])
    assert_array_equal(wave[0], wave[1])
    for name in models[0].state._fields:
        assert_array_equal(getattr(models[0].state, name), getattr(models[1].state, name))
    assert out[0]["n_recruited"].max() > 0


@pytest.mark.parametrize("kernel", [run_pulses, run_pulses_unshared])
def test_kernel_rejects_a_scratch_too_short_for_the_template_lag(kernel):
    # The kernels run without bounds checks: a KernelWork not made by new_work for the
    # patient's lag must raise, not write past its scratch.
    m = NeuralModel(SMALL, seed=1)
    work = m.work._replace(scratch=np.zeros(2 * m.kparams.template_lag + 1))
    inputs = _train(4)
    n = inputs.current_ma.size
    with pytest.raises(ValueError, match="KernelWork.scratch is too short"):
        kernel(
            m.state,
            m.tables,
            m.kparams,
            inputs,
            np.empty(n, PULSE_DTYPE),
            np.empty((0, m.n_samples)),
            work,
        )


COLD_FIRST_CALL = """
import numpy as np
from closedloop.neural import NeuralModel
out = NeuralModel(seed=0).stimulate(np.full(3, 5.0), 250.0, 3.0, 0.02)
assert out["n_recruited"].min() > 0
"""


def test_kernels_without_reference_counting_compile_from_a_cold_cache(tmp_path):
    # numba compiles a callee (refresh_templates) with its caller's reference-counting setting:
    # compiled first from a kernel without it, on an empty cache, it must allocate nothing
    # (the batch kernel's loop over patients calls it the same way).
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", COLD_FIRST_CALL],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.parametrize("n_threads", [1, 2])
def test_batch_of_patients_with_different_template_lags(n_threads):
    # The batch kernel allocates nothing (it runs without reference counting): its one scratch
    # per thread must fit the largest lag of its patients, in the serial and parallel paths.
    lags_ms = (0.0, 1.0, 0.25)
    params = [SMALL.replace(recording={"template_lag_ms": lag}) for lag in lags_ms]
    models, per = _batch_setup(params=params)
    assert [m.kparams.template_lag for m in models] == [0, 30, 8]
    state = stack([m.state for m in models])
    tables = stack([m.tables for m in models])
    n_p = per[0].current_ma.size
    out = np.empty((len(models), n_p), PULSE_DTYPE)
    index = np.arange(len(models))
    run_batch(
        state,
        tables,
        index,
        index,
        stack([m.kparams for m in models]),
        stack(per),
        out,
        np.empty((len(models), 0, models[0].n_samples)),
        n_threads,
    )
    for i, (m, inp) in enumerate(zip(models, per, strict=True)):
        assert_records_identical(out[i], m.stimulate(*inp))
    assert not np.array_equal(out[0]["ecap_template_uv"], out[1]["ecap_template_uv"])


def test_same_seed_reproduces_and_reset_seed_changes_noise():
    inp = _train(2)
    a = NeuralModel(SMALL, seed=4)
    a.reset(21)
    out1, wave1 = a.stimulate(*inp, waveforms=True)
    a.reset(21)
    out2, wave2 = a.stimulate(*inp, waveforms=True)
    b = NeuralModel(SMALL, seed=4)
    b.reset(21)
    out3, wave3 = b.stimulate(*inp, waveforms=True)
    b.reset()  # same stream, restarted from pulse 0
    out4, wave4 = b.stimulate(*inp, waveforms=True)
    for o, w in ((out2, wave2), (out3, wave3), (out4, wave4)):
        assert_records_identical(out1, o)
        assert_array_equal(wave1, w)
    b.reset(22)
    out5, wave5 = b.stimulate(*inp, waveforms=True)
    noise1, noise5 = (
        wave1 - wave1.mean(axis=1, keepdims=True),
        wave5 - wave5.mean(axis=1, keepdims=True),
    )
    assert np.mean(noise1 != noise5) > 0.5
    assert not np.array_equal(out1["ecap_n1p2_uv"], out5["ecap_n1p2_uv"])


# --- the estimates read the estimator window only --------------------------------------------


def _low_current_train():
    n = 60
    return (np.full(n, 3.0), np.where(np.arange(n) % 2 == 0, 100.0, 600.0), 3.5, 0.02)


def test_estimates_do_not_depend_on_waveforms_flag():
    # Sweeps are synthesised whole with waveforms=True and only inside the estimator window
    # otherwise; the saturated pulse itself must not leak into ecap_uv or saturated.
    m = NeuralModel(SMALL, seed=1)
    m.reset(5)
    plain = m.stimulate(*_low_current_train())
    m.reset(5)
    full, _ = m.stimulate(*_low_current_train(), waveforms=True)
    assert_records_identical(plain, full)


def test_estimates_do_not_depend_on_call_chunking():
    # The scratch sweeps persist across the pulses of one call; alternating pulse widths move
    # the window, so stale samples would show if the sliding template read outside it.
    m = NeuralModel(SMALL, seed=1)
    args = _low_current_train()
    m.reset(5)
    whole = m.stimulate(*args)
    m.reset(5)
    single = np.concatenate(
        [m.stimulate(args[0][i], args[1][i], args[2], args[3]) for i in range(args[0].size)]
    )
    assert_records_identical(whole, single)


def test_absolute_refractory_period_must_fit_the_lazy_processes():
    from closedloop._config import ConfigError

    with pytest.raises(ConfigError, match=r"t_abs_ms=5.0 is out of range; valid range \[0, 60"):
        ModelParams().replace(excitability={"t_abs_ms": 5.0, "tau_rel_ms": 0.08})
    assert math.exp(-MAX_ABS_OVER_TAU_REL) / 1e3 > FLUSH  # a refractory value is never flushed
