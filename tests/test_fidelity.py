"""Tests of the fast-vs-MRG comparison (closedloop.fidelity.compare and ``closedloop validate``).

The metrics are checked on synthetic data with known answers; the whole comparison on a
reference made from the fast model itself (every target met, by construction) and on perturbed
copies of it (the perturbed rows miss); the fast model against the stored MRG data where it
exists (numbers, not targets: those assertions come with the fitted predictor).
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from closedloop.fidelity import compare, fast, targets
from closedloop.fidelity.loader import REFERENCE_PATH, load_reference
from closedloop.fidelity.metrics import (
    grouped_ratio_stats,
    loglog_slope,
    recovery_features,
    sfap_exponent,
    strength_duration,
)
from closedloop.fidelity.table import format_table
from closedloop.neural import ModelParams

# ------------------------------------------------------------ metrics with known answers


def test_loglog_slope_of_a_power_law():
    d = np.array([2.0, 3.0, 4.0, 5.0, 6.0])
    assert loglog_slope(d, 0.37 * d**2) == pytest.approx(2.0, abs=1e-12)
    assert loglog_slope(d, 5.0 / d**1.1) == pytest.approx(-1.1, abs=1e-12)
    assert math.isnan(loglog_slope([1.0], [2.0]))


def test_strength_duration_recovers_a_weiss_curve():
    pw = np.array([30.0, 60.0, 100.0, 200.0, 300.0, 500.0, 1000.0])
    rheo, chron = strength_duration(pw, 1.3 * (1.0 + 270.0 / pw))
    assert rheo == pytest.approx(1.3, rel=1e-6)
    assert chron == pytest.approx(270.0, rel=1e-6)
    rheo2, chron2 = strength_duration(pw[::-1], (0.2 * (1.0 + 90.0 / pw))[::-1])
    assert (rheo2, chron2) == (pytest.approx(0.2, rel=1e-6), pytest.approx(90.0, rel=1e-6))
    assert math.isnan(strength_duration(pw[:2], [1.0, 2.0])[1])


RECOVERY_X = [0.5, 0.8, 1.0, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0, 40.0, 100.0]
RECOVERY_Y = [None, None, 2.0, 1.2, 0.8, 0.85, 0.78, 0.9, 1.05, 1.1, 1.02]


def test_recovery_features_of_a_known_curve():
    f = recovery_features(RECOVERY_X, RECOVERY_Y)
    assert f["arp_ms"] == 1.0  # first interval with a second AP
    assert f["rrp_end_ms"] == pytest.approx(2.5)  # 1.2 -> 0.8 between 2 and 3 ms
    assert f["supernormal_pct"] == pytest.approx(-22.0)
    assert f["supernormal_ms"] == 6.0
    assert f["subnormal_pct"] == pytest.approx(10.0)
    assert f["subnormal_ms"] == 40.0
    assert recovery_features(RECOVERY_X, RECOVERY_Y, arp_ms=0.9)["arp_ms"] == 0.9
    assert math.isnan(recovery_features([1.0, 2.0], [None, None])["arp_ms"])


def test_sfap_exponent_of_a_power_law():
    D = np.array([5.7, 10.0, 16.0])
    assert sfap_exponent(D, -0.1 * D**2) == pytest.approx(2.0, abs=1e-12)


def test_grouped_ratio_stats_per_configuration_and_total():
    mrg = [1.0, 2.0, 4.0, 1.0, 2.0]
    fst = [1.05, 2.0, 4.8, 0.85, 2.1]  # point: +5 %, 0, +20 %; tripolar: -15 %, +5 %
    st = grouped_ratio_stats(fst, mrg, ["point"] * 3 + ["tripolar"] * 2, 0.1)
    assert list(st) == ["point", "tripolar", "all"]
    assert st["point"]["max_abs_error"] == pytest.approx(0.2)
    assert st["point"]["median_abs_error"] == pytest.approx(0.05)
    assert (st["point"]["n_beyond"], st["point"]["n_points"]) == (1, 3)
    assert st["tripolar"]["max_abs_error"] == pytest.approx(0.15)
    assert st["tripolar"]["median_abs_error"] == pytest.approx(0.1)
    assert (st["all"]["n_beyond"], st["all"]["n_points"]) == (2, 5)
    assert st["all"]["median_abs_error"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="same length"):
        grouped_ratio_stats(fst, mrg, ["point"], 0.1)


def _heldout_points(threshold_ma=None) -> list[dict]:
    """Synthetic held-out points: two point sources and one tripole."""
    pts = [
        {
            "diameter_um": 9.3,
            "distance_mm": 2.5,
            "pw_us": 150.0,
            "offset_internodes": 0.25,
            "configuration": "point",
        },
        {
            "diameter_um": 6.5,
            "distance_mm": 1.2,
            "pw_us": 45.0,
            "offset_internodes": 0.0,
            "configuration": "point",
        },
        {
            "diameter_um": 10.0,
            "distance_mm": 3.0,
            "pw_us": 100.0,
            "offset_internodes": 0.0,
            "configuration": "tripolar",
        },
    ]
    for p, th in zip(pts, threshold_ma or [1.0] * len(pts), strict=True):
        p["threshold_ma"] = th
    return pts


def test_heldout_section_loads_as_columns(tmp_path):
    ref = load_reference(_write(tmp_path, {"thresholds_heldout": _heldout_points([1.4, 0.9, 2.2])}))
    h = ref["thresholds_heldout"]
    assert h["configuration"] == ["point", "point", "tripolar"]
    assert h["threshold_ma"] == [1.4, 0.9, 2.2]
    assert h["offset_internodes"] == [0.25, 0.0, 0.0] and h["pw_us"] == [150.0, 45.0, 100.0]


@pytest.mark.parametrize(
    "change",
    [
        {"configuration": "bipolar"},
        {"threshold_ma": -1.0},
        {"threshold_ma": None},
        {"diameter_um": 40.0},
        {"offset_internodes": 1.5},
    ],
)
def test_bad_heldout_points_are_a_config_error(tmp_path, change):
    from closedloop._config import ConfigError

    pts = _heldout_points()
    pts[1].update(change)
    with pytest.raises(ConfigError, match="section 'thresholds_heldout' is malformed"):
        load_reference(_write(tmp_path, {"thresholds_heldout": pts}))


def test_fast_sources_threshold_is_the_point_source_rule_for_one_source():
    from closedloop.neural import fibre

    for D, d, pw, off in ((10.0, 3.0, 100.0, 0.0), (6.5, 1.2, 45.0, 0.25), (13.4, 4.5, 400.0, 0.5)):
        x_mm = [off * fibre.internode_mm(D)]
        assert fast.sources_threshold_ma(D, d, pw, x_mm, [-1.0]) == pytest.approx(
            fibre.point_source_threshold_ma(D, d, pw, offset_internodes=off), rel=1e-12
        )


def test_batch_driving_function_is_the_scalar_one_bit_for_bit():
    from closedloop.neural import fibre

    rhos = np.array([0.05, 0.3, 0.55, 0.8, 0.93])
    for D, d, off in ((5.7, 1.0, 0.0), (10.0, 2.3, 0.25), (16.0, 4.0, 0.5)):
        ve = fibre.node_potentials(D, d, off)
        out = np.empty(rhos.size)
        fibre.mdf_peaks(ve, rhos, np.empty((ve.size + 3, rhos.size)), out)  # rows to spare
        scalar = [fibre.mdf_peak(ve, rho, np.empty(ve.size)) for rho in rhos]
        assert out.tolist() == scalar


def test_fast_sources_threshold_is_linear_and_symmetric_in_the_sources():
    from closedloop.fidelity import mrg_protocols

    x_mm, w = mrg_protocols.source_set("tripolar")
    assert w.sum() == pytest.approx(0.0) and w.min() == pytest.approx(-0.2)
    assert x_mm.size == 15 and np.ptp(x_mm[5:10]) == pytest.approx(2.4)  # 3 mm / 5 sources
    tri = fast.sources_threshold_ma(10.0, 3.0, 100.0, x_mm, w)
    assert fast.sources_threshold_ma(10.0, 3.0, 100.0, x_mm, 2.0 * w) == pytest.approx(
        0.5 * tri, rel=1e-12
    )
    assert fast.sources_threshold_ma(10.0, 3.0, 100.0, -x_mm, w) == pytest.approx(tri, rel=1e-9)
    alone = fast.sources_threshold_ma(10.0, 3.0, 100.0, [0.0], [-1.0])
    assert abs(tri / alone - 1.0) > 0.01  # the anodes and the contact length matter


# ------------------------------------------------------------ the fast model's protocols


def test_fast_recovery_measures_the_kernel():
    params = ModelParams().replace(excitability={"t_abs_ms": 1.2})
    rec = fast.recovery((0.8, 1.0, 1.1, 1.3, 1.5, 3.0, 60.0, 1e6), params=params)
    assert rec["threshold_ratio"][:3] == [None, None, None]
    lo, hi = rec["arp_bracket_ms"]
    assert lo <= 1.2 <= hi and hi - lo <= 0.02
    assert rec["threshold_ratio"][3] > rec["threshold_ratio"][4] > 1.0  # relative period
    assert rec["threshold_ratio"][-1] == pytest.approx(1.0, abs=1e-3)  # recovered (1000 s)


def test_fast_recovery_refuses_a_test_current_beyond_the_device():
    from closedloop._config import ConfigError

    with pytest.raises(ConfigError, match="max_test_ratio=1000 is out of range"):
        fast.recovery((1.0,), max_test_ratio=1000.0)


def test_fast_sfap_exponent_follows_the_recording_chain():
    params = ModelParams().replace(
        response={"sfap_diameter_exponent": 1.8, "sfap_exponent_per_ln_mm": 0.3}
    )
    sec = fast.sfap((5.7, 10.0, 16.0), (1.0, 3.0), params)
    n1 = np.asarray(sec["n1_uv"])
    # the exponent is sfap_diameter_exponent at 3 mm and grows 0.3 per e-fold of distance
    assert sfap_exponent(sec["diameter_um"], n1[:, 1]) == pytest.approx(1.8, abs=1e-9)
    assert sfap_exponent(sec["diameter_um"], n1[:, 0]) == pytest.approx(
        1.8 + 0.3 * np.log(1.0 / 3.0), abs=1e-9
    )
    assert np.all(n1[:, 0] > n1[:, 1])  # falls with distance


# ----------------------------------------------------- the comparison on known references


def as_reference(doc: dict) -> dict:
    """Fast-model results written in the layout of the stored MRG reference file."""
    rec = doc["recovery"]
    lat = doc["latency"]
    return {
        "meta": {"note": "the fast model itself"},
        "convergence": {
            "diameter_um": [10.0],
            "dt_ms": [0.01, 0.005, 0.0025],
            "default_dt_ms": 0.005,
            "rel_change_vs_dt": [[0.02, 0.004, 0.0]],
            "length_mm": [30.0, 60.0],
            "default_length_mm": 60.0,
            "rel_change_vs_length": [[0.01, 0.0]],
        },
        "thresholds": doc["thresholds"],
        "thresholds_offset": doc["thresholds_offset"],
        "thresholds_heldout": doc["thresholds_heldout"],
        "cv": {"diameter_um": doc["cv"]["diameter_um"], "cv_m_s_dt0": doc["cv"]["cv_m_s"]},
        "recovery": {
            "pw_us": rec["pw_us"],
            "max_test_ratio": 10.0,
            "curves": [
                {
                    "diameter_um": 10.0,
                    "interval_ms": rec["interval_ms"],
                    "threshold_ratio": rec["threshold_ratio"],
                    "arp_bracket_ms": rec["arp_bracket_ms"],
                }
            ],
        },
        "sfap": {
            "diameter_um": doc["sfap"]["diameter_um"],
            "radial_mm": doc["sfap"]["radial_mm"],
            "n1_uv": [[-v for v in row] for row in doc["sfap"]["n1_uv"]],
        },
        "latency": {
            "diameter_um": lat["diameter_um"],
            "pw_us": lat["pw_us"],
            "current_ratio": lat["current_ratio"],
            "ap_time_centre_ms": lat["ap_time_ms"],
            "ap_time_far_ms": lat["ap_time_far_ms"],
        },
    }


@pytest.fixture(scope="module")
def self_reference():
    """The fast model's own results as a reference document (every target met)."""
    th = fast.thresholds(
        (5.7, 7.3, 10.0, 16.0), (1.0, 2.0, 3.0, 4.0, 6.0), (30.0, 100.0, 300.0, 1000.0)
    )
    off = fast.thresholds((5.7, 10.0, 16.0), (2.0, 3.0), (100.0, 300.0), 0.5)
    rec = fast.recovery(pw_us=100.0, max_test_ratio=10.0)
    pts = _heldout_points()
    cols = {k: [p[k] for p in pts] for k in pts[0]}
    held = fast.heldout(cols)
    held = [{**p, "threshold_ma": t} for p, t in zip(pts, held["threshold_ma"], strict=True)]
    doc = {
        "thresholds": th,
        "thresholds_offset": off,
        "thresholds_heldout": held,
        "recovery": rec,
        "cv": fast.conduction((5.7, 10.0, 16.0)),
        "sfap": fast.sfap((5.7, 10.0, 16.0), (1.0, 3.0, 5.0)),
        "latency": fast.latency((5.7, 10.0, 16.0), (100.0, 300.0), (1.0, 1.05, 1.2, 2.0)),
    }
    return as_reference(doc)


def _finite(value) -> bool:
    return value is not None and bool(np.all(np.isfinite(np.asarray(value, float))))


def _write(tmp_path, doc, name="ref.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def self_report(self_reference, tmp_path_factory):
    return compare.validate(_write(tmp_path_factory.mktemp("ref"), self_reference))


def test_fast_against_itself_meets_every_target(self_report):
    r = self_report
    assert r.n_targets > 0 and r.n_met == r.n_targets and not r.misses and not r.no_data
    assert [c["diameter_um"] for c in r.mrg["recovery_by_diameter"]] == [10.0]
    assert r.mrg["recovery_by_diameter"][0]["rrp_end_ms"] == r.mrg["recovery"]["rrp_end_ms"]
    groups = {row.group for row in r.rows}
    assert groups == {
        "thresholds",
        "held-out thresholds",
        "slopes",
        "strength-duration",
        "conduction",
        "recovery cycle",
        "single-fibre potential",
        "latency",
        "MRG convergence",
    }


def test_table_lists_every_target(self_report):
    text = format_table(self_report)
    for row in self_report.rows:
        assert row.relation in text
    for needle in (
        "all within 10 %",
        "within 0.15",
        "within 20 %",
        "within 5 %",
        "within 0.2 ms",
        "within 5 points",
        "within 0.2",
        "in [1.5, 2]",
        "Tackmann & Lehmann 1974",
        "JNNP 1981",
        "not targeted",
    ):
        assert needle in text, needle
    assert f"{self_report.n_met} of {self_report.n_targets} targets met" in text
    slopes = [row.relation for row in self_report.rows if row.group == "slopes"]
    for D in (5.7, 7.3, 10, 16):
        for pw in (100, 300):
            assert f"distance slope 2-6 mm, D {D:g} µm, {pw} µs" in slopes
    conv = {row.relation: row.mrg for row in self_report.rows if row.group == "MRG convergence"}
    assert conv["MRG threshold change at dt 0.005 vs the finest/longest, D 10 µm"] == pytest.approx(
        0.4
    )
    # exactly one of each human/MRG pair counts
    arp = [row for row in self_report.rows if "absolute refractory" in row.relation]
    assert sorted(row.counted for row in arp) == [False, True]


def test_perturbed_reference_misses_exactly_there(self_reference, tmp_path):
    ref = copy.deepcopy(self_reference)
    grid = ref["thresholds"]
    d = np.asarray(grid["distance_mm"])
    th = np.asarray(grid["threshold_ma"])
    th[1] *= (d / 3.0)[:, None] ** -0.3  # D 7.3 µm: distance slope 0.3 lower
    grid["threshold_ma"] = th.tolist()
    ref["cv"]["cv_m_s_dt0"] = [v * 0.9 for v in ref["cv"]["cv_m_s_dt0"]]
    curve = ref["recovery"]["curves"][0]
    pairs = zip(curve["interval_ms"], curve["threshold_ratio"], strict=True)
    curve["threshold_ratio"] = [None if v is None else v + 0.08 * (x >= 20.0) for x, v in pairs]
    report = compare.validate(_write(tmp_path, ref))
    missed = {row.relation for row in report.misses}
    assert "distance slope 2-6 mm, D 7.3 µm, 100 µs" in missed
    assert "distance slope 2-6 mm, D 10 µm, 100 µs" not in missed
    assert {"CV, D 5.7 µm", "CV, D 10 µm", "CV, D 16 µm"} <= missed
    assert "threshold fast/MRG, node under the source: max |error|" in missed
    grid = report.comparison["thresholds"]
    assert grid["n_points"] == th.size and 0 < grid["n_beyond"] < th.size
    assert report.comparison["thresholds_offset"]["max_abs_error"] == 0.0
    assert report.comparison["thresholds_heldout"]["all"]["max_abs_error"] == 0.0
    assert "late subnormal depth" in missed  # 8 points higher from 20 ms on
    assert (
        not {
            "supernormal depth",
            "supernormal time",
            "end of the relative refractory period (ratio back to 1)",
        }
        & missed
    )
    text = format_table(report)
    assert "MISS: distance slope 2-6 mm, D 7.3 µm, 100 µs" in text


def test_heldout_rows_count_each_configuration(self_reference, tmp_path):
    ref = copy.deepcopy(self_reference)
    ref["thresholds_heldout"][2]["threshold_ma"] *= 1.25  # the tripole: fast 20 % low
    report = compare.validate(_write(tmp_path, ref))
    rows = {row.relation: row for row in report.rows if row.group == "held-out thresholds"}
    tri = rows[f"threshold fast/MRG, {compare.HELDOUT_LABELS['tripolar']}: max |error|"]
    pt = rows[f"threshold fast/MRG, {compare.HELDOUT_LABELS['point']}: max |error|"]
    total = rows["threshold fast/MRG, all held-out points: max |error|"]
    assert tri.met is False and tri.counted and tri.fast == pytest.approx(20.0)
    assert pt.met is True and pt.fast == pytest.approx(0.0, abs=1e-9)
    assert total.status == "info" and "1 of 3 points beyond 10 %" in total.note
    assert "[held-out thresholds]" in format_table(report)


def test_missing_sections_say_no_reference_data(self_reference, tmp_path):
    ref = {"thresholds": self_reference["thresholds"]}
    report = compare.validate(_write(tmp_path, ref))
    text = format_table(report)
    assert "no reference data" in text and "targets met" in text
    assert {row.group for row in report.no_data} >= {"conduction", "recovery cycle"}
    assert report.n_targets > 0


def test_bad_reference_is_a_config_error(tmp_path):
    from closedloop._config import ConfigError

    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_reference(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_reference(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="none of the sections"):
        load_reference(_write(tmp_path, {"meta": {"x": 1}}))
    for section, body in [
        ("cv", {"diameter_um": [10.0], "cv_m_s_dt0": [50.0, 60.0]}),
        (
            "thresholds",
            {
                "diameter_um": [10.0],
                "distance_mm": [3.0],
                "pw_us": [100.0],
                "threshold_ma": [[[-1.0]]],
            },
        ),
        ("recovery", {"curves": [{"interval_ms": [2.0, 1.0], "threshold_ratio": [1.0, 1.0]}]}),
        ("sfap", [1, 2]),
        (
            "thresholds",
            {
                "diameter_um": [50.0],
                "distance_mm": [3.0],
                "pw_us": [100.0],
                "threshold_ma": [[[1.0]]],
            },
        ),
    ]:
        with pytest.raises(ConfigError, match=f"section '{section}' is malformed"):
            load_reference(_write(tmp_path, {section: body}))


# ------------------------------------------------------------ against the stored MRG data


@pytest.fixture(scope="module")
def stored_report():
    if not REFERENCE_PATH.exists():
        pytest.skip(
            "the stored MRG reference (closedloop/fidelity/data/mrg_reference.json) "
            "is not committed yet"
        )
    return compare.validate()


def test_stored_reference_comparison_reports_numbers(stored_report):
    fst = np.asarray(stored_report.results["fast"]["thresholds"]["threshold_ma"], float)
    assert np.all(np.isfinite(fst)) and np.all(fst > 0)
    mrg = stored_report.mrg["thresholds"]["distance_slope"]
    assert np.all((np.asarray(mrg) >= 1.5) & (np.asarray(mrg) <= 2.6))
    assert stored_report.n_targets > 0
    assert all(_finite(row.fast) for row in stored_report.scored)


def test_stored_heldout_section_gives_finite_errors(stored_report):
    held = stored_report.results["mrg"].get("thresholds_heldout")
    if held is None:
        pytest.skip("the stored reference has no thresholds_heldout section")
    assert held["configuration"].count("point") == 54
    assert held["configuration"].count("tripolar") == 24
    st = stored_report.comparison["thresholds_heldout"]
    assert st["all"]["n_points"] == 78
    for kind in ("point", "tripolar", "all"):
        assert math.isfinite(st[kind]["max_abs_error"])
        assert 0.0 <= st[kind]["median_abs_error"] <= st[kind]["max_abs_error"]
    fst = np.asarray(stored_report.results["fast"]["thresholds_heldout"]["threshold_ma"])
    assert np.all(np.isfinite(fst)) and np.all(fst > 0)


# ------------------------------------------------------------------------------------ CLI


def test_cli_prints_the_table_and_writes_json(cli, self_reference, self_report, tmp_path):
    ref = _write(tmp_path, self_reference)
    out_json, out_png = tmp_path / "fidelity.json", tmp_path / "fidelity.png"
    code, out, err = cli(
        "validate", "--reference", str(ref), "--json", str(out_json), "--plot", str(out_png)
    )
    assert code == 0, err
    assert "targets met" in out and "distance slope" in out and "recovery cycle" in out
    doc = json.loads(out_json.read_text())
    assert doc["n_targets"] == doc["n_met"] > 0 and doc["misses"] == []
    assert {"rows", "metrics", "results", "choices"} <= set(doc)
    assert doc["metrics"]["fast_vs_mrg"]["thresholds"]["median_ratio"] == pytest.approx(1.0)
    t_abs = ModelParams().excitability.t_abs_ms
    assert doc["metrics"]["fast"]["recovery"]["arp_ms"] == pytest.approx(t_abs, abs=0.02)
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    # the CLI prints what the API returns (self_report: the API on the same reference)
    assert [(r["relation"], r["status"]) for r in doc["rows"]] == [
        (r.relation, r.status) for r in self_report.rows
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rerun-mrg"], "--rerun-mrg needs --reference"),
        (["--quick"], "only with --rerun-mrg"),
        (["--only", "cv"], "only with --rerun-mrg"),
        (["--reference", "/nonexistent/ref.json"], "is not a file"),
        (["--json", "/nonexistent/dir/out.json"], "directory does not exist"),
    ],
)
def test_cli_refuses_bad_arguments(cli, args, message):
    code, _, err = cli("validate", *args)
    assert code == 2 and message in err


def test_cli_rerun_mrg_without_the_extra_names_it(cli, monkeypatch, tmp_path):
    import closedloop.cli.validate as cli_validate

    monkeypatch.setattr(cli_validate, "missing_modules", lambda: ["neuron", "pyfibers"])
    code, _, err = cli("validate", "--rerun-mrg", "--reference", str(tmp_path / "new.json"))
    assert code == 2 and "pip install 'closedloop[validate]'" in err


def test_cli_rerun_mrg_writes_then_compares(cli, monkeypatch, self_reference, tmp_path):
    import sys
    import types

    calls = []

    def make_reference(out_path, sections=None, quick=False, grids=(), processes=2, progress=True):
        calls.append((str(out_path), sections, quick, processes))
        _write(tmp_path, self_reference, name="new.json")

    fake = types.ModuleType("closedloop.fidelity.mrg_reference")
    fake.make_reference = make_reference
    monkeypatch.setitem(sys.modules, "closedloop.fidelity.mrg_reference", fake)
    import closedloop.cli.validate as cli_validate

    monkeypatch.setattr(cli_validate, "missing_modules", lambda: [])
    out = tmp_path / "new.json"
    code, text, err = cli(
        "validate", "--rerun-mrg", "--quick", "--processes", "1", "--reference", str(out)
    )
    assert code == 0, err
    assert calls == [(str(out), None, True, 1)]
    code, _, err = cli("validate", "--rerun-mrg", "--only", "recovery,cv", "--reference", str(out))
    assert code == 0, err
    assert calls[-1] == (str(out), ["recovery", "cv"], False, 2)
    assert "targets met" in text and str(out) in text


def _rows(report, group: str) -> list:
    """Rebuild ``report``'s rows under the current constants (no fast-model rerun)."""
    ref, fst = report.results["mrg"], report.results["fast"]
    return [
        row for row in compare.build_rows(ref, fst, report.mrg, report.fast) if row.group == group
    ]


def test_latency_rows_get_a_target_when_the_lead_sets_one(self_reference, tmp_path, monkeypatch):
    ref = copy.deepcopy(self_reference)
    lat = ref["latency"]
    lat["ap_time_centre_ms"] = (np.asarray(lat["ap_time_centre_ms"]) + 0.05).tolist()
    report = compare.validate(_write(tmp_path, ref))
    assert all(row.status == "info" for row in _rows(report, "latency"))
    monkeypatch.setattr(targets, "LATENCY_TOL_MS", 0.1)
    rows = _rows(report, "latency")
    assert rows and all(row.status == "met" for row in rows)
    monkeypatch.setattr(targets, "LATENCY_TOL_MS", 0.03)
    rows = _rows(report, "latency")
    assert rows and all(row.status == "MISS" for row in rows)


def test_sfap_target_distances_can_be_restricted(self_report, monkeypatch):
    rows = [row for row in self_report.rows if row.relation.startswith("SFAP N1 exponent")]
    assert len(rows) == 3 and all(row.status == "met" for row in rows)
    monkeypatch.setattr(targets, "SFAP_TARGET_RADIAL_MM", (3.0,))
    status = {row.relation: row.status for row in _rows(self_report, "single-fibre potential")}
    assert status["SFAP N1 exponent in D, 3 mm"] == "met"
    assert status["SFAP N1 exponent in D, 1 mm"] == status["SFAP N1 exponent in D, 5 mm"] == "info"
