"""Fuzz cases of further Python entry points: the neural model, the device limits, training,
the evaluation grid, open loop and calibration.

These go beyond the entry points issue 16 lists (``api.*`` in the tables). Each case calls one
function with valid keyword arguments (:data:`BASES`) and one of them replaced by a bad value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from fuzz_inputs import Case, finite
from fuzz_values import TEXT, kwargs_text, not_finite, show, wrong_types
from hypothesis import strategies as st

NEG = st.floats(max_value=0.0, exclude_max=True, allow_nan=False)
NONPOS = st.floats(max_value=0.0, allow_nan=False)
BAD_REAL = st.one_of(wrong_types(none_ok=True), not_finite(), st.booleans())
"""Bad values of a real-number argument (None is left out: it is the default of some)."""
BAD_ARRAY = st.one_of(
    TEXT,
    st.none(),
    st.just({"a": 1.0}),
    st.just(1 + 2j),
    st.just(b"1"),
    not_finite(),
    st.booleans(),
    st.just(["a"]),
    st.just([[1.0], [1.0, 2.0]]),
)
"""Bad values of an argument that takes a number or an array of numbers."""
BAD_COUNT = st.one_of(st.integers(max_value=0), st.floats(1.5, 9.5), TEXT, not_finite())


@functools.cache
def _model() -> Any:
    from closedloop.patients.cohort import get_patient

    return get_patient("default").model()


@functools.cache
def _calibration() -> Any:
    from closedloop.patients.calibration import calibrate
    from closedloop.patients.cohort import get_patient

    return calibrate(get_patient("default"), model=_model())


def stimulate(**kw: Any) -> Any:
    """``NeuralModel.stimulate`` of the default patient's model."""
    return _model().stimulate(**kw)


def pulse_train(**kw: Any) -> Any:
    """``NeuralModel.pulse_train`` of the default patient's model."""
    return _model().pulse_train(**kw)


def growth_curve(**kw: Any) -> Any:
    """``closedloop.neural.growth_curve`` of the default patient's model."""
    from closedloop.neural import growth_curve as run

    return run(_model(), **kw)


def apply_limits(**kw: Any) -> Any:
    """``closedloop.device.apply_limits`` with the default device."""
    from closedloop.device import DeviceParams
    from closedloop.device import apply_limits as run

    return run(params=DeviceParams(), **kw)


def train(**kw: Any) -> Any:
    """``closedloop.training.train``."""
    from closedloop.training import train as run

    return run(**kw)


def run_grid(**kw: Any) -> Any:
    """``closedloop.evaluation.run_grid``."""
    from closedloop.evaluation import run_grid as run

    return run(**kw)


def open_loop(**kw: Any) -> Any:
    """``closedloop.evaluation.simulate.open_loop`` for the default patient and its calibration."""
    from closedloop.evaluation.simulate import open_loop as run
    from closedloop.patients.cohort import get_patient

    return run(get_patient("default"), calibration=_calibration(), model=_model(), **kw)


def calibrate(**kw: Any) -> Any:
    """``closedloop.patients.calibration.calibrate`` of the default patient."""
    from closedloop.patients.calibration import calibrate as run
    from closedloop.patients.cohort import get_patient

    return run(get_patient("default"), model=_model(), **kw)


def sane_records(out: Any) -> str | None:
    """What is wrong with pulse records (NaN amplitudes or charge, negative charge)."""
    rec = out[0] if isinstance(out, tuple) else out
    if not isinstance(rec, np.ndarray) or rec.dtype.names is None:
        return None
    for name in ("ecap_uv", "ecap_true_uv", "charge_uc", "frac_recruited"):
        if name in rec.dtype.names and not np.isfinite(rec[name]).all():
            return f"NaN or inf in the records' {name}"
    if "charge_uc" in rec.dtype.names and (rec["charge_uc"] < 0).any():
        return "negative charge in the records"
    return None


def sane_limits(out: Any) -> str | None:
    """What is wrong with ``apply_limits``'s delivered currents."""
    delivered = np.asarray(out[0], dtype=np.float64)
    if not finite(delivered) or (delivered < 0).any() or (delivered > 25.5 + 1e-9).any():
        return f"delivered {show(delivered)} outside [0, 25.5] mA"
    return None


API: dict[str, tuple[Callable[..., Any], Callable[[Path], dict], dict]] = {
    "stimulate": (
        stimulate,
        lambda tmp: {
            "current_ma": np.full(4, 3.0),
            "pw_us": 250.0,
            "csf_mm": 3.5,
            "interval_s": 0.02,
        },
        {
            "current_ma": st.one_of(BAD_ARRAY, NEG, st.floats(25.6, 1e9), st.just(np.array([]))),
            "pw_us": st.one_of(BAD_ARRAY, NONPOS, st.floats(1001.0, 1e9)),
            "csf_mm": st.one_of(BAD_ARRAY, NONPOS, st.floats(100.0, 1e9)),
            "interval_s": st.one_of(BAD_ARRAY, NONPOS),
        },
    ),
    "pulse_train": (
        pulse_train,
        lambda tmp: {"current_ma": 3.0, "rate_hz": 50.0, "n_pulses": 4},
        {
            "current_ma": st.one_of(BAD_REAL, NEG, st.floats(25.6, 1e9)),
            "rate_hz": st.one_of(BAD_REAL, NONPOS, st.floats(1e5, 1e12)),
            "n_pulses": st.one_of(BAD_COUNT, st.just(10**12)),
        },
    ),
    "growth_curve": (
        growth_curve,
        lambda tmp: {"currents_ma": [0.0, 1.0, 2.0, 3.0], "pulses_per_level": 4},
        {
            "currents_ma": st.one_of(
                st.just([3.0, 1.0, 2.0, 0.0]),
                st.just([0.0, float("nan")]),
                st.just([-1.0, 0.0, 1.0, 2.0]),
                st.just([]),
                TEXT,
                st.just([0.0, 1.0, 2.0, 100.0]),
            ),
            "pulses_per_level": st.one_of(BAD_COUNT, st.just(1)),
            "pw_us": st.one_of(BAD_REAL, NONPOS),
            "rate_hz": st.one_of(BAD_REAL, NONPOS),
            "csf_mm": st.one_of(BAD_REAL, NONPOS),
        },
    ),
    "apply_limits": (
        apply_limits,
        lambda tmp: {
            "requested_ma": 3.0,
            "previous_ma": 2.0,
            "pw_us": 250.0,
            "impedance_ohm": 900.0,
            "min_ma": 0.0,
            "max_ma": 10.0,
        },
        {
            "requested_ma": BAD_ARRAY,
            "previous_ma": BAD_ARRAY,
            "pw_us": st.one_of(BAD_ARRAY, NONPOS),
            "impedance_ohm": st.one_of(BAD_ARRAY, NONPOS),
            "min_ma": st.one_of(BAD_ARRAY, NEG),
            "max_ma": st.one_of(BAD_ARRAY, NEG),
            "contact_length_mm": st.one_of(BAD_ARRAY, NONPOS),
            "n_pulses": st.one_of(BAD_COUNT, st.just(10**12)),
        },
    ),
    "train": (
        train,
        lambda tmp: {
            "agent": "ppo",
            "env_id": "closedloop/ECAPTracking-v0",
            "total_steps": 64,
            "out_dir": tmp / "run",
            "seed": 0,
            "n_envs": 1,
        },
        {
            "agent": st.one_of(TEXT, st.integers(), st.none()),
            "env_id": st.one_of(st.just("CartPole-v1"), TEXT, st.integers(), st.none()),
            "total_steps": BAD_COUNT,
            "seed": st.one_of(st.integers(max_value=-1), TEXT),
            "n_envs": BAD_COUNT,
            "hyperparams": st.one_of(TEXT, st.just({"learning_rate": -1.0}), st.just({"zz": 1})),
            "env_overrides": st.one_of(
                TEXT, st.just({"rate_hz": -1.0}), st.just({"zz": 1}), st.just({"episode_s": 0.01})
            ),
            "options": st.one_of(TEXT, st.just({"eval_every": 10})),
        },
    ),
    "run_grid": (
        run_grid,
        lambda tmp: {
            "controllers": ["open-loop"],
            "env_ids": ["closedloop/ECAPTracking-Test-v0"],
            "patients": ["test-000"],
            "seeds": [0],
            "workers": 1,
            "progress": False,
        },
        {
            "controllers": st.one_of(st.just([]), st.just(["nope"]), TEXT, st.just([5])),
            "env_ids": st.one_of(st.just(["CartPole-v1"]), st.just([]), st.just("abc")),
            "patients": st.one_of(TEXT, st.just([]), st.just(["nope-1"]), st.just(5)),
            "seeds": st.one_of(st.just([-1]), st.just([0, 0]), st.just([]), st.just(["a"])),
            "workers": BAD_COUNT,
            "env_overrides": st.one_of(TEXT, st.just({"rate_hz": -1.0}), st.just({"zz": 1})),
        },
    ),
    "open_loop": (
        open_loop,
        lambda tmp: {"scenario": "clinic", "duration_s": 12.0, "with_window": False},
        {
            "scenario": st.one_of(TEXT, st.integers(), st.none()),
            "current_ma": st.one_of(BAD_REAL, NEG, st.floats(25.6, 1e9)),
            "seed": st.one_of(st.integers(max_value=-1), st.floats(0.5, 9.5), TEXT),
            "duration_s": st.one_of(BAD_REAL, NONPOS, st.just(1e12)),
        },
    ),
    "calibrate": (
        calibrate,
        lambda tmp: {},
        {
            "postures": st.one_of(st.just(["nope"]), st.just([]), st.just("sitting"), st.just(5)),
            "reference": st.one_of(TEXT, st.integers()),
            "pw_us": st.one_of(BAD_REAL, NONPOS),
            "rate_hz": st.one_of(BAD_REAL, NONPOS),
            "target_position": st.one_of(BAD_REAL, st.floats(1.01, 1e3), NEG),
            "warmup_s": st.one_of(BAD_REAL, NEG),
        },
    ),
}
"""Function name -> (function, valid keyword arguments for a folder, name -> bad values)."""

CHECKS: Mapping[str, Callable[[Any], str | None]] = {
    "stimulate": sane_records,
    "pulse_train": sane_records,
    "apply_limits": sane_limits,
}


@st.composite
def api_cases(draw: Any, name: str, tmp: Path) -> Case:
    """``name(**valid)`` with one argument replaced by a bad value."""
    func, base, bad = API[name]
    key = draw(st.sampled_from(sorted(bad)))
    value = draw(bad[key])
    return Case(
        f"api.{name}",
        f"{name}({kwargs_text({key: value})}, ...)",
        functools.partial(_call, func, base, tmp, key, value),
        names=(key,),
    )


RUNS: list[int] = [0]


def _call(
    func: Callable[..., Any], base: Callable[[Path], dict], tmp: Path, key: str, value: Any
) -> Any:
    RUNS[0] += 1
    return func(**{**base(tmp / f"case{RUNS[0]}"), key: value})


def base_case(name: str, tmp: Path) -> Case:
    """The valid call the cases of ``name`` start from (it must be accepted)."""
    func, base, _ = API[name]
    return Case(
        f"api.{name}",
        f"{name}(...)",
        lambda: func(**base(tmp)),
        refuse=False,
        check=CHECKS.get(name),
    )


def strategies(tmp: Path) -> dict[str, tuple[Any, int]]:
    """Entry point -> (strategy, quota of a full run) for these functions."""
    return {f"api.{name}": (api_cases(name, tmp / "api"), 40) for name in API}
