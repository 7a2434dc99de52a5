"""Disturbance scenarios: determinism, composition, physiology of each component, validation."""

import math
import re

import numpy as np
import pytest

from closedloop._config import ConfigError
from closedloop.disturbances import (
    CSF_RANGE_MM,
    EVENT_TYPES,
    PARTS,
    DisturbanceTrace,
    Scenario,
    list_scenarios,
    load_scenario,
)
from closedloop.disturbances.periodic import CardiacSpec, GaitSpec, RespirationSpec
from closedloop.disturbances.posture import long_run_mix
from closedloop.patients.postures import POSTURES, posture_code

CSF = {"supine": 3.0, "prone": 5.2, "side": 3.25, "sitting": 3.45, "standing": 3.5, "walking": 3.6}
DISTINCT = {p: 2.0 + 0.5 * i for i, p in enumerate(POSTURES)}
ARRAYS = ("t_s", "posture", "csf_mm", "event", "impedance_scale")


def assert_identical(a: DisturbanceTrace, b: DisturbanceTrace) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    for name in PARTS:
        assert np.array_equal(a.parts[name], b.parts[name]), name


def sequence_scenario(steps, transition_s=1.0, duration_s=None, repeat=False, **components):
    duration = duration_s or sum(d for _, d in steps)
    return Scenario.from_dict(
        {
            "duration_s": duration,
            "posture": {
                "mode": "sequence",
                "sequence": [list(s) for s in steps],
                "repeat": repeat,
                "transition_s": transition_s,
            },
            **components,
        }
    )


def runs(values):
    """(value, start index, length) of each run of equal values."""
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate(([0], edges))
    lengths = np.diff(np.concatenate((starts, [len(values)])))
    return [(values[s], s, n) for s, n in zip(starts, lengths, strict=True)]


def onsets(event, code=None):
    """Indices where an event (of type ``code``) starts."""
    active = event != 0 if code is None else event == code
    return np.flatnonzero(np.diff(active.astype(np.int8), prepend=0) == 1)


# --- determinism and seeding -----------------------------------------------------------------


@pytest.mark.parametrize("name", list_scenarios())
def test_every_library_scenario_loads_samples_and_is_deterministic(name):
    sc = load_scenario(name)
    assert sc.name == name and len(sc.description.strip()) > 40
    a, b = sc.sample(CSF, 50.0, seed=3), sc.sample(CSF, 50.0, seed=3)
    assert_identical(a, b)
    n = round(sc.duration_s * 50.0)
    assert len(a) == n and a.scenario == name and a.rate_hz == 50.0
    assert np.array_equal(a.t_s, np.arange(n) / 50.0)
    assert a.posture.dtype == np.int8 and a.event.dtype == np.int8
    assert a.csf_mm.dtype == np.float64 and a.impedance_scale[0] == 1.0
    assert set(a.parts) == set(PARTS)
    assert Scenario.from_dict(sc.to_dict()) == sc
    assert sc.describe().startswith(name)


def test_different_seeds_give_different_traces():
    sc = load_scenario("daily-living")
    a, b = sc.sample(CSF, 50.0, seed=0), sc.sample(CSF, 50.0, seed=1)
    for name in ("respiration", "cardiac"):
        assert not np.array_equal(a.parts[name], b.parts[name])
    assert not np.array_equal(a.csf_mm, b.csf_mm)


def test_seed_sequence_is_accepted_and_not_modified():
    sc = load_scenario("cough-storm", duration_s=60)
    ss = np.random.SeedSequence(7)
    a = sc.sample(CSF, 50.0, seed=ss)
    assert ss.n_children_spawned == 0
    assert_identical(a, sc.sample(CSF, 50.0, seed=ss))
    assert_identical(a, sc.sample(CSF, 50.0, seed=7))


def test_global_numpy_rng_is_never_used():
    sc = load_scenario("daily-living", duration_s=120)
    np.random.seed(1)
    a = sc.sample(CSF, 50.0, seed=2)
    np.random.seed(99)
    np.random.random(10)
    assert_identical(a, sc.sample(CSF, 50.0, seed=2))


def test_disabling_a_component_leaves_the_others_draws_unchanged():
    full = load_scenario("daily-living").sample(CSF, 50.0, seed=5)
    for off in ("respiration", "cardiac", "gait", "events"):
        part = load_scenario("daily-living", **{off: None}).sample(CSF, 50.0, seed=5)
        assert not part.parts[off].any()
        for name in PARTS:
            if name != off:
                assert np.array_equal(full.parts[name], part.parts[name]), (off, name)
        assert np.array_equal(full.posture, part.posture)


def test_retuning_one_event_type_leaves_the_other_types_unchanged():
    a = load_scenario("daily-living", duration_s=600.0).sample(CSF, 50.0, seed=4)
    b = load_scenario(
        "daily-living", duration_s=600.0, events={"cough": {"rate_per_hour": 200.0}}
    ).sample(CSF, 50.0, seed=4)
    for code in (2, 3):
        assert np.array_equal(onsets(a.event, code), onsets(b.event, code))
    assert len(onsets(b.event, 1)) > len(onsets(a.event, 1))


# --- composition -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["daily-living", "chronic-drift", "clinic"])
def test_csf_is_the_clipped_sum_of_the_parts(name):
    tr = load_scenario(name).sample(CSF, 50.0, seed=0)
    total = np.zeros(len(tr))
    for part in PARTS:
        total = total + tr.parts[part]
    assert np.array_equal(tr.csf_mm, np.clip(total, *CSF_RANGE_MM))
    assert np.allclose(tr.csf_mm, sum(tr.parts.values()))  # nothing clipped at normal CSF


def test_csf_is_clipped_into_the_model_range():
    thin = dict.fromkeys(POSTURES, 0.6)
    tr = load_scenario("cough-storm").sample(thin, 50.0, seed=0)
    assert tr.csf_mm.min() == CSF_RANGE_MM[0] and tr.csf_mm.max() <= CSF_RANGE_MM[1]
    assert (sum(tr.parts.values()) < CSF_RANGE_MM[0]).any()


def test_trace_to_dict_is_plain_lists():
    tr = load_scenario("clinic", duration_s=2).sample(CSF, 10.0, seed=0)
    d = tr.to_dict()
    assert d["postures"] == list(POSTURES) and d["event_types"] == list(EVENT_TYPES)
    assert len(d["csf_mm"]) == 20 and isinstance(d["posture"][0], int)
    assert tr.posture_names()[0] == "supine" and tr.event_names()[0] is None


# --- posture -----------------------------------------------------------------------------------


def test_posture_baseline_and_transition_ramps():
    steps = [("supine", 20.0), ("sitting", 15.0), ("standing", 10.0), ("prone", 12.0)]
    rate = 100.0
    tr = sequence_scenario(steps, transition_s=1.0).sample(DISTINCT, rate, seed=0)
    base, t = tr.parts["posture"], tr.t_s
    starts = np.cumsum([0.0] + [d for _, d in steps])
    for k, (name, _) in enumerate(steps):
        settled = (t >= starts[k] + 1.0) & (t < starts[k + 1])
        assert np.array_equal(base[settled], np.full(settled.sum(), DISTINCT[name]))
        assert np.all(tr.posture[(t >= starts[k]) & (t < starts[k + 1])] == posture_code(name))
        if k:
            ramp = (t >= starts[k]) & (t < starts[k] + 1.0)
            old, new = DISTINCT[steps[k - 1][0]], DISTINCT[name]
            moving = ramp & (base != old) & (base != new)
            assert moving.sum() == pytest.approx(1.0 * rate, abs=2)  # lasts transition_s
            assert np.all(np.diff(base[ramp]) * np.sign(new - old) > 0)  # smooth, monotone


def test_transition_time_is_configurable():
    steps = [("supine", 10.0), ("prone", 10.0)]
    tr = sequence_scenario(steps, transition_s=3.0).sample(DISTINCT, 50.0, seed=0)
    base = tr.parts["posture"]
    moving = (base != DISTINCT["supine"]) & (base != DISTINCT["prone"])
    assert moving.sum() == pytest.approx(3.0 * 50, abs=2)


def test_overlapping_transitions_stay_continuous():
    steps = [("supine", 5.0), ("prone", 0.4), ("sitting", 5.0)]
    tr = sequence_scenario(steps, transition_s=1.0).sample(DISTINCT, 100.0, seed=0)
    base = tr.parts["posture"]
    assert np.max(np.abs(np.diff(base))) < 0.1
    assert np.all(base[tr.t_s >= 6.4] == DISTINCT["sitting"])
    assert tr.posture[540] == posture_code("sitting")


def test_sequence_dwell_times_are_respected_and_repeated():
    steps = [("sitting", 7.0), ("standing", 3.0), ("walking", 5.0)]
    tr = sequence_scenario(steps, duration_s=35.0, repeat=True).sample(CSF, 50.0, seed=0)
    expected = [(posture_code(p), round(d * 50)) for p, d in steps] * 2
    got = [(code, n) for code, _, n in runs(tr.posture)]
    assert got[:-1] == expected
    assert got[-1] == (posture_code("sitting"), 250)  # the 3rd cycle is cut at 35 s
    held = sequence_scenario(steps, duration_s=40.0, repeat=False).sample(CSF, 50.0, seed=0)
    assert runs(held.posture)[-1][:2] == (posture_code("walking"), 10 * 50)


def test_markov_dwell_times_and_transition_graph():
    sc = load_scenario("walking", duration_s=36_000.0, events=None)
    tr = sc.sample(CSF, 2.0, seed=0)
    segments = runs(tr.posture)[1:-1]  # drop the censored first and last
    for name, mean in (("standing", 30.0), ("walking", 90.0)):
        dwell = [n / 2.0 for code, _, n in segments if code == posture_code(name)]
        assert len(dwell) > 100
        assert np.mean(dwell) == pytest.approx(mean, rel=0.15)
    daily = load_scenario("daily-living", duration_s=36_000.0).sample(CSF, 1.0, seed=0)
    pairs = {
        (POSTURES[a], POSTURES[b])
        for (a, _, _), (b, _, _) in zip(
            runs(daily.posture)[:-1], runs(daily.posture)[1:], strict=True
        )
    }
    # One walks only from standing; one lies prone only from lying supine.
    assert ("sitting", "walking") not in pairs
    assert {("sitting", "standing"), ("standing", "walking"), ("walking", "sitting")} <= pairs
    assert {a for a, b in pairs if b == "prone"} == {"supine"}
    assert {a for a, b in pairs if b == "walking"} == {"standing"}


def test_exponential_dwells_and_random_start():
    spec = {
        "duration_s": 20_000.0,
        "posture": {
            "mode": "markov",
            "start": "random",
            "dwell_distribution": "exponential",
            "min_dwell_s": 0.5,
            "mean_dwell_s": {"sitting": 40.0, "standing": 40.0},
            "transitions": {"sitting": {"standing": 1}, "standing": {"sitting": 1}},
        },
    }
    sc = Scenario.from_dict(spec)
    dwell = [n for _, _, n in runs(sc.sample(CSF, 10.0, seed=1).posture)[1:-1]]
    assert np.mean(dwell) / 10.0 == pytest.approx(40.0, rel=0.15)
    assert np.std(dwell) / np.mean(dwell) == pytest.approx(1.0, abs=0.2)  # exponential: CV 1
    first = {sc.sample(CSF, 1.0, seed=s).posture[0] for s in range(20)}
    assert first == {posture_code("sitting"), posture_code("standing")}


def _chain(start="stationary", dist="lognormal", dwell=None, transitions=None):
    return Scenario.from_dict(
        {
            "duration_s": 200.0,
            "posture": {
                "mode": "markov",
                "start": start,
                "dwell_distribution": dist,
                "min_dwell_s": 0.5,
                "mean_dwell_s": dwell or {"sitting": 60.0, "standing": 20.0, "walking": 10.0},
                "transitions": transitions
                or {
                    "sitting": {"standing": 1},
                    "standing": {"sitting": 1, "walking": 3},
                    "walking": {"standing": 1},
                },
            },
        }
    )


def test_long_run_mix_weights_the_jump_chain_by_dwell():
    # Jump chain sitting -> standing -> (sitting 1/4 | walking 3/4) -> ...: visits in the ratio
    # sitting 1 : standing 4 : walking 3, times 60 / 20 / 10 s -> 60 : 80 : 30 (sum 170).
    mix = long_run_mix(_chain().posture)
    assert mix == pytest.approx({"sitting": 60 / 170, "standing": 80 / 170, "walking": 30 / 170})
    two = long_run_mix(
        _chain(
            dwell={"sitting": 30.0, "standing": 10.0},
            transitions={"sitting": {"standing": 1}, "standing": {"sitting": 1}},
        ).posture
    )
    assert two == pytest.approx({"sitting": 0.75, "standing": 0.25})
    with pytest.raises(ConfigError, match="long-run mix"):  # two closed classes: no unique mix
        long_run_mix(
            _chain(
                transitions={
                    "sitting": {"standing": 1},
                    "standing": {"sitting": 1},
                    "walking": {"supine": 1},
                    "supine": {"walking": 1},
                }
            ).posture
        )


@pytest.mark.parametrize("dist", ["lognormal", "exponential"])
def test_stationary_start_is_the_long_run_mix_at_any_time(dist):
    sc = _chain(dist=dist)
    mix = long_run_mix(sc.posture)
    draws = np.array([sc.sample(CSF, 1.0, seed=s).posture[[0, 150]] for s in range(1500)])
    for name, p in mix.items():
        at0, at150 = (np.mean(draws[:, k] == posture_code(name)) for k in (0, 1))
        assert at0 == pytest.approx(p, abs=0.04), name  # as at a random time of the day ...
        assert at150 == pytest.approx(p, abs=0.04), name
    # ... and part-way through a dwell: the first sitting run is shorter than a whole one
    first = [
        n
        for s in range(400)
        for code, _, n in runs(sc.sample(CSF, 1.0, seed=s).posture)[:1]
        if code == posture_code("sitting")
    ]
    assert 0.5 * 60.0 * 0.6 < np.mean(first) < 60.0 * 1.1


def test_daily_living_starts_in_the_long_run_mix():
    sc = load_scenario("daily-living")
    assert sc.posture.start == "stationary"
    mix = long_run_mix(sc.posture)
    first = [sc.sample(CSF, 1.0, seed=s).posture[0] for s in range(600)]
    assert np.mean(np.array(first) == posture_code("sitting")) == pytest.approx(
        mix["sitting"], abs=0.06
    )


def test_no_posture_component_means_sitting_still():
    tr = Scenario.from_dict({"duration_s": 10.0}).sample(CSF, 50.0, seed=0)
    assert np.all(tr.posture == posture_code("sitting"))
    assert np.all(tr.csf_mm == CSF["sitting"])


# --- periodic components -----------------------------------------------------------------------


def peak_hz(x, rate):
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)]


def test_respiration_and_cardiac_frequencies_and_amplitudes():
    sc = Scenario.from_dict({"duration_s": 300.0, "respiration": {}, "cardiac": {}})
    breaths, beats = [], []
    for seed in range(8):
        tr = sc.sample(CSF, 50.0, seed=seed)
        resp, card = tr.parts["respiration"], tr.parts["cardiac"]
        breaths.append(peak_hz(resp, 50.0))
        beats.append(peak_hz(card, 50.0))
        assert np.max(np.abs(resp)) == pytest.approx(RespirationSpec().amplitude_mm, rel=0.01)
        assert np.ptp(card) == pytest.approx(2 * CardiacSpec().amplitude_mm, rel=0.05)
        amp = CardiacSpec().amplitude_mm
        assert abs(card.mean()) < 0.05 * amp and card.min() < -1.5 * amp  # zero mean, dip
    assert all(0.2 - 0.005 <= f <= 0.33 + 0.005 for f in breaths)
    assert all(1.0 - 0.005 <= f <= 1.5 + 0.005 for f in beats)
    assert len({round(f, 3) for f in breaths}) > 4  # drawn per trace


def test_gait_only_while_walking():
    steps = [("standing", 20.0), ("walking", 30.0), ("sitting", 20.0)]
    tr = sequence_scenario(steps, gait={}).sample(CSF, 50.0, seed=0)
    gait, t = tr.parts["gait"], tr.t_s
    assert not gait[(t < 20.0) | (t >= 51.0)].any()
    walking = (t >= 21.0) & (t < 50.0)
    assert np.max(np.abs(gait[walking])) == pytest.approx(GaitSpec().amplitude_mm, rel=0.02)
    assert 0.85 - 0.04 <= peak_hz(gait[walking], 50.0) <= 0.95 + 0.04


# --- events ------------------------------------------------------------------------------------


def test_event_rate_matches_rate_per_hour():
    hours = 20.0
    sc = Scenario.from_dict(
        {
            "duration_s": hours * 3600,
            "events": {"cough": {"rate_per_hour": 60.0}, "sneeze": {"rate_per_hour": 5.0}},
        }
    )
    tr = sc.sample(CSF, 20.0, seed=11)
    for code, rate in ((1, 60.0), (2, 5.0)):
        expected = rate * hours
        assert len(onsets(tr.event, code)) == pytest.approx(expected, abs=4 * math.sqrt(expected))


def test_cough_bursts_multiply_the_event_rate():
    sc = Scenario.from_dict(
        {
            "duration_s": 36_000.0,
            "events": {
                "cough": {"rate_per_hour": 20.0, "burst_size": [3, 5], "burst_gap_s": [0.5, 1.0]}
            },
        }
    )
    n = len(onsets(sc.sample(CSF, 20.0, seed=2).event))
    assert n == pytest.approx(20.0 * 10 * 4, rel=0.15)


def test_events_decrease_the_csf_within_their_amplitude_range():
    tr = load_scenario("daily-living", duration_s=7200.0).sample(CSF, 100.0, seed=3)
    dips = tr.parts["events"]
    assert np.all(dips <= 0) and not dips[tr.event == 0].any()
    assert (dips[tr.event != 0] < 0).any()
    ranges = {1: (0.6, 1.2, 0.6), 2: (0.8, 1.5, 0.5), 3: (0.4, 0.9, 2.0)}  # amp lo, hi, dur hi
    checked = 0
    for code, start, length in runs(tr.event):
        lo, hi, longest = ranges.get(code, (0, 0, 0))
        if code and length <= longest * 100 + 1:  # a single event, not overlapping another
            assert -hi - 1e-9 <= dips[start : start + length].min() <= -0.98 * lo
            checked += 1
    assert checked > 10
    assert len(onsets(tr.event)) > 10


def test_bends_only_start_in_their_postures():
    tr = load_scenario(
        "daily-living", duration_s=36_000.0, events={"bend": {"rate_per_hour": 60.0}}
    ).sample(CSF, 10.0, seed=0)
    starts = onsets(tr.event, 3)
    assert len(starts) > 100
    allowed = {posture_code("sitting"), posture_code("standing")}
    assert set(tr.posture[starts].tolist()) <= allowed


def test_clinic_scheduled_coughs():
    tr = load_scenario("clinic").sample(CSF, 50.0, seed=0)
    starts = onsets(tr.event)
    assert np.allclose(tr.t_s[starts], [82.0, 127.0, 262.0], atol=0.03)
    assert np.all(tr.event[starts] == 1)
    assert [POSTURES[c] for c in tr.posture[starts]] == ["sitting", "standing", "sitting"]
    assert tr.csf_mm[starts[0] : starts[0] + 40].min() < CSF["sitting"] - 0.5


# --- drift -------------------------------------------------------------------------------------


def test_compressed_drift_moves_the_csf_and_raises_the_impedance():
    sc = Scenario.from_dict(
        {
            "duration_s": 560.0,
            "drift": {
                "migration_mm_per_day": 0.02,
                "impedance_rise": 0.3,
                "fibrosis_tau_days": 14.0,
                "time_compression": 0.05,
            },
        }
    )
    tr = sc.sample(CSF, 10.0, seed=0)
    days = tr.t_s[-1] * 0.05
    assert tr.parts["drift"][0] == 0.0
    assert tr.parts["drift"][-1] == pytest.approx(0.02 * days)
    assert tr.csf_mm[-1] == pytest.approx(CSF["sitting"] + 0.02 * days)
    assert tr.impedance_scale[0] == 1.0
    assert tr.impedance_scale[-1] == pytest.approx(1 + 0.3 * (1 - math.exp(-days / 14.0)))
    assert np.all(np.diff(tr.impedance_scale) > 0)


def test_real_time_drift_is_negligible_and_old_implants_are_stable():
    sc = Scenario.from_dict({"duration_s": 600.0, "drift": {}})
    tr = sc.sample(CSF, 10.0, seed=0)
    assert np.abs(tr.parts["drift"]).max() < 1e-3 and tr.impedance_scale[-1] < 1.0 + 1e-3
    old = Scenario.from_dict(
        {"duration_s": 600.0, "drift": {"age_days": 3000.0, "time_compression": 0.05}}
    )
    assert old.sample(CSF, 10.0, seed=0).impedance_scale[-1] == pytest.approx(1.0, abs=1e-6)


def test_migration_random_walk_spread():
    sc = Scenario.from_dict(
        {
            "duration_s": 100.0,
            "drift": {"migration_mm_per_day": 0.0, "migration_sd_mm": 0.1, "time_compression": 0.1},
        }
    )
    ends = np.array([sc.sample(CSF, 2.0, seed=s).parts["drift"][-1] for s in range(400)])
    days = 199 / 2.0 * 0.1
    assert np.std(ends) == pytest.approx(0.1 * math.sqrt(days), rel=0.15)


# --- long traces (their speed: benchmarks/bench_steps.py) -----------------------------------------


def test_one_hour_at_50_hz():
    tr = load_scenario("daily-living", duration_s=3600.0).sample(CSF, 50.0, seed=1)
    assert len(tr) == 180_000 and np.isfinite(tr.csf_mm).all()
    assert len(load_scenario("daily-living").sample(CSF, 1000.0, seed=0)) == 3_600_000


# --- validation --------------------------------------------------------------------------------


def test_load_scenario_overrides():
    sc = load_scenario("clinic", duration_s=120)
    assert sc.duration_s == 120 and len(sc.sample(CSF, 50.0)) == 6000
    assert load_scenario("clinic", respiration=None).respiration is None
    tuned = load_scenario("daily-living", events={"cough": {"rate_per_hour": 30.0}})
    assert tuned.events.cough.rate_per_hour == 30.0 and tuned.events.sneeze.rate_per_hour == 0.2
    assert tuned.replace(duration_s=60.0) == load_scenario(
        "daily-living", duration_s=60.0, events={"cough": {"rate_per_hour": 30.0}}
    )
    assert tuned.replace(events=None).events is None
    with pytest.raises(ConfigError, match="unknown key.*length"):
        tuned.replace(length=3)


def test_load_scenario_from_a_toml_path(tmp_path):
    path = tmp_path / "my-visit.toml"
    path.write_text(
        'description = "two postures"\nduration_s = 20.0\n[posture]\n'
        'sequence = [["supine", 10.0], ["standing", 10.0]]\n[respiration]\n'
    )
    sc = load_scenario(str(path))
    assert sc.name == "my-visit" and sc.respiration is not None and sc.cardiac is None
    assert runs(sc.sample(CSF, 10.0).posture)[1][:2] == (posture_code("standing"), 100)


BAD_SPECS = [
    (
        {"posture": {"sequence": [["supine", 10], ["sitting", 10], ["standing", -5]]}},
        "posture.sequence[2].dwell_s=-5 is out of range; valid range (0, inf) s",
    ),
    (
        {"posture": {"sequence": [["supine", 10], ["upside-down", 10]]}},
        "posture.sequence[1].posture='upside-down' is invalid; valid: one of 'supine'",
    ),
    (
        {"events": {"cough": {"rate_per_hour": -1}}},
        "events.cough.rate_per_hour=-1 is out of range; valid range [0, 3600] 1/h",
    ),
    (
        {"events": {"bend": {"duration_s": [0.0, 1.0]}}},
        "events.bend.duration_s[0]=0.0 is out of range; valid range (0, 10] s",
    ),
    ({"events": {"cough": {"amplitude_mm": [1.2, 0.6]}}}, "events.cough.amplitude_mm"),
    ({"events": {"cough": {"burst_size": [1.5, 3]}}}, "burst_size[0]=1.5 must be an integer"),
    (
        {"events": {"bend": {"postures": ["sitting", "flying"]}}},
        "events.bend.postures[1]='flying' is invalid; valid: one of",
    ),
    ({"events": {"scheduled": [[-1.0, "cough"]]}}, "events.scheduled[0].time_s=-1.0"),
    (
        {"events": {"scheduled": [[1.0, "hiccup"]]}},
        "events.scheduled[0].type='hiccup' is invalid; valid: one of 'cough', 'sneeze', 'bend'",
    ),
    ({"events": {"yawn": {}}}, "unknown key(s) yawn in events; known: cough, sneeze, bend"),
    ({"respiration": {"amplitude_mm": -0.1}}, "respiration.amplitude_mm=-0.1 is out of range"),
    ({"respiration": {"frequency": 0.3}}, "unknown parameter(s) frequency in respiration"),
    ({"cardiac": {"frequency_hz": [1.5, 1.0]}}, "cardiac.frequency_hz"),
    (
        {"posture": {"mode": "markov", "mean_dwell_s": {"sitting": -3}}},
        "posture.mean_dwell_s.sitting=-3 is out of range; valid range (0, inf) s",
    ),
    (
        {"posture": {"mode": "markov", "transitions": {"sitting": {"standing": 0}}}},
        "posture.transitions.sitting.standing=0 is out of range; valid range (0, inf)",
    ),
    (
        {"posture": {"mode": "markov", "transitions": {"sitting": {"sitting": 1}}}},
        "cannot transition to itself",
    ),
    (
        {"posture": {"mode": "markov", "transitions": {"sitting": {"standing": 1}}}},
        "no row for 'standing', reachable from 'sitting'",
    ),
    (
        {
            "posture": {
                "mode": "markov",
                "start": "prone",
                "transitions": {"sitting": {"standing": 1}, "standing": {"sitting": 1}},
            }
        },
        "no row for the start posture 'prone'",
    ),
    ({"posture": {"mode": "sometimes"}}, "posture.mode='sometimes' is invalid; valid: one of"),
    ({"drift": {"fibrosis_tau_days": 0}}, "drift.fibrosis_tau_days=0 is out of range"),
    ({"drift": {"time_compression": -1}}, "drift.time_compression=-1 is out of range"),
    ({"duration_s": -5}, "duration_s=-5 is out of range; valid range (0, inf) s"),
    ({"vibration": {}}, "unknown key(s) vibration in scenario"),
    ({"respiration": 3}, "respiration must be a table"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_specs_raise_config_error_naming_the_field(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Scenario.from_dict(spec)


def test_unknown_scenario_and_override_keys():
    with pytest.raises(
        ConfigError,
        match=re.escape("scenario='gym' is unknown; valid: " + ", ".join(list_scenarios())),
    ):
        load_scenario("gym")
    with pytest.raises(ConfigError, match="unknown key.*duration\\b"):
        load_scenario("clinic", duration=10)
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) rate in events.cough"):
        load_scenario("daily-living", events={"cough": {"rate": 1}})


@pytest.mark.parametrize(
    ("csf", "message"),
    [
        ({p: 3.0 for p in POSTURES if p != "prone"}, "missing: prone"),
        ({**CSF, "kneeling": 3.0}, "unknown: kneeling"),
        (
            {**CSF, "side": -1.0},
            "posture_csf_mm.side=-1.0 is out of range; valid range (0, inf) mm",
        ),
        ({**CSF, "side": float("nan")}, "posture_csf_mm.side=nan is out of range"),
        ({**CSF, "side": 0.0}, "posture_csf_mm.side=0.0 is out of range"),
    ],
)
def test_bad_posture_csf_is_rejected(csf, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_scenario("clinic").sample(csf, 50.0, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate_hz": 0.0}, "rate_hz=0.0 is out of range"),
        ({"seed": -1}, "seed=-1 must be a non-negative int"),
        ({"seed": 1.5}, "seed=1.5 must be a non-negative int"),
        ({"rate_hz": 0.001}, "gives no pulse"),
    ],
)
def test_bad_sampling_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_scenario("clinic").sample(CSF, **kwargs)


@pytest.mark.parametrize(
    "name, message",
    [
        (5, "scenario=5 must be a scenario id"),
        (None, "scenario=None must be a scenario id"),
        (["clinic"], "must be a scenario id"),
        ("nope.toml", "scenario file 'nope.toml' cannot be read"),
        ("clinic.yaml", "scenario='clinic.yaml' is unknown; valid: chronic-drift"),
    ],
)
def test_load_scenario_of_a_bad_name_or_path(name, message):
    with pytest.raises(ConfigError) as err:
        load_scenario(name)
    assert message in str(err.value)


def test_load_scenario_from_a_path_object_a_table_or_an_unreadable_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("duration_s = 12.0\n[respiration]\n")
    assert load_scenario(path).name == "mine" and load_scenario(path).duration_s == 12.0
    assert load_scenario({"duration_s": 5.0}, name="t").name == "t"
    with pytest.raises(ConfigError, match="is unknown; valid: .* or the path of a .toml file"):
        load_scenario(tmp_path)  # a directory is not a .toml file
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_scenario(tmp_path / "bin.toml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_scenario(tmp_path / "dir.toml")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"duration_s": [10.0]}, "duration_s=[10.0] must be a number in (0, inf) s"),
        ({"duration_s": "10"}, "duration_s='10' must be a number"),
        ({"duration_s": 10 + 0j}, "duration_s=(10+0j) must be a number"),
        ({"duration_s": True}, "duration_s=True must be a number"),
        ({"duration_s": None}, "duration_s=None must be a number"),
        ({"events": {"scheduled": 5}}, "events.scheduled must be a list"),
        ({"events": {"cough": {"burst_size": [1.5, 2]}}}, "burst_size[0]=1.5 must be an integer"),
        (
            {"events": {"cough": {"postures": "sitting"}}},
            "events.cough.postures='sitting' must be a list",
        ),
        ({"respiration": {"frequency_hz": 0.3}}, "respiration.frequency_hz=0.3 must be a list"),
        (
            {"respiration": {"frequency_hz": [0.3, 1j]}},
            "respiration.frequency_hz[1]=1j must be a number",
        ),
        (
            {"posture": {"mode": "markov", "transitions": 5}},
            "posture.transitions=5 must be a table",
        ),
        ({"posture": {"mode": "markov", "mean_dwell_s": [1]}}, "posture.mean_dwell_s=(1,) must be"),
        ({"posture": {"transition_s": [1.0]}}, "posture.transition_s=[1.0] must be a number"),
        ({"posture": {"repeat": 1}}, "posture.repeat=1 is invalid; valid: one of True, False"),
        ({"cardiac": {"amplitude_mm": {}}}, "cardiac.amplitude_mm={} must be a number"),
        (
            {"posture": {"mode": "markov", "transitions": []}},
            "posture.transitions must have at least one row",
        ),
        ({"posture": {"transition_s": {"a": 1}}}, "posture.transition_s={'a': 1} must be a number"),
        (
            {"posture": {"mode": "markov", "mean_dwell_s": {"sitting": "a"}}},
            "posture.mean_dwell_s.sitting='a' must be a number",
        ),
    ],
)
def test_scenario_values_of_the_wrong_type(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_scenario("daily-living", **overrides)
    assert message in str(err.value)


def test_a_name_override_and_a_trace_too_large_for_memory():
    assert load_scenario("clinic", name="renamed").name == "renamed"
    huge = load_scenario("clinic", duration_s=1e15)
    with pytest.raises(ConfigError, match=r"would need .* GiB of memory.*shorten duration_s"):
        huge.sample(CSF, 50.0, 0)


@pytest.mark.parametrize(
    "args, message",
    [
        ((CSF, [50.0]), "rate_hz=[50.0] must be a number"),
        ((CSF, 50 + 0j), "rate_hz=(50+0j) must be a number"),
        ((CSF, 50.0, 2.5), "seed=2.5 must be a non-negative int"),
        ((CSF, 50.0, None), "seed=None must be a non-negative int"),
        (({**CSF, "supine": [3.0]},), "posture_csf_mm.supine=[3.0] must be a number"),
        (([3.0] * 6,), "posture_csf_mm must be a mapping"),
    ],
)
def test_sample_arguments_of_the_wrong_type(args, message):
    with pytest.raises(ConfigError) as err:
        load_scenario("clinic", duration_s=10.0).sample(*args)
    assert message in str(err.value)
