"""The evaluation path: runner, grid with resume, statistics, report files."""

import csv
import json
import math

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats as sps

from closedloop._config import ConfigError
from closedloop.controllers.base import ControlContext, Controller
from closedloop.evaluation import (
    SCHEMA,
    SUMMARY_SCHEMA,
    bootstrap_ci,
    compare,
    cvar,
    describe,
    iqm,
    paired_ratio,
    run_episode,
    run_grid,
    summarize,
    worst,
    write_report,
)
from closedloop.evaluation.episode_runner import EPISODE_METRICS
from closedloop.evaluation.episode_spec import EPISODES_DIR
from closedloop.evaluation.grid import grid_specs
from closedloop.evaluation.report import LEADERBOARD_METRICS, report_card
from closedloop.evaluation.stats import resample, row_statistic
from closedloop.evaluation.trace_figures import worst_patient
from closedloop.patients.cohort import HeldOutError, tuning_session

CLINIC = "closedloop/ECAPClinic-Test-v0"
TRACKING = "closedloop/ECAPTracking-Test-v0"
SHORT = {"episode_s": 20}
CALLS = []


class OpenLoop(Controller):
    name = "open"

    def current_ma(self, obs):
        return self.context.calibration.comfort_ma


class Integral(Controller):
    name = "integral"

    def reset(self, context):
        super().reset(context)
        self.i_ma = context.calibration.comfort_ma

    def current_ma(self, obs):
        cal = self.context.calibration
        if obs.detected[0] > 0.5:
            self.i_ma += 0.002 * (self.context.target_uv - obs.ecap_uv[0])
        self.i_ma = min(max(self.i_ma, cal.min_ma), cal.max_ma)
        return self.i_ma


class Spy(OpenLoop):
    """Records what the runner hands over."""

    def reset(self, context):
        super().reset(context)
        self.seen = [("reset", context)]

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        self.seen.append(("predict", obs, state, episode_start, deterministic))
        return super().predict(obs, state, episode_start, deterministic)


class Failing(OpenLoop):
    def current_ma(self, obs):
        if self.steps == 100:
            raise RuntimeError("controller crashed")
        return super().current_ma(obs)


def make_test_controller(name):
    CALLS.append(name)
    return {"open": OpenLoop, "integral": Integral, "failing": Failing}[name]()


def same(a, b):
    """Row equality with NaN == NaN, ignoring the wall time."""
    keys = set(a) | set(b)
    return all(
        k == "wall_s"
        or a.get(k) == b.get(k)
        or (isinstance(a.get(k), float) and math.isnan(a[k]) and math.isnan(b[k]))
        for k in keys
    )


# -- runner ------------------------------------------------------------------------------------


def test_episode_records_every_step_and_skips_warmup():
    res = run_episode(OpenLoop(), CLINIC, "test-000", 0, SHORT)
    traj = res.trajectory
    assert res.n_steps == traj.n_pulses == 20 * 50
    np.testing.assert_allclose(traj.t_s, np.arange(1000) / 50.0)
    assert traj.warmup_s == 10.0
    assert res.metrics["n_pulses"] == 500  # 10 s warm-up at 50 Hz excluded
    assert res.metrics["scored_duration_s"] == pytest.approx(10.0)
    assert set(EPISODE_METRICS) <= set(res.row())
    # open loop: fixed, up to the float32 rounding of the observed current (~6e-8 relative) that
    # its incremental actions correct
    np.testing.assert_allclose(traj.current_ma[1:], traj.current_ma[1], rtol=5e-7)
    assert res.row()["scenario"] == "clinic" and res.row()["patient"] == "test-000"


def test_controller_sees_context_and_arrays_never_the_env():
    spy = Spy()
    run_episode(spy, TRACKING, "test-001", 3, SHORT)
    kind, context = spy.seen[0]
    assert kind == "reset" and isinstance(context, ControlContext)
    calls = spy.seen[1:]
    assert len(calls) == 1000
    for _, obs, state, start, deterministic in calls:
        assert type(obs) is np.ndarray and state is None and deterministic is True
        assert not isinstance(obs, gym.Env) and not isinstance(start, gym.Env)
    assert [bool(c[3][0]) for c in calls[:3]] == [True, False, False]
    assert not any(isinstance(v, gym.Env) for v in vars(spy).values())


def test_same_seed_same_result_and_other_seed_differs():
    a = run_episode(Integral(), TRACKING, "test-000", 7, SHORT).row()
    b = run_episode(Integral(), TRACKING, "test-000", 7, SHORT).row()
    c = run_episode(Integral(), TRACKING, "test-000", 8, SHORT).row()
    assert same(a, b)
    assert a["mad_uv"] != c["mad_uv"]


def test_several_pulses_per_step_record_one_entry_per_step():
    res = run_episode(OpenLoop(), TRACKING, "test-000", 0, {**SHORT, "pulses_per_step": 5})
    assert res.n_steps == res.trajectory.n_pulses == 200
    np.testing.assert_allclose(np.diff(res.trajectory.t_s), 0.1)
    assert res.metrics["n_pulses"] == 100
    assert res.metrics["scored_duration_s"] == pytest.approx(10.0)


# -- grid, resume, atomic writes -----------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rows = run_grid(
        ["open", "integral"],
        [CLINIC, TRACKING],
        ["test-012", "test-016"],
        [0, 1],
        out_dir=out,
        env_overrides=SHORT,
        make_controller=make_test_controller,
        save_trajectories=True,
        progress=False,
    )
    return out, rows


def test_grid_rows_order_and_files(run_dir):
    out, rows = run_dir
    assert len(rows) == 16
    assert [(r["controller"], r["env_id"], r["patient"], r["seed"]) for r in rows[:3]] == [
        ("open", CLINIC, "test-012", 0),
        ("open", CLINIC, "test-012", 1),
        ("open", CLINIC, "test-016", 0),
    ]
    assert len(list((out / EPISODES_DIR).glob("*.json"))) == 16
    assert len(list((out / "trajectories").glob("*.npz"))) == 16
    assert not list(out.rglob("*.tmp"))  # no half-written files
    for path in (out / EPISODES_DIR).glob("*.json"):
        assert json.loads(path.read_text())["format"] == "closedloop.episode/1"


def test_resume_skips_finished_episodes(run_dir, tmp_path):
    out, rows = run_dir
    CALLS.clear()
    again = run_grid(
        ["open", "integral"],
        [CLINIC, TRACKING],
        ["test-012", "test-016"],
        [0, 1],
        out_dir=out,
        env_overrides=SHORT,
        make_controller=make_test_controller,
        progress=False,
    )
    assert CALLS == []
    assert all(same(a, b) and a["wall_s"] == b["wall_s"] for a, b in zip(rows, again, strict=True))
    next(iter((out / EPISODES_DIR).glob("*.json"))).unlink()
    run_grid(
        ["open", "integral"],
        [CLINIC, TRACKING],
        ["test-012", "test-016"],
        [0, 1],
        out_dir=out,
        env_overrides=SHORT,
        make_controller=make_test_controller,
        progress=False,
    )
    assert len(CALLS) == 1


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    grid = dict(
        env_ids=[TRACKING],
        patients=["test-000"],
        seeds=[0, 1, 2],
        out_dir=tmp_path,
        env_overrides=SHORT,
        make_controller=make_test_controller,
        progress=False,
    )
    with pytest.raises(RuntimeError, match="crashed"):
        run_grid({"x": "open", "y": "failing"}, **grid)
    assert len(list((tmp_path / EPISODES_DIR).glob("*.json"))) == 3  # "x" finished
    assert not list(tmp_path.rglob("*.tmp"))
    CALLS.clear()
    rows = run_grid({"x": "open", "y": "integral"}, **grid)
    assert CALLS == ["integral"] * 3 and len(rows) == 6


def test_parallel_equals_serial():
    kw = dict(
        env_ids=[TRACKING],
        patients=["test-000"],
        seeds=[0, 1],
        env_overrides=SHORT,
        make_controller=make_test_controller,
        progress=False,
    )
    serial = run_grid({"i": Integral}, workers=1, **kw)
    parallel = run_grid({"i": Integral}, workers=2, **kw)
    assert all(same(a, b) for a, b in zip(serial, parallel, strict=True))


def test_held_out_patients_refused_inside_tuning():
    grid = dict(controllers={"o": OpenLoop}, env_ids=[TRACKING], seeds=[0])
    with tuning_session("test gains"):
        with pytest.raises(HeldOutError):
            grid_specs(patients="test", **grid)
        with pytest.raises(HeldOutError):
            run_grid(patients=["test-000"], progress=False, **grid)
    assert len(grid_specs(patients="test", **grid)) == 20  # evaluation may use it


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"env_ids": ["closedloop/Nope-v0"]}, ["env_id", "closedloop/ECAPClinic-Test-v0"]),
        ({"seeds": []}, ["seeds is empty"]),
        ({"seeds": [0, 0]}, ["seeds", "duplicates"]),
        ({"seeds": [-1]}, ["seeds[0]=-1", ">= 0"]),
        ({"patients": "tset"}, ["patients='tset'", "train, validation, test"]),
        ({"patients": ["nobody"]}, ["patient='nobody'"]),
        ({"controllers": {}}, ["controllers is empty"]),
        ({"controllers": {"a": 3}}, ["controllers['a']"]),
        ({"workers": 0}, ["workers=0"]),
        ({"save_trajectories": True}, ["save_trajectories", "out_dir"]),
    ],
)
def test_bad_grid_input_names_the_key(kwargs, words):
    grid = (
        dict(
            controllers={"o": OpenLoop},
            env_ids=[TRACKING],
            patients=["test-000"],
            seeds=[0],
            progress=False,
        )
        | kwargs
    )
    with pytest.raises(ConfigError) as err:
        run_grid(**grid)
    for word in words:
        assert word in str(err.value)


def test_runner_sets_the_patient_itself():
    with pytest.raises(ConfigError, match="patient"):
        run_episode(OpenLoop(), TRACKING, "test-000", 0, {"patient": "test-001"})


# -- statistics ----------------------------------------------------------------------------------


def test_iqm_cvar_worst_by_hand():
    x = np.arange(1.0, 9.0)
    assert iqm(x) == 4.5  # mean of 3, 4, 5, 6
    assert iqm(np.arange(1.0, 11.0)) == 5.5  # cut 2 each end: mean of 3..8
    assert iqm([1.0, 2.0, 3.0]) == 2.0
    assert iqm([5.0, np.nan, 1.0, 2.0, 3.0, 4.0]) == 3.0  # NaN left out
    y = np.arange(1.0, 11.0)
    assert cvar(y, 0.2, direction=-1) == 9.5  # lower is better: worst are large
    assert cvar(y, 0.2, direction=1) == 1.5
    assert cvar(y, 0.25, direction=-1) == 9.0  # ceil(2.5) = 3 worst: 8, 9, 10
    assert cvar(y, 1.0, direction=1) == 5.5
    assert worst(y, -1) == 10.0 and worst(y, 1) == 1.0
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 37))
    np.testing.assert_allclose(row_statistic(z, "iqm"), sps.trim_mean(z, 0.25, axis=1))
    np.testing.assert_allclose(row_statistic(z, "median"), np.median(z, axis=1))


def test_stat_errors_name_the_argument():
    with pytest.raises(ConfigError, match="alpha"):
        cvar([1.0, 2.0], 0.0)
    with pytest.raises(ConfigError, match="direction"):
        worst([1.0], 0)
    with pytest.raises(ConfigError, match="stat='mode'.*mean, median, iqm"):
        bootstrap_ci([1.0, 2.0], "mode")
    with pytest.raises(ConfigError, match="mode='x'.*hierarchical"):
        bootstrap_ci([1.0, 2.0], mode="x")


def test_describe_worst_patient_uses_means_over_seeds():
    m = np.array([[1.0, 3.0], [10.0, 12.0], [5.0, np.nan]])
    d = describe(m, direction=-1, alpha=0.34, n_resamples=50)
    assert d["mean"] == pytest.approx(31.0 / 5) and d["n"] == 5
    assert d["worst"] == 11.0 and d["worst_index"] == 1
    assert d["cvar"] == pytest.approx((11.0 + 5.0) / 2)  # ceil(0.34 * 3) = 2 patients
    assert d["mean_lo"] <= d["mean"] <= d["mean_hi"]


def test_bootstrap_is_seeded_and_resamples_whole_patients():
    m = np.arange(12.0).reshape(4, 3)  # patient p holds 3p, 3p+1, 3p+2
    assert bootstrap_ci(m, seed=3) == bootstrap_ci(m, seed=3)
    blocks = resample(m, 200, seed=0).reshape(200, 4, 3) // 3
    assert (blocks == blocks[..., :1]).all()  # seeds drawn within one patient
    assert any(len(set(b[:, 0])) < 4 for b in blocks)  # patients drawn with replacement
    strat = resample(m, 50, seed=0, mode="stratified").reshape(50, 4, 3) // 3
    assert (strat == np.arange(4.0)[None, :, None]).all()  # stratified: every patient kept
    lo, hi = bootstrap_ci(m[:, :1], "mean", mode="stratified")  # one seed: no seed noise
    assert lo == hi == pytest.approx(4.5)


def test_bootstrap_ci_covers_the_true_mean():
    rng = np.random.default_rng(2026)
    hits = 0
    for trial in range(100):
        patient = rng.normal(5.0, 2.0, size=(20, 1))
        m = patient + rng.normal(0.0, 1.0, size=(20, 3))
        lo, hi = bootstrap_ci(m, "mean", n_resamples=400, seed=trial)
        hits += lo <= 5.0 <= hi
    assert hits >= 88


def test_paired_ratio():
    base = np.array([[2.0, 4.0], [6.0, 8.0]])
    r = paired_ratio(base / 2.0, base, "mean", n_resamples=100)
    assert r["ratio"] == 0.5 and r["ratio_lo"] == r["ratio_hi"] == pytest.approx(0.5)
    assert r["value"] == 2.5 and r["baseline"] == 5.0
    with pytest.raises(ConfigError, match="same patients"):
        paired_ratio(base[:1], base)


def synthetic_rows():
    rows = []
    for c, offset in (("base", 0.0), ("good", -1.0)):
        for p in range(4):
            for s in range(2):
                rows.append(
                    {
                        "controller": c,
                        "env_id": "e",
                        "scenario": "x",
                        "patient": f"p{p}",
                        "seed": s,
                        "mad_uv": 10.0 + p + s + offset,
                        "time_in_window_frac": 0.5 + 0.1 * p + offset / 10,
                    }
                )
    return rows


def test_worst_patient_follows_the_metric_direction():
    rows = synthetic_rows()
    assert worst_patient(rows, "good", "e", "mad_uv", -1) == "p3"  # largest error
    assert worst_patient(rows, "good", "e", "time_in_window_frac", 1) == "p0"  # least in window


def test_summarize_and_compare_rows():
    s = summarize(synthetic_rows(), ["mad_uv"], n_resamples=100)
    base = next(r for r in s if r["controller"] == "base")
    assert base["mean"] == 12.0 and base["median"] == 12.0
    assert base["iqm"] == 12.0 and base["worst"] == 13.5 and base["worst_patient"] == "p3"
    assert base["n_patients"] == 4 and base["n_episodes"] == 8
    assert set(base) <= set(SUMMARY_SCHEMA)
    ratios = compare(synthetic_rows(), "base", n_resamples=100)
    mad = next(r for r in ratios if r["metric"] == "mad_uv")
    assert mad["ratio"] == pytest.approx(11.0 / 12.0) and mad["better"]
    with pytest.raises(ConfigError, match="metric.*'madd'.*valid:.*mad_uv"):
        summarize(synthetic_rows(), ["madd"])
    with pytest.raises(ConfigError, match="baseline='ol'.*base, good"):
        compare(synthetic_rows(), "ol")


# -- report --------------------------------------------------------------------------------------


def test_report_files_follow_the_schema(run_dir):
    out, rows = run_dir
    report = write_report(rows, out, baseline="open", n_resamples=200)
    for name in (
        "results.json",
        "results.csv",
        "summary.json",
        "summary.csv",
        "leaderboard.md",
        "report_card.md",
    ):
        assert (out / name).is_file()
    assert not list(out.rglob("*.tmp"))
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == SCHEMA and len(doc["rows"]) == 16
    assert all(set(r) <= set(SCHEMA) for r in doc["rows"])
    with open(out / "results.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(SCHEMA) and len(table) == 16
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["ratio_schema"]) >= set(summary["ratios"][0])
    board = (out / "leaderboard.md").read_text()
    assert "| 1 |" in board and "integral" in board and "Ratio to open" in board
    assert [r["rank"] for r in report.board[CLINIC]] == [1, 2]
    assert "test-016" in (out / "report_card.md").read_text()
    assert LEADERBOARD_METRICS[0] in report.text and "open" in report.text
    assert set(summary["paired_schema"]) == set(summary["paired"][0])
    assert [p["rank_label"] for p in report.paired if p["env_id"] == CLINIC] == [
        r["rank_label"] for r in report.board[CLINIC]
    ]
    assert "leaderboard.txt" in report.paths and "P(better than open)" in board
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    per_controller = 4 * 2  # patients and trace, 2 controllers x 2 envs
    per_env = len(LEADERBOARD_METRICS) + 2  # a strip plot per metric, forest, top traces
    assert "integral-ECAPClinic-Test-v0-trace.png" in pngs
    assert "forest-ECAPClinic-Test-v0-time_in_window_frac.png" in pngs
    assert "traces-ECAPClinic-Test-v0.png" in pngs
    assert len(pngs) == per_controller + 2 * per_env
    assert all((out / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


@pytest.mark.parametrize("damage", [b"not a zip", b"PK\x03\x04truncated", "empty-npz"])
def test_a_damaged_trajectory_in_the_run_folder_is_named(run_dir, tmp_path, damage):
    import shutil

    out, rows = run_dir
    copy = tmp_path / "run"
    shutil.copytree(out / "trajectories", copy / "trajectories")
    for npz in (copy / "trajectories").glob("*.npz"):
        if damage == "empty-npz":
            np.savez(npz, other=np.zeros(1))
        else:
            npz.write_bytes(damage)
    with pytest.raises(ConfigError, match=r"trajectories/[0-9a-f]+\.npz is not a saved traj"):
        write_report(rows, copy, baseline="open", n_resamples=20)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: iqm("abc"), "values=.*'abc'.* must hold real numbers"),
        (lambda: cvar(np.arange(4.0), "a"), "alpha='a' must be a number"),
        (lambda: cvar(np.arange(4.0), math.nan), "alpha=nan is out of range"),
        (
            lambda: bootstrap_ci(np.arange(4.0), n_resamples=2.5),
            "n_resamples=2.5 must be an integer",
        ),
        (lambda: bootstrap_ci(np.arange(4.0), n_resamples=10**12), r"n_resamples=.* out of range"),
        (lambda: bootstrap_ci(np.arange(4.0), seed=-1), "seed=-1 is out of range"),
        (lambda: bootstrap_ci(np.arange(4.0), confidence=1.0), r"confidence=1.0 .* \(0, 1\)"),
        (lambda: bootstrap_ci(np.array([1, "a"], dtype=object)), "values=.* must hold real"),
        (lambda: summarize("abc"), "rows='abc' must be a list of result rows"),
        (lambda: summarize(["a"]), r"rows\[0\]='a' is not a result row"),
        (lambda: summarize({"controller": "x"}), "must be a list of result rows"),
    ],
)
def test_bad_statistics_input_is_named(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_report_card_flags_the_worst_patients():
    card = report_card(synthetic_rows(), ["mad_uv"], alpha=0.25)
    p3 = card.split("### p3")[1]
    assert p3.count("⚠") == 2 and card.count("⚠") == 3  # p3 for both, legend once


def test_long_traces_are_drawn_as_a_one_second_moving_mean():
    from types import SimpleNamespace

    from closedloop.evaluation.trace_figures import SMOOTH_AFTER_S, _smoothed

    rng = np.random.default_rng(0)
    rate = 50.0
    t = np.arange(int((SMOOTH_AFTER_S + 30) * rate)) / rate
    y = rng.normal(20.0, 5.0, t.size)
    ts, ys, label = _smoothed(SimpleNamespace(t_s=t, ecap_true_uv=y, rate_hz=rate))
    ref = np.convolve(y, np.ones(50) / 50, mode="valid")
    assert "1-s mean" in label and ts.size == ref.size and ts[0] == t[49]
    np.testing.assert_allclose(ys, ref, rtol=1e-12, atol=1e-9)
    short = SimpleNamespace(t_s=t[:100], ecap_true_uv=y[:100], rate_hz=rate)
    ts, ys, label = _smoothed(short)
    assert np.array_equal(ys, y[:100]) and "mean" not in label
