"""Model folders and checkpoints on disk, written so that an interruption never leaves half a one.

A folder is filled under a temporary name beside its destination and renamed into place at the
end. A checkpoint (``<out>/checkpoints/step-<steps>/``) holds ``model.zip``,
``vecnormalize.pkl``, ``replay_buffer.pkl`` (off-policy algorithms), ``resume.pkl`` (the random
states and the training env, :mod:`closedloop.training.resume`) and, written last,
``state.json``: a checkpoint without it is incomplete and ignored.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError
from closedloop._io import nan_to_none, write_text_atomic
from closedloop.training.policy import MODEL_FILE, NORM_FILE, OBS_NORM_FILE, ObsNormalizer
from closedloop.training.resume import RESUME_FILE

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"
REPLAY_FILE = "replay_buffer.pkl"


def replace_dir(tmp: Path, dst: Path) -> Path:
    """Move the finished folder ``tmp`` to ``dst``, replacing an existing ``dst``."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(tmp, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dst


def save_model_dir(
    dst: Path,
    model: Any,
    norm: Any,
    texts: Mapping[str, str] | None = None,
    replay: bool = False,
    blobs: Mapping[str, bytes] | None = None,
) -> Path:
    """Write a model folder: model, VecNormalize statistics (pickle and JSON), text files.

    Args:
        dst: The folder to (re)place.
        model: The SB3 model.
        norm: Its ``VecNormalize``.
        texts: File name -> text, written after the binary files (e.g. ``card.json``).
        replay: Also save the replay buffer (off-policy checkpoints).
        blobs: File name -> bytes, written before the text files (e.g. ``resume.pkl``).
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        model.save(str(tmp / MODEL_FILE))
        norm.save(str(tmp / NORM_FILE))
        (tmp / OBS_NORM_FILE).write_text(
            ObsNormalizer.from_vecnormalize(norm).to_json(), encoding="utf-8"
        )
        if replay:
            model.save_replay_buffer(str(tmp / REPLAY_FILE))
        for name, blob in (blobs or {}).items():
            (tmp / name).write_bytes(blob)
        for name, text in (texts or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        return replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def to_json(doc: Any) -> str:
    """Indented JSON without NaN (stored as null)."""
    return json.dumps(nan_to_none(doc), indent=1, allow_nan=False, default=str) + "\n"


def save_checkpoint(
    out_dir: Path,
    model: Any,
    norm: Any,
    state: Mapping[str, Any],
    replay: bool,
    keep: int,
    resume: bytes | None = None,
) -> Path:
    """Write ``<out>/checkpoints/step-<steps>/`` and delete all but the ``keep`` newest.

    Args:
        out_dir: The run folder.
        model: The SB3 model, between rollouts.
        norm: Its ``VecNormalize``.
        state: The run's state (``state.json``; ``num_timesteps`` names the folder).
        replay: Also save the replay buffer (off-policy algorithms).
        keep: Newest checkpoints kept.
        resume: The pickled continuation state (:func:`closedloop.training.resume.capture`).
    """
    steps = int(state["num_timesteps"])
    dst = Path(out_dir) / CHECKPOINTS / f"step-{steps:012d}"
    blobs = {} if resume is None else {RESUME_FILE: resume}
    save_model_dir(dst, model, norm, {STATE_FILE: to_json(state)}, replay=replay, blobs=blobs)
    for _, old in list_checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return dst


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run folder as ``(steps, folder)``, oldest first."""
    folder = Path(out_dir) / CHECKPOINTS
    found = []
    for path in folder.glob("step-*") if folder.is_dir() else ():
        suffix = path.name.removeprefix("step-")
        if suffix.isdigit() and (path / STATE_FILE).is_file() and (path / MODEL_FILE).is_file():
            found.append((int(suffix), path))
    return sorted(found)


def latest_checkpoint(out_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete checkpoint and its state, or None."""
    found = list_checkpoints(out_dir)
    if not found:
        return None
    path = found[-1][1]
    return path, json.loads((path / STATE_FILE).read_text(encoding="utf-8"))


class RunLock:
    """``<out>/.lock`` holding this process's id and host while a run uses the folder.

    A lock left by a process of this host that no longer exists is taken over. A lock of
    another host (a shared filesystem) cannot be checked from here: it is taken over only if
    ``host_gone(host)`` says that host is gone (a lost Ray node, :func:`ray_host_gone`).

    Raises:
        ConfigError: On entry, if a live process (or one of another host) holds the folder.
    """

    def __init__(self, out_dir: Path, host_gone: Callable[[str], bool] | None = None) -> None:
        self.path = Path(out_dir) / ".lock"
        self.host_gone = host_gone

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                self._check_holder()
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()} {socket.gethostname()}")
            return self
        raise ConfigError(f"could not lock {self.path}")

    def _check_holder(self) -> None:
        """Raise ConfigError unless the lock's process is known to be gone."""
        pid, host = _read_lock(self.path)
        if host not in (None, socket.gethostname()):
            if self.host_gone is not None and self.host_gone(host):
                return
            raise ConfigError(
                f"{self.path.parent} is in use by process {pid} on host {host!r}; if that "
                f"run is gone, delete {self.path}"
            )
        if pid is not None and _alive(pid):
            raise ConfigError(
                f"{self.path.parent} is in use by another training run "
                f"(process {pid}); wait for it or use another --out"
            )

    def __exit__(self, *exc: Any) -> None:
        self.path.unlink(missing_ok=True)


def _read_lock(path: Path) -> tuple[int | None, str | None]:
    """The process id and host of a lock file (host None: written before hosts were kept)."""
    try:
        pid, _, host = path.read_text().strip().partition(" ")
        return int(pid), host or None
    except (OSError, ValueError):
        return None, None


def ray_host_gone(host: str) -> bool:
    """In a Ray task: whether no live node of the cluster runs on ``host``."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return False
    alive = {n.get("NodeManagerHostname") for n in ray.nodes() if n.get("Alive")}
    return host not in alive


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 only checks)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: Path, doc: Any) -> Path:
    """Write ``doc`` as JSON atomically."""
    return write_text_atomic(path, to_json(doc))
