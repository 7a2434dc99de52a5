"""Slow tests of the MRG (NEURON) reference: the fast driver against PyFibers' own run loop,
reruns of stored points, convergence in dt and fibre length, and the reference script.

All need the ``validate`` extra (PyFibers, NEURON) and are skipped without it.
"""

import json
import math

import numpy as np
import pytest

pytest.importorskip("pyfibers")
pytest.importorskip("neuron")

from closedloop._config import ConfigError  # noqa: E402
from closedloop.fidelity import mrg_propagation  # noqa: E402
from closedloop.fidelity import mrg_protocols as proto  # noqa: E402
from closedloop.fidelity.mrg import MRGFibre, Pulse, monophasic  # noqa: E402
from closedloop.fidelity.mrg_reference import (  # noqa: E402
    REFERENCE_PATH,
    make_reference,
    summary,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stored():
    if not REFERENCE_PATH.exists():
        pytest.fail(f"{REFERENCE_PATH} is missing: run benchmarks/mrg_reference.py")
    return json.loads(REFERENCE_PATH.read_text(encoding="utf-8"))


def test_driver_agrees_with_pyfibers_run_sim():
    from pyfibers import ScaledStim

    pw_ms = 0.1
    fibre = MRGFibre(10.0)
    ve = fibre.point_source(3.0)
    th, _ = fibre.threshold(ve, monophasic(pw_ms), 2.5)
    fibre.fibre.potentials = ve
    stim = ScaledStim(
        waveform=lambda t: 1.0 if 0.0 <= t < pw_ms else 0.0, dt=fibre.dt_ms, tstop=pw_ms + 3.0
    )
    node = fibre.fibre.loc_index(0.9)
    for scale, should_fire in ((0.995, False), (1.005, True)):
        n_pf, t_pf = stim.run_sim(
            -scale * th, fibre.fibre, ap_detect_location=0.9, fail_on_end_excitation=None
        )
        fibre.fibre.apcounts(thresh=-30.0)
        times = fibre.run(ve, monophasic(pw_ms)(scale * th), pw_ms + 3.0)
        assert (n_pf > 0) == should_fire
        assert (not math.isnan(times[node])) == should_fire
        if should_fire:
            assert times[node] == pytest.approx(t_pf, abs=1.01 * fibre.dt_ms)


@pytest.mark.parametrize(
    ("section", "diameter_um", "distance_mm", "pw_us"),
    [
        ("thresholds", 10.0, 3.0, 100.0),
        ("thresholds", 16.0, 1.0, 60.0),
        ("thresholds_offset", 10.0, 2.0, 300.0),
    ],
)
def test_stored_thresholds_reproduce(stored, section, diameter_um, distance_mm, pw_us):
    grid = stored[section]
    i, j, k = (
        grid[name].index(v)
        for name, v in (
            ("diameter_um", diameter_um),
            ("distance_mm", distance_mm),
            ("pw_us", pw_us),
        )
    )
    rerun = proto.thresholds_for_diameter(
        diameter_um, (distance_mm,), (pw_us,), offset_internodes=grid["offset_internodes"]
    )[0][0]
    assert rerun == pytest.approx(grid["threshold_ma"][i][j][k], rel=0.01)


def test_heldout_point_source_is_the_grid_protocol():
    """One source of weight -1 per mA of cathodic current is the grid's cathodic point."""
    held = proto.heldout_thresholds(9.3, "point", (2.5,), (150.0,), offset_internodes=0.25)
    grid = proto.thresholds_for_diameter(9.3, (2.5,), (150.0,), offset_internodes=0.25)
    assert held[0]["threshold_ma"] == pytest.approx(grid[0][0], rel=0.005)
    assert held[0]["configuration"] == "point" and held[0]["length_mm"] == proto.LENGTH_MM


@pytest.mark.parametrize(
    ("configuration", "diameter_um", "distance_mm", "pw_us", "offset"),
    [("point", 13.4, 4.5, 45.0, 0.25), ("tripolar", 10.0, 3.0, 300.0, 0.0)],
)
def test_stored_heldout_points_reproduce(
    stored, configuration, diameter_um, distance_mm, pw_us, offset
):
    want = [
        p
        for p in stored["thresholds_heldout"]
        if (
            p["configuration"],
            p["diameter_um"],
            p["distance_mm"],
            p["pw_us"],
            p["offset_internodes"],
        )
        == (configuration, diameter_um, distance_mm, pw_us, offset)
    ]
    assert len(want) == 1
    rerun = proto.heldout_thresholds(
        diameter_um, configuration, (distance_mm,), (pw_us,), offset, length_mm=want[0]["length_mm"]
    )
    assert rerun[0]["threshold_ma"] == pytest.approx(want[0]["threshold_ma"], rel=0.01)


def test_stored_cv_reproduces(stored):
    cv = stored["cv"]
    i, k = cv["diameter_um"].index(10.0), cv["dt_ms"].index(0.005)
    rerun = mrg_propagation.cv_for_diameter(10.0, (0.005,))["cv_m_per_s"][0]
    assert rerun == pytest.approx(cv["cv_m_s"][i][k], rel=0.01)
    # the dt -> 0 limit lies beyond the finest step, in the direction of refinement
    finest = cv["cv_m_s"][i][int(np.argmin(cv["dt_ms"]))]
    assert (cv["cv_m_s_dt0"][i] - finest) * (finest - cv["cv_m_s"][i][k]) >= 0.0


def test_stored_recovery_point_reproduces_without_saved_states(stored):
    # the protocol restores NEURON states at the test onset; a plain run of both pulses must
    # fire twice just above the stored test threshold and once just below it
    curve = next(c for c in stored["recovery"]["curves"] if c["diameter_um"] == 10.0)
    rest, iv = curve["rest_threshold_ma"], 3.0
    ratio = curve["threshold_ratio"][curve["interval_ms"].index(iv)]
    fibre = MRGFibre(10.0)
    ve = fibre.point_source(stored["recovery"]["distance_mm"])
    node = fibre.centre + 8
    counts = []
    for scale in (0.995, 1.005):
        pulses = [Pulse(0.0, 0.1, -2.0 * rest), Pulse(iv, 0.1, -scale * ratio * rest)]
        fibre.run(ve, pulses, iv + 1.6)
        counts.append(int(fibre.ap_counts[node]))
    assert counts == [1, 2]


def test_stored_default_is_converged(stored):
    conv = stored["convergence"]
    i_dt = conv["dt_ms"].index(conv["default_dt_ms"])
    i_len = conv["length_mm"].index(conv["default_length_mm"])
    assert min(conv["dt_ms"]) < conv["default_dt_ms"]
    assert max(conv["length_mm"]) > conv["default_length_mm"]
    for row_dt, row_len in zip(conv["rel_change_vs_dt"], conv["rel_change_vs_length"], strict=True):
        assert abs(row_dt[i_dt]) <= 0.02
        assert abs(row_len[i_len]) <= 0.02


def test_rerun_finest_dt_point_is_within_two_percent_of_default(stored):
    conv = stored["convergence"]
    i = conv["diameter_um"].index(10.0)
    k_fine = int(np.argmin(conv["dt_ms"]))
    fine = proto.convergence_point(10.0, conv["dt_ms"][k_fine], conv["default_length_mm"])
    assert fine == pytest.approx(conv["threshold_vs_dt_ma"][i][k_fine], rel=0.01)
    default = conv["threshold_vs_dt_ma"][i][conv["dt_ms"].index(conv["default_dt_ms"])]
    assert default == pytest.approx(fine, rel=0.02)


def test_quick_reference_runs_and_merges(tmp_path):
    out = tmp_path / "ref.json"
    doc = make_reference(out, quick=True, processes=1, progress=False)
    assert set(doc) >= {
        "meta",
        "thresholds",
        "thresholds_offset",
        "thresholds_heldout",
        "cv",
        "recovery",
        "sfap",
        "latency",
        "convergence",
    }
    assert [p["configuration"] for p in doc["thresholds_heldout"]] == ["point", "tripolar"]
    assert all(p["threshold_ma"] > 0 for p in doc["thresholds_heldout"])
    assert doc["meta"]["quick"] is True
    assert 40.0 < doc["cv"]["cv_m_s_dt0"][0] < 70.0  # MRG 10 µm: about 55 m/s
    curve = doc["recovery"]["curves"][0]
    assert 0.6 < curve["arp_ms"] < 1.5
    assert curve["threshold_ratio"][0] is None  # 0.6 ms: refractory
    assert curve["supernormal_pct"] < 0.0  # MRG is supernormal
    n1 = np.asarray(doc["sfap"]["n1_uv"])
    assert (n1 < 0).all() and (np.abs(n1[1]) > np.abs(n1[0])).all()  # grows with D
    t_c = doc["latency"]["ap_time_centre_ms"][0][0]
    assert t_c[0] > t_c[1]  # later near threshold
    text = summary(doc)
    assert "ARP" in text and "CV" in text
    before = doc["recovery"]
    merged = make_reference(out, sections="cv", quick=True, processes=1, progress=False)
    assert merged["recovery"] == before  # other sections are kept


def test_bad_section_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="sections"):
        make_reference(tmp_path / "x.json", sections=["nope"], progress=False)
