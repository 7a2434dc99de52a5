"""Auto-tuning of controller gains: training cohort only, budget recorded, spec round trip."""

import sys

import pytest

from closedloop._config import ConfigError
from closedloop.controllers.registry import parse_agent_spec
from closedloop.tuning import DEFAULT_GAINS, TuningProblem, objective, tune, write_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TINY = {"env_ids": ("closedloop/ECAPClinic-v0",), "n_patients": 1, "budget": 3}


def test_objective_is_the_documented_sum():
    rows = [{"mean_rel_error": 0.1, "time_above_discomfort_frac": 0.01,
             "time_below_perception_frac": 0.2},
            {"mean_rel_error": 0.3, "time_above_discomfort_frac": 0.0,
             "time_below_perception_frac": 0.0}]
    assert objective(rows, 2.0, 1.0) == pytest.approx((0.1 + 0.02 + 0.2 + 0.3) / 2)


def test_tuning_records_its_budget_and_never_gets_worse(tmp_path):
    problem = TuningProblem("pid", DEFAULT_GAINS["pid"], **TINY)
    doc = tune(problem, workers=1, progress=False)
    rec = doc["tuning"]
    assert rec["budget"] == 3 and 2 <= rec["evaluations"] <= 3
    assert rec["objective_after"] <= rec["objective_before"]
    assert rec["patients"] == ["train-000"] and rec["split"] == "train"
    for key, (lo, hi) in DEFAULT_GAINS["pid"].items():
        assert lo * (1 - 1e-9) <= doc["params"][key] <= hi * (1 + 1e-9)
    path = write_spec(doc, tmp_path / "pid-tuned.toml")
    with open(path, "rb") as fh:
        spec = parse_agent_spec(tomllib.load(fh), path.name)
    assert spec.name == "pid-tuned" and spec.controller == "pid"
    assert spec.params.ki_ma_per_uv_s == pytest.approx(doc["params"]["ki_ma_per_uv_s"])


@pytest.mark.parametrize(("change", "message"), [
    ({"split": "test"}, "split='test' is invalid for tuning; valid: train, validation"),
    ({"gains": {"ki_ma_per_uv_s": (1.0, 0.5)}}, r"gains\['ki_ma_per_uv_s'\]=\(1.0, 0.5\)"),
    ({"budget": 1}, "budget=1"),
])
def test_bad_problems_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        TuningProblem(**{"agent": "pid", "gains": DEFAULT_GAINS["pid"], **change})


def test_unknown_gain_names_the_valid_params():
    problem = TuningProblem("pid", {"gain_of_nothing": (0.1, 1.0)}, **TINY)
    with pytest.raises(ConfigError, match="gain_of_nothing are not params of 'pid'; valid: "):
        tune(problem, progress=False)
