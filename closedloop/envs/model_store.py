"""The process-wide store of patients' neural models, with a background builder.

Building a patient's model (its threshold and SFAP tables) takes about 0.1 s, and an
environment that draws a new cohort patient at every reset would otherwise pay it in the middle
of training, once per episode. The environments share one least-recently-used store of built
models (:func:`get`; their tables are read-only, each env steps its own
:meth:`~closedloop.neural.model.NeuralModel.clone`), and after each reset an environment asks
for its *next* patient to be built ahead (:func:`prefetch`), on one background thread at the
lowest CPU priority. The build is the same computation either way, so results do not depend on
whether it was prefetched.

The background thread holds no state across a ``fork``: a fork handler drops queued builds and
waits for the running one, so ``AsyncVectorEnv`` and ``multiprocessing`` children start clean.
At exit, queued builds are dropped too, so the interpreter waits for one build at most.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from concurrent.futures import Future

CAPACITY = 128
"""Models (about 2.6 MB of tables each) kept per process."""

_lock = threading.Lock()
_models: collections.OrderedDict = collections.OrderedDict()
_pending: dict = {}  # patient -> Future of its model, queued or running
_queue: collections.deque = collections.deque()
_worker: threading.Thread | None = None


def get(patient):
    """The patient's model: from the store, from a prefetch under way, or built now."""
    with _lock:
        model = _models.get(patient)
        if model is not None:
            _models.move_to_end(patient)
            return model
        future = _pending.get(patient)
    if future is not None:
        try:
            return future.result()
        except Exception:  # noqa: BLE001 - rebuilt below, where the error surfaces
            pass
    model = patient.model()
    _store(patient, model)
    return model


def prefetch(patient) -> None:
    """Build ``patient``'s model on the background thread, unless stored or already queued."""
    global _worker
    with _lock:
        if patient in _models or patient in _pending:
            return
        _pending[patient] = Future()
        _queue.append(patient)
        if _worker is None:
            _worker = threading.Thread(target=_work, name="closedloop-model-prefetch")
            _worker.start()


def wait_idle() -> None:
    """Return when no build is queued or running (e.g. before timing a training loop)."""
    with _lock:
        worker = _worker
    if worker is not None:
        worker.join()


def clear() -> None:
    """Forget every stored model (queued builds still complete and are stored)."""
    with _lock:
        _models.clear()


def _store(patient, model) -> None:
    with _lock:
        _models[patient] = model
        _models.move_to_end(patient)
        while len(_models) > CAPACITY:
            _models.popitem(last=False)


def _work() -> None:
    """The background thread: build queued patients' models until the queue is empty."""
    global _worker
    with contextlib.suppress(AttributeError, OSError):  # not Linux: normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only
    while True:
        if not threading.main_thread().is_alive():  # the interpreter is exiting
            _drop_queued()
        with _lock:
            if not _queue:
                _worker = None
                return
            patient = _queue.popleft()
            future = _pending[patient]
        future.set_running_or_notify_cancel()
        try:
            model = patient.model()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting get()
            with _lock:
                del _pending[patient]
            future.set_exception(exc)
            continue
        _store(patient, model)
        with _lock:
            del _pending[patient]
        future.set_result(model)


def _drop_queued() -> None:
    """Cancel the builds that have not started."""
    with _lock:
        while _queue:
            _pending.pop(_queue.popleft()).cancel()


def _before_fork() -> None:
    """Drop queued builds and wait for the running one, so no thread is alive at the fork."""
    _drop_queued()
    with _lock:
        worker = _worker
    if worker is not None:
        worker.join()


def _after_fork_in_child() -> None:
    global _lock, _worker
    _lock, _worker = threading.Lock(), None
    _pending.clear()
    _queue.clear()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
