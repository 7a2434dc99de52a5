"""Within-posture sway: an Ornstein-Uhlenbeck CSF shift, stationary, scaled per posture."""

import numpy as np
import pytest

from closedloop._config import ConfigError
from closedloop.disturbances import PARTS, Scenario, SwaySpec, load_scenario
from closedloop.disturbances._spec import Grid
from closedloop.patients.postures import POSTURES

CSF = {p: 3.0 + 0.2 * i for i, p in enumerate(POSTURES)}


def grid(duration_s: float, rate_hz: float = 50.0) -> Grid:
    n = round(duration_s * rate_hz)
    return Grid(np.arange(n) / rate_hz, rate_hz, duration_s)


def ou_reference(sd: float, tau: float, rate: float, n: int, rng) -> np.ndarray:
    """The same process, one pulse at a time in plain Python (the draws in the same order)."""
    a = np.exp(-1.0 / (rate * tau))
    x = [sd * rng.standard_normal()]
    kicks = sd * np.sqrt(1.0 - a * a) * rng.standard_normal(n - 1)
    for k in kicks:
        x.append(a * x[-1] + k)
    return np.array(x)


def test_sway_matches_the_step_by_step_recursion():
    spec = SwaySpec(sd_mm=0.3, tau_s=20.0)
    g = grid(60.0)
    got = spec.sample(g, np.random.default_rng(5), np.ones(len(g.t_s)))
    want = ou_reference(0.3, 20.0, 50.0, len(g.t_s), np.random.default_rng(5))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_sway_is_stationary_with_its_sd_and_correlation_time():
    spec = SwaySpec(sd_mm=0.25, tau_s=10.0)
    rate = 10.0
    g = grid(40_000.0, rate)  # 4000 correlation times
    x = spec.sample(g, np.random.default_rng(1), np.ones(len(g.t_s)))
    assert x.std() == pytest.approx(0.25, rel=0.06)
    assert abs(x.mean()) < 0.03
    lag = int(10.0 * rate)
    r = np.corrcoef(x[:-lag], x[lag:])[0, 1]
    assert r == pytest.approx(np.exp(-1.0), abs=0.06)
    # Stationary from the first pulse: the start is drawn with the full sd across seeds.
    starts = [spec.sample(grid(1.0), np.random.default_rng(s), np.ones(50))[0] for s in range(400)]
    assert np.std(starts) == pytest.approx(0.25, rel=0.12)


def test_posture_scale_gates_the_sway():
    sc = Scenario.from_dict(
        {
            "duration_s": 200.0,
            "posture": {
                "mode": "sequence",
                "sequence": [["sitting", 100.0], ["supine", 100.0]],
                "repeat": False,
                "transition_s": 1.0,
            },
            "sway": {"sd_mm": 0.3, "posture_scale": {"supine": 0.0}},
        }
    )
    tr = sc.sample(CSF, 50.0, 3)
    sway = tr.parts["sway"]
    supine = tr.t_s > 102.0
    assert np.all(sway[supine] == 0.0)
    assert np.std(sway[tr.t_s < 99.0]) > 0.0
    assert sc.sway.posture_scale["sitting"] == 1.0  # missing postures default to 1


def test_sway_is_appended_so_other_parts_keep_their_draws():
    assert PARTS[-1] == "sway"
    base = load_scenario("daily-living", duration_s=300.0, sway=None)
    with_sway = base.replace(sway={"sd_mm": 0.2})
    a, b = base.sample(CSF, 50.0, 7), with_sway.sample(CSF, 50.0, 7)
    for key in PARTS[:-1]:
        assert np.array_equal(a.parts[key], b.parts[key]), key
    assert np.array_equal(a.posture, b.posture)
    assert np.all(a.parts["sway"] == 0.0) and np.std(b.parts["sway"]) > 0.0
    np.testing.assert_allclose(b.csf_mm, np.clip(a.csf_mm + b.parts["sway"], 0.5, 12.0), atol=1e-12)


def test_sway_round_trips_and_describes():
    sc = load_scenario("daily-living", duration_s=60.0)
    assert Scenario.from_dict(sc.to_dict()) == sc
    assert sc.sway is not None and "sway" in sc.describe()


@pytest.mark.parametrize(
    "table, name",
    [
        ({"sd_mm": -0.1}, "sway.sd_mm"),
        ({"sd_mm": float("nan")}, "sway.sd_mm"),
        ({"tau_s": 0.0}, "sway.tau_s"),
        ({"tau_s": float("inf")}, "sway.tau_s"),
        ({"posture_scale": {"kneeling": 1.0}}, "sway.posture_scale"),
        ({"posture_scale": {"sitting": -1.0}}, "sway.posture_scale.sitting"),
        ({"amplitude": 1.0}, "amplitude"),
    ],
)
def test_bad_sway_tables_name_the_field(table, name):
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        Scenario.from_dict({"duration_s": 10.0, "sway": table})
