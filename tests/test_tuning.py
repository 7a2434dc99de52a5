"""Auto-tuning of controller gains: training cohort only, budget recorded, spec round trip."""

import sys

import pytest

from closedloop._config import ConfigError
from closedloop.controllers.registry import parse_agent_spec
from closedloop.tuning.controller import DEFAULT_GAINS, TuningProblem, objective, tune, write_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TINY = {"env_ids": ("closedloop/ECAPClinic-v0",), "n_patients": 1, "budget": 3}


def test_objective_is_the_documented_sum():
    rows = [
        {
            "mean_rel_error": 0.1,
            "time_above_discomfort_frac": 0.01,
            "time_below_perception_frac": 0.2,
        },
        {
            "mean_rel_error": 0.3,
            "time_above_discomfort_frac": 0.0,
            "time_below_perception_frac": 0.0,
        },
    ]
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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": "test"}, "split='test' is invalid for tuning; valid: train, validation"),
        ({"gains": {"ki_ma_per_uv_s": (1.0, 0.5)}}, r"gains\['ki_ma_per_uv_s'\]=\(1.0, 0.5\)"),
        ({"budget": 1}, "budget=1"),
    ],
)
def test_bad_problems_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        TuningProblem(**{"agent": "pid", "gains": DEFAULT_GAINS["pid"], **change})


def test_unknown_gain_names_the_valid_params():
    problem = TuningProblem("pid", {"gain_of_nothing": (0.1, 1.0)}, **TINY)
    with pytest.raises(ConfigError, match="gain_of_nothing are not params of 'pid'; valid: "):
        tune(problem, progress=False)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"budget": 2.5}, r"budget=2.5 is out of range; valid: an integer in \[2, 10000\]"),
        ({"budget": 10**9}, "budget=1000000000"),
        ({"n_patients": 0}, "n_patients=0"),
        ({"n_patients": 10**6}, r"n_patients=1000000 is out of range; valid: an integer in \[1, "),
        ({"seeds": (-1,)}, r"seeds=\(-1,\) is invalid"),
        ({"seeds": ()}, r"seeds=\(\) is invalid"),
        ({"seeds": "0"}, "seeds='0'"),
        ({"w_over": float("nan")}, "w_over=nan"),
        ({"w_under": -1.0}, "w_under=-1.0"),
        ({"env_ids": ("CartPole-v1",)}, "CartPole-v1.*not a closedloop env id"),
        ({"env_ids": ()}, "env_ids=()"),
        ({"gains": {"kp_ma_per_uv": [1.0]}}, r"gains\['kp_ma_per_uv'\]=\[1.0\]"),
        ({"gains": {"kp_ma_per_uv": ("a", "b")}}, r"gains\['kp_ma_per_uv'\]=\(a, b\)"),
        ({"gains": "abc"}, "gains is empty"),
        ({"agent": 5}, "agent=5"),
        ({"split": None}, "split=None"),
    ],
)
def test_every_bad_tuning_argument_is_named(change, match):
    with pytest.raises(ConfigError, match=match):
        TuningProblem(**{"agent": "pid", "gains": DEFAULT_GAINS["pid"], **change})


@pytest.fixture
def no_evaluations(monkeypatch):
    """Make any objective evaluation fail the test: the checks must come first."""
    import closedloop.tuning.controller as controller

    def ran(*args, **kwargs):
        raise AssertionError("an evaluation ran")

    monkeypatch.setattr(controller, "run_grid", ran)  # where tune looks it up


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 0}, r"workers=0 is out of range; valid: an integer in \[1, 256\]"),
        ({"workers": 10**6}, "workers=1000000"),
        ({"out": "spec.json"}, "out='spec.json' is invalid; valid: a path to a .toml"),
    ],
)
def test_tune_checks_workers_and_out_before_evaluating(no_evaluations, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        tune(TuningProblem("pid", DEFAULT_GAINS["pid"], **TINY), progress=False, **kwargs)


def test_tune_out_folder_is_made_or_refused_before_tuning(tmp_path, no_evaluations, cli):
    (tmp_path / "file").write_text("")
    blocked = tmp_path / "file" / "sub" / "pid-tuned.toml"
    with pytest.raises(ConfigError, match="its folder cannot be created"):
        tune(TuningProblem("pid", DEFAULT_GAINS["pid"], **TINY), out=blocked)
    code, _, err = cli("tune", "pid", "--budget", "2", "--out", str(blocked))
    assert code == 2 and "out=" in err
    fresh = tmp_path / "new" / "folder" / "pid-tuned.toml"
    with pytest.raises(AssertionError, match="an evaluation ran"):
        tune(TuningProblem("pid", DEFAULT_GAINS["pid"], **TINY), out=fresh, progress=False)
    assert fresh.parent.is_dir()


@pytest.mark.parametrize(
    "argv",
    [
        ["--budget", "0"],
        ["--budget", "100000000"],
        ["--patients", "0"],
        ["--patients", "9999"],
        ["--workers", "0"],
        ["--workers", "100000"],
        ["--seeds", "-1"],
        ["--split", "test"],
    ],
)
def test_tune_cli_exits_2_naming_the_option(cli, no_evaluations, tmp_path, argv):
    code, _, err = cli("tune", "pid", "--out", str(tmp_path / "x.toml"), *argv)
    name = {"--patients": "n_patients"}.get(argv[0], argv[0].lstrip("-"))
    assert code == 2 and name in err and "Traceback" not in err
