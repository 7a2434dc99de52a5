"""Bad input to the simulation and benchmark subcommands: a named ConfigError, nothing written.

Every case also goes through the Python API that the subcommand calls, so the CLI and the API
refuse the same inputs with the same message.
"""

import json
import re
import signal

import numpy as np
import pytest

from closedloop import _io
from closedloop._config import ConfigError
from closedloop._parallel import MAX_WORKERS, parallel_map
from closedloop.benchmark import Suite, load_suite, run_benchmark
from closedloop.evaluation.episode_spec import EpisodeSpec, episode_path, finished_row

CLINIC = "closedloop/ECAPClinic-Test-v0"
SUITE = f"""
name = "tiny"
controllers = ["open-loop"]
env_ids = ["{CLINIC}"]
n_patients = 1
seeds = [0]
"""
LITTLE_MEMORY = 2.0**30
"""What the memory tests pretend is available (bytes), whatever the machine has."""


def _err(cli, *argv):
    """Run ``closedloop *argv``; assert exit status 2 and return stderr."""
    code, _, err = cli(*argv)
    assert code == 2, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def little_memory(monkeypatch):
    monkeypatch.setattr(_io, "available_memory_bytes", lambda: LITTLE_MEMORY)


# -- benchmark: selections ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--envs", "CartPole-v1"),
            r"--envs='CartPole-v1' is unknown; valid: .*closedloop/ECAPClinic-Test-v0",
        ),
        (("--envs", "closedloop/ECAPClinic-Test-v0,CartPole-v1"), "'CartPole-v1' is unknown"),
        (("--controllers", ""), r"--controllers='' must be a comma-separated list of names"),
        (("--controllers", " , "), r"--controllers=' , ' must be a comma-separated list"),
        (
            ("--controllers", "nope"),
            r"controllers\[0\]='nope' is unknown; valid: .*open-loop.*; or all",
        ),
        (("--envs", ""), r"--envs='' must be a comma-separated list of names"),
        (("--seeds", ""), r"--seeds='' must be a comma-separated list"),
        (("--seeds", "-1"), r"seeds\[0\]=-1 is invalid; valid: an integer >= 0"),
        (("--seeds", "1,1"), "must be distinct"),
        (("--patients", "0"), r"--patients=0 is out of range; valid range \[1, inf\)"),
        (("--workers", "0"), r"workers=0 is invalid; valid: an integer in \[1, 256\]"),
        (("--workers", "-2"), r"workers=-2 is invalid"),
        (("--workers", "100000"), r"workers=100000 is invalid; valid: an integer in \[1, 256\]"),
    ],
)
def test_benchmark_selection_errors_write_nothing(cli, tmp_path, argv, message):
    out = tmp_path / "run"
    err = _err(cli, "benchmark", "--out", str(out), "--no-progress", "--no-plots", *argv)
    assert re.search(message, err), err
    assert not out.exists()


# -- benchmark: suite files are checked whole before the run folder is claimed -----------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("env_overrides = {episode_s = -5}", r"episode_s=-5 is out of range; valid range \(0, "),
        ('env_overrides = "abc"', "env_overrides='abc' must be a table"),
        ("env_overrides = [1, 2]", "env_overrides=.* must be a table"),
        ('env_overrides = {reward = "abc"}', "reward='abc' must be a table"),
        ('env_overrides = {scenario = "nope"}', "nope"),
        ('env_overrides = {patient = "test-001"}', "patient"),
        ('env_overrides = {colour = "red"}', "unknown keyword.*colour"),
        ("env_overrides = {episode_s = 1e5}", r"episode_s=100000(\.0)? is out of range"),
        ("env_overrides = {episode_s = 86400, rate_hz = 10000}", r"would need .* GiB"),
    ],
)
def test_bad_env_overrides_are_refused_before_the_folder_is_claimed(
    cli, tmp_path, little_memory, extra, message
):
    path = tmp_path / "suite.toml"
    path.write_text(SUITE + extra + "\n")
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        run_benchmark(load_suite(path), out, workers=1, progress=False, plots=False)
    assert not out.exists()
    err = _err(cli, "benchmark", "--suite", str(path), "--out", str(out), "--no-progress")
    assert re.search(message, err), err
    assert not out.exists()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"name": 5}, "name must be a non-empty string"),
        ({"name": "../x"}, "name must be a non-empty string"),
        ({"controllers": []}, "controllers=.* must be a non-empty list of names"),
        ({"controllers": [5]}, "controllers=.* must be a non-empty list of names"),
        ({"env_ids": ["CartPole-v1"]}, "env_id='CartPole-v1' is unknown"),
        ({"patients": "nope"}, "patients='nope' is unknown"),
        ({"patients": []}, "patients=.* must be a non-empty list of names"),
        ({"n_patients": 2.5}, "n_patients=2.5 must be an integer"),
        ({"n_patients": -1}, r"n_patients=-1 is out of range"),
        ({"seeds": [-1]}, r"seeds\[0\]=-1 is invalid; valid: an integer >= 0"),
        ({"seeds": ["a"]}, r"seeds\[0\]='a' is invalid; valid: an integer"),
        ({"seeds": [0.5]}, r"seeds\[0\]=0.5 is invalid; valid: an integer"),
        ({"baseline": 3}, "baseline=3 must be a controller name"),
        ({"baseline": "pid"}, "baseline='pid' is not one of its controllers"),
    ],
)
def test_every_suite_field_is_checked(tmp_path, doc, message):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        suite = Suite.from_dict({"controllers": ["open-loop"], "n_patients": 1, **doc})
        run_benchmark(suite, out, workers=1, progress=False, plots=False)
    assert not out.exists()


def test_a_suite_file_must_be_a_table(tmp_path):
    with pytest.raises(ConfigError, match="must be a table"):
        Suite.from_dict(["controllers"])


@pytest.mark.parametrize("workers", [0, -1, MAX_WORKERS + 1, True, 2.5, "2"])
def test_workers_are_checked_when_the_map_is_called(workers):
    with pytest.raises(ConfigError, match=r"workers=.* is invalid; valid: an integer in \[1,"):
        parallel_map(abs, [], workers)  # not lazily, at the first result


# -- benchmark: damaged run folders ------------------------------------------------------------
@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"name": 5}', "\xff\xfe"])
def test_a_corrupted_suite_json_is_named(cli, tmp_path, text):
    out = tmp_path / "run"
    out.mkdir()
    (out / "suite.json").write_text(text, encoding="latin-1")
    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    with pytest.raises(ConfigError, match=re.escape(str(out / "suite.json"))):
        run_benchmark(load_suite(path), out, workers=1, progress=False, plots=False)
    err = _err(cli, "benchmark", "--suite", str(path), "--out", str(out), "--no-progress")
    assert "suite.json is not a benchmark suite record" in err and "--fresh" in err
    assert (out / "suite.json").read_text(encoding="latin-1") == text  # left as it was
    assert sorted(p.name for p in out.iterdir()) == ["suite.json"]


def test_an_out_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    with pytest.raises(ConfigError, match="is a file"):
        run_benchmark(load_suite(path), path, workers=1, progress=False, plots=False)


def _record(spec, **row):
    """An episode record of ``spec`` with extra top-level keys ``row``."""
    return json.dumps(
        {"format": "closedloop.episode/1", "spec": json.loads(json.dumps(spec.identity())), **row}
    )


@pytest.mark.parametrize("damage", ["{not json", "[1]", "row-missing", "row-garbage"])
def test_a_damaged_episode_record_is_named(tmp_path, damage):
    spec = EpisodeSpec("open-loop", CLINIC, "test-000", 0)
    path = episode_path(tmp_path, spec)
    path.parent.mkdir(parents=True)
    assert finished_row(tmp_path, spec) is None  # not played yet
    text = {
        "row-missing": _record(spec),
        "row-garbage": _record(spec, row={"controller": "x"}),
    }.get(damage, damage)
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        finished_row(tmp_path, spec)


def test_a_record_of_another_cell_is_played_again(tmp_path):
    spec, other = (EpisodeSpec("open-loop", CLINIC, "test-000", s) for s in (0, 1))
    path = episode_path(tmp_path, spec)
    path.parent.mkdir(parents=True)
    path.write_text(_record(other, row={}))
    assert finished_row(tmp_path, spec) is None


# -- open-loop, scenario, cohort, growth-curve -------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("open-loop", "--seed", "-1"), r"seed=-1 is invalid; valid: an integer >= 0"),
        (
            ("open-loop", "--duration-s", "1e9"),
            r"duration_s=1e\+09 at rate_hz=50 \(5e\+10 pulses\) "
            r"would need 1\.19e\+04 GiB of memory; 1 GiB is",
        ),
        (("open-loop", "--duration-s", "nan"), "duration_s"),
        (("open-loop", "--duration-s", "inf"), "duration_s"),
        (("open-loop", "--duration-s", "-1"), "duration_s"),
        (("open-loop", "--duration-s", "0"), "duration_s"),
        (("open-loop", "--current-ma", "nan", "--duration-s", "2"), "current_ma=nan"),
        (("open-loop", "--current-ma", "30", "--duration-s", "2"), "current_ma=30"),
        (("scenario", "clinic", "--duration-s", "1e9"), r"would need .* GiB of memory"),
        (("scenario", "clinic", "--seed", "-1"), "seed"),
        (("scenario", "clinic", "--rate-hz", "nan"), "rate_hz"),
        (("scenario", "clinic", "--rate-hz", "inf"), "rate_hz=inf is out of range"),
        (
            ("cohort", "--split", "test", "--n", "1", "--workers", "0"),
            r"workers=0 is invalid; valid: an integer in \[1, 256\]",
        ),
        (("cohort", "--split", "test", "--n", "0"), r"--n=0 is out of range"),
        (
            ("growth-curve", "--pulses-per-level", "0"),
            r"pulses_per_level=0 must be an integer in \[2, inf\)",
        ),
        (
            ("growth-curve", "--pulses-per-level", "100000000"),
            r"pulses_per_level=1e\+08 \(114 bytes per pulse\) would need 10\.6 GiB of memory; "
            "1 GiB is available",
        ),
        (("growth-curve", "--rate-hz", "inf"), "rate_hz"),
        (("growth-curve", "--csf-mm", "nan"), "csf_mm"),
    ],
)
def test_numeric_options_are_checked(cli, little_memory, argv, message):
    err = _err(cli, *argv)
    assert re.search(message, err), err


def test_open_loop_api_refuses_what_the_cli_refuses(little_memory):
    from closedloop.evaluation.simulate import open_loop
    from closedloop.patients.cohort import get_patient

    patient = get_patient("default")
    for kw, message in (
        ({"seed": -1}, "seed=-1"),
        ({"seed": 2.5}, "seed=2.5"),
        ({"duration_s": 1e9}, "would need"),
    ):
        with pytest.raises(ConfigError, match=message):
            open_loop(patient, "clinic", 1.0, **kw)


# -- long compiled loops run in chunks: Ctrl-C works, results do not change --------------------
@pytest.fixture
def model():
    from closedloop.neural import NeuralModel

    return NeuralModel(seed=3)


def _train(model, n, waveforms=False):
    model.reset(7)
    return model.pulse_train(4.0, 200.0, n, waveforms=waveforms)


@pytest.mark.parametrize("waveforms", [False, True])
def test_chunked_pulses_are_bit_identical(model, monkeypatch, waveforms):
    import closedloop.neural.model as nm

    whole = _train(model, 50, waveforms)
    calls = []
    kernel = nm.run_pulses_unshared
    monkeypatch.setattr(nm, "CHUNK_PULSES", 8)
    monkeypatch.setattr(nm, "run_pulses_unshared", lambda *a: calls.append(a[4].size) or kernel(*a))
    chunked = _train(model, 50, waveforms)
    assert calls == [8] * 6 + [2]
    for a, b in zip(
        whole if waveforms else [whole], chunked if waveforms else [chunked], strict=True
    ):
        assert a.tobytes() == b.tobytes()


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test, whatever the runner inherited.

    A test process started in the background (``nohup ... &``, some CI shells) inherits SIGINT
    ignored, and Python then installs no KeyboardInterrupt handler; Ctrl-C at a terminal does
    reach the default one, which is what these tests check.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("default_sigint")
def test_ctrl_c_stops_a_long_train_between_chunks(model, monkeypatch):
    """SIGINT arriving while the kernel runs chunk 2 raises before chunk 3 starts."""
    import closedloop.neural.model as nm

    calls = []
    kernel = nm.run_pulses_unshared

    def interrupted_during_second_chunk(*args):
        kernel(*args)
        calls.append(args[4].size)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends

    monkeypatch.setattr(nm, "CHUNK_PULSES", 8)
    monkeypatch.setattr(nm, "run_pulses_unshared", interrupted_during_second_chunk)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        _train(model, 1000)
    assert calls == [8, 8]


def test_growth_curve_refuses_levels_that_do_not_fit(model, little_memory):
    from closedloop.neural import growth_curve

    with pytest.raises(ConfigError, match=r"pulses_per_level=1e\+08 .* would need 10.6 GiB"):
        growth_curve(model, np.arange(0.0, 3.0, 0.5), pulses_per_level=100_000_000)
    with pytest.raises(ConfigError, match="pulses_per_level=2.5 must be an integer"):
        growth_curve(model, np.arange(0.0, 3.0, 0.5), pulses_per_level=2.5)
    with pytest.raises(ConfigError, match="n_pulses=nan is invalid"):
        model.pulse_train(1.0, 50.0, float("nan"))


@pytest.mark.usefixtures("default_sigint")
def test_ctrl_c_ends_the_command_with_status_130(cli, monkeypatch):
    import closedloop.neural.model as nm

    def interrupted(*args):
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(nm, "run_pulses_unshared", interrupted)
    code, _, err = cli("growth-curve", "--pulses-per-level", "20")
    assert code == 130 and err.strip().endswith("closedloop: interrupted")


@pytest.mark.parametrize("n", [0, -1, 2.5, "3", True])
def test_patient_counts_are_checked(n):
    from closedloop.cohort_report import distribution_report
    from closedloop.patients.cohort_draw import generate_cohort

    with pytest.raises(ConfigError, match=r"n=.* (in|range) \[1, inf\)"):
        generate_cohort("train", n=n)
    with pytest.raises(ConfigError, match=r"n=.* (in|range) \[1, inf\)"):
        distribution_report("train", n=n)


# -- calibration: arguments and saved records --------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patient": "default"}, "patient='default' must be a Patient"),
        ({"postures": "supine"}, "postures='supine' must be a non-empty list of postures"),
        ({"postures": ["supine", "flying"]}, "postures=.* valid: supine"),
        ({"pw_us": [250.0]}, r"pw_us=\[250.0\] must be a number"),
        ({"pw_us": float("nan")}, "pw_us=nan is out of range"),
        ({"rate_hz": "50"}, "rate_hz='50' must be a number"),
        ({"rate_hz": 0}, r"rate_hz=0 is out of range; valid range \[1, 10000\] Hz"),
        ({"warmup_s": float("inf")}, "warmup_s=inf is out of range"),
    ],
)
def test_calibrate_names_a_bad_argument(kwargs, message):
    from closedloop.patients.calibration import calibrate
    from closedloop.patients.cohort import get_patient

    with pytest.raises(ConfigError, match=message):
        calibrate(**{"patient": get_patient("default"), **kwargs})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot be read: .*No such file"),
        ("{bad", "cannot be read: Expecting property name"),
        ("[1]", r"calibration=\[1\] must be a table"),
        ("{}", "missing key"),
        ("target_uv-str", "calibration.target_uv='abc' must be a number"),
        ("postures-str", "calibration.postures must be a non-empty list"),
    ],
)
def test_a_damaged_calibration_file_is_named(tmp_path, text, message):
    from closedloop.patients.calibration import CalibrationRecord

    good = {
        "format": "closedloop.calibration/1",
        "patient_id": "p",
        "pw_us": 250.0,
        "rate_hz": 50.0,
        "reference_posture": "supine",
        "postures": [],
        "target_uv": 1.0,
        "comfort_ma": 1.0,
        "min_ma": 0.0,
        "max_ma": 2.0,
        "fallback_ma": 1.0,
        "warmup_s": 0.0,
    }
    path = tmp_path / "cal.json"
    if text == "target_uv-str":
        text = json.dumps({**good, "target_uv": "abc", "postures": [{}]})
    elif text == "postures-str":
        text = json.dumps({**good, "postures": "abc"})
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        CalibrationRecord.load(path)


@pytest.mark.parametrize("scenario", [5, None, ["clinic"]])
def test_open_loop_refuses_a_scenario_of_the_wrong_type(scenario):
    from closedloop.evaluation.simulate import open_loop
    from closedloop.patients.cohort import get_patient

    with pytest.raises(ConfigError, match="scenario=.* must be a library scenario id"):
        open_loop(get_patient("default"), scenario, 1.0, duration_s=2.0)


def test_grid_refuses_controllers_of_the_wrong_type():
    from closedloop.evaluation import grid_specs

    with pytest.raises(ConfigError, match="controllers=5 is invalid"):
        grid_specs(5, [CLINIC], "test", [0])


@pytest.mark.parametrize(
    "argv",
    [
        ("model-card", "--output"),
        ("calibrate", "--output"),
        ("calibrate", "--plot"),
        ("growth-curve", "--plot"),
        ("open-loop", "--save-trajectory"),
        ("scenario", "clinic", "--plot"),
    ],
)
def test_an_output_path_that_is_a_directory_is_refused(cli, tmp_path, argv):
    err = _err(cli, *argv, str(tmp_path))
    assert f"{argv[-1]}={str(tmp_path)!r} is a directory; valid: a file path" in err
