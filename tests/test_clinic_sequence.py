"""The clinic protocol's scoring option (prone scored separately); benchmarks/clinic_sequence.py."""

import importlib.util
import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import closedloop  # noqa: F401  (registers the envs)
from closedloop import ConfigError
from closedloop.controllers import make_controller
from closedloop.envs.config import load_suite
from closedloop.evaluation import run_episode
from closedloop.metrics import UNSCORED_DOCS, clinical_metrics, unscored_mask
from closedloop.patients.postures import posture_code

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "clinic_sequence", ROOT / "benchmarks" / "clinic_sequence.py"
)
clinic_sequence = importlib.util.module_from_spec(spec)
spec.loader.exec_module(clinic_sequence)

SUPINE, PRONE, SITTING = (posture_code(p) for p in ("supine", "prone", "sitting"))


def _run(posture, ecap, rate_hz=10.0):
    """A run at ``rate_hz`` with the given posture codes and ECAP, target 40 µV, in window."""
    n = len(posture)
    return dict(
        t_s=np.arange(n) / rate_hz,
        ecap_uv=np.asarray(ecap, float),
        target_uv=40.0,
        sensation=np.full(n, 1.5),
        discomfort=2.0,
        charge_uc=np.full(n, 1.0),
        current_ma=np.full(n, 4.0),
        pw_us=250.0,
        impedance_ohm=1000.0,
        posture=np.asarray(posture),
    )


# ---------------------------------------------------------------- the mask


def test_unscored_mask_covers_the_posture_and_the_time_after_leaving_it():
    pose = np.array([SUPINE] * 5 + [PRONE] * 5 + [SUPINE] * 10)
    t = np.arange(20) / 10.0  # 0.1 s apart
    mask = unscored_mask(t, pose, ["prone"], after_s=0.3)
    assert mask.tolist() == [False] * 5 + [True] * 8 + [False] * 7
    assert not unscored_mask(t, pose, [], after_s=5.0).any()
    assert unscored_mask(t, pose, ["prone"]).sum() == 5


@pytest.mark.parametrize(
    ("postures", "after_s", "match"),
    [
        (["lying"], 0.0, r"unscored_postures\[0\]='lying' is not a posture"),
        (["prone", "prone"], 0.0, "listed twice"),
        (["supine", "prone", "side", "sitting", "standing", "walking"], 0.0, "every posture"),
        ("prone", 0.0, "must be a list of posture names"),
        (["prone"], -1.0, "after_s=-1.0 is out of range"),
    ],
)
def test_bad_mask_arguments_raise_config_error(postures, after_s, match):
    with pytest.raises(ConfigError, match=match):
        unscored_mask(np.arange(4.0), np.zeros(4, int), postures, after_s)


def test_float_postures_are_refused():
    with pytest.raises(ConfigError, match="posture must be an integer array"):
        unscored_mask(np.arange(4.0), np.zeros(4), ["prone"])


# ---------------------------------------------------------------- the metrics


def test_unscored_pulses_leave_the_primary_metrics_and_are_scored_separately():
    pose = [SITTING] * 40 + [PRONE] * 20 + [SITTING] * 40
    ecap = [40.0] * 40 + [0.0] * 20 + [44.0] * 40
    run = _run(pose, ecap)
    scored = ~unscored_mask(run["t_s"], run["posture"], ["prone"])
    m = clinical_metrics(**run, scored=scored)
    assert m["mad_uv"] == pytest.approx(2.0)  # (0 + 4) / 2, no prone
    assert m["scored_duration_s"] == pytest.approx(8.0)  # the 2-s gap weighs nothing
    assert m["n_pulses"] == 80 and m["n_changes"] == 0  # sitting on both sides of the gap
    assert m["unscored_duration_s"] == pytest.approx(2.0)
    assert m["unscored_mad_uv"] == pytest.approx(40.0)
    assert m["unscored_time_in_window_frac"] == pytest.approx(1.0)
    assert m["unscored_charge_per_pulse_uc"] == pytest.approx(1.0)
    full = clinical_metrics(**run)
    assert full["mad_uv"] == pytest.approx((20 * 40.0 + 40 * 4.0) / 100)
    assert full["unscored_duration_s"] == 0.0
    assert all(math.isnan(full[k]) for k in list(UNSCORED_DOCS)[1:])


def test_warmup_applies_to_the_unscored_metrics_too():
    run = _run([PRONE] * 30 + [SITTING] * 70, [0.0] * 100)
    scored = run["posture"] != PRONE
    m = clinical_metrics(**run, scored=scored, warmup_s=1.0)
    assert m["unscored_duration_s"] == pytest.approx(2.0)
    assert m["scored_duration_s"] == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("scored", "match"),
    [
        (np.ones(99, bool), "scored must be None or a boolean array of length 100"),
        (np.ones(100), "scored must be None or a boolean array"),
        (np.zeros(100, bool), "leave 0 scored pulse"),
    ],
)
def test_bad_scored_masks_raise_config_error(scored, match):
    with pytest.raises(ConfigError, match=match):
        clinical_metrics(**_run([SITTING] * 100, [40.0] * 100), scored=scored)


# ---------------------------------------------------------------- the env option


def test_clinic_envs_declare_prone_as_scored_separately():
    suite = load_suite()
    for env_id in ("closedloop/ECAPClinic-v0", "closedloop/ECAPClinic-Test-v0"):
        cfg = suite[env_id].config
        assert cfg.unscored_posture_names == ("prone",) and cfg.unscored_after_s == 1.0
    assert suite["closedloop/ECAPTracking-v0"].config.unscored_posture_names == ()


def test_an_episode_scores_the_unscored_posture_separately():
    # the clinic sequence starts supine (0-60 s) then sits: leave supine out of the primary
    # metrics, with a 1-s ramp out, in an 80-s episode after a 10-s warm-up
    over = {"episode_s": 80.0, "unscored_postures": "supine", "unscored_after_s": 1.0}
    r = run_episode(
        make_controller("open-loop"),
        "closedloop/ECAPClinic-v0",
        "validation-000",
        0,
        env_overrides=over,
    )
    m = r.metrics
    assert m["unscored_duration_s"] == pytest.approx(51.0, abs=0.05)
    assert m["scored_duration_s"] == pytest.approx(19.0, abs=0.05)
    traj = r.trajectory
    late = traj.t_s >= 61.0
    err = np.abs(traj.ecap_true_uv[late] - traj.target_uv)
    assert m["mad_uv"] == pytest.approx(float(np.mean(err)), rel=1e-9)
    assert m["unscored_mad_uv"] > 10 * m["mad_uv"]  # open loop overstimulates supine


def test_the_clinic_env_scores_prone_and_its_ramp_out_separately():
    r = run_episode(
        make_controller("clinical-loop"), "closedloop/ECAPClinic-v0", "validation-000", 0
    )
    # prone 360-405 s (its ramp in counted as prone) plus the 1-s ramp out; 10-s warm-up
    assert r.metrics["unscored_duration_s"] == pytest.approx(46.0, abs=0.05)
    assert r.metrics["scored_duration_s"] == pytest.approx(450.0 - 10.0 - 46.0, abs=0.05)
    traj = r.trajectory
    prone = traj.posture == PRONE
    assert traj.t_s[prone].min() == pytest.approx(360.0, abs=0.05)
    assert traj.t_s[prone].max() == pytest.approx(405.0, abs=0.05)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"unscored_postures": "lying"}, "'lying' is not a posture"),
        ({"unscored_postures": "prone, prone"}, "listed twice"),
        ({"unscored_postures": ["prone"]}, "must be a string"),
        ({"unscored_after_s": -1.0}, "unscored_after_s=-1.0 is out of range"),
    ],
)
def test_bad_env_scoring_options_raise_config_error(over, match):
    with pytest.raises(ConfigError, match=match):
        gym.make("closedloop/ECAPClinic-v0", **over)


# ---------------------------------------------------------------- the script


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--split", "test"], "held-out cohort; pass --report-test"),
        (["--controllers", "clinical-loop"], "must include 'open-loop'"),
        (["--target-uv", "0"], r"target_uv=0.0 is out of range"),
        (["--episode-s", "5"], r"episode_s=5.0 is out of range"),
        (["--seeds", "1", "1"], "must be distinct"),
        (["--workers", "0"], "workers"),
    ],
)
def test_bad_arguments_are_named(argv, message):
    with pytest.raises(ConfigError, match=message):
        clinic_sequence.parse(argv)
    assert clinic_sequence.main(argv) == 2


def test_the_fixed_target_current_is_the_calibrations_at_the_calibrated_target():
    from closedloop.patients.calibration_cache import patient_calibration
    from closedloop.patients.cohort import load_cohort

    def inside(cal):
        sitting = cal.posture("sitting")
        return sitting.perception_ecap_uv < cal.target_uv < sitting.discomfort_ecap_uv

    patient, cal = next(
        (p, patient_calibration(p))
        for p in load_cohort("validation")
        if inside(patient_calibration(p))
    )
    same = clinic_sequence.retarget(cal, patient, cal.target_uv)
    assert same.comfort_ma == pytest.approx(cal.comfort_ma, rel=1e-9)
    assert same.fallback_ma == same.comfort_ma and same.max_ma == cal.max_ma
    assert clinic_sequence.retarget(cal, patient, 1e4) is None  # outside the window


def test_a_short_run_reports_both_modes_and_closed_loop_beats_open_loop(tmp_path):
    out = tmp_path / "cs"
    assert (
        clinic_sequence.main(
            ["--patients", "2", "--episode-s", "40", "--workers", "1", "--out", str(out)]
        )
        == 0
    )
    doc = json.loads(out.with_suffix(".json").read_text())
    summary = doc["summary"]
    assert summary["calibrated"]["n_patients"] == 2
    assert 0 <= summary["fixed"]["n_allowed"] <= summary["fixed"]["n_cohort"] == 2
    cal_rows = [r for r in doc["rows"] if r["mode"] == "calibrated"]
    assert len(cal_rows) == 2 * 2  # controllers x patients
    for p in ("validation-000", "validation-001"):
        dev = {r["controller"]: r["mad_uv"] for r in cal_rows if r["patient"] == p}
        assert dev["clinical-loop"] < dev["open-loop"]
    vs = summary["calibrated"]["vs_open_loop"]["clinical-loop"]
    assert vs["n"] == 2 and vs["ratio"][1] > 1.0
    swings = [r["mad_uv"] >= r["target_uv"] for r in cal_rows if r["controller"] == "open-loop"]
    assert vs["swing_n"] == sum(swings) and vs["swing_n_at_least_10x"] <= vs["swing_n"]
    for key in ("mad_uv", "charge_span", "unscored_mad_uv", "slow_mad_uv", "fast_sd_uv"):
        assert len(summary["calibrated"]["controllers"]["clinical-loop"][key]) == 3
    text = out.with_suffix(".md").read_text()
    assert "EVOKE" in text and "22.1x" in text
