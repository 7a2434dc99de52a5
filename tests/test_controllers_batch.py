"""The batch protocol: predict_many equals each episode's own predict bit for bit, and checks its
inputs. Closed loops on synthetic growth curves (no env), so every branch of the laws is played:
posture changes, lost ECAPs (the clinical loop's fallback), overshoot, the current limits."""

import math

import numpy as np
import pytest

import closedloop  # noqa: F401  (registers the env ids)
from closedloop._config import ConfigError
from closedloop.controllers import PID, ControlContext, OpenLoop, list_agents, make_controller
from closedloop.controllers.batch import BatchController
from closedloop.envs.config import EnvConfig
from closedloop.patients.calibration import CalibrationRecord, PostureCalibration

DT = 0.02
H = 4
BATCHED = [
    "open-loop",
    "p",
    "pi",
    "pid",
    "pid-tuned",
    "clinical-loop",
    "clinical-loop-log",
    "clinical-loop-tuned",
    "ceiling",
    "adaptive-inverse",
    "mpc",
]
"""The specs whose controllers play batches: every shipped spec (issue 18 batched MPC last)."""


def _context(i, action_mode="incremental", **kw):
    """Episode ``i``'s context: each episode has its own growth curve, target and limits."""
    slope, threshold, target = 8.0 + 7.0 * i, 2.5 + 0.6 * i, 20.0 + 6.0 * i
    max_ma = threshold + 2.0 * target / slope
    pc = PostureCalibration("sitting", 3.5, threshold, slope, threshold, max_ma, 5.0, 1.8 * target)
    comfort = threshold + target / slope
    cal = CalibrationRecord(
        f"synthetic-{i}",
        250.0,
        50.0,
        "sitting",
        (pc,),
        target,
        comfort,
        0.1 * i,
        max_ma,
        0.9 * comfort,
        10.0,
    )
    return ControlContext(cal, target, DT, history=H, action_mode=action_mode, **kw)


class _Plants:
    """One synthetic patient per episode: ECAP = slope (I - threshold(k)), the threshold
    jumping with posture (and so far up for a while that the ECAP is lost)."""

    def __init__(self, contexts, seed=0):
        self.contexts, self.rng = contexts, np.random.default_rng(seed)
        n = len(contexts)
        self.hist = np.zeros((n, 3, H))
        self.hist[:, 2] = np.array([c.calibration.comfort_ma for c in contexts])[:, None]
        self.k = np.zeros(n, np.int64)
        self.mapping = EnvConfig(action_mode=contexts[0].action_mode)

    def obs(self):
        target = [c.target_uv for c in self.contexts]
        return np.c_[self.hist.reshape(len(self.contexts), -1), target].astype(np.float32)

    def step(self, i, action):
        cal, k = self.contexts[i].calibration, self.k[i]
        previous = self.hist[i, 2, 0]
        current = max(
            float(self.mapping.requested_ma(float(action), previous, cal.min_ma, cal.max_ma)), 0.0
        )
        shift = (0.0, -1.2, 6.0, 0.8)[(k // 60) % 4]  # closer, ECAP lost, further
        ecap = max(
            cal.reference.slope_uv_per_ma * (current - cal.reference.ecap_threshold_ma - shift), 0.0
        )
        ecap += self.rng.normal(0.0, 1.0)
        self.hist[i, :, 1:] = self.hist[i, :, :-1]
        self.hist[i, :, 0] = ecap, float(ecap > 5.0), current
        self.k[i] += 1


def _play_both(spec, action_mode, n=5, steps=300, seed=0):
    """Play ``n`` episodes with n one-episode controllers and with one batched controller on
    random subsets of the episodes; the batched and one-episode actions of each step."""
    contexts = [_context(i, action_mode) for i in range(n)]
    singles = [make_controller(spec) for _ in contexts]
    for ctl, ctx in zip(singles, contexts, strict=True):
        ctl.reset(ctx)
    batch = make_controller(spec)
    batch.reset_many(contexts)
    plants, rng = _Plants(contexts, seed), np.random.default_rng(seed + 1)
    got, want = [], []
    for _ in range(steps):
        rows = np.flatnonzero(rng.random(n) < 0.7)
        obs = plants.obs()
        actions = batch.predict_many(obs[rows], rows) if rows.size < n else batch.predict_many(obs)
        for j, i in enumerate(rows):
            ref, _ = singles[i].predict(obs[i])
            got.append(actions[j])
            want.append(ref)
            plants.step(i, ref[0])
    assert [c.steps for c in singles] == batch.steps.tolist()
    assert [c.t_s for c in singles] == batch.t_s.tolist()
    return np.array(got), np.array(want)


@pytest.mark.parametrize("action_mode", ["incremental", "absolute", "multiplicative"])
@pytest.mark.parametrize("spec", BATCHED)
def test_predict_many_equals_each_episodes_predict_bit_for_bit(spec, action_mode):
    assert make_controller(spec).batch_ready
    got, want = _play_both(spec, action_mode)
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    # The actions are not constant, so their equality is not a coincidence.
    assert len(np.unique(want)) > (1 if spec == "open-loop" else 50)


def test_the_laws_reach_their_branches_in_the_identity_test():
    """The synthetic plants make the clinical loop fall back and the ceiling cut."""
    contexts = [_context(i) for i in range(5)]
    for spec, seen in (
        ("clinical-loop", lambda c: c._state[:, 3].any()),
        ("ceiling", lambda c: np.isfinite(c._state[:, 0]).all()),
    ):
        ctl = make_controller(spec)
        ctl.reset_many(contexts)
        plants = _Plants(contexts)
        hit = False
        for _ in range(240):
            actions = ctl.predict_many(plants.obs())
            for i in range(5):
                plants.step(i, actions[i, 0])
            hit = hit or seen(ctl)
        assert hit, spec


def test_every_shipped_spec_plays_batches():
    assert sorted(list_agents()) == sorted(BATCHED)
    for spec in BATCHED:
        assert make_controller(spec).batch_ready is True, spec


class _Halved(PID):
    """Overrides current_ma: its predict no longer follows the PID kernel alone."""

    def current_ma(self, obs):
        return 0.5 * super().current_ma(obs)


def test_a_subclass_overriding_the_one_episode_path_is_not_batch_ready():
    assert PID().batch_ready and not _Halved().batch_ready
    assert not BatchController().batch_ready
    ctl = _Halved()
    ctl.reset_many([_context(0), _context(1)])
    with pytest.raises(ConfigError, match="_Halved overrides one of predict, reset, current_ma"):
        ctl.predict_many(_Plants([_context(0), _context(1)]).obs())


def _ready(n=3):
    ctl = OpenLoop()
    ctl.reset_many([_context(i) for i in range(n)])
    return ctl


@pytest.mark.parametrize(
    ("obs", "rows", "match"),
    [
        (np.zeros(3 * H + 1), None, r"obs has shape \(13,\); expected \(episodes, >= 13\)"),
        (
            np.zeros((3, 3 * H)),
            None,
            r"obs has shape \(3, 12\); expected \(episodes, >= 13\) "
            r"for history=4",
        ),
        (np.zeros((2, 3 * H + 1)), None, r"obs has 2 rows; expected one per episode \(3\)"),
        (np.full((3, 3 * H + 1), np.nan), None, r"obs=.* must be finite"),
        (np.array([["a"] * 13] * 3), None, r"(?s)obs=.* must hold real numbers"),
        (np.zeros((2, 3 * H + 1)), [0], r"rows=\[0\] must be 2 integer episode indices"),
        (np.zeros((2, 3 * H + 1)), [0.0, 1.0], r"rows=\[0.0, 1.0\] must be 2 integer"),
        (
            np.zeros((2, 3 * H + 1)),
            [0, 3],
            r"rows=\[0, 3\] must be distinct episode indices in "
            r"\[0, 2\]",
        ),
        (np.zeros((2, 3 * H + 1)), [-1, 0], r"rows=\[-1, 0\] must be distinct"),
        (np.zeros((2, 3 * H + 1)), [1, 1], r"rows=\[1, 1\] must be distinct"),
    ],
)
def test_predict_many_rejects_bad_observations_and_rows(obs, rows, match):
    ctl = _ready()
    with pytest.raises(ConfigError, match=match):
        ctl.predict_many(obs, rows)
    assert ctl.steps.tolist() == [0, 0, 0]  # nothing was played


def test_protocol_order_and_contexts_are_checked():
    with pytest.raises(ConfigError, match=r"OpenLoop.predict_many called before reset_many"):
        OpenLoop().predict_many(np.zeros((1, 3 * H + 1)))
    with pytest.raises(ConfigError, match=r"contexts=\[\] must be a non-empty list"):
        OpenLoop().reset_many([])
    with pytest.raises(
        ConfigError,
        match=r"contexts\[1\]=str is not valid; expected a "
        r"ControlContext",
    ):
        OpenLoop().reset_many([_context(0), "ctx"])
    with pytest.raises(
        ConfigError,
        match=r"contexts\[1\].action_mode='absolute' differs from "
        r"contexts\[0\].action_mode='incremental'",
    ):
        OpenLoop().reset_many([_context(0), _context(1, "absolute")])
    with pytest.raises(ConfigError, match=r"contexts\[2\].max_delta_ma=0.25 differs"):
        OpenLoop().reset_many([_context(0), _context(1), _context(2, max_delta_ma=0.25)])
    ctl = _ready()
    with pytest.raises(ConfigError, match="was reset with 3 episodes; predict plays one"):
        ctl.predict(np.zeros(3 * H + 1))


def test_a_non_finite_requested_current_is_refused():
    ctl = make_controller("open-loop")
    ctx = _context(0)
    bad = CalibrationRecord(**{**ctx.calibration.__dict__, "comfort_ma": math.inf})
    ctl.reset_many([ctx, ControlContext(bad, ctx.target_uv, DT, history=H)])
    with pytest.raises(
        ConfigError,
        match=r"OpenLoop produced current_ma=\[.*inf\]; must be "
        "finite",
    ):
        ctl.predict_many(_Plants([ctx, ctx]).obs())


def test_one_episode_reset_keeps_the_scalar_interface():
    ctl = make_controller("pid")
    ctl.reset(_context(1))
    obs = _Plants([_context(1)]).obs()[0]
    ctl.predict(obs)
    assert ctl.core.output == float(obs[2 * H])  # bumpless start at the delivered current
    ctl.predict(obs)
    assert ctl.core.output != float(obs[2 * H])  # the core is the row the law updates
    assert ctl.steps == 2 and isinstance(ctl.steps, int)
    assert ctl.t_s == 2 * DT and isinstance(ctl.t_s, float)
