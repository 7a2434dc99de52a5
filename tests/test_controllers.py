"""Controllers: the PID core on an analytic plant, each controller's mechanisms on a synthetic
growth curve, every spec in a short closed loop on the real env, and the spec registry."""

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest

import closedloop  # noqa: F401  (registers the env ids)
from closedloop._config import ConfigError, describe
from closedloop.controllers import (
    CONTROLLER_TYPES,
    MPC,
    PID,
    AdaptiveInverse,
    AdaptiveInverseParams,
    Ceiling,
    ClinicalLoop,
    ClinicalLoopParams,
    ControlContext,
    MPCParams,
    PIDCore,
    PIDParams,
    SB3Policy,
    list_agents,
    load_agent_spec,
    make_controller,
)
from closedloop.controllers.base import Observation
from closedloop.controllers.registry import parse_agent_spec
from closedloop.envs.config import EnvConfig
from closedloop.patients.calibration import CalibrationRecord, PostureCalibration

DT = 0.02
CLOSED_LOOP_SPECS = [
    "p",
    "pi",
    "pid",
    "clinical-loop",
    "clinical-loop-log",
    "ceiling",
    "adaptive-inverse",
    "mpc",
]


# -- PID core on an analytic first-order plant ------------------------------------------------


def _first_order(core, setpoint, steps, dt=0.01, gain=2.0, tau_s=0.5, disturbance=None):
    """Play ``core`` on dy/dt = (gain (u + d) - y) / tau, exactly discretised; (y, u) arrays."""
    a = math.exp(-dt / tau_s)
    y, ys, us = 0.0, [], []
    for k in range(steps):
        u = core.update(setpoint - y, y, dt)
        d = 0.0 if disturbance is None else disturbance(k * dt)
        y = a * y + (1.0 - a) * gain * (u + d)
        ys.append(y)
        us.append(u)
    return np.array(ys), np.array(us)


def test_pi_step_response_reaches_the_setpoint_without_offset():
    core = PIDCore(PIDParams(kp_ma_per_uv=0.5, ki_ma_per_uv_s=2.0))
    y, _ = _first_order(core, 1.0, 1000)
    assert abs(y[-1] - 1.0) < 1e-4
    assert y[100] > 0.5  # and gets most of the way within a second


def test_p_only_leaves_the_textbook_steady_state_error():
    kp, gain = 0.8, 2.0
    core = PIDCore(PIDParams(kp_ma_per_uv=kp, ki_ma_per_uv_s=0.0))
    core.reset(0.0, error=0.0)  # bias 0: u = kp e
    y, _ = _first_order(core, 1.0, 1000, gain=gain)
    assert y[-1] == pytest.approx(kp * gain / (1.0 + kp * gain), rel=1e-3)


def test_gains_are_in_simulated_time():
    """Halving the control period leaves the response (in seconds) nearly unchanged."""
    ys = []
    for dt in (0.01, 0.005):
        core = PIDCore(PIDParams(kp_ma_per_uv=0.2, ki_ma_per_uv_s=1.0))
        y, _ = _first_order(core, 1.0, int(round(1.0 / dt)), dt=dt)
        ys.append(y[-1])
    assert ys[0] == pytest.approx(ys[1], rel=0.02)


def _first_order_setpoints(core, setpoints, dt=0.01, gain=2.0, tau_s=0.5):
    a = math.exp(-dt / tau_s)
    y, ys, us = 0.0, [], []
    for r in setpoints:
        u = core.update(r - y, y, dt)
        y = a * y + (1.0 - a) * gain * u
        ys.append(y)
        us.append(u)
    return np.array(ys), np.array(us)


@pytest.mark.parametrize("scheme", ["back-calculation", "clamp"])
def test_anti_windup_leaves_saturation_at_once(scheme):
    """Setpoint 3 is out of reach (output <= 1, plant gain 2) for 5 s, then drops to 1."""
    setpoints = np.r_[np.full(500, 3.0), np.full(1000, 1.0)]

    def run(anti_windup):
        params = PIDParams(
            kp_ma_per_uv=0.5, ki_ma_per_uv_s=2.0, anti_windup=anti_windup, tracking_tau_s=0.05
        )
        y, u = _first_order_setpoints(PIDCore(params, -1.0, 1.0), setpoints)
        return 0.01 * np.sum(y[500:] > 1.1), y, u  # time above 1.1 after the drop (s)

    wound, _, u_none = run("none")
    t_above, y, u = run(scheme)
    assert u[:500].max() == 1.0 and np.all(np.abs(u) <= 1.0)  # saturated, limits held
    assert wound > 3.0  # integrator wound up
    assert t_above < 0.6 and t_above < 0.2 * wound
    assert abs(y[-1] - 1.0) < 1e-3


def test_output_and_rate_limits_hold():
    params = PIDParams(kp_ma_per_uv=3.0, ki_ma_per_uv_s=20.0, rate_limit_ma_per_s=5.0)
    core = PIDCore(params, out_min=1.0, out_max=4.0)
    core.reset(2.0)
    noise = np.random.default_rng(0).normal(0.0, 5.0, 300)
    errors = np.r_[np.full(100, 5.0), np.full(100, -5.0), noise]
    u = np.array([core.update(e, 0.0, DT) for e in errors])
    assert u.min() >= 1.0 and u.max() <= 4.0
    assert np.abs(np.diff(np.r_[2.0, u])).max() <= 5.0 * DT + 1e-12
    assert u.min() == 1.0 and u.max() == 4.0  # the limits were reached, not just respected


def test_derivative_is_first_order_filtered_and_on_the_measurement():
    kd, tau = 0.3, 0.1
    core = PIDCore(
        PIDParams(kp_ma_per_uv=0.0, ki_ma_per_uv_s=0.0, kd_ma_s_per_uv=kd, derivative_tau_s=tau)
    )
    core.reset(0.0, error=0.0)
    core.update(0.0, 0.0, DT)
    out = [core.update(-1.0, 1.0, DT) for _ in range(5)]  # measurement steps 0 -> 1
    first = -kd / (tau + DT)  # -kd/dt * dt/(tau+dt)
    assert out[0] == pytest.approx(first)
    assert out[1:] == pytest.approx([first * (tau / (tau + DT)) ** k for k in range(1, 5)])
    assert core.update(5.0, 1.0, DT) == pytest.approx(out[-1] * tau / (tau + DT))  # no kick


def test_bumpless_transfer():
    core = PIDCore(PIDParams(kp_ma_per_uv=0.05, ki_ma_per_uv_s=0.5), 0.0, 10.0)
    core.reset(3.7)
    assert core.update(12.0, 8.0, DT) == 3.7  # the first output is the delivered one
    assert abs(core.update(12.0, 8.0, DT) - 3.7) == pytest.approx(0.5 * 12.0 * DT)


def test_pid_controller_starts_from_the_delivered_current():
    ctl = PID(PIDParams(kp_ma_per_uv=0.1, ki_ma_per_uv_s=1.0))
    ctl.reset(_context())
    action, _ = ctl.predict(_obs(ecap=0.0, detected=0.0, current=5.5))
    assert action[0] == 0.0  # incremental mode: no change requested
    action, _ = ctl.predict(_obs(ecap=10.0, detected=1.0, current=5.5))
    assert action[0] > 0.0 and ctl.t_s == pytest.approx(2 * DT)


def test_slope_scheduled_gains_scale_with_the_calibrated_slope():
    params = PIDParams(
        kp_ma_per_uv=0.015, ki_ma_per_uv_s=1.0, kd_ma_s_per_uv=0.001, slope_scheduled=True
    )
    steep = params.scheduled(60.0)
    assert (steep.kp_ma_per_uv, steep.ki_ma_per_uv_s, steep.kd_ma_s_per_uv) == pytest.approx(
        (0.015 / 4, 0.25, 0.001 / 4)
    )
    assert PIDParams(ki_ma_per_uv_s=1.0).scheduled(60.0).ki_ma_per_uv_s == 1.0
    ctl = PID(params)
    ctl.reset(_context(slope=60.0, threshold=1.0))
    assert ctl.core.params.ki_ma_per_uv_s == pytest.approx(0.25)


# -- synthetic growth curve -------------------------------------------------------------------


def _calibration(slope=15.0, threshold=4.0, target=30.0, max_ma=9.0, discomfort_uv=60.0):
    pc = PostureCalibration("sitting", 3.5, threshold, slope, threshold, max_ma, 5.0, discomfort_uv)
    comfort = threshold + target / slope
    return CalibrationRecord(
        "synthetic", 250.0, 50.0, "sitting", (pc,), target, comfort, 0.0, max_ma, comfort, 10.0
    )


def _context(**kw):
    return ControlContext(calibration=_calibration(**kw), target_uv=kw.get("target", 30.0), dt_s=DT)


def _obs(ecap, detected, current, target=30.0, history=4):
    return np.r_[
        np.full(history, ecap), np.full(history, detected), np.full(history, current), target
    ].astype(np.float32)


def _play(ctl, ctx, steps, threshold, slope=None, noise_uv=0.0, seed=0):
    """Closed loop on ECAP = scale (I / th(k) - 1) (slope x threshold constant), with the
    context's action mode; ``threshold(k)`` in mA. Returns (ecap, current) arrays."""
    cal, rng = ctx.calibration, np.random.default_rng(seed)
    mapping = EnvConfig(action_mode=ctx.action_mode)
    scale = cal.reference.slope_uv_per_ma * cal.reference.ecap_threshold_ma
    h, current = ctx.history, cal.comfort_ma
    hist = np.zeros((3, h))
    hist[2] = current
    ctl.reset(ctx)
    out = []
    for k in range(steps):
        action, _ = ctl.predict(np.r_[hist.ravel(), ctx.target_uv])
        current = max(
            float(mapping.requested_ma(float(action[0]), current, cal.min_ma, cal.max_ma)), 0.0
        )
        th = threshold(k)
        s = scale / th if slope is None else slope
        ecap = max(s * (current - th), 0.0) + rng.normal(0.0, noise_uv)
        hist[:, 1:] = hist[:, :-1]
        hist[:, 0] = ecap, float(ecap > 5.0), current
        out.append((ecap, current))
    return np.array(out).T


def _posture_change(k):
    return 4.0 if k < 100 else 2.5  # cord moves closer: threshold falls


@pytest.mark.parametrize(
    "spec", ["pi", "pid", "clinical-loop", "clinical-loop-log", "adaptive-inverse", "mpc"]
)
def test_controllers_return_to_target_after_a_posture_change(spec):
    ecap, _ = _play(make_controller(spec), _context(), 300, _posture_change, noise_uv=1.0)
    assert ecap[90:100].mean() == pytest.approx(30.0, abs=2.0)
    assert ecap[100] > 45.0  # the disturbance really hit
    assert ecap[250:].mean() == pytest.approx(30.0, abs=2.0)


def test_clinical_loop_gain_is_compensated_by_the_slope():
    moves = []
    for slope in (8.0, 40.0):
        ctl = ClinicalLoop(ClinicalLoopParams(slope_source="calibration", loop_gain_per_s=10.0))
        ctl.reset(_context(slope=slope))
        ctl.predict(_obs(30.0, 1.0, 6.0))
        action, _ = ctl.predict(_obs(20.0, 1.0, 6.0))
        moves.append(action[0] * 0.5 * slope)  # ΔI * slope in µV
    assert moves == pytest.approx([10.0 * DT * 10.0] * 2)


def test_clinical_loop_backs_off_fast_on_overshoot():
    def down(backoff):
        ctl = ClinicalLoop(
            ClinicalLoopParams(
                slope_source="calibration",
                backoff_gain=backoff,
                overshoot_rel=0.3,
                loop_gain_per_s=2.0,
                backoff_filter_s=0.0,
            )
        )
        ctl.reset(_context())
        ctl.predict(_obs(30.0, 1.0, 6.0))
        return ctl.predict(_obs(50.0, 1.0, 6.0))[0][0]

    assert down(4.0) == pytest.approx(4.0 * down(1.0))
    assert down(1.0) < 0.0


def test_clinical_loop_filtered_backoff_ignores_one_noisy_reading_but_not_an_overshoot():
    def moves(readings, backoff_filter_s):
        ctl = ClinicalLoop(
            ClinicalLoopParams(
                slope_source="calibration",
                backoff_gain=4.0,
                overshoot_rel=0.3,
                loop_gain_per_s=2.0,
                backoff_filter_s=backoff_filter_s,
            )
        )
        ctl.reset(_context())
        ctl.predict(_obs(30.0, 1.0, 6.0))
        return [ctl.predict(_obs(r, 1.0, 6.0))[0][0] for r in readings]

    plain = moves([30.0, 50.0], 0.0)[1]  # 0 s: each reading is tested
    # 0.1 s at 20 ms steps: one 50 µV reading after 30 µV ones filters to 34 µV < 39 µV
    one = moves([30.0, 50.0], 0.1)[1]
    assert one == pytest.approx(plain / 4.0)  # no back-off: the plain gain
    # a sustained 50 µV overshoot crosses 39 µV after a few readings and backs off
    # (30, 34, 37.2, 39.8 µV: from the third 50 µV reading on)
    sustained = moves([30.0] + [50.0] * 4, 0.1)
    assert sustained[1:3] == pytest.approx([plain / 4.0] * 2)
    assert sustained[3:] == pytest.approx([plain] * 2)
    with pytest.raises(ConfigError, match="backoff_filter_s"):
        ClinicalLoopParams(backoff_filter_s=-1.0)


def test_clinical_loop_log_domain_is_multiplicative_and_stays_positive():
    def loop(log_domain):
        ctl = ClinicalLoop(
            ClinicalLoopParams(
                slope_source="calibration",
                log_domain=log_domain,
                loop_gain_per_s=50.0,
                clinician_limits=False,
            )
        )
        ctl.reset(ControlContext(_calibration(), 30.0, DT, action_mode="multiplicative"))
        ctl.predict(_obs(30.0, 1.0, 1.0))
        return ctl

    ctl = loop(True)
    for current in (1.0, 4.0):
        a = ctl.predict(_obs(32.0, 1.0, current))[0][0]
        assert a * 0.2 == pytest.approx(-50.0 * DT * 2.0 / 15.0 / current)  # Δlog I
    huge = Observation.parse(_obs(600.0, 1.0, 2.0), 4)  # a huge overshoot
    assert loop(False).current_ma(huge) == 0.0
    assert 0.0 < loop(True).current_ma(huge) < 0.01


def test_clinical_loop_falls_back_to_the_fixed_current_and_resumes():
    ctx = ControlContext(_calibration(), 30.0, DT, action_mode="absolute")
    ctl = ClinicalLoop(ClinicalLoopParams(fallback_after_s=0.5))
    ctl.reset(ctx)
    absolute = EnvConfig(action_mode="absolute")
    fallback = ctx.calibration.fallback_ma
    currents = [6.0]
    for _ in range(40):  # ECAP lost: 0.8 s
        a, _ = ctl.predict(_obs(0.0, 0.0, currents[-1]))
        currents.append(absolute.requested_ma(float(a[0]), currents[-1], 0.0, 9.0))
    n = int(round(0.5 / DT))
    assert currents[n] > 6.5  # integral action first ...
    assert currents[n + 1] == pytest.approx(fallback, abs=1e-6)  # ... then the fallback
    assert currents[-1] == pytest.approx(fallback, abs=1e-6)
    a, _ = ctl.predict(_obs(20.0, 1.0, fallback))  # detected again: resume
    assert absolute.requested_ma(float(a[0]), fallback, 0.0, 9.0) > fallback


def test_clinical_loop_respects_clinician_limits():
    ctx = _context(max_ma=6.5)
    _, currents = _play(ClinicalLoop(), ctx, 200, lambda k: 5.0)  # target out of reach
    assert currents.max() <= 6.5 + 1e-9 and currents[-1] == pytest.approx(6.5)


def test_ceiling_only_cuts_and_ramps_back_to_comfort():
    ctx = _context()
    comfort = ctx.calibration.comfort_ma
    ecap, currents = _play(Ceiling(), ctx, 400, lambda k: 3.0 if k < 200 else 5.0)
    assert currents.max() <= comfort + 1e-9  # never above comfort
    assert ecap[100:200].mean() < 1.35 * 30.0 < ecap[:200].max()  # held near the ceiling
    assert currents[-1] == pytest.approx(comfort)  # back at comfort
    assert ecap[-1] < 0.5 * 30.0  # and does not push up


def test_adaptive_inverse_identifies_threshold_and_slope():
    ctl = AdaptiveInverse(AdaptiveInverseParams())
    ecap, _ = _play(ctl, _context(), 400, lambda k: 3.0, noise_uv=1.0)
    assert ctl.threshold_ma == pytest.approx(3.0, rel=0.1)
    assert ctl.slope_uv_per_ma == pytest.approx(20.0, rel=0.1)
    assert ecap[-100:].mean() == pytest.approx(30.0, abs=1.5)


def test_mpc_keeps_discomfort_as_a_constraint():
    """With a heavy move penalty tracking alone is slow; the discomfort bound still cuts."""

    def run(margin):
        ctl = MPC(MPCParams(move_penalty=1e4, discomfort_margin=margin))
        return _play(
            ctl, _context(discomfort_uv=50.0), 200, lambda k: 4.0 if k < 50 else 2.0, noise_uv=1.0
        )

    ecap, currents = run(0.9)
    loose, _ = run(10.0)
    assert ecap[60:100].max() < 0.9 * 50.0 * 1.15
    assert loose[60:100].mean() > 50.0
    assert np.abs(np.diff(currents[:50])).max() <= 10.0 * DT + 1e-9  # rate limit


def test_mpc_steps_give_bounded_actions():
    # (its speed, about 0.1 ms a step, is measured by benchmarks/bench_steps.py, not here)
    ctl = MPC()
    ctl.reset(_context())
    acts = np.array([ctl.predict(_obs(30.0 + 3.0 * math.sin(k), 1.0, 6.0))[0] for k in range(300)])
    assert np.isfinite(acts).all() and np.abs(acts).max() <= 1.0


def test_sb3_policy_wrapper():
    class Fixed:
        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.array([0.25], np.float32), state

    ctl = SB3Policy(Fixed())
    with pytest.raises(ConfigError, match="before reset"):
        ctl.predict(_obs(30.0, 1.0, 6.0))
    ctl.reset(_context())
    action, state = ctl.predict(_obs(30.0, 1.0, 6.0), state="h")
    assert action.tolist() == [0.25] and state == "h" and ctl.t_s == pytest.approx(DT)
    with pytest.raises(ConfigError, match="predict"):
        SB3Policy(object())


# -- short closed loops on the real env -------------------------------------------------------


def _episode(env, ctl, seed):
    obs, info = env.reset(seed=seed)
    cal = env.unwrapped.calibration
    ctl.reset(ControlContext.from_env(env.unwrapped.spec_.config, cal, info["target_uv"]))
    err, win, over, actions = [], [], [], []
    while True:
        action, _ = ctl.predict(obs)
        obs, _, _, truncated, info = env.step(action)
        actions.append(float(action[0]))
        if ctl.t_s > cal.warmup_s:
            err.append(abs(info["ecap_true_uv"] - env.unwrapped.target_uv))
            win.append(info["in_window"])
            over.append(info["overstim"])
        if truncated:
            break
    onsets = int(np.sum(np.diff(np.r_[0, np.array(over, int)]) == 1))
    return {
        "mad": float(np.mean(err)) if err else math.nan,
        "win": float(np.mean(win)) if win else math.nan,
        "over": onsets,
        "actions": actions,
    }


@pytest.fixture(scope="module")
def clinic():
    """Every spec on a test-cohort patient: supine (open loop overstimulates), then sitting.

    test-012 has a target inside its window and an unmoved lead (not one of the cohort's
    closed-loop failures, which no controller can fix), and open loop overstimulates it supine.
    """
    env = gym.make("closedloop/ECAPClinic-Test-v0", episode_s=70.0, patient="test-012")
    return {name: _episode(env, make_controller(name), seed=0) for name in list_agents()}


@pytest.mark.parametrize("spec", CLOSED_LOOP_SPECS)
def test_closed_loop_beats_open_loop_through_a_posture_change(clinic, spec):
    if spec == "p":  # a P loop keeps an offset proportional to the disturbance
        assert clinic[spec]["mad"] < 0.95 * clinic["open-loop"]["mad"]
        return
    assert clinic[spec]["mad"] < 0.8 * clinic["open-loop"]["mad"]
    assert clinic[spec]["win"] > clinic["open-loop"]["win"]


def test_clinical_loop_and_pid_overstimulate_less_through_coughs():
    # Summed over six episodes (each seed draws a patient and that patient's day): one episode
    # can be a patient whose window takes every cough (open loop 0 onsets at seed 3).
    env = gym.make("closedloop/ECAPCoughStorm-Test-v0", episode_s=60.0)
    over = {
        name: sum(_episode(env, make_controller(name), seed=s)["over"] for s in range(6))
        for name in ("open-loop", "clinical-loop", "pid")
    }
    assert over["open-loop"] >= 10
    assert over["clinical-loop"] < 0.7 * over["open-loop"]
    assert over["pid"] < 0.7 * over["open-loop"]


def test_no_state_is_carried_across_episodes():
    env = gym.make("closedloop/ECAPClinic-Test-v0", episode_s=12.0)
    for name in ("pid", "clinical-loop", "adaptive-inverse", "mpc"):
        ctl = make_controller(name)
        first = _episode(env, ctl, seed=1)["actions"]
        _episode(env, ctl, seed=2)
        assert _episode(env, ctl, seed=1)["actions"] == first, name


def test_a_real_sb3_policy_plugs_in_unchanged():
    from stable_baselines3 import PPO

    env = gym.make("closedloop/ECAPClinic-Test-v0", episode_s=2.0)
    ctl = SB3Policy(PPO("MlpPolicy", env, n_steps=64, seed=0, device="cpu"))
    run = _episode(env, ctl, seed=0)
    assert len(run["actions"]) == 100 and ctl.t_s == pytest.approx(2.0)


# -- specs and the registry -------------------------------------------------------------------


def test_every_spec_loads_and_builds():
    names = list_agents()
    assert {"open-loop", *CLOSED_LOOP_SPECS} <= set(names)
    for name in names:
        spec = load_agent_spec(name)
        ctl = spec.build()
        assert spec.name == name and spec.description
        assert isinstance(ctl, CONTROLLER_TYPES[spec.controller])
        ctl.reset(_context())
        assert np.isfinite(ctl.predict(_obs(30.0, 1.0, 6.0))[0]).all()


def test_every_parameter_has_unit_range_and_doc():
    for cls in CONTROLLER_TYPES.values():
        rows = describe(cls.params_type)
        assert rows and all(r["unit"] and r["doc"] and r["source"] for r in rows), cls


def test_a_tuning_record_is_kept():
    spec = parse_agent_spec(
        {
            "name": "pi-tuned",
            "controller": "pid",
            "params": {"ki_ma_per_uv_s": 0.3},
            "tuning": {"budget": 40, "split": "train"},
        }
    )
    assert spec.tuning == {"budget": 40, "split": "train"} and spec.params.ki_ma_per_uv_s == 0.3
    assert load_agent_spec("pi").tuning is None


def test_overrides_replace_spec_values():
    ctl = make_controller("pi", ki_ma_per_uv_s=0.5)
    assert ctl.params.ki_ma_per_uv_s == 0.5
    assert ctl.params.kp_ma_per_uv == load_agent_spec("pi").params.kp_ma_per_uv


@pytest.mark.parametrize(
    "doc, match",
    [
        (
            {"name": "x", "controller": "fuzzy"},
            r"controller='fuzzy' is unknown; valid: adaptive-inverse, ceiling, clinical-loop, mpc, "
            r"open-loop, pid, or module:Class",
        ),
        ({"name": "x"}, r"missing key 'controller'"),
        ({"controller": "pid"}, r"missing key 'name'"),
        ({"name": 3, "controller": "pid"}, r"name=3 must be a non-empty string"),
        ({"name": "x", "controller": "pid", "gains": {}}, r"unknown key\(s\) gains.*valid: name"),
        ({"name": "x", "controller": "pid", "params": 1.0}, r"params=1.0 must be a table"),
        ({"name": "x", "controller": "pid", "tuning": 3}, r"tuning=3 must be a table"),
        (
            {"name": "x", "controller": "pid", "params": {"kp": 1.0}},
            r"unknown parameter\(s\) kp .*known: .*kp_ma_per_uv",
        ),
        (
            {"name": "x", "controller": "pid", "params": {"kp_ma_per_uv": -0.1}},
            r"kp_ma_per_uv=-0.1 is out of range; valid range \[0, 10\] mA/µV",
        ),
        (
            {"name": "x", "controller": "clinical-loop", "params": {"loop_gain_per_s": -5.0}},
            r"loop_gain_per_s=-5.0 is out of range; valid range \[0, 1000\] 1/s",
        ),
        (
            {"name": "x", "controller": "pid", "params": {"ki_ma_per_uv_s": "fast"}},
            r"ki_ma_per_uv_s='fast' must be a number in \[0, 1000\]",
        ),
        (
            {"name": "x", "controller": "pid", "params": {"anti_windup": "magic"}},
            r"anti_windup='magic' is invalid; valid: one of 'back-calculation', 'clamp', 'none'",
        ),
    ],
)
def test_bad_specs_name_the_key_and_the_valid_range(doc, match):
    with pytest.raises(ConfigError, match=match):
        parse_agent_spec(doc)


def test_unknown_names_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match=r"controller='nope' is unknown; valid: .*clinical-loop"):
        make_controller("nope")
    with pytest.raises(ConfigError, match=r"kd_ma_s_per_uv=-1 is out of range; valid range"):
        make_controller("pid", kd_ma_s_per_uv=-1)
    (tmp_path / "broken.toml").write_text("name = 'broken'\ncontroller = \n")
    with pytest.raises(ConfigError, match=r"broken.toml: malformed TOML"):
        list_agents(tmp_path)
    (tmp_path / "broken.toml").write_text("name = 'a'\ncontroller = 'pid'\n")
    (tmp_path / "other.toml").write_text("name = 'a'\ncontroller = 'mpc'\n")
    with pytest.raises(ConfigError, match=r"duplicate agent name 'a'"):
        list_agents(tmp_path)


def test_controller_params_default_and_wrong_type_is_named():
    from closedloop.controllers.mpc import MPC, MPCParams
    from closedloop.controllers.pid import PID, PIDParams

    assert MPC().params == MPCParams()
    assert PID(PIDParams(kp_ma_per_uv=0.01)).params.kp_ma_per_uv == 0.01
    with pytest.raises(ConfigError, match="params=PIDParams is not valid for MPC; expected MPC"):
        MPC(PIDParams())


BAD_PARAM_VALUES = ([1.0], (1.0,), "1.0", None, 1 + 0j, True, {"a": 1}, np.array([1.0]), math.nan)


@pytest.mark.parametrize("name", list_agents())
def test_every_spec_parameter_refuses_values_of_the_wrong_type(name):
    """kp_ma_per_uv=[1.0] ran on (or crashed mid-episode): every field is checked by its type."""
    params = load_agent_spec(name).params
    for f in dataclasses.fields(params):
        kind = type(getattr(params, f.name))
        for bad in BAD_PARAM_VALUES:
            if kind is bool and bad is True:
                continue
            with pytest.raises(ConfigError, match=f.name) as err:
                make_controller(name, **{f.name: bad})
            assert "valid" in str(err.value) or "must be" in str(err.value)
        if kind is int:
            with pytest.raises(ConfigError, match=f"{f.name}=2.5 must be an integer"):
                make_controller(name, **{f.name: 2.5})


def test_integer_parameters_take_numpy_integers_and_refuse_floats():
    assert make_controller("mpc", horizon_steps=np.int64(4)).params.horizon_steps == 4
    with pytest.raises(ConfigError, match=r"horizon_steps=4.0 must be an integer in \[1, 100\]"):
        make_controller("mpc", horizon_steps=4.0)


@pytest.mark.parametrize(
    "obs",
    [
        "abc",
        {"ecap": 1.0},
        None,
        np.array([None] * 13, dtype=object),
        [[1.0], [1.0, 2.0]],
        np.zeros(13, complex),
        np.zeros(13, bool),
        np.zeros((2, 13)),
        np.zeros(5),
        np.r_[np.full(8, 5.0), np.nan, np.full(4, 5.0)],
        np.r_[np.zeros(12), np.inf],
    ],
)
def test_predict_with_a_malformed_observation_raises_config_error(obs):
    ctl = make_controller("pi")
    ctl.reset(_context())
    with pytest.raises(ConfigError, match="observation"):
        ctl.predict(obs)


@pytest.mark.parametrize("spec", [5, None, ["pi"], 1.5])
def test_make_controller_of_a_non_spec_and_reset_of_a_non_context(spec):
    with pytest.raises(ConfigError):
        make_controller(spec)
    with pytest.raises(ConfigError, match="unknown"):
        load_agent_spec(spec)
    with pytest.raises(ConfigError, match="expected a ControlContext"):
        make_controller("pi").reset(spec)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((PIDParams(), "0", 1.0), "out_min='0' must be <= out_max=1.0"),
        ((PIDParams(), 2.0, 1.0), "out_min=2.0 must be <= out_max=1.0"),
        ((PIDParams(), 0.0, np.nan), "out_max=nan"),
        (({"kp_ma_per_uv": 1.0},), "params=dict is not valid for PIDCore"),
    ],
)
def test_pid_core_arguments(args, needle):
    with pytest.raises(ConfigError) as err:
        PIDCore(*args)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"target_uv": "30"}, "context.target_uv='30' must be a number in (0, inf) µV"),
        ({"target_uv": np.nan}, "context.target_uv=nan is out of range"),
        ({"dt_s": 0.0}, "context.dt_s=0.0 is out of range; valid range (0, inf) s"),
        ({"history": 2.5}, "context.history=2.5 must be an integer in [1, 1000]"),
        (
            {"action_mode": "relative"},
            "context.action_mode='relative' is invalid; valid: one of 'absolute'",
        ),
        ({"max_delta_ma": [0.5]}, "context.max_delta_ma=[0.5] must be a number"),
        ({"n_actions": 2}, "context.n_actions=2 is invalid; valid: one of 1, 3"),
    ],
)
def test_control_context_fields_are_checked(change, needle):
    with pytest.raises(ConfigError) as err:
        dataclasses.replace(_context(), **change)
    assert needle in str(err.value)


def test_a_spec_file_with_an_empty_name_is_named(tmp_path):
    (tmp_path / "blank.toml").write_text("name = ''\ncontroller = 'pid'\n")
    with pytest.raises(ConfigError, match="blank.toml: name='' must be a non-empty string"):
        list_agents(tmp_path)


def test_a_controller_class_registers_itself_by_name():
    from closedloop.controllers import Controller

    @dataclasses.dataclass(frozen=True)
    class HoldParams:
        current_ma: float = 2.0

    try:

        class Hold(Controller):
            name = "test-hold"
            params_type = HoldParams

            def current_ma(self, obs):
                return self.params.current_ma

        assert CONTROLLER_TYPES["test-hold"] is Hold
        ctl = make_controller({"name": "h", "controller": "test-hold", "params": {}})
        assert isinstance(ctl, Hold) and ctl.params == HoldParams()
        with pytest.raises(ConfigError, match="'pid' of .*Clash is taken by"):

            class Clash(Controller):
                name = "pid"
                params_type = HoldParams

        class Helper(Controller):  # no own name and params type: not registered
            pass

        assert "controller" not in CONTROLLER_TYPES and Helper not in CONTROLLER_TYPES.values()
    finally:
        CONTROLLER_TYPES.pop("test-hold", None)
