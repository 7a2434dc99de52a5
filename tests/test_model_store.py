"""The process-wide model store and its background prefetch of the next patient's model."""

import copy
import multiprocessing
import threading

import gymnasium as gym
import numpy as np
import pytest

import closedloop  # noqa: F401  (registers the suite)
from closedloop.envs import model_store


class _Patient:
    """A stand-in patient whose model is a counter (or an error)."""

    def __init__(self, fail: bool = False, gate: threading.Event | None = None):
        self.fail, self.gate, self.builds = fail, gate, 0

    def model(self):
        if self.gate is not None:
            self.gate.wait(10.0)
        self.builds += 1
        if self.fail:
            raise ValueError("no model for this patient")
        return object()


def test_prefetched_model_is_built_once_and_returned():
    gate = threading.Event()
    patient = _Patient(gate=gate)
    model_store.prefetch(patient)
    model_store.prefetch(patient)                  # queued already: no second build
    gate.set()
    model = model_store.get(patient)               # waits for the background build
    assert model_store.get(patient) is model and patient.builds == 1


def test_a_failed_prefetch_surfaces_in_get():
    patient = _Patient(fail=True)
    model_store.prefetch(patient)
    with pytest.raises(ValueError, match="no model"):
        model_store.get(patient)
    assert patient.builds == 2                     # the background try, then get's own


def _child_uses_store(conn) -> None:
    patient = _Patient()
    model_store.prefetch(patient)
    conn.send(model_store.get(patient) is model_store.get(patient))


def test_fork_waits_for_the_running_build_and_the_child_starts_clean():
    gate = threading.Event()
    running, queued = _Patient(gate=gate), _Patient()
    model_store.prefetch(running)
    model_store.prefetch(queued)
    threading.Timer(1.0, gate.set).start()         # the fork waits for this build
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_uses_store, args=(child,))
    proc.start()
    assert parent.recv() is True
    proc.join(30)
    assert proc.exitcode == 0
    assert running.builds == 1 and queued.builds == 0      # the queued build was dropped
    model_store.get(queued)                                # and is built when asked for
    assert queued.builds == 1


def _episode_starts(env, seeds):
    out = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        steps = [env.step(np.array([0.3], np.float32))[0].tobytes() for _ in range(5)]
        out.append((info["patient_id"], obs.tobytes(), steps))
    return out


def test_prefetch_predicts_the_next_patient_and_changes_no_trajectory():
    kw = {"episode_s": 0.2}
    with_prefetch, without = gym.make("closedloop/ECAPTracking-v0", **kw), gym.make(
        "closedloop/ECAPTracking-v0", **kw)
    without.unwrapped.prefetch_next_patient = False
    seeds = [11, None, None]
    want = _episode_starts(without, seeds)
    assert _episode_starts(with_prefetch, seeds) == want
    env = with_prefetch.unwrapped
    predicted = env._choose_patient("", "train", copy.deepcopy(env.np_random))
    with model_store._lock:
        known = predicted in model_store._models or predicted in model_store._pending
    assert known                                   # the next unseeded reset's patient
    env.reset()
    assert env.patient is predicted


def test_exit_drops_queued_builds(tmp_path):
    """At interpreter exit only the running build finishes, not the whole queue."""
    import subprocess
    import sys

    log = tmp_path / "builds.txt"
    script = (
        "import time\n"
        "from closedloop.envs import model_store\n"
        "class P:\n"
        "    def model(self):\n"
        f"        open({str(log)!r}, 'a').write('x')\n"
        "        time.sleep(0.3)\n"
        "        return object()\n"
        "for _ in range(5):\n"
        "    model_store.prefetch(P())\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert 1 <= len(log.read_text()) <= 2
