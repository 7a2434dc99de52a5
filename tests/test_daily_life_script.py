"""benchmarks/daily_life.py: its inputs are checked, and a tiny run summarises what it played."""

import importlib.util
import json
from pathlib import Path

import pytest

from closedloop import ConfigError

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("daily_life", ROOT / "benchmarks" / "daily_life.py")
daily_life = importlib.util.module_from_spec(spec)
spec.loader.exec_module(daily_life)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--split", "test"], "held-out cohort; pass --report-test"),
        (["--hours", "0"], r"hours=0.0 is out of range; valid \(0, 24\]"),
        (["--seeds", "1", "1"], "must be distinct"),
        (["--patients", "-1"], "patients=-1 is out of range"),
        (["--workers", "0"], "workers"),
    ],
)
def test_bad_arguments_are_named(argv, message):
    with pytest.raises(ConfigError, match=message):
        daily_life.parse(argv)
    assert daily_life.main(argv) == 2


def test_a_tiny_run_reports_each_controller_and_seed(tmp_path):
    out = tmp_path / "dl"
    assert (
        daily_life.main(
            [
                "--patients",
                "2",
                "--hours",
                "0.005",
                "--seeds",
                "0",
                "1",
                "--workers",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.with_suffix(".json").read_text())
    assert len(doc["rows"]) == 2 * 2 * 2  # controllers x patients x seeds
    for c in ("open-loop", "clinical-loop"):
        s = doc["summary"][c]
        assert set(s["median_by_seed"]) == {"0", "1"} and len(s["tiw_per_patient"]) == 2
        q = s["quartiles"]["time_in_window_frac"]
        assert 0.0 <= q[0] <= q[1] <= q[2] <= 1.0
    assert "EVOKE" in out.with_suffix(".md").read_text()
