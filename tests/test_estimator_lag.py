"""The template estimator's tracked lag and the "recruited" template against the reference.

``RecordingParams.lag_tracking_s > 0`` reads each pulse's projection at the lag where the
average of the earlier pulses' projections is largest: with noise alone the shipped maximum
over lags reads about one noise sd high (+2.9 µV at 3 µV rms, default patient), the tracked
lag about 0. ``template_shape = "recruited"`` builds the filter from the fibres recruited
first. The defaults leave the kernel as before (tests/test_reference.py, test_estimator.py).
"""

import copy

import numpy as np
import pytest
from _identity import assert_records_close, assert_records_identical
from numpy.testing import assert_allclose, assert_array_equal

from closedloop._config import ConfigError
from closedloop.neural import PULSE_DTYPE, ModelParams, NeuralModel
from closedloop.neural.batch import run_pulses_batch, stack
from closedloop.neural.kernels import PulseInputs, run_pulses, run_pulses_unshared
from closedloop.neural.reference import build_tables_reference, run_pulses_reference
from closedloop.neural.rng import seed_words

SMALL = ModelParams().replace(population={"n_fibres": 256})
TRACKED = SMALL.replace(recording={"lag_tracking_s": 0.5})
RECRUITED = SMALL.replace(recording={"template_shape": "recruited"})
BOTH = SMALL.replace(recording={"lag_tracking_s": 0.2, "template_shape": "recruited"})


def _train(seed: int, n: int = 300) -> PulseInputs:
    """Random currents around threshold at 50-1000 Hz, a pulse-width change half-way."""
    rng = np.random.default_rng(seed)
    cur = rng.uniform(0.0, 12.0, n)
    cur[n // 3 : 2 * n // 3] = 6.0  # a steady stretch: the tracked lag settles
    pw = np.where(np.arange(n) < n // 2, 250.0, 400.0)
    csf = 3.5 + 0.5 * np.sin(np.arange(n) / 20.0)
    return PulseInputs(cur, pw, csf, 1.0 / rng.choice([50.0, 200.0, 1000.0], n))


@pytest.mark.parametrize("params", [TRACKED, RECRUITED, BOTH], ids=["tracked", "recruited", "both"])
def test_kernel_matches_reference(params):
    model = NeuralModel(params, seed=5)
    model.reset(9)
    inputs = _train(1)
    k_state, r_state = copy.deepcopy(model.state), copy.deepcopy(model.state)
    n = inputs.current_ma.size
    out = np.empty(n, PULSE_DTYPE)
    run_pulses(
        k_state,
        model.tables,
        model.kparams,
        inputs,
        out,
        np.empty((0, model.n_samples)),
        model.work,
    )
    ref, _ = run_pulses_reference(r_state, model.tables, model.kparams, inputs)
    assert_records_close(out, ref)
    for name in ("mf", "cache", "lag_track"):
        assert_allclose(
            getattr(k_state, name),
            getattr(r_state, name),
            rtol=1e-12,
            atol=1e-12,
            equal_nan=True,
            err_msg=name,
        )
    assert out["n_recruited"].max() > 0


def test_recruited_tables_match_reference():
    model = NeuralModel(RECRUITED, seed=3)
    pop_ss, _ = np.random.SeedSequence(3).spawn(2)
    ref = build_tables_reference(RECRUITED, model.fibres, seed_words(pop_ss)[2:])
    assert_allclose(model.tables.template_ref, ref.template_ref, rtol=1e-12, atol=1e-15)
    w, u = model.tables.template_ref[0], model.tables.template_ref[1]
    assert w.sum() == pytest.approx(1.0) and (w >= 0.0).all()
    assert ((u[w > 0] > 0.0) & (u[w > 0] <= 1.0)).all()  # recruited: th <= current
    assert not NeuralModel(SMALL, seed=3).tables.template_ref.any()  # class-mix: zeros


def test_tracked_lag_removes_the_noise_bias():
    # Noise alone (0 mA): the maximum over lags reads high, the tracked lag near 0.
    means = {}
    for tau in (0.0, 0.5):
        model = NeuralModel(SMALL.replace(recording={"lag_tracking_s": tau}), seed=0)
        est = []
        for seed in range(3):
            model.reset(seed)
            est.append(model.pulse_train(0.0, rate_hz=50.0, n_pulses=1500)["ecap_template_uv"])
        means[tau] = float(np.concatenate(est).mean())
    assert means[0.0] > 1.5  # measured +2.9 µV (3 µV rms noise)
    assert abs(means[0.5]) < 0.3  # measured about 0.0
    assert abs(means[0.5]) < 0.2 * means[0.0]


def test_reset_restarts_the_tracked_lag():
    model = NeuralModel(BOTH, seed=2)
    inputs = _train(2, 200)
    model.reset(4)
    fresh = model.state.lag_track.copy()
    assert fresh[0] == 0.2 and np.isnan(fresh[1]) and not fresh[2:].any()
    first = model.stimulate(*inputs)
    assert model.state.lag_track[1] == 400.0
    model.reset(4)
    assert_array_equal(model.state.lag_track, fresh)
    assert_records_identical(model.stimulate(*inputs), first)
    twin = model.clone()
    assert_array_equal(twin.state.lag_track, fresh)


def test_batch_equals_scalar_calls_with_tracking():
    models = [NeuralModel(BOTH, seed=s) for s in (0, 1)]
    inputs = [_train(s, 120) for s in (5, 6)]
    for m in models:
        m.reset(3)
    state = stack([m.state for m in models])
    out = np.empty((2, 120), PULSE_DTYPE)
    run_pulses_batch(
        state,
        stack([m.tables for m in models]),
        stack([m.kparams for m in models]),
        stack(inputs),
        out,
        np.empty((2, 0, models[0].n_samples)),
    )
    for i, (m, inp) in enumerate(zip(models, inputs, strict=True)):
        assert_records_identical(out[i], m.stimulate(*inp))
        assert_array_equal(state.lag_track[i], m.state.lag_track)


@pytest.mark.parametrize("kernel", [run_pulses, run_pulses_unshared])
def test_kernel_rejects_a_short_lag_track(kernel):
    m = NeuralModel(TRACKED, seed=1)
    state = m.state._replace(lag_track=np.zeros(3))
    inputs = _train(4, 5)
    with pytest.raises(ValueError, match="lag_track is too short"):
        kernel(
            state,
            m.tables,
            m.kparams,
            inputs,
            np.empty(5, PULSE_DTYPE),
            np.empty((0, m.n_samples)),
            m.work,
        )


@pytest.mark.parametrize(
    "change",
    [
        {"lag_tracking_s": -0.1},
        {"lag_tracking_s": 61.0},
        {"lag_tracking_s": float("nan")},
        {"template_shape": "average"},
    ],
)
def test_bad_values_raise(change):
    with pytest.raises(ConfigError, match=next(iter(change))):
        ModelParams().replace(recording=change)
