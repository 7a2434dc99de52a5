"""Clinical calibration: the programming session, its record, and the cohort's published ranges."""

import dataclasses
import math

import pytest

from closedloop import ConfigError
from closedloop.cohort_report import distribution_report
from closedloop.patients.calibration import CalibrationRecord, calibrate
from closedloop.patients.cohort import get_patient


@pytest.fixture(scope="module")
def record():
    return calibrate(get_patient("default"))


def test_target_lies_inside_the_window_of_every_calibration_posture(record):
    for pc in record.postures:
        assert pc.perception_ecap_uv < record.target_uv < pc.discomfort_ecap_uv, pc.posture
    ref = record.reference
    assert ref.posture == "sitting"
    assert ref.perception_ma < record.comfort_ma < ref.discomfort_ma
    assert record.fallback_ma == record.comfort_ma
    assert record.max_ma == max(pc.discomfort_ma for pc in record.postures)
    assert 10.0 < record.target_uv < 100.0  # tens of µV (clinical reports [C])


def test_thresholds_rise_from_lying_to_standing(record):
    th = {pc.posture: pc.ecap_threshold_ma for pc in record.postures}
    assert th["supine"] < th["sitting"] < th["standing"]
    perc = {pc.posture: pc.perception_ma for pc in record.postures}
    for posture, value in th.items():  # ECAP threshold ~ perception threshold (Pilitsis)
        assert abs(20 * math.log10(perc[posture] / value)) < 1.5


def test_record_round_trip(tmp_path, record):
    path = record.save(tmp_path / "cal.json")
    assert CalibrationRecord.load(path) == record


def test_bad_calibration_arguments_are_named():
    patient = get_patient("default")
    with pytest.raises(
        ConfigError,
        match=r"target_position=1.5 is out of range; valid range "
        r"\[-1, 1\]",
    ):
        calibrate(patient, target_position=1.5)
    with pytest.raises(ConfigError, match="reference='sitting' must be one of"):
        calibrate(patient, postures=("supine",))
    with pytest.raises(ConfigError, match="warmup_s=-1"):
        calibrate(patient, warmup_s=-1)


def test_target_position_places_the_target_in_or_below_the_common_window(record):
    """The patient's own position is the default; below 0 the target lies under perception."""
    patient = get_patient("default")
    lo = max(pc.perception_ecap_uv for pc in record.postures)
    hi = min(pc.discomfort_ecap_uv for pc in record.postures)
    assert record.target_uv == pytest.approx(lo + patient.target_position * (hi - lo))
    low = calibrate(dataclasses.replace(patient, target_position=-0.25))
    assert low.target_uv == pytest.approx(0.75 * lo)
    # a target under every posture's perception ECAP: the open loop is below perception too
    below = 0.9 * min(pc.perception_ecap_uv for pc in record.postures) / lo - 1.0
    low = calibrate(dataclasses.replace(patient, target_position=below))
    assert low.target_uv < low.reference.perception_ecap_uv
    assert low.comfort_ma < low.reference.perception_ma
    top = calibrate(patient, target_position=1.0)
    assert top.target_uv == pytest.approx(hi)


def test_validation_cohort_reproduces_published_ranges():
    """Pilitsis 2021: thresholds 2-8 mA, slopes 5-50 µV/mA, perception ~ ECAP threshold."""
    r = distribution_report("validation")
    assert r["threshold_in_2_8_ma_frac"] >= 0.6
    assert r["slope_in_5_50_frac"] >= 0.8
    assert 2.0 < r["threshold_sitting_median_ma"] < 8.0
    assert 0.2 < r["perception_vs_ecap_median_abs_db"] < 1.0  # published 0.5 dB
    assert r["perception_vs_ecap_log_r"] > 0.9  # published r = 0.93
    assert 1.05 < r["discomfort_ecap_spread_max"] <= 3.0  # up to 3x across postures
    assert 15.0 < r["target_median_uv"] < 60.0
