"""Trained SB3 models as controllers: :func:`load_trained` and :class:`TrainedPolicy`.

A trained model is a folder (what ``closedloop train`` writes as ``<out>/best`` and
``<out>/final``, and what the agent zoo commits)::

    model.zip            the SB3 model (stable-baselines3 / sb3-contrib format)
    vecnormalize.pkl     the VecNormalize statistics it was trained with (SB3 format)
    obs_norm.json        the same observation statistics as JSON (what the controller reads)
    card.json, card.md   its model card (:mod:`closedloop.training.card`)

:func:`load_trained` returns a :class:`TrainedPolicy`: the controller interface of
:mod:`closedloop.controllers.base` (``reset(context)`` and SB3's ``predict``) that normalises each
observation with the saved statistics before the network sees it, exactly as in training.
``closedloop.evaluation.run_episode`` and the benchmark play it like any other controller::

    from closedloop.training import load_trained
    from closedloop.evaluation import run_episode

    ctl = load_trained("runs/train-ppo")          # the run's best model (else its final one)
    result = run_episode(ctl, "closedloop/ECAPTracking-Test-v0", "test-003", seed=0)

For worker processes (``closedloop.evaluation.run_grid``), pass ``TrainedPolicyFactory(path)``:
a picklable zero-argument factory.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from closedloop._config import ConfigError
from closedloop.controllers.base import SB3Policy

MODEL_FILE = "model.zip"
NORM_FILE = "vecnormalize.pkl"
OBS_NORM_FILE = "obs_norm.json"
CARD_FILE = "card.json"


@dataclasses.dataclass(frozen=True)
class ObsNormalizer:
    """The observation normalisation of a ``VecNormalize``, frozen at one moment.

    Attributes:
        mean: Running mean per observation entry (units of the entry).
        var: Running variance per observation entry.
        clip: Clip of the normalised values.
        epsilon: Added to the variance before the square root.
        enabled: Whether observations were normalised at all.
    """

    mean: np.ndarray
    var: np.ndarray
    clip: float = 10.0
    epsilon: float = 1e-8
    enabled: bool = True

    @classmethod
    def from_vecnormalize(cls, norm: Any) -> ObsNormalizer:
        """A copy of ``norm``'s current statistics (later updates do not change it)."""
        rms = norm.obs_rms
        return cls(np.array(rms.mean, np.float64), np.array(rms.var, np.float64),
                   float(norm.clip_obs), float(norm.epsilon), bool(norm.norm_obs))

    @classmethod
    def load(cls, path: str | Path) -> ObsNormalizer:
        """From ``obs_norm.json`` (:meth:`to_json`) or a saved ``vecnormalize.pkl``."""
        path = Path(path)
        if path.suffix == ".json":
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(np.array(doc["mean"], np.float64), np.array(doc["var"], np.float64),
                       float(doc["clip"]), float(doc["epsilon"]), bool(doc["enabled"]))
        with open(path, "rb") as fh:
            return cls.from_vecnormalize(pickle.load(fh))

    def to_json(self) -> str:
        """The statistics as JSON (floats written exactly: ``repr`` round-trips)."""
        return json.dumps({"mean": self.mean.tolist(), "var": self.var.tolist(),
                           "clip": self.clip, "epsilon": self.epsilon,
                           "enabled": self.enabled}, indent=1) + "\n"

    def __call__(self, obs: Any) -> np.ndarray:
        """The normalised observation (float32), as ``VecNormalize.normalize_obs`` computes it."""
        x = np.asarray(obs, dtype=np.float32)
        if not self.enabled:
            return x
        z = (x - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)


class TrainedPolicy(SB3Policy):
    """A trained SB3 model behind the controller interface, with its observation normalisation.

    Args:
        model: The SB3 model (anything with SB3's ``predict``).
        normalizer: The observation normalisation it was trained with (None: none).
        name: Controller label for result tables.
        card: The model card, if loaded from a folder.
    """

    def __init__(self, model: Any, normalizer: ObsNormalizer | None = None,
                 name: str = "sb3", card: dict | None = None) -> None:
        super().__init__(model)
        self.normalizer = normalizer
        self.name = name
        self.card = card or {}
        net = getattr(model, "policy", None)
        self._net = net if hasattr(net, "_predict") and not hasattr(net, "lstm_actor") else None
        if self._net is not None:
            self._net.set_training_mode(False)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """The policy's action for the normalised ``obs`` (and its recurrent state)."""
        if self.normalizer is not None:
            obs = self.normalizer(obs)
        if self._net is None or not deterministic or self.context is None:
            return super().predict(obs, state, episode_start, deterministic)
        self.t_s += self.context.dt_s
        self.steps += 1
        return self._act(obs), state

    def _act(self, obs: np.ndarray) -> np.ndarray:
        """SB3's deterministic ``predict`` for one observation, with the same result.

        Skips SB3's per-call overhead (switching the network to eval mode, input checks).
        """
        import torch

        net = self._net
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs, np.float32).reshape(1, -1))
            a = net._predict(x, deterministic=True).cpu().numpy().reshape(-1)
        if net.squash_output:
            return net.unscale_action(a).astype(np.float32)
        return np.clip(a, net.action_space.low, net.action_space.high).astype(np.float32)


def model_dir(path: str | Path) -> Path:
    """The model folder of ``path``: itself, or a run folder's ``best`` (else ``final``)."""
    path = Path(path)
    for candidate in (path, path / "best", path / "final"):
        if (candidate / MODEL_FILE).is_file() and (candidate / CARD_FILE).is_file():
            return candidate
    raise ConfigError(f"path={str(path)!r} holds no trained model: expected {MODEL_FILE} and "
                      f"{CARD_FILE} in it, or in its best/ or final/ folder")


def load_trained(path: str | Path, device: str = "cpu") -> TrainedPolicy:
    """Load a trained model folder (or a training run's best model) as a controller.

    Args:
        path: A model folder, or a run folder of ``closedloop train`` (its ``best/`` model if
            there is one, else ``final/``).
        device: Torch device of the network.

    Returns:
        A :class:`TrainedPolicy`; call ``reset(context)`` before playing it. Its ``card``
        attribute holds the model card, its ``name`` the card's name.

    Raises:
        ConfigError: If the folder holds no model, or its algorithm's package is missing.
    """
    from closedloop.training.spec import algorithm_class

    folder = model_dir(path)
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    cls = algorithm_class(card["algorithm"])
    model = cls.load(str(folder / MODEL_FILE), device=device)
    paths = [p for p in (folder / OBS_NORM_FILE, folder / NORM_FILE) if p.is_file()]
    normalizer = ObsNormalizer.load(paths[0]) if paths else None
    return TrainedPolicy(model, normalizer, name=card.get("name", "sb3"), card=card)


@dataclasses.dataclass(frozen=True)
class TrainedPolicyFactory:
    """A picklable zero-argument factory of :func:`load_trained` (for worker processes).

    Attributes:
        path: The model or run folder.
    """

    path: str

    def __call__(self) -> TrainedPolicy:
        """Load the model."""
        return load_trained(self.path)
