"""Tests of the ``closedloop`` command line (run in-process)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from closedloop.cli import parse_currents
from closedloop.neural import LeadParams, growth_curve
from closedloop.patients.cohort import get_patient

FAST = ["--currents", "0:10:1", "--pulses-per-level", "10"]


def test_table_has_rows_and_fit_line(cli):
    code, out, _ = cli("growth-curve", *FAST)
    assert code == 0
    assert "current mA" in out and "ECAP µV" in out and "N1 ms" in out
    fit = [line for line in out.splitlines() if line.startswith("fit:")]
    assert len(fit) == 1 and "threshold" in fit[0] and "µV/mA" in fit[0]
    assert (
        sum(line.strip().startswith(f"{i}.00 |") for line in out.splitlines() for i in range(11))
        == 11
    )


@pytest.mark.parametrize(
    ("cli_args", "posture"), [([], "supine"), (["--posture", "sitting"], "sitting")]
)
def test_json_agrees_with_api(cli, cli_args, posture):
    code, out, _ = cli("growth-curve", "--json", "--patient", "thin-csf", *cli_args, *FAST)
    assert code == 0
    doc = json.loads(out)
    for key in (
        "currents_ma",
        "ecap_uv",
        "threshold_ma",
        "slope_uv_per_ma",
        "n1_latency_ms",
        "ecap_true_uv",
        "ecap_sd_uv",
        "frac_recruited",
        "knee_ma",
    ):
        assert key in doc
    patient = get_patient("thin-csf")
    assert doc["patient"] == "thin-csf" and doc["posture"] == posture
    assert doc["csf_mm"] == patient.csf_mm(posture)
    api = growth_curve(
        patient.model(),
        np.arange(0.0, 10.5, 1.0),
        pw_us=250.0,
        rate_hz=50.0,
        csf_mm=patient.csf_mm(posture),
        pulses_per_level=10,
    )
    assert doc["currents_ma"] == api.currents_ma.tolist()
    assert doc["threshold_ma"] == api.threshold_ma
    assert doc["slope_uv_per_ma"] == api.slope_uv_per_ma
    assert doc["ecap_uv"] == api.ecap_uv.tolist()
    # No fibre fires at 0 mA: the latency is NaN in the API and null in JSON.
    assert doc["n1_latency_ms"][0] is None and np.isnan(api.n1_latency_ms[0])


def test_json_with_csf_and_stimulus_options(cli):
    code, out, _ = cli(
        "growth-curve", "--json", "--csf-mm", "4.2", "--pw-us", "120", "--rate-hz", "30", *FAST
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["posture"] is None
    assert (doc["csf_mm"], doc["pw_us"], doc["rate_hz"]) == (4.2, 120.0, 30.0)


def test_plot_writes_png_and_keeps_the_numbers(cli, tmp_path):
    path = tmp_path / "curve.png"
    code, out, err = cli(
        "growth-curve", "--json", "--plot", str(path), "--waveform-currents", "2,5,9", *FAST
    )
    assert code == 0 and str(path) in err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]  # no temp file left
    code, plain, _ = cli("growth-curve", "--json", *FAST)
    assert json.loads(out) == json.loads(plain)


def test_plot_function_returns_path_without_sweeps(tmp_path):
    from closedloop.plots import plot_growth_curve

    patient = get_patient("default")
    curve = growth_curve(patient.model(), np.arange(0.0, 10.5, 1.0), pulses_per_level=10)
    assert curve.waveforms_uv is None
    path = plot_growth_curve(curve, tmp_path / "g.png", title="t")
    assert path == tmp_path / "g.png" and path.stat().st_size > 0


def fast_args(argv: list[str]) -> list[str]:
    """FAST without the options that ``argv`` sets itself."""
    pairs = zip(FAST[::2], FAST[1::2], strict=True)
    return [x for flag, value in pairs if flag not in argv for x in (flag, value)]


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["--pw-us", "5"], "pw_us"),
        (["--rate-hz", "0"], "rate_hz"),
        (["--csf-mm", "-1"], "csf_mm"),
        (["--csf-mm", "nan"], "csf_mm"),
        (["--pw-us", "nan"], "pw_us"),
        (["--pulses-per-level", "1"], "pulses_per_level"),
        (["--currents", "0:10"], "--currents"),
        (["--currents", "a:b:c"], "--currents"),
        (["--currents", "5:0:1"], "--currents"),
        (["--currents", "0:30:1"], "currents_ma"),
        (["--waveform-currents", "1,2"], "--waveform-currents"),
    ],
)
def test_bad_value_exits_2_with_one_line_naming_the_parameter(cli, argv, name):
    code, out, err = cli("growth-curve", *fast_args(argv), *argv)
    assert code == 2 and out == ""
    assert err.startswith("closedloop: error: ") and err.count("\n") == 1
    assert name in err and ("range" in err or "must" in err or "needs" in err)


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["--posture", "upside-down"], "--posture"),
        (["--posture", "prone", "--csf-mm", "3"], "--csf-mm"),
        (["--pw-us", "wide"], "--pw-us"),
    ],
)
def test_usage_error_exits_2_naming_the_option(cli, argv, name):
    code, out, err = cli("growth-curve", *FAST, *argv)
    assert code == 2 and out == ""
    assert f"error: argument {name}" in err


def test_parse_currents_includes_stop():
    assert parse_currents("0:15:0.5").tolist() == np.arange(0.0, 15.01, 0.5).tolist()
    assert parse_currents("1:2:0.3").tolist() == pytest.approx([1.0, 1.3, 1.6, 1.9])


def test_model_card_lists_every_lead_field(cli, tmp_path):
    code, out, _ = cli("model-card")
    assert code == 0
    for f in dataclasses.fields(LeadParams):
        assert f"`{f.name}`" in out
    for section in ("lead", "population", "excitability", "response", "recording"):
        assert f"## {section} (" in out
    path = tmp_path / "card.md"
    code, _, _ = cli("model-card", "--output", str(path))
    assert code == 0 and path.read_text(encoding="utf-8").strip() == out.strip()
    assert [p.name for p in tmp_path.iterdir()] == ["card.md"]


def test_warns_when_no_fibre_fires(cli):
    code, out, err = cli("growth-curve", "--patient", "thick-csf", "--posture", "prone", *FAST)
    assert code == 0 and "fit:" in out
    assert "closedloop: warning: no fibre fired" in err


def test_unknown_patient_exits_2_naming_the_valid_ids(cli):
    code, out, err = cli("growth-curve", *FAST, "--patient", "nobody")
    assert code == 2 and out == ""
    assert "patient='nobody' is unknown; valid: default" in err
