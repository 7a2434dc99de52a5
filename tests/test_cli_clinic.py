"""CLI of the clinic: cohort, scenario, calibrate, open-loop — and agreement with the API."""

from __future__ import annotations

import json

import pytest

from closedloop.disturbances import list_scenarios
from closedloop.evaluation.simulate import open_loop
from closedloop.patients.calibration import CalibrationRecord, calibrate
from closedloop.patients.cohort import get_patient


def test_cohort_summary_table(cli):
    code, out, _ = cli(
        "cohort", "--split", "validation", "--n", "2", "--workers", "1", "--patients"
    )
    assert code == 0
    assert "cohort validation: 2 patients" in out
    for posture in ("supine", "prone", "side", "sitting", "standing", "walking"):
        assert any(line.startswith(posture) for line in out.splitlines())
    assert "validation-001" in out and "ECAP thr mA" in out and "window hi µV" in out


def test_cohort_json_agrees_with_the_api(cli):
    code, out, _ = cli("cohort", "--split", "test", "--n", "1", "--workers", "1", "--json")
    assert code == 0
    doc = json.loads(out)
    rec = CalibrationRecord.from_dict(doc["test"][0])
    from closedloop.patients.postures import POSTURES

    assert rec.to_dict() == calibrate(get_patient("test-000"), postures=POSTURES).to_dict()


def test_scenario_list_and_show(cli, tmp_path):
    code, out, _ = cli("scenario")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == list_scenarios()
    code, out, err = cli(
        "scenario", "cough-storm", "--duration-s", "60", "--plot", str(tmp_path / "s.png")
    )
    assert code == 0 and "coughs" in out and (tmp_path / "s.png").stat().st_size > 10_000


def test_calibrate_writes_a_record_the_api_reads(cli, tmp_path):
    code, out, _ = cli(
        "calibrate",
        "--patient",
        "thin-csf",
        "--output",
        str(tmp_path / "c.json"),
        "--plot",
        str(tmp_path / "g.png"),
    )
    assert code == 0 and "target" in out
    rec = CalibrationRecord.load(tmp_path / "c.json")
    assert rec == calibrate(get_patient("thin-csf"))
    assert (tmp_path / "g.png").stat().st_size > 10_000


def test_open_loop_json_agrees_with_the_api(cli):
    code, out, _ = cli(
        "open-loop", "--scenario", "clinic", "--duration-s", "40", "--seed", "3", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    api = open_loop(
        get_patient("default"), "clinic", seed=3, duration_s=40, with_window=False
    ).metrics()
    assert doc["metrics"]["mad_uv"] == pytest.approx(api["mad_uv"], rel=1e-12)
    assert doc["metrics"]["time_in_window_frac"] == api["time_in_window_frac"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["scenario", "hurricane"], "valid:"),
        (["open-loop", "--scenario", "hurricane", "--duration-s", "5"], "hurricane"),
        (
            ["open-loop", "--current-ma", "30", "--duration-s", "5"],
            "current_ma=30.0 is out of range; valid range [0, 25.5] mA",
        ),
        (["open-loop", "--patient", "test-020"], "test-000 to test-019"),
        (["scenario", "clinic", "--duration-s", "-5"], "duration_s"),
        (["scenario", "clinic", "--rate-hz", "-5"], "rate_hz"),
        (["calibrate", "--postures", "supine,upside"], "unknown ['upside']"),
        (["cohort", "--n", "0"], "--n=0 is out of range"),
    ],
)
def test_bad_input_exits_2_naming_the_field(cli, argv, needle):
    code, out, err = cli(*argv)
    assert code == 2, err
    assert needle in err
