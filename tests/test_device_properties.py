"""Property tests: the device's limits hold on every pulse, on every id, mode and env kind.

The checks live in ``benchmarks/device_properties.py`` (which also runs the full sweep of over
a million pulses from the command line): every pulse is checked from the ground truth in
``info`` against an independent NumPy statement of the limits. Here hypothesis draws a small
sample of ids, action modes, env kinds, action sequences and device settings; the ``slow`` test
runs the sweep at a small size.
"""

import re
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closedloop import ConfigError
from closedloop.device import LIMIT_FLAGS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import device_properties as props  # noqa: E402

IDS = props.env_ids()
HIGH_RATE = "closedloop/ECAPHighRate-v0"
SETTINGS = settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
S, Q = LIMIT_FLAGS["slew"], LIMIT_FLAGS["charge_density"]


def _no_violation(tally: props.Tally) -> None:
    assert tally.pulses > 0
    assert sum(tally.violations.values()) == 0, (tally.violations, tally.examples)


def test_every_registered_id_is_covered():
    assert len(IDS) >= 10 and HIGH_RATE in IDS
    assert props.vector_supported("closedloop/ECAPTracking-v0")
    assert not props.vector_supported("closedloop/ECAPPulseShape-v0")


# -- the reproduction -----------------------------------------------------------------
def test_high_rate_alternating_extremes_ramp_by_one_ma_per_pulse_scalar():
    env = gym.make(HIGH_RATE, action_mode="absolute", episode_s=0.6)
    _, info = env.reset(seed=0)
    prev, slews = info["comfort_ma"], 0
    for t in range(30):
        *_, truncated, info = env.step(np.array([1.0 if t % 2 == 0 else -1.0], np.float32))
        cur = info["pulse_current_ma"]
        assert cur.shape == info["pulse_flags"].shape == info["pulse_impedance_ohm"].shape == (20,)
        assert np.abs(np.diff(np.r_[prev, cur])).max() <= 1.0 + 1e-12  # 20 mA jumps before
        assert info["device_flags"] == np.bitwise_or.reduce(info["pulse_flags"])
        assert info["current_ma"] == cur[-1]
        slews += int(np.count_nonzero(info["pulse_flags"] & S))
        prev = cur[-1]
    assert truncated and info["device_flags"] & S
    assert info["device_limits"]["slew"] == slews > 30  # every pulse is counted


def test_high_rate_alternating_extremes_ramp_by_one_ma_per_pulse_vector():
    from closedloop.envs.vector import ECAPVectorEnv

    venv = ECAPVectorEnv(2, HIGH_RATE, action_mode="absolute", episode_s=0.6)
    venv.reset(seed=0)
    prev = np.array([s.draw.calibration.comfort_ma for s in venv.slots])
    for t in range(20):
        info = venv.step(np.full((2, 1), 1.0 if t % 2 == 0 else -1.0, np.float32))[4]
        cur = info["pulse_current_ma"]
        assert np.abs(np.diff(np.c_[prev, cur], axis=1)).max() <= 1.0 + 1e-12
        np.testing.assert_array_equal(
            info["device_flags"], np.bitwise_or.reduce(info["pulse_flags"], axis=1)
        )
        prev = cur[:, -1]
    assert (info["device_flags"] & S).all()


# -- hard ceilings ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "value", "valid"),
    [
        ("max_current_ma", 100.0, "(0, 25.5] mA"),
        ("charge_density_limit_uc_per_cm2", 1000.0, "(0, 30] µC/cm²"),
        ("compliance_v", 100.0, "(0, 12] V"),
        ("max_step_ma", 20.0, "(0, 1] mA"),
        ("contact_diameter_mm", 5.0, "[0.1, 1.3] mm"),
    ],
)
def test_device_settings_cannot_loosen_the_hard_limits(setting, value, valid):
    with pytest.raises(ConfigError, match=rf"device\.{setting}=.*{re.escape(valid)}"):
        gym.make("closedloop/ECAPTracking-v0", device={setting: value})
    env = gym.make("closedloop/ECAPTracking-v0", device={setting: 0.5})  # tightening is fine
    assert getattr(env.unwrapped.spec_.device, setting) == 0.5


# -- the checker itself -----------------------------------------------------------------------
def test_the_checker_catches_each_kind_of_violation():
    lim = props.Limits(np.array([1.0]), np.array([10.0]), np.array([2.0]), 25.5, 1.0, 12.0)
    base = {
        "cur": np.array([5.0, 5.5]),
        "flags": np.array([0, 0]),
        "prev": np.array([5.0, 5.0]),
        "requested": np.array([5.0, 5.5]),
        "pw": np.array([250.0, 250.0]),
        "imp": np.array([1000.0, 1000.0]),
        "min": np.array([1.0, 1.0]),
        "max": np.array([10.0, 10.0]),
        "qmax": np.array([2.0, 2.0]),
    }
    clean = props.Tally()
    props.check_pulses(clean, base, lim, "clean")
    assert sum(clean.violations.values()) == 0 and clean.pulses == 2
    cases = {
        "slew": {"cur": np.array([5.0, 7.0]), "requested": np.array([7.0, 7.0])},
        "hardware": {"cur": np.array([5.0, 26.0])},
        "clinician": {"cur": np.array([5.0, 0.5]), "prev": np.array([5.0, 1.0])},
        "charge_density": {"pw": np.array([250.0, 500.0])},
        "compliance": {"imp": np.array([1000.0, 2500.0])},
        "flags": {"flags": np.array([0, S])},
    }
    for check, change in cases.items():
        tally = props.Tally()
        props.check_pulses(tally, {**base, **change}, lim, check)
        assert tally.violations[check] > 0, check


# -- hypothesis: ids x modes x kinds x sequences x settings -----------------------------------
TIGHTER = st.fixed_dictionaries(
    {
        "max_current_ma": st.floats(2.0, 25.5),
        "max_step_ma": st.floats(0.05, 1.0),
        "charge_density_limit_uc_per_cm2": st.floats(5.0, 30.0),
        "contact_diameter_mm": st.floats(0.5, 1.3),
        "compliance_v": st.floats(3.0, 12.0),
    }
)


@SETTINGS
@given(
    env_id=st.sampled_from(IDS),
    mode=st.sampled_from(props.MODES),
    kind=st.sampled_from(props.KINDS),
    sequence=st.sampled_from(props.SEQUENCES),
    seed=st.integers(0, 3),
    device=st.one_of(st.none(), TIGHTER),
)
def test_no_pulse_breaks_a_limit_and_every_intervention_is_counted(
    env_id, mode, kind, sequence, seed, device
):
    if kind == "vector" and props.vector_supported(env_id):
        tally = props.run_vector(env_id, mode, sequence, seed, 0.2, device, num_envs=2)
    else:
        tally = props.run_scalar(env_id, mode, sequence, seed, 0.2, device)
    _no_violation(tally)


ACTION = st.one_of(st.sampled_from([-1.0, 1.0, 0.0, -5.0, 5.0]), st.floats(-1.0, 1.0))


@SETTINGS
@given(
    actions=st.lists(ACTION, min_size=1, max_size=25),
    mode=st.sampled_from(props.MODES),
    tight=st.booleans(),
)
def test_any_action_sequence_at_high_rate_keeps_every_pulse_in_bounds(actions, mode, tight):
    device = props.TIGHT if tight else None
    a = np.array(actions, np.float32)
    _no_violation(props.run_scalar(HIGH_RATE, mode, "", 1, 0.6, device, a[:, None]))
    _no_violation(
        props.run_vector(
            HIGH_RATE, mode, "", 1, 0.6, device, 2, np.repeat(a[:, None, None], 2, axis=1)
        )
    )


@SETTINGS
@given(widths=st.lists(st.sampled_from([-1.0, 1.0]), min_size=4, max_size=30))
def test_charge_density_holds_at_each_new_pulse_width(widths):
    """Pulse-shape variant: at full current, the width jumps between 60 and 500 µs."""
    a = np.array([[1.0, w, -1.0] for w in widths], np.float32)
    tally = props.run_scalar(
        "closedloop/ECAPPulseShape-v0",
        "absolute",
        "",
        2,
        2.0,
        {"charge_density_limit_uc_per_cm2": 20.0},
        a,
    )
    _no_violation(tally)
    if 1.0 in widths:
        assert tally.interventions["charge_density"] > 0


@pytest.mark.slow
def test_sweep_of_every_id_mode_and_kind_finds_no_violation(capsys):
    assert props.main(["--pulses", "20000", "--episode-s", "1"]) == 0
    out = capsys.readouterr().out
    assert "total violations: 0" in out and "pulses checked" in out
