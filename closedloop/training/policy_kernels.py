"""The deterministic forward pass of SB3 MLP policies as a numba row kernel.

A batched torch forward is not bit-identical to a one-row forward (the GEMM path depends on the
batch size: differences of about 1e-7 for batches of seven rows or more), so the batched
evaluation path cannot call torch and still equal the one-episode path bit for bit. This module
copies the weights of an SB3 ``MlpPolicy`` once (:func:`extract_mlp`) and computes the
deterministic action of each observation row with explicit loops in a fixed order
(:func:`mlp_actions`): a row's result does not depend on the other rows or on their number.

Arithmetic: the float32 weights and observations are widened to float64 (exactly) and every
product, sum and activation is computed in float64 (accumulation in input order, starting from
the bias); the action is rounded to float32 once, at the end. It therefore differs from SB3's
float32 torch forward by rounding only (about 1e-7 of the action scale).

What SB3 builds for ``MlpPolicy`` is supported:

* PPO / A2C ``ActorCriticPolicy`` with a :class:`~stable_baselines3.common.distributions.\
DiagGaussianDistribution` (no gSDE): flatten, ``mlp_extractor.policy_net`` (Linear and Tanh or
  ReLU), ``action_net`` (Linear): the deterministic action is the mean, clipped to the action
  space;
* SAC / TQC actors (``actor.latent_pi`` then ``actor.mu``, a squashed Gaussian without gSDE): the
  deterministic action is ``tanh`` of the mean, unscaled to the action space;
* TD3 / DDPG actors (``actor.mu``, a Linear/ReLU stack ending in Tanh): unscaled to the action
  space.

Anything else (CNN or dict observations, recurrent policies, custom extractors, other activations,
gSDE, discrete actions) gives None from :func:`extract_mlp`: the caller keeps torch.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np

from closedloop._config import ConfigError

IDENTITY, TANH, RELU = 0, 1, 2
"""Activation codes of a layer (column 4 of :attr:`MlpParams.layout`)."""
POST_CLIP, POST_UNSCALE = 0, 1
"""Action post-processing: clip to ``[low, high]``, or map ``[-1, 1]`` onto ``[low, high]``."""


class MlpParams(NamedTuple):
    """The observation normalisation and weights of a plain MLP actor, for :func:`mlp_actions`.

    Attributes:
        w: Every layer's weight matrix transposed (in, out), row-major, concatenated (float64).
        b: Every layer's bias, concatenated (float64).
        layout: (layers, 5) int64: inputs, outputs, offset in ``w``, offset in ``b``, and
            activation code (:data:`IDENTITY`, :data:`TANH`, :data:`RELU`) of each layer.
        post: :data:`POST_CLIP` or :data:`POST_UNSCALE`.
        low: Lower bound of each action entry (float64, the action space's).
        high: Upper bound of each action entry (float64).
        obs_mean: Mean subtracted from each observation entry (float64; zeros: none).
        obs_std: ``sqrt(var + epsilon)`` dividing it (float64; ones: none).
        obs_clip: Clip of the normalised entries (inf: none).
    """

    w: np.ndarray
    b: np.ndarray
    layout: np.ndarray
    post: int
    low: np.ndarray
    high: np.ndarray
    obs_mean: np.ndarray
    obs_std: np.ndarray
    obs_clip: float = math.inf

    @property
    def n_inputs(self) -> int:
        """Observation entries the network reads."""
        return int(self.layout[0, 0])

    @property
    def n_actions(self) -> int:
        """Action entries it returns."""
        return int(self.layout[-1, 1])


@numba.njit(cache=True)
def _layer(src, dst, w, b, n_in, n_out, w_at, b_at, act):
    """``dst[:n_out] = act(W src[:n_in] + b)`` in float64.

    ``w`` holds W transposed (in, out), so the loop over the outputs is innermost (and may use
    SIMD lanes) while each output still sums bias first, then its inputs in order: the same
    operations in the same order for every row.
    """
    d = dst[:n_out]
    d[:] = b[b_at : b_at + n_out]
    for k in range(n_in):
        s = src[k]
        wk = w[w_at + k * n_out : w_at + (k + 1) * n_out]
        for j in range(n_out):
            d[j] += wk[j] * s
    if act == TANH:
        for j in range(n_out):
            d[j] = math.tanh(d[j])
    elif act == RELU:
        for j in range(n_out):
            d[j] = d[j] if d[j] > 0.0 else 0.0


@numba.njit(cache=True)
def mlp_row(x, w, b, layout, post, low, high, mean, std, clip, src, dst, out):
    """The deterministic action of one observation row.

    The observation is normalised as ``VecNormalize.normalize_obs`` (and
    :class:`~closedloop.training.policy.ObsNormalizer`) computes it, with the same float64
    operations: ``float32(clip((x - mean) / std, -clip, clip))``.

    Args:
        x: Raw observation (D,), float32.
        w: :attr:`MlpParams.w`.
        b: :attr:`MlpParams.b`.
        layout: :attr:`MlpParams.layout`.
        post: :attr:`MlpParams.post`.
        low: :attr:`MlpParams.low` (action units).
        high: :attr:`MlpParams.high` (action units).
        mean: :attr:`MlpParams.obs_mean` (observation units).
        std: :attr:`MlpParams.obs_std` (observation units).
        clip: :attr:`MlpParams.obs_clip`.
        src: Scratch float64 array at least as long as the widest layer.
        dst: Another one.
        out: The action (A,), float32, written here.
    """
    for k in range(layout[0, 0]):
        z = (np.float64(x[k]) - mean[k]) / std[k]
        z = -clip if z < -clip else (clip if z > clip else z)
        src[k] = np.float32(z)
    for i in range(layout.shape[0]):
        _layer(src, dst, w, b, layout[i, 0], layout[i, 1], layout[i, 2], layout[i, 3], layout[i, 4])
        src, dst = dst, src
    for j in range(layout[-1, 1]):
        a = src[j]
        if post == POST_CLIP:
            a = low[j] if a < low[j] else (high[j] if a > high[j] else a)
        else:
            a = low[j] + 0.5 * (a + 1.0) * (high[j] - low[j])
        out[j] = a


@numba.njit(cache=True)
def mlp_many(x, w, b, layout, post, low, high, mean, std, clip, out):
    """:func:`mlp_row` on every row of ``x`` (M, D) float32 into ``out`` (M, A) float32."""
    width = 1
    for i in range(layout.shape[0]):
        width = max(width, layout[i, 0], layout[i, 1])
    src, dst = np.empty(width), np.empty(width)
    for i in range(x.shape[0]):
        mlp_row(x[i], w, b, layout, post, low, high, mean, std, clip, src, dst, out[i])


def mlp_actions(params: MlpParams, x: np.ndarray) -> np.ndarray:
    """Deterministic actions of observation rows, each independent of the others.

    Args:
        params: The packed network (:func:`extract_mlp`).
        x: Raw observations (M, D) (normalised by the kernel with ``params``' statistics); cast
            to C-contiguous float32 (as SB3 and VecNormalize do), so that every call runs the
            same compiled code.

    Returns:
        Actions (M, A), float32, after the policy's clip or unscaling.
    """
    rows = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
    out = np.empty((rows.shape[0], params.n_actions), np.float32)
    p = params
    mlp_many(
        rows,
        p.w,
        p.b,
        p.layout,
        p.post,
        p.low,
        p.high,
        p.obs_mean,
        p.obs_std,
        float(p.obs_clip),
        out,
    )
    return out


def extract_mlp(policy: Any) -> MlpParams | None:
    """The packed weights of an SB3 policy's deterministic actor, or None if unsupported.

    Args:
        policy: An SB3 policy (``model.policy``): ``ActorCriticPolicy``, ``SACPolicy``,
            ``TD3Policy`` or a subclass (TQC's, DDPG's).

    Returns:
        The weights as float64 copies (later training does not change them), or None for a
        network the kernel does not reproduce (see the module docstring).
    """
    try:
        import torch.nn as nn
        from gymnasium import spaces
        from stable_baselines3.common import distributions as dist
        from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
    except ImportError:
        return None
    space, obs_space = (getattr(policy, k, None) for k in ("action_space", "observation_space"))
    if not all(isinstance(s, spaces.Box) and len(s.shape) == 1 for s in (space, obs_space)):
        return None
    actor = getattr(policy, "actor", None)
    if hasattr(policy, "mlp_extractor"):  # PPO, A2C
        if (
            type(policy.mlp_extractor) is not MlpExtractor
            or policy.squash_output
            or type(getattr(policy, "action_dist", None)) is not dist.DiagGaussianDistribution
            or type(getattr(policy, "pi_features_extractor", None)) is not FlattenExtractor
        ):
            return None
        modules = [*policy.mlp_extractor.policy_net, policy.action_net]
        post = POST_CLIP
    elif (
        isinstance(actor, nn.Module)
        and type(getattr(actor, "features_extractor", None)) is FlattenExtractor
        and policy.squash_output
    ):
        if hasattr(actor, "latent_pi"):  # SAC, TQC
            if (
                getattr(actor, "use_sde", True)
                or type(actor.action_dist) is not dist.SquashedDiagGaussianDistribution
                or type(actor.mu) is not nn.Linear
            ):
                return None
            modules = [*actor.latent_pi, actor.mu, nn.Tanh()]
        elif isinstance(actor.mu, nn.Sequential):  # TD3, DDPG
            modules = list(actor.mu)
        else:
            return None
        post = POST_UNSCALE
    else:
        return None
    return _pack(modules, post, space, obs_space.shape[0])


def _pack(modules: list, post: int, space: Any, n_obs: int) -> MlpParams | None:
    """Linear layers, each followed by at most one Tanh or ReLU, as :class:`MlpParams`."""
    import torch.nn as nn

    acts = {nn.Tanh: TANH, nn.ReLU: RELU}
    weights, biases, layout = [], [], []
    for m in modules:
        if type(m) is nn.Linear:
            w = m.weight.detach().cpu().numpy().astype(np.float64)
            b = (
                np.zeros(w.shape[0])
                if m.bias is None
                else m.bias.detach().cpu().numpy().astype(np.float64)
            )
            n_in = layout[-1][1] if layout else n_obs
            if w.shape[1] != n_in:
                return None
            layout.append(
                [
                    w.shape[1],
                    w.shape[0],
                    sum(x.size for x in weights),
                    sum(x.size for x in biases),
                    IDENTITY,
                ]
            )
            weights.append(w.T.reshape(-1))
            biases.append(b)
        elif type(m) in acts and layout and layout[-1][4] == IDENTITY:
            layout[-1][4] = acts[type(m)]
        elif type(m) is not nn.Identity:
            return None
    if not layout or layout[-1][1] != space.shape[0]:
        return None
    low = np.asarray(space.low, np.float64).reshape(-1)
    high = np.asarray(space.high, np.float64).reshape(-1)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        return None
    return MlpParams(
        np.concatenate(weights),
        np.concatenate(biases),
        np.array(layout, np.int64),
        post,
        low,
        high,
        np.zeros(n_obs),
        np.ones(n_obs),
    )


def with_obs_norm(params: MlpParams, mean: Any, var: Any, epsilon: float, clip: float) -> MlpParams:
    """``params`` normalising observations with VecNormalize's statistics.

    Args:
        params: The packed network.
        mean: Running mean per observation entry (observation units).
        var: Running variance per observation entry.
        epsilon: Added to the variance before the square root.
        clip: Clip of the normalised values, > 0.

    Raises:
        ConfigError: If the statistics do not have one entry per network input.
    """
    mean = np.array(mean, np.float64).reshape(-1)
    std = np.sqrt(np.array(var, np.float64).reshape(-1) + epsilon)
    if mean.shape != (params.n_inputs,) or std.shape != mean.shape:
        raise ConfigError(
            f"observation statistics of {mean.size} entries for a network of "
            f"{params.n_inputs} inputs"
        )
    return params._replace(obs_mean=mean, obs_std=std, obs_clip=float(clip))
