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
a picklable zero-argument factory. A plain MLP policy is ``batch_ready``: one instance plays many
episodes at once in ``closedloop.evaluation.batch_runner.run_episodes`` (``reset_many`` and
``predict_many``, the protocol of :mod:`closedloop.controllers.batch`) through the numba row
kernel of :mod:`closedloop.training.policy_kernels`, each episode equal bit for bit to a
one-episode run.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from closedloop._config import ConfigError
from closedloop._specdirs import spec_dir
from closedloop.controllers.base import ControlContext, SB3Policy
from closedloop.controllers.batch import _check_rows, check_contexts
from closedloop.training.policy_kernels import extract_mlp, mlp_actions, with_obs_norm
from closedloop.training.spec import algorithm_class

MODEL_FILE = "model.zip"
NORM_FILE = "vecnormalize.pkl"
OBS_NORM_FILE = "obs_norm.json"
CARD_FILE = "card.json"
_ONE_EPISODE_METHODS = ("predict", "reset", "_kernel_act", "_tick")
ZOO_DIR = "zoo"
"""Sub-folder of ``agents/`` holding the trained policies (one folder each, with its card)."""


def zoo_policies() -> dict[str, Path]:
    """Trained policies of the agent zoo: ``agents/zoo/<name>/`` folders holding a model card."""
    root = spec_dir("agents") / ZOO_DIR
    return {p.name: p for p in sorted(root.glob("*")) if (p / "card.json").is_file()}


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
        return cls(
            np.array(rms.mean, np.float64),
            np.array(rms.var, np.float64),
            float(norm.clip_obs),
            float(norm.epsilon),
            bool(norm.norm_obs),
        )

    @classmethod
    def load(cls, path: str | Path) -> ObsNormalizer:
        """From ``obs_norm.json`` (:meth:`to_json`) or a saved ``vecnormalize.pkl``."""
        path = Path(path)
        if path.suffix == ".json":
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                np.array(doc["mean"], np.float64),
                np.array(doc["var"], np.float64),
                float(doc["clip"]),
                float(doc["epsilon"]),
                bool(doc["enabled"]),
            )
        with open(path, "rb") as fh:
            return cls.from_vecnormalize(pickle.load(fh))

    def to_json(self) -> str:
        """The statistics as JSON (floats written exactly: ``repr`` round-trips)."""
        return (
            json.dumps(
                {
                    "mean": self.mean.tolist(),
                    "var": self.var.tolist(),
                    "clip": self.clip,
                    "epsilon": self.epsilon,
                    "enabled": self.enabled,
                },
                indent=1,
            )
            + "\n"
        )

    def __call__(self, obs: Any) -> np.ndarray:
        """The normalised observation (float32), as ``VecNormalize.normalize_obs`` computes it."""
        x = np.asarray(obs, dtype=np.float32)
        if not self.enabled:
            return x
        z = (x - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)


class TrainedPolicy(SB3Policy):
    """A trained SB3 model behind the controller interface, with its observation normalisation.

    The deterministic action of a plain MLP policy (PPO/A2C, SAC/TQC, TD3/DDPG ``MlpPolicy``) is
    computed by the numba row kernel of :mod:`closedloop.training.policy_kernels` from a float64
    copy of the weights taken here, in ``predict`` and in :meth:`predict_many` alike: the policy
    is then :attr:`batch_ready` and plays many episodes at once in
    :func:`~closedloop.evaluation.batch_runner.run_episodes`, each equal bit for bit to a
    one-episode run (a batched torch forward is not: its sums depend on the batch size). Its
    actions differ from SB3's float32 torch forward by rounding only (about 1e-7 of the action
    scale). Other networks (and ``deterministic=False``) go through torch as SB3 computes them.

    Args:
        model: The SB3 model (anything with SB3's ``predict``).
        normalizer: The observation normalisation it was trained with (None: none). The row
            kernel copies its statistics here, at construction.
        name: Controller label for result tables.
        card: The model card, if loaded from a folder.

    Attributes:
        contexts: The episodes' contexts since :meth:`reset_many` (or :meth:`reset`).
        steps: Steps played: an int, or an int64 array over the episodes of :meth:`reset_many`.
        t_s: Simulated time before the next step (s): a float, or a float64 array likewise.
    """

    def __init__(
        self,
        model: Any,
        normalizer: ObsNormalizer | None = None,
        name: str = "sb3",
        card: dict | None = None,
    ) -> None:
        super().__init__(model)
        self.normalizer = normalizer
        self.name = name
        self.card = card or {}
        self.contexts: tuple[ControlContext, ...] = ()
        net = getattr(model, "policy", None)
        self._net = net if hasattr(net, "_predict") and not hasattr(net, "lstm_actor") else None
        if self._net is not None:
            self._net.set_training_mode(False)
        self._mlp = None if self._net is None else extract_mlp(self._net)
        if self._mlp is not None and normalizer is not None and normalizer.enabled:
            n = normalizer
            self._mlp = with_obs_norm(self._mlp, n.mean, n.var, n.epsilon, n.clip)

    @property
    def batch_ready(self) -> bool:
        """Whether :meth:`predict_many` equals ``predict`` episode by episode.

        True when the row kernel plays this network and no subclass overrides the one-episode
        methods.
        """
        cls = type(self)
        return self._mlp is not None and all(
            getattr(cls, m) is getattr(TrainedPolicy, m) for m in _ONE_EPISODE_METHODS
        )

    def reset(self, context: ControlContext) -> None:
        """Start one episode: remember the context, zero the clock."""
        super().reset(context)
        self.contexts = (context,)

    def reset_many(self, contexts: Sequence[ControlContext]) -> None:
        """Start one episode per context (they must share the env's control settings).

        Raises:
            ConfigError: If the policy is not :attr:`batch_ready`, ``contexts`` is empty, holds
                anything but contexts, or its contexts differ in a shared field.
        """
        if not self.batch_ready:
            raise ConfigError(
                f"{type(self).__name__}.reset_many: this network is not "
                "batch_ready (not a plain MLP policy); play it one episode at a "
                "time with reset and predict"
            )
        contexts = check_contexts(contexts, f"{type(self).__name__}.reset_many")
        self.reset(contexts[0])
        self.contexts = tuple(contexts)
        if len(contexts) > 1:
            self.t_s, self.steps = np.zeros(len(contexts)), np.zeros(len(contexts), np.int64)

    def predict(
        self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, Any]:
        """The policy's action for ``obs`` (normalised first) and its recurrent state."""
        if len(self.contexts) > 1:
            raise ConfigError(
                f"{type(self).__name__} was reset with {len(self.contexts)} "
                "episodes; predict plays one (use predict_many)"
            )
        if self._mlp is not None and deterministic and self.context is not None:
            action = self._kernel_act(obs)
        else:
            if self.normalizer is not None:
                obs = self.normalizer(obs)
            if self._net is None or not deterministic or self.context is None:
                return super().predict(obs, state, episode_start, deterministic)
            action = self._act(obs)
        self._tick()
        return action, state

    def predict_many(self, obs: Any, rows: Any = None) -> np.ndarray:
        """Deterministic actions for the episodes ``rows`` (all if None) of :meth:`reset_many`.

        Args:
            obs: Raw observations (M, D), row ``i`` that of episode ``rows[i]``.
            rows: M distinct episode indices, or None (M = number of episodes, in order). Each
                episode's clock advances by one control period.

        Returns:
            Actions (M, n_actions), float32, each row equal to that episode's ``predict`` bit
            for bit.

        Raises:
            ConfigError: Before :meth:`reset_many`, for a policy that is not
                :attr:`batch_ready`, or on a bad shape of ``obs`` or ``rows``.
        """
        name = type(self).__name__
        if self.context is None or not self.batch_ready:
            raise ConfigError(
                f"{name}.predict_many needs a batch_ready policy reset with reset_many(contexts)"
            )
        x = np.asarray(obs)
        if x.ndim != 2 or x.shape[1] != self._mlp.n_inputs:
            raise ConfigError(f"obs has shape {x.shape}; expected (episodes, {self._mlp.n_inputs})")
        r = _check_rows(rows, len(self.contexts), x.shape[0])
        actions = mlp_actions(self._mlp, x)
        dt_s = self.context.dt_s
        if len(self.contexts) == 1:
            if r.size:
                self._tick()
        elif rows is None:
            self.t_s += dt_s
            self.steps += 1
        else:
            self.t_s[r] += dt_s
            self.steps[r] += 1
        return actions

    def _kernel_act(self, obs: Any) -> np.ndarray:
        """The row kernel's action (n_actions,) float32 for one raw observation."""
        x = np.asarray(obs, np.float32).reshape(1, -1)
        if x.shape[1] != self._mlp.n_inputs:
            raise ConfigError(f"obs has {x.shape[1]} entries; expected {self._mlp.n_inputs}")
        return mlp_actions(self._mlp, x)[0]

    def _act(self, obs: np.ndarray) -> np.ndarray:
        """SB3's deterministic ``predict`` for one normalised observation, with the same result.

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
    raise ConfigError(
        f"path={str(path)!r} holds no trained model: expected {MODEL_FILE} and "
        f"{CARD_FILE} in it, or in its best/ or final/ folder"
    )


def load_trained(path: str | Path, device: str = "cpu") -> TrainedPolicy | Any:
    """Load a trained model folder (or a training run's best model) as a controller.

    Args:
        path: A model folder, or a run folder of ``closedloop train`` (its ``best/`` model if
            there is one, else ``final/``).
        device: Torch device of the network.

    Returns:
        A :class:`TrainedPolicy`; call ``reset(context)`` before playing it. Its ``card``
        attribute holds the model card, its ``name`` the card's name. A residual agent (its
        card has a ``residual`` table) comes as a
        :class:`~closedloop.training.residual.ResidualPolicy` around it.

    Raises:
        ConfigError: If the folder holds no model, or its algorithm's package is missing.
    """
    folder = model_dir(path)
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    cls = algorithm_class(card["algorithm"])
    model = cls.load(str(folder / MODEL_FILE), device=device)
    paths = [p for p in (folder / OBS_NORM_FILE, folder / NORM_FILE) if p.is_file()]
    normalizer = ObsNormalizer.load(paths[0]) if paths else None
    policy = TrainedPolicy(model, normalizer, name=card.get("name", "sb3"), card=card)
    if card.get("residual"):
        from closedloop.training.residual import ResidualParams, ResidualPolicy

        return ResidualPolicy(policy, ResidualParams.from_table(card["residual"]))
    return policy


@dataclasses.dataclass(frozen=True)
class TrainedPolicyFactory:
    """A picklable zero-argument factory of :func:`load_trained` (for worker processes).

    Attributes:
        path: The model or run folder.
    """

    path: str

    @property
    def source_id(self) -> str:
        """Names the model in a run folder's episode keys.

        ``zoo:<name>`` for the agent zoo's policies (wherever the package is installed), else
        ``trained:<absolute path>``.
        """
        path = Path(self.path).resolve()
        for name, folder in zoo_policies().items():
            if folder.resolve() == path:
                return f"zoo:{name}"
        return f"trained:{path}"

    def __call__(self) -> TrainedPolicy:
        """Load the model."""
        return load_trained(self.path)
