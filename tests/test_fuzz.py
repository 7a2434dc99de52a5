"""Fuzz test of the public entry points (issue 16): every bad input gets a ``ConfigError``.

The cases and the runner live in ``benchmarks/fuzz_inputs.py`` (and the ``fuzz_*`` modules next
to it), which also runs the full count from the command line. Each entry point here draws a
seeded sample of its cases; every failure of the sample is listed with its reproducer. The
``slow`` test runs the full quota (over 2,000 bad inputs).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import fuzz_api  # noqa: E402
import fuzz_cases  # noqa: E402
import fuzz_cli  # noqa: E402
import fuzz_inputs  # noqa: E402
import fuzz_report  # noqa: E402
from fuzz_inputs import Case, run_case  # noqa: E402

from closedloop import ConfigError  # noqa: E402

ENTRIES = list(fuzz_inputs.strategies(Path(tempfile.gettempdir())))
SAMPLE_FRACTION = 0.2
"""Share of each entry point's full quota the default suite draws (at least 4 cases)."""


def _failures(entry: str, tmp: Path, n: int) -> tuple[int, list]:
    strategy, _ = fuzz_inputs.strategies(tmp)[entry]
    outcomes = []
    fuzz_inputs.sample(strategy, n, lambda case: outcomes.append(run_case(case)), seed=0)
    return len(outcomes), [o for o in outcomes if not o.ok]


@pytest.mark.parametrize("entry", ENTRIES)
def test_bad_inputs_get_a_config_error(entry, tmp_path):
    quota = fuzz_inputs.strategies(tmp_path)[entry][1]
    tried, failed = _failures(entry, tmp_path, max(4, round(quota * SAMPLE_FRACTION)))
    assert tried >= 1
    assert not failed, f"{len(failed)} of {tried} bad inputs failed:\n" + "\n".join(
        o.report() for o in failed
    )


@pytest.mark.slow
def test_full_fuzz_run_has_no_raw_exception_and_no_garbage():
    results = fuzz_inputs.fuzz(echo=lambda s: None)
    must_refuse = sum(o.case.refuse for outs in results.values() for o in outs)
    failed = [o for outs in results.values() for o in outs if not o.ok]
    assert must_refuse >= 2000
    assert not failed, fuzz_report.table(results) + "\n" + fuzz_report.failures(results)


# -- the harness itself: each verdict comes out as it should ------------------------------------


def _raise(exc):
    def call():
        raise exc

    return call


def test_a_config_error_is_a_refusal_and_other_exceptions_are_failures():
    assert run_case(Case("x", "x", _raise(ConfigError("bad")))).kind == "refused"
    raw = run_case(Case("x", "x", _raise(TypeError("boom"))))
    assert raw.kind == "raw" and "TypeError" in raw.detail and not raw.ok
    assert run_case(Case("x", "x", _raise(KeyError("k")))).kind == "raw"


def test_a_refusal_after_claiming_the_run_folder_is_garbage(tmp_path):
    import fuzz_files

    bad = {**fuzz_files.SUITE, "env_overrides": {"rate_hz": -1.0}}
    (tmp_path / "suite.json").write_text("{}")  # as if the refused run had claimed the folder
    out = run_case(Case("suite", "", lambda: fuzz_files._run_suite_dict(bad, tmp_path)))
    assert out.kind == "garbage" and "suite.json" in out.detail


def test_an_accepted_bad_input_is_garbage_unless_allowed_and_sane():
    assert run_case(Case("x", "x", lambda: 1.0)).kind == "garbage"
    assert run_case(Case("x", "x", lambda: 1.0, refuse=False)).kind == "accepted-ok"
    nan_step = (np.zeros(3), float("nan"), False, False, {"current_ma": 1.0})
    neg_step = (np.zeros(3), 0.0, False, False, {"current_ma": -0.5})
    good_step = (np.zeros(3), -0.1, False, False, {"current_ma": 2.0, "posture": "supine"})
    for out, kind in ((nan_step, "garbage"), (neg_step, "garbage"), (good_step, "accepted-ok")):
        case = Case("x", "x", lambda out=out: out, refuse=False, check=fuzz_cases.sane_step)
        assert run_case(case).kind == kind


def test_the_guard_stops_real_work_and_restores_it():
    import closedloop._parallel
    from closedloop.neural.model import NeuralModel

    original = closedloop._parallel.parallel_map
    case = Case("x", "x", lambda: closedloop._parallel.parallel_map(abs, [1]))
    out = run_case(case)
    assert out.kind == "garbage" and "real work" in out.detail
    long_train = Case("x", "x", lambda: NeuralModel().pulse_train(1.0, n_pulses=10**5))
    assert "real work" in run_case(long_train).detail
    assert closedloop._parallel.parallel_map is original
    assert list(closedloop._parallel.parallel_map(abs, [-1])) == [1]


def test_cli_exit_status_2_is_a_refusal_and_0_is_garbage(tmp_path):
    refused = run_case(Case("cli", "", lambda: fuzz_cli.run_cli(["open-loop", "--seed", "x"])))
    assert refused.kind == "refused"
    accepted = run_case(Case("cli", "", lambda: fuzz_cli.run_cli(["scenario"])))
    assert accepted.kind == "garbage"


@pytest.mark.parametrize("command", sorted(fuzz_cli.BAD))
def test_each_cli_case_changes_one_option_of_a_valid_command(command, tmp_path):
    out = run_case(fuzz_cli.base_case(command, tmp_path))
    assert out.kind == "accepted-ok", out.report()


@pytest.mark.parametrize("name", sorted(fuzz_api.API))
def test_each_api_case_changes_one_argument_of_a_valid_call(name, tmp_path):
    out = run_case(fuzz_api.base_case(name, tmp_path))
    assert out.kind == "accepted-ok", out.report()


def test_each_python_case_changes_one_entry_of_a_valid_input(tmp_path):
    import fuzz_files
    import fuzz_patients
    import fuzz_specs

    from closedloop.controllers import CONTROLLER_TYPES, make_controller
    from closedloop.disturbances import Scenario
    from closedloop.patients.patient import Patient
    from closedloop.training.spec import parse_rl_spec

    for env_id in fuzz_cases.env_ids():
        assert fuzz_cases.sane_step(fuzz_cases._make_and_run(env_id, {})) is None
    vector_id = fuzz_cases.vector_ids()[0]
    assert fuzz_cases.sane_step(fuzz_cases._vec_make_and_run(2, vector_id, {})) is None
    for kind in CONTROLLER_TYPES:
        make_controller({"name": "fz", "description": "fuzz", "controller": kind, "params": {}})
    Scenario.from_dict(fuzz_files._clinic())
    parse_rl_spec(fuzz_specs._ppo_doc())
    Patient.from_dict(fuzz_patients._patient_doc())
    suite = Case("suite", "", lambda: fuzz_files._run_suite_dict(fuzz_files.SUITE, tmp_path))
    assert "real work started" in run_case(suite).detail


def test_every_cli_subcommand_is_fuzzed():
    from closedloop.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(fuzz_cli.BAD)
    assert {f"cli.{c}" for c in sub.choices} <= set(ENTRIES)
