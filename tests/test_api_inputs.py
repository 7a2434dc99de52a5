"""Bad input to the Python API's numeric front ends: every one is a ConfigError naming it.

Covers ``NeuralModel.stimulate`` and ``pulse_train``, ``closedloop.neural.growth_curve``,
``closedloop.device.apply_limits`` and ``closedloop.evaluation.run_grid`` (the ``api.*`` cases of
``benchmarks/fuzz_inputs.py``). Each value here was once accepted and silently converted, or
raised a raw TypeError/ValueError.
"""

from __future__ import annotations

import numpy as np
import pytest

from closedloop import ConfigError
from closedloop.device import DeviceParams, apply_limits
from closedloop.evaluation import run_grid
from closedloop.neural import NeuralModel, growth_curve

NOT_REAL = ["abc", "1", b"1", {"a": 1.0}, 1 + 2j, True, None, ["a"], [[1.0], [1.0, 2.0]]]
"""Values that are not real numbers (or arrays of them); NumPy converts some silently."""
NOT_REAL_SCALAR = [v for v in NOT_REAL if v is not None]
"""As :data:`NOT_REAL`, less None (``csf_mm=None`` means the model's default)."""


@pytest.fixture(scope="module")
def model() -> NeuralModel:
    return NeuralModel(seed=0)


STIMULATE = {"current_ma": np.full(4, 3.0), "pw_us": 250.0, "csf_mm": 3.5, "interval_s": 0.02}


@pytest.mark.parametrize("key", sorted(STIMULATE))
@pytest.mark.parametrize("value", [*NOT_REAL, np.array([]), np.array([1 + 0j])], ids=repr)
def test_stimulate_refuses_values_that_are_not_real_numbers(model, key, value):
    with pytest.raises(ConfigError, match=key) as err:
        model.stimulate(**{**STIMULATE, key: value})
    assert "valid range" in str(err.value) or "needs at least one value" in str(err.value)


def test_stimulate_takes_ints_lists_and_object_arrays_of_reals_as_floats(model):
    model.reset()
    ref = model.stimulate(**STIMULATE)
    for current in ([3, 3, 3, 3], np.full(4, 3, dtype=np.int64), np.full(4, 3.0, dtype=object)):
        model.reset()
        got = model.stimulate(**{**STIMULATE, "current_ma": current})
        np.testing.assert_array_equal(got["ecap_uv"], ref["ecap_uv"])


PULSE_TRAIN = {"current_ma": 3.0, "rate_hz": 50.0, "n_pulses": 4, "pw_us": 250.0, "csf_mm": 3.5}


@pytest.mark.parametrize("key", ["current_ma", "rate_hz", "pw_us", "csf_mm"])
@pytest.mark.parametrize("value", [*NOT_REAL_SCALAR, [3.0], np.array([3.0]), np.True_], ids=repr)
def test_pulse_train_wants_a_real_number_for_each_scalar(model, key, value):
    with pytest.raises(ConfigError, match=f"{key}=.*must be a number in") as err:
        model.pulse_train(**{**PULSE_TRAIN, key: value})
    assert "[" in str(err.value)  # the valid range is stated


def test_pulse_train_matches_stimulate_and_takes_numpy_scalars(model):
    model.reset()
    ref = model.stimulate(np.full(4, 3.0), 250.0, 3.5, 0.02)
    model.reset()
    got = model.pulse_train(np.float32(3.0), np.int64(50), 4, 250, np.float64(3.5))
    np.testing.assert_array_equal(got["ecap_uv"], ref["ecap_uv"])


@pytest.mark.parametrize("key", ["pw_us", "rate_hz", "csf_mm"])
@pytest.mark.parametrize("value", [*NOT_REAL_SCALAR, [3.0]], ids=repr)
def test_growth_curve_wants_a_real_number_for_each_scalar(model, key, value):
    with pytest.raises(ConfigError, match=f"{key}=.*must be a number in"):
        growth_curve(model, [0.0, 1.0, 2.0, 3.0], pulses_per_level=2, **{key: value})


@pytest.mark.parametrize(
    "levels",
    [[], [1.0, 2.0, 3.0], [3.0, 1.0, 2.0, 0.0], [0.0, 1.0, 1.0, 2.0], [[0.0, 1.0], [2.0, 3.0]]],
    ids=repr,
)
def test_growth_curve_refuses_too_few_or_unordered_levels_before_sweeping(model, levels):
    with pytest.raises(ConfigError, match="currents_ma"):
        growth_curve(model, levels, pulses_per_level=2)


@pytest.mark.parametrize("levels", [*NOT_REAL[:6], [0.0, float("nan"), 2.0, 3.0]], ids=repr)
def test_growth_curve_refuses_levels_that_are_not_real(model, levels):
    with pytest.raises(ConfigError, match="currents_ma.*valid range"):
        growth_curve(model, levels, pulses_per_level=2)


LIMITS = {
    "requested_ma": 3.0,
    "previous_ma": 2.0,
    "pw_us": 250.0,
    "impedance_ohm": 900.0,
    "min_ma": 0.0,
    "max_ma": 10.0,
    "contact_length_mm": 3.0,
}


@pytest.mark.parametrize("key", sorted(LIMITS))
@pytest.mark.parametrize("value", [*NOT_REAL, np.array(["1"]), np.array([1.0, 2 + 1j])], ids=repr)
def test_apply_limits_refuses_values_that_are_not_real_numbers(key, value):
    with pytest.raises(ConfigError, match=f"{key}.*must be finite"):
        apply_limits(params=DeviceParams(), **{**LIMITS, key: value})


def test_apply_limits_takes_lists_and_object_arrays_of_reals():
    params = DeviceParams()
    ref, _ = apply_limits(params=params, **{**LIMITS, "requested_ma": np.array([3.0, 30.0])})
    for req in ([3.0, 30], np.array([3.0, 30.0], dtype=object)):
        got, _ = apply_limits(params=params, **{**LIMITS, "requested_ma": req})
        np.testing.assert_array_equal(got, ref)


GRID = {
    "controllers": ["open-loop"],
    "env_ids": ["closedloop/ECAPTracking-Test-v0"],
    "patients": ["test-000"],
    "seeds": [0],
    "progress": False,
}


def _never_called(name):
    raise AssertionError(f"an episode started for {name!r}")


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("controllers", [5], "controllers[0]"),
        ("controllers", "p", "controllers='p'"),
        ("controllers", ["nope"], "controllers['nope']"),
        ("controllers", {"x": "nope"}, "controllers['x']"),
        ("env_ids", ["closedloop/ECAPTracking-Test-v0", "CartPole-v1"], "env_ids[1]"),
        ("patients", 5, "patients"),
        ("patients", ["nope-1"], "patients[0]"),
        ("seeds", [0, -1], "seeds[1]"),
    ],
    ids=repr,
)
def test_run_grid_refuses_bad_cells_before_playing_any(monkeypatch, key, value, named):
    import closedloop.evaluation.grid as grid

    monkeypatch.setattr(grid, "play_spec", lambda spec, make=None: _never_called(spec))
    with pytest.raises(ConfigError) as err:
        run_grid(**{**GRID, key: value})
    assert named in str(err.value)


def test_run_grid_with_its_own_make_controller_takes_any_spec_name(monkeypatch):
    import closedloop.evaluation.grid as grid

    played = []
    monkeypatch.setattr(grid, "play_spec", lambda spec, make=None: played.append(spec.source))
    monkeypatch.setattr(
        grid, "_run_job", lambda job: [grid.play_spec(spec) or {} for spec in job.specs]
    )
    run_grid(**{**GRID, "controllers": ["mine"]}, make_controller=str)
    assert played == ["mine"]
