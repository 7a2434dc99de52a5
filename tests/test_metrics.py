"""Clinical metrics against analytic answers, and input validation."""

import json
import math

import numpy as np
import pytest

from closedloop._config import ConfigError
from closedloop.metrics import (
    METRIC_DIRECTION,
    METRIC_DOCS,
    BatterySpec,
    charge_metrics,
    clinical_metrics,
    energy_metrics,
    episodes_above,
    overstimulation,
    posture_response,
    time_weights_s,
    tracking_error,
    understimulation,
    window_occupancy,
)


def _run(n=500, rate_hz=50.0, **over):
    """A 10 s run at 50 Hz, comfortably in window, on target, 5 mA / 250 µs / 1 kΩ."""
    t = np.arange(n) / rate_hz
    base = dict(
        t_s=t,
        ecap_uv=np.full(n, 40.0),
        target_uv=40.0,
        sensation=np.full(n, 1.5),
        discomfort=2.0,
        charge_uc=np.full(n, 1.25),
        current_ma=np.full(n, 5.0),
        pw_us=250.0,
        impedance_ohm=1000.0,
    )
    base.update(over)
    return base


# ---------------------------------------------------------------- time weights


def test_time_weights_last_pulse_gets_median_dt():
    w = time_weights_s([0.0, 3.0, 3.5, 4.0, 5.0])  # dt 3, 0.5, 0.5, 1 -> median 0.75
    np.testing.assert_allclose(w, [3.0, 0.5, 0.5, 1.0, 0.75])


# ---------------------------------------------------------------- tracking error


def test_constant_error_gives_mad_equal_rmse():
    r = tracking_error(np.full(100, 45.0), 40.0)
    assert r["mad_uv"] == pytest.approx(5.0)
    assert r["rmse_uv"] == pytest.approx(5.0)
    assert r["mean_rel_error"] == pytest.approx(0.125)


def test_square_wave_error_rmse():
    # error alternates between 0 and 6 µV: mad = 3, rmse = 6 / sqrt(2)
    ecap = 40.0 + np.tile([0.0, 6.0], 50)
    r = tracking_error(ecap, np.full(100, 40.0))
    assert r["mad_uv"] == pytest.approx(3.0)
    assert r["rmse_uv"] == pytest.approx(6.0 / math.sqrt(2.0))


def test_tracking_error_weighted_and_per_pulse_target():
    ecap = np.array([50.0, 20.0])
    target = np.array([40.0, 20.0])  # errors 10 (rel 0.25) and 0
    r = tracking_error(ecap, target, weights=[3.0, 1.0])
    assert r["mad_uv"] == pytest.approx(7.5)
    assert r["rmse_uv"] == pytest.approx(math.sqrt(75.0))
    assert r["mean_rel_error"] == pytest.approx(0.1875)
    assert r["time_within_10pct_frac"] == r["time_within_20pct_frac"] == pytest.approx(0.25)


def test_time_within_bands_counts_by_relative_error_and_weight():
    target = 40.0  # errors 0, 2, 6 and 12 µV: 0, 5, 15 and 30 % of the target
    ecap = np.array([40.0, 42.0, 34.0, 52.0])
    r = tracking_error(ecap, target, weights=[1.0, 2.0, 3.0, 4.0])
    assert r["time_within_10pct_frac"] == pytest.approx(0.3)
    assert r["time_within_20pct_frac"] == pytest.approx(0.6)
    assert tracking_error(np.full(3, 44.0), target)["time_within_10pct_frac"] == 1.0  # edge in


# ---------------------------------------------------------------- therapeutic window


def test_window_fractions_sum_to_one_and_match_counts():
    sens = np.array([0.5] * 20 + [1.0] * 30 + [1.9] * 10 + [2.0] * 40)  # 2.0 = discomfort
    r = window_occupancy(np.arange(100) * 0.1, sens, 2.0)
    assert r["time_below_perception_frac"] == pytest.approx(0.2)
    assert r["time_in_window_frac"] == pytest.approx(0.4)
    assert r["time_above_discomfort_frac"] == pytest.approx(0.4)
    assert r["time_in_window_s"] == pytest.approx(4.0)
    total = sum(
        r[k]
        for k in ("time_in_window_frac", "time_below_perception_frac", "time_above_discomfort_frac")
    )
    assert total == pytest.approx(1.0)


def test_non_uniform_times_are_weighted_by_time_not_pulses():
    t = [0.0, 3.0, 3.5, 4.0]  # weights 3, 0.5, 0.5, 0.5 -> 4.5 s
    sens = [5.0, 1.5, 1.5, 0.5]
    r = window_occupancy(t, sens, 2.0)
    assert r["time_above_discomfort_frac"] == pytest.approx(3.0 / 4.5)
    assert r["time_in_window_frac"] == pytest.approx(1.0 / 4.5)
    assert r["time_below_perception_s"] == pytest.approx(0.5)
    u = understimulation(t, sens)
    assert u["understim_time_s"] == pytest.approx(0.5)
    assert u["understim_frac"] == pytest.approx(0.5 / 4.5)


def test_per_pulse_discomfort():
    r = window_occupancy([0.0, 1.0, 2.0], [1.5, 1.5, 1.5], [1.4, 2.0, 1.5])
    assert r["time_above_discomfort_frac"] == pytest.approx(2.0 / 3.0)


# ---------------------------------------------------------------- overstimulation events


def _overstim_series():
    """10 Hz for 10 s; above discomfort at pulses 10-14, 17-19, 50-59 and 80."""
    t = np.arange(100) / 10.0
    sens = np.full(100, 1.5)
    for lo, hi in ((10, 15), (17, 20), (50, 60), (80, 81)):
        sens[lo:hi] = 2.5
    sens[55] = 4.0
    return t, sens


def test_episodes_merge_by_min_gap():
    t, sens = _overstim_series()
    ev = episodes_above(t, sens >= 2.0, min_gap_s=0.5)
    np.testing.assert_allclose(ev, [(1.0, 2.0), (5.0, 6.0), (8.0, 8.1)])
    assert len(episodes_above(t, sens >= 2.0, min_gap_s=0.1)) == 4  # 0.2 s gap not merged
    assert len(episodes_above(t, sens >= 2.0, min_gap_s=0.25)) == 3
    assert episodes_above(t, np.zeros(100, bool)) == []


def test_episode_touching_the_end_lasts_to_last_pulse_end():
    mask = np.array([False, False, True, True])
    np.testing.assert_allclose(episodes_above([0.0, 1.0, 2.0, 3.0], mask), [(2.0, 4.0)])


def test_overstimulation_counts_and_rates():
    t, sens = _overstim_series()
    r = overstimulation(t, sens, 2.0, min_gap_s=0.5)
    assert r["overstim_events"] == 3
    assert r["overstim_time_s"] == pytest.approx(1.9)
    assert r["overstim_frac"] == pytest.approx(0.19)
    assert r["overstim_events_per_hour"] == pytest.approx(3 / (10.0 / 3600.0))
    assert r["overstim_max_sensation"] == pytest.approx(4.0)
    assert overstimulation(t, sens, 2.0, min_gap_s=0.0)["overstim_events"] == 4


# ---------------------------------------------------------------- charge and energy


def test_charge_metrics():
    t = np.arange(50) / 50.0  # 1 s
    r = charge_metrics(t, np.r_[np.full(25, 1.0), np.full(25, 1.5)])
    assert r["charge_per_pulse_uc"] == pytest.approx(1.25)
    assert r["total_charge_uc"] == pytest.approx(62.5)
    assert r["charge_rate_uc_per_s"] == pytest.approx(62.5)


def test_energy_of_known_pulse_and_battery_life():
    t = np.arange(50) / 50.0  # 1 s
    r = energy_metrics(t, np.full(50, 5.0), 250.0, 1000.0)
    assert r["energy_per_pulse_uj"] == pytest.approx(12.5)  # 2 * (5 mA)^2 * 1 kΩ * 250 µs
    assert r["total_energy_mj"] == pytest.approx(0.625)
    assert r["stim_power_uw"] == pytest.approx(625.0)
    # 12.8 Wh / ((625 / 0.5 + 30) µW) = 10 000 h
    assert r["battery_life_years"] == pytest.approx(10_000.0 / 8766.0)


def test_battery_life_without_stimulation_is_capacity_over_quiescent():
    spec = BatterySpec(capacity_mah=3000.0, voltage_v=3.0, quiescent_uw=50.0)
    r = energy_metrics(np.arange(10.0), np.zeros(10), 250.0, 1000.0, battery=spec)
    assert r["stim_power_uw"] == 0.0
    assert r["battery_life_years"] == pytest.approx(9.0 / 50e-6 / 8766.0)


def test_per_pulse_pulse_width_and_impedance():
    r = energy_metrics([0.0, 1.0], [2.0, 4.0], [100.0, 200.0], [500.0, 1000.0])
    e = [2 * 4e-6 * 500 * 100, 2 * 16e-6 * 1000 * 200]  # µJ
    assert r["energy_per_pulse_uj"] == pytest.approx(np.mean(e))


# ---------------------------------------------------------------- posture response


def _step_response(kind, tau=0.5, rate_hz=50.0, t_change=2.0, duration=12.0, target=40.0):
    t = np.arange(int(duration * rate_hz)) / rate_hz
    after = t >= t_change - 1e-12
    x = np.where(after, t - t_change, 0.0)
    if kind == "decay":  # jumps to 2x target, relaxes back
        ecap = np.where(after, target * (1.0 + np.exp(-x / tau)), target)
    else:  # drops to 0, recovers
        ecap = np.where(after, target * (1.0 - np.exp(-x / tau)), target)
    posture = np.where(after, 4, 0)
    return t, ecap, target, posture


@pytest.mark.parametrize("kind", ["decay", "rise"])
def test_settling_time_of_first_order_response(kind):
    tau, dt = 0.5, 1 / 50.0
    t, ecap, target, posture = _step_response(kind, tau=tau)
    r = posture_response(t, ecap, target, posture, band_rel=0.2, horizon_s=8.0)
    analytic = tau * math.log(1.0 / 0.2)  # exp(-x/tau) = 0.2
    assert r["n_changes"] == 1 and r["unsettled_changes"] == 0
    assert abs(r["settling_time_s_mean"] - analytic) <= dt
    assert r["settling_time_s_mean"] >= analytic - 1e-9
    change = r["per_change"][0]
    assert (change["from"], change["to"]) == (0, 4)
    assert change["t_s"] == pytest.approx(2.0)
    expected_over = 1.0 if kind == "decay" else 0.0
    assert r["overshoot_rel_max"] == pytest.approx(expected_over)


def test_overshoot_of_known_trace_ignores_peaks_beyond_horizon():
    t = np.arange(1000) / 50.0  # 20 s
    ecap = np.full(1000, 40.0)
    ecap[100:] += 16.0 * np.exp(-(((t[100:] - 3.0) / 0.2) ** 2))  # peak 1.4x at t = 3 s
    ecap[900] = 200.0  # t = 18 s: beyond 2 s + 10 s horizon
    posture = np.where(t >= 2.0, 3, 0)
    r = posture_response(t, ecap, 40.0, posture, band_rel=0.5, horizon_s=10.0)
    assert r["overshoot_rel_max"] == pytest.approx(0.4)
    assert r["settling_time_s_max"] == 0.0  # never left the ±50 % band


def test_unsettled_and_truncated_by_next_change():
    t = np.arange(600) / 50.0
    ecap = np.full(600, 40.0)
    ecap[100:300] = 80.0  # out of band from the first change until the second
    posture = np.zeros(600, int)
    posture[100:300] = 1
    posture[300:] = 2
    r = posture_response(t, ecap, 40.0, posture)
    assert r["n_changes"] == 2
    assert r["unsettled_changes"] == 1
    assert math.isnan(r["per_change"][0]["settling_time_s"])
    assert r["per_change"][1]["settling_time_s"] == 0.0
    assert r["settling_time_s_mean"] == 0.0  # nanmean over settled changes


def test_noise_can_unsettle_so_true_ecap_is_preferred():
    t, ecap, target, posture = _step_response("decay")
    noisy = ecap + np.random.default_rng(0).normal(0.0, 10.0, ecap.size)
    clean = posture_response(t, ecap, target, posture, horizon_s=8.0)
    dirty = posture_response(t, noisy, target, posture, horizon_s=8.0)
    assert clean["settling_time_s_max"] < 1.0
    assert not dirty["settling_time_s_max"] < 1.0  # late excursion or NaN


def test_no_posture_changes():
    r = posture_response(np.arange(10.0), np.full(10, 40.0), 40.0, np.zeros(10, int))
    assert r["n_changes"] == 0 and r["unsettled_changes"] == 0
    assert math.isnan(r["settling_time_s_mean"]) and math.isnan(r["overshoot_rel_max"])


# ---------------------------------------------------------------- clinical_metrics


def test_clinical_metrics_schema_is_documented_and_serialisable():
    t, ecap, target, posture = _step_response("decay")
    n = t.size
    run = _run(n=n, t_s=t, ecap_uv=ecap, target_uv=target)
    r = clinical_metrics(**run, posture=posture)
    assert list(r) == list(METRIC_DOCS)
    assert set(METRIC_DIRECTION) == set(METRIC_DOCS)
    assert set(METRIC_DIRECTION.values()) <= {-1, 0, 1}
    assert METRIC_DIRECTION["time_in_window_frac"] == 1 and METRIC_DIRECTION["mad_uv"] == -1
    assert all(type(v) in (int, float) for v in r.values())
    json.dumps(r)
    assert r["n_changes"] == 1 and r["energy_per_pulse_uj"] == pytest.approx(12.5)
    assert r["scored_duration_s"] == pytest.approx(12.0)


def test_clinical_metrics_without_posture_has_same_keys():
    r = clinical_metrics(**_run())
    assert list(r) == list(METRIC_DOCS)
    assert r["n_changes"] == 0 and math.isnan(r["settling_time_s_mean"])
    assert r["time_in_window_frac"] == pytest.approx(1.0)
    assert r["mad_uv"] == 0.0


def test_warmup_is_excluded_from_scoring():
    run = _run()  # 10 s at 50 Hz
    sens, ecap = run["sensation"].copy(), run["ecap_uv"].copy()
    sens[:250], ecap[:250] = 3.0, 90.0  # first 5 s overstimulated and off target
    run.update(sensation=sens, ecap_uv=ecap)
    full = clinical_metrics(**run)
    scored = clinical_metrics(**run, warmup_s=5.0)
    assert full["overstim_time_s"] == pytest.approx(5.0) and full["mad_uv"] > 20.0
    assert scored["overstim_time_s"] == 0.0 and scored["overstim_events"] == 0
    assert scored["mad_uv"] == 0.0
    assert scored["scored_duration_s"] == pytest.approx(5.0)
    assert scored["n_pulses"] == 250


def test_warmup_scored_slices_per_pulse_arrays_consistently():
    run = _run(n=100)
    cur = np.r_[np.zeros(50), np.full(50, 5.0)]
    r = clinical_metrics(**{**run, "current_ma": cur}, warmup_s=1.0)
    assert r["energy_per_pulse_uj"] == pytest.approx(12.5)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: window_occupancy([0.0, 1.0, 1.0], [1, 1, 1], 2.0), "t_s"),
        (lambda: window_occupancy([0.0, 1.0, np.nan], [1, 1, 1], 2.0), "t_s"),
        (lambda: window_occupancy([0.0], [1.0], 2.0), "t_s"),
        (lambda: window_occupancy([0.0, 1.0], [1.0, 1.0, 1.0], 2.0), "sensation"),
        (lambda: window_occupancy([0.0, 1.0], [1.0, -0.1], 2.0), "sensation"),
        (lambda: window_occupancy([0.0, 1.0], [1.0, 1.0], 1.0), "discomfort"),
        (lambda: tracking_error([40.0, np.inf], 40.0), "ecap_uv"),
        (lambda: tracking_error([40.0, 40.0], 0.0), "target_uv"),
        (lambda: tracking_error([40.0, 40.0], 40.0, weights=[0.0, 0.0]), "weights"),
        (lambda: tracking_error(40.0, 40.0), "ecap_uv"),
        (lambda: charge_metrics([0.0, 1.0], [1.0, -1.0]), "charge_uc"),
        (lambda: energy_metrics([0.0, 1.0], [5.0, 5.0], 250.0, 0.0), "impedance_ohm"),
        (lambda: energy_metrics([0.0, 1.0], [5.0, 5.0], -1.0, 1e3), "pw_us"),
        (lambda: energy_metrics([0.0, 1.0], [5.0, 5.0], 250.0, 1e3, battery=1), "battery"),
        (lambda: BatterySpec(efficiency=0.0), "efficiency"),
        (lambda: BatterySpec(capacity_mah=-1.0), "capacity_mah"),
        (lambda: episodes_above([0.0, 1.0], [1, 0]), "mask"),
        (lambda: episodes_above([0.0, 1.0], [True, False], min_gap_s=-1.0), "min_gap_s"),
        (lambda: posture_response([0.0, 1.0], [40.0, 40.0], 40.0, [0, 1, 1]), "posture"),
        (
            lambda: posture_response([0.0, 1.0], [40.0, 40.0], 40.0, [0, 1], band_rel=0.0),
            "band_rel",
        ),
        (
            lambda: posture_response([0.0, 1.0], [40.0, 40.0], 40.0, [0, 1], horizon_s=-1.0),
            "horizon_s",
        ),
        (lambda: clinical_metrics(**_run(), warmup_s=9.99), "warmup_s"),
        (lambda: clinical_metrics(**_run(), warmup_s=-1.0), "warmup_s"),
        (lambda: clinical_metrics(**_run(current_ma=np.ones(7))), "current_ma"),
    ],
)
def test_bad_input_raises_config_error_naming_argument(call, name):
    with pytest.raises(ConfigError, match=name):
        call()


def test_error_names_valid_range():
    with pytest.raises(
        ConfigError,
        match=r"charge_uc\[1\]=-1.0 is out of range; valid range "
        r"\[0, inf\) µC",
    ):
        charge_metrics([0.0, 1.0], [1.0, -1.0])
