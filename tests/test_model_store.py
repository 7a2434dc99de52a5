"""The process-wide model store and its background prefetch of the next patient's model."""

import copy
import multiprocessing
import threading

import gymnasium as gym
import numpy as np
import pytest

import closedloop  # noqa: F401  (registers the suite)
from closedloop.envs import model_store
from closedloop.envs.draw import choose_patient

WAIT_S = 60.0
"""Upper bound on any wait for an event (a hung test fails instead of blocking forever)."""


class _Patient:
    """A stand-in patient whose model is a counter (or an error).

    ``started`` is set when a build begins; with a ``gate``, the build then waits for it.
    """

    def __init__(self, fail: bool = False, gate: threading.Event | None = None):
        self.fail, self.gate, self.builds = fail, gate, 0
        self.started = threading.Event()

    def model(self):
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT_S)
        self.builds += 1
        if self.fail:
            raise ValueError("no model for this patient")
        return object()


def test_prefetched_model_is_built_once_and_returned():
    gate = threading.Event()
    patient = _Patient(gate=gate)
    model_store.prefetch(patient)
    model_store.prefetch(patient)  # queued already: no second build
    gate.set()
    model = model_store.get(patient)  # waits for the background build
    assert model_store.get(patient) is model and patient.builds == 1


def test_a_failed_prefetch_surfaces_in_get():
    patient = _Patient(fail=True)
    model_store.prefetch(patient)
    with pytest.raises(ValueError, match="no model"):
        model_store.get(patient)
    assert patient.builds == 2  # the background try, then get's own


def _child_uses_store(conn) -> None:
    patient = _Patient()
    model_store.prefetch(patient)
    conn.send(model_store.get(patient) is model_store.get(patient))


def test_fork_waits_for_the_running_build_and_the_child_starts_clean():
    """The fork handler drops the queued build, then waits for the running one.

    No timing: ``running`` is known to be building (its ``started`` event) before ``queued``
    is queued, and its gate opens only when the fork handler cancels ``queued``, so the fork
    happens while it is still building.
    """
    gate = threading.Event()
    running, queued = _Patient(gate=gate), _Patient()
    model_store.prefetch(running)
    assert running.started.wait(WAIT_S)  # the worker has taken it off the queue
    model_store.prefetch(queued)
    with model_store._lock:
        model_store._pending[queued].add_done_callback(lambda _: gate.set())
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_uses_store, args=(child,))
    proc.start()
    assert parent.recv() is True
    proc.join(30)
    assert proc.exitcode == 0
    assert running.builds == 1 and queued.builds == 0  # the queued build was dropped
    model_store.get(queued)  # and is built when asked for
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
    with_prefetch, without = (
        gym.make("closedloop/ECAPTracking-v0", **kw),
        gym.make("closedloop/ECAPTracking-v0", **kw),
    )
    without.unwrapped.prefetch_next_patient = False
    seeds = [11, None, None]
    want = _episode_starts(without, seeds)
    assert _episode_starts(with_prefetch, seeds) == want
    env = with_prefetch.unwrapped
    predicted = choose_patient("", "train", copy.deepcopy(env.np_random))
    with model_store._lock:
        known = predicted in model_store._models or predicted in model_store._pending
    assert known  # the next unseeded reset's patient
    env.reset()
    assert env.patient is predicted


def test_exit_drops_queued_builds(tmp_path):
    """At interpreter exit only the running build finishes, not the whole queue.

    No timing: the first build starts before the main thread ends (an event) and lasts until
    the interpreter is shutting down (it waits for the main thread to stop), so four builds
    are still queued at exit, and the design says none of them may start.
    """
    import subprocess
    import sys

    log = tmp_path / "builds.txt"
    script = (
        "import threading, time\n"
        "from closedloop.envs import model_store\n"
        "started = threading.Event()\n"
        "class P:\n"
        "    def model(self):\n"
        f"        open({str(log)!r}, 'a').write('x')\n"
        "        started.set()\n"
        f"        deadline = time.monotonic() + {WAIT_S}\n"
        "        while threading.main_thread().is_alive() and time.monotonic() < deadline:\n"
        "            time.sleep(0.01)\n"
        "        return object()\n"
        "for _ in range(5):\n"
        "    model_store.prefetch(P())\n"
        f"assert started.wait({WAIT_S})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=2 * WAIT_S)
    assert log.read_text() == "x"
