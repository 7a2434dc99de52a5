"""Exact resume: a training run killed (SIGKILL) after a checkpoint and resumed with the same
command ends with the same weights, optimizer state and statistics, bit for bit, as the same run
uninterrupted."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from closedloop.training.checkpoints import REPLAY_FILE, list_checkpoints
from closedloop.training.policy import MODEL_FILE, NORM_FILE
from closedloop.training.resume import (
    RESUME_FILE,
    capture,
    isolated_rng,
    load_env,
    restore,
    rng_state,
)
from closedloop.training.spec import algorithm_class

ENV = "closedloop/ECAPTracking-v0"
TINY_NET = "policy_kwargs={net_arch = [16]}"
HP = {
    "ppo": ["n_steps=64", "batch_size=64", "n_epochs=2", TINY_NET],
    "sac": [
        "learning_starts=64",
        "batch_size=32",
        "buffer_size=2000",
        "gradient_steps=1",
        TINY_NET,
    ],
    "td3": [
        "learning_starts=64",
        "batch_size=32",
        "buffer_size=2000",
        "gradient_steps=1",
        TINY_NET,
    ],
    "residual-ppo": ["n_steps=64", "batch_size=64", "n_epochs=2", TINY_NET],
    "recurrent-ppo": [
        "n_steps=64",
        "batch_size=64",
        "n_epochs=2",
        "policy_kwargs={net_arch = [16], lstm_hidden_size = 8}",
    ],
}
DRIVER = textwrap.dedent("""
    # `closedloop train`, which waits to be killed after its first checkpoint if the marker
    # file does not exist yet (it creates it): the same command then resumes.
    import os, signal, sys
    from pathlib import Path

    from closedloop.cli import main
    from closedloop.training import run

    marker = Path(os.environ["CLOSEDLOOP_TEST_MARKER"])
    checkpoint = run.Run.checkpoint

    def checkpoint_then_wait(self, step):
        checkpoint(self, step)
        if not marker.exists() and step < self.cfg.total_steps:
            marker.touch()
            while True:
                signal.pause()

    run.Run.checkpoint = checkpoint_then_wait
    sys.exit(main(sys.argv[1:]))
""")
WAIT_S = 900.0
"""Only a bound against hanging forever: the test waits for files, not for a time."""


def argv(agent, out, steps):
    """The command: 2 patients, 4 s (200-step) training episodes, checkpoints every 256 steps,
    validations (12 s episodes) every 384 steps and at the end."""
    options = (
        "--seed 3 --n-envs 2 --env-kw episode_s=4 --eval-episode-s 12 --eval-every 384 "
        "--eval-patients 1 --checkpoint-every 256 --no-progress --no-tensorboard"
    )
    args = ["train", "--agent", agent, "--env", ENV, "--steps", str(steps), "--out", str(out)]
    for item in HP[agent]:
        args += ["--set", item]
    return args + options.split()


def start_killable(args, tmp_path):
    """Start ``closedloop train`` in a subprocess that waits after its first checkpoint."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "CLOSEDLOOP_TEST_MARKER": str(tmp_path / "paused")}
    cmd = [sys.executable, str(driver), *args]
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    return proc, cmd, env


def kill_after_first_checkpoint(proc, out, tmp_path):
    """SIGKILL ``proc`` once a complete checkpoint (with its state.json) exists; its steps."""
    deadline = time.monotonic() + WAIT_S
    while not list_checkpoints(out):
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "final").exists()  # killed mid-run
    return [s for s, _ in list_checkpoints(out)]


def same(a, b):
    """Equal bit for bit: tensors, arrays, and nested dicts/lists/tuples of them."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def assert_same_run(ref, run):
    """The final models, optimizers, statistics, replay buffers and validations agree."""
    cls = algorithm_class(json.loads((ref / "final" / "card.json").read_text())["algorithm"])
    a = cls.load(str(ref / "final" / MODEL_FILE), device="cpu").get_parameters()
    b = cls.load(str(run / "final" / MODEL_FILE), device="cpu").get_parameters()
    assert any("optimizer" in k for k in a)  # compared too
    for key in a:
        assert same(a[key], b[key]), key
    norms = [pickle.loads((r / "final" / NORM_FILE).read_bytes()) for r in (ref, run)]
    for attr in ("obs_rms", "ret_rms"):
        x, y = (getattr(n, attr) for n in norms)
        assert same((x.mean, x.var, x.count), (y.mean, y.var, y.count)), attr
    (sa, ca), (sb, cb) = list_checkpoints(ref)[-1], list_checkpoints(run)[-1]
    assert sa == sb
    if (ca / REPLAY_FILE).is_file():
        ra, rb = (pickle.loads((c / REPLAY_FILE).read_bytes()) for c in (ca, cb))
        assert (ra.pos, ra.full) == (rb.pos, rb.full)
        for field in ("observations", "actions", "rewards", "dones", "timeouts"):
            assert same(getattr(ra, field), getattr(rb, field)), field
    evals = [json.loads((r / "evaluations.json").read_text()) for r in (ref, run)]
    assert [(e["step"], e["metrics"]) for e in evals[0]] == [
        (e["step"], e["metrics"]) for e in evals[1]
    ]


def check_kill_and_resume(agent, steps, cli, tmp_path, resume_in_subprocess=False):
    """Uninterrupted run (in-process) vs. killed (subprocess) and resumed by the same command."""
    ref, run = tmp_path / "uninterrupted", tmp_path / "killed"
    proc, cmd, env = start_killable(argv(agent, run, steps), tmp_path)
    try:
        code, _, err = cli(*argv(agent, ref, steps))  # meanwhile, the uninterrupted run
        assert code == 0, err
        at_kill = kill_after_first_checkpoint(proc, run, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if resume_in_subprocess:
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=WAIT_S, check=False)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
    else:
        code, _, err = cli(*argv(agent, run, steps))
        assert code == 0, err
    assert at_kill[-1] < steps
    final = json.loads((run / "final" / "card.json").read_text())["training"]
    assert final["resumed_at"] == at_kill[-1:] and final["steps"] == steps
    assert_same_run(ref, run)


@pytest.mark.parametrize("agent", ["ppo", "sac"])
def test_killed_and_resumed_run_ends_with_the_same_weights(agent, cli, tmp_path):
    # killed at the first checkpoint (step 256): the resumed run crosses the end of the
    # episodes (step 400), a validation (384) and the final one (640) from the restored state
    check_kill_and_resume(agent, 640, cli, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["td3", "recurrent-ppo"])
def test_killed_and_resumed_run_ends_with_the_same_weights_slow(agent, cli, tmp_path):
    pytest.importorskip("sb3_contrib")
    check_kill_and_resume(agent, 1280, cli, tmp_path, resume_in_subprocess=True)


# -- the pieces, in-process ----------------------------------------------------------------------
def draws():
    return np.random.random(3), torch.rand(3), random.random()


def test_isolated_rng_leaves_the_training_streams_where_they_were():
    before = rng_state()
    with isolated_rng():
        draws()
    after = rng_state()
    assert after["python"] == before["python"]
    assert same(after["numpy"], before["numpy"])
    assert same(after["torch"], before["torch"])


def test_env_stack_and_random_states_round_trip_bit_for_bit(tmp_path):
    from types import SimpleNamespace

    from closedloop.training.env import make_training_env

    norm = make_training_env(ENV, 2, normalize_reward=True, overrides={"episode_s": 12.0})
    norm.seed(5)
    norm.reset()
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, (700, 2, 1))
    for a in actions[:50]:
        norm.step(a)
    model = SimpleNamespace(
        action_space=norm.action_space, observation_space=norm.observation_space
    )
    model.action_space.seed(7)
    (tmp_path / RESUME_FILE).write_bytes(capture(model, norm))
    expected = draws(), model.action_space.sample()
    copy, state = load_env(tmp_path / RESUME_FILE)
    restore(model, state)
    assert same(draws(), expected[0]) and same(model.action_space.sample(), expected[1])
    assert model.action_space is copy.action_space  # still one object
    for a in actions[50:]:  # past the episodes' end
        x, y = norm.step(a), copy.step(a)
        assert all(same(u, v) for u, v in zip(x[:3], y[:3], strict=True))
    assert same(norm.returns, copy.returns) and copy.training
    assert same((norm.obs_rms.mean, norm.obs_rms.var), (copy.obs_rms.mean, copy.obs_rms.var))


# -- interrupted in-process (the checkpoint is the same; cheaper than a subprocess) ------------
def run_in_process(agent, out, steps, extra, callbacks=()):
    from closedloop.cli.train import parse_assignments
    from closedloop.training import TrainOptions, train

    options = TrainOptions(
        eval_every=384,
        eval_patients=1,
        eval_episode_s=12.0,
        checkpoint_every=256,
        progress=False,
        tensorboard=False,
    )
    hp = parse_assignments("--set", [*HP[agent], *extra])
    return train(
        agent,
        ENV,
        steps,
        out,
        3,
        n_envs=2,
        hyperparams=hp,
        env_overrides={"episode_s": 4.0},
        options=options,
        callbacks=list(callbacks),
    )


@pytest.mark.parametrize(
    ("agent", "extra"),
    [
        ("ppo", ["use_sde=true"]),  # gSDE: exploration matrices drawn before a checkpoint
        ("residual-ppo", []),  # the base controller's state is in the checkpoint
        pytest.param("td3", [], marks=pytest.mark.slow),
        pytest.param("recurrent-ppo", [], marks=pytest.mark.slow),  # LSTM states
    ],
)
def test_interrupted_and_resumed_run_ends_with_the_same_weights(agent, extra, tmp_path):
    from stable_baselines3.common.callbacks import BaseCallback

    if agent == "recurrent-ppo":
        pytest.importorskip("sb3_contrib")

    class Interrupt(BaseCallback):
        def _on_step(self):
            if self.num_timesteps > 300:  # after the checkpoint at 256
                raise KeyboardInterrupt
            return True

    ref, run = tmp_path / "uninterrupted", tmp_path / "interrupted"
    run_in_process(agent, ref, 640, extra)
    with pytest.raises(KeyboardInterrupt):
        run_in_process(agent, run, 640, extra, [Interrupt()])
    assert [s for s, _ in list_checkpoints(run)] == [256]
    result = run_in_process(agent, run, 640, extra)
    final = json.loads((run / "final" / "card.json").read_text())["training"]
    assert final["resumed_at"] == [256] and result.steps == 640
    assert_same_run(ref, run)
