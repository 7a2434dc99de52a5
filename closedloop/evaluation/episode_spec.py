"""One episode of a grid: its spec (controller, env, patient, seed) and its run-folder files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError
from closedloop._io import nan_to_none, write_text_atomic
from closedloop.controllers.objects import source_id
from closedloop.evaluation.schema import SCHEMA

EPISODE_FORMAT = "closedloop.episode/1"
"""``format`` of an episode record (``episodes/<key>.json``)."""
EPISODES_DIR = "episodes"
"""Run-folder subfolder of the episode records."""
TRAJECTORIES_DIR = "trajectories"
"""Run-folder subfolder of the saved trajectories (``<key>.npz``)."""


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
    """One cell of an evaluation grid.

    Attributes:
        controller: Row label of the controller.
        env_id: Registered Gymnasium id.
        patient: Patient id.
        seed: Seed of ``env.reset``.
        source: What builds the controller: a spec name for ``make_controller`` or a
            zero-argument factory; None means the spec name ``controller``.
        env_overrides: ``gymnasium.make`` overrides as sorted ``(key, value)`` pairs.
    """

    controller: str
    env_id: str
    patient: str
    seed: int
    source: str | Callable[[], Any] | None = None
    env_overrides: tuple[tuple[str, Any], ...] = ()

    def source_id(self) -> str:
        """A stable text naming the source (:func:`closedloop.controllers.objects.source_id`).

        The spec name, the factory's own ``source_id``, or its ``module:qualname``.
        """
        return source_id(self.controller if self.source is None else self.source)

    def identity(self) -> dict[str, Any]:
        """JSON-ready description of the cell (what the key hashes)."""
        return {
            "controller": self.controller,
            "source": self.source_id(),
            "env_id": self.env_id,
            "patient": self.patient,
            "seed": self.seed,
            "env_overrides": dict(self.env_overrides),
        }

    def key(self) -> str:
        """Hex digest identifying the cell: the name of its files in a run folder."""
        text = json.dumps(self.identity(), sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def build(self, make_controller: Callable[[str], Any] | None = None) -> Any:
        """A fresh controller for this cell."""
        src = self.controller if self.source is None else self.source
        if not isinstance(src, str):
            return src()
        if make_controller is None:
            from closedloop.controllers.registry import make_controller
        return make_controller(src)


def episode_path(out_dir: str | Path, spec: EpisodeSpec) -> Path:
    """Where a run folder keeps the result of ``spec``."""
    return Path(out_dir) / EPISODES_DIR / f"{spec.key()}.json"


def trajectory_path(out_dir: str | Path, episode: str) -> Path:
    """Where a run folder keeps the trajectory of episode key ``episode`` (if saved)."""
    return Path(out_dir) / TRAJECTORIES_DIR / f"{episode}.npz"


def finished_row(out_dir: str | Path, spec: EpisodeSpec) -> dict[str, Any] | None:
    """The stored row of ``spec`` in ``out_dir``, or None if it has not finished.

    A record of another format or cell is not this episode's (None: it is played again).

    Raises:
        ConfigError: Naming the file if it is not an episode record at all (its files are
            written atomically, so this means the folder was damaged by something else).
    """
    path = episode_path(out_dir, spec)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if doc.get("format") != EPISODE_FORMAT or doc.get("spec") != json.loads(
            json.dumps(spec.identity(), default=repr)
        ):
            return None
        row = doc["row"]
        if not isinstance(row, dict) or not set(SCHEMA) <= set(row):
            raise ValueError("its row lacks the result columns")
    except (OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"{path} is not a finished-episode record ({exc}); the run folder is "
            "damaged: delete that file to play the episode again, or start "
            "afresh"
        ) from None
    return {k: float("nan") if v is None else v for k, v in row.items()}


def write_episode(out_dir: str | Path, spec: EpisodeSpec, row: dict[str, Any], trajectory=None):
    """Write one played cell into a run folder, atomically (and its trajectory, if given)."""
    out = Path(out_dir)
    if trajectory is not None:
        trajectory.save(out / TRAJECTORIES_DIR / f"{spec.key()}.npz")
    doc = {"format": EPISODE_FORMAT, "spec": spec.identity(), "row": row}
    write_text_atomic(
        episode_path(out, spec), json.dumps(nan_to_none(doc), indent=1, default=repr) + "\n"
    )
