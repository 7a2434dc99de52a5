"""Bad input is rejected with an error naming the parameter and its valid range; seeds work."""

import numpy as np
import pytest

from closedloop import ConfigError
from closedloop.neural import ModelParams, NeuralModel, growth_curve
from closedloop.patients import get_patient


def same_records(a, b):
    """Structured pulse records equal field by field (NaN equal to NaN)."""
    return all(np.array_equal(a[f], b[f], equal_nan=a[f].dtype.kind == "f")
               for f in a.dtype.names)


@pytest.fixture(scope="module")
def model():
    return NeuralModel(ModelParams().replace(population={"n_fibres": 256}), seed=0)


@pytest.mark.parametrize(
    ("kwargs", "name", "valid"),
    [
        ({"current_ma": -1.0}, "current_ma", "[0, 25.5] mA"),
        ({"current_ma": np.nan}, "current_ma", "finite"),
        ({"current_ma": 30.0}, "current_ma", "[0, 25.5] mA"),
        ({"pw_us": 10.0}, "pw_us", "[20, 1000]"),
        ({"pw_us": 1500.0}, "pw_us", "[20, 1000]"),
        ({"pw_us": np.inf}, "pw_us", "finite"),
        ({"rate_hz": 0.0}, "rate_hz", "[1, 10000] Hz"),
        ({"rate_hz": 20_000.0}, "rate_hz", "[1, 10000] Hz"),
        ({"csf_mm": 0.0}, "csf_mm", "[0.5, 12] mm"),
        ({"csf_mm": -2.0}, "csf_mm", "[0.5, 12] mm"),
    ],
)
def test_bad_pulse_train_input_names_parameter_and_range(model, kwargs, name, valid):
    args = {"current_ma": 5.0, "rate_hz": 50.0, "n_pulses": 3} | kwargs
    with pytest.raises(ConfigError) as err:
        model.pulse_train(**args)
    assert name in str(err.value) and valid in str(err.value)


def test_stimulate_rejects_mismatched_lengths(model):
    with pytest.raises(ConfigError, match="share one length"):
        model.stimulate(np.ones(3), 250.0, np.full(4, 3.5), 0.02)


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        ({"lead": {"pitch_mmm": 7.0}}, "pitch_mmm"),
        ({"population": {"n_fibres": 0}}, "population.n_fibres"),
        ({"excitability": {"jitter_rel": -0.1}}, "excitability.jitter_rel"),
        ({"lead": {"configuration": "octopolar"}}, "lead.configuration"),
        ({"lead": {"cathode": 0}}, "anodes"),
        ({"lead": {"recording_contact": 2}}, "stimulating contact"),
        ({"recording": {"fs_hz": 8000.0}}, "recording.fs_hz"),
    ],
)
def test_bad_model_parameters(sections, needle):
    with pytest.raises(ConfigError, match=needle):
        ModelParams().replace(**sections)


def test_unknown_section_and_patient():
    with pytest.raises(ConfigError, match="unknown section"):
        ModelParams.from_dict({"leads": {}})
    with pytest.raises(ConfigError, match="valid: default"):
        get_patient("nobody")
    with pytest.raises(ConfigError, match="posture"):
        get_patient("default").csf_mm("handstand")


def test_growth_curve_bad_input(model):
    with pytest.raises(ConfigError, match="currents_ma"):
        growth_curve(model, [1.0, -2.0, 3.0, 4.0])
    with pytest.raises(ConfigError, match="pulses_per_level"):
        growth_curve(model, pulses_per_level=1)


def test_same_seed_same_trajectory_different_seed_differs():
    params = ModelParams().replace(population={"n_fibres": 256})
    a, b = NeuralModel(params, seed=3), NeuralModel(params, seed=3)
    a.reset(11)
    b.reset(11)
    ra, rb = a.pulse_train(6.0, 50, 200), b.pulse_train(6.0, 50, 200)
    assert same_records(ra, rb)
    a.reset(12)
    assert not np.array_equal(a.pulse_train(6.0, 50, 200)["ecap_uv"], ra["ecap_uv"])
    c = NeuralModel(params, seed=4)  # another patient: another fibre population
    assert not np.array_equal(c.fibres.diameter_um, a.fibres.diameter_um)


def test_reset_without_seed_replays_the_stream(model):
    model.reset(5)
    first = model.pulse_train(6.0, 50, 50)
    model.reset()
    assert same_records(model.pulse_train(6.0, 50, 50), first)


def test_keeping_sweeps_does_not_change_the_records(model):
    model.reset(7)
    plain = model.pulse_train(9.0, 50, 30, pw_us=300.0)
    model.reset(7)
    rec, sweeps = model.pulse_train(9.0, 50, 30, pw_us=300.0, waveforms=True)
    assert same_records(plain, rec)
    assert not rec["saturated"].any()  # the saturated pulse itself lies outside the window
