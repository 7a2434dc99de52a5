"""Gymnasium environments: the ECAP-tracking suite, registered from ``envs/*.toml``.

``import closedloop`` calls :func:`register_suite`, so every id works with
``gymnasium.make("closedloop/ECAPTracking-v0", **overrides)``, and
``gymnasium.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` builds the
native :class:`~closedloop.envs.vector.ECAPVectorEnv`.
"""

from __future__ import annotations

import gymnasium as gym

from closedloop.envs.config import load_suite

ENTRY_POINT = "closedloop.envs.ecap_env:ECAPTrackingEnv"
VECTOR_ENTRY_POINT = "closedloop.envs.vector:ECAPVectorEnv"


def register_suite() -> list[str]:
    """Register every spec in ``envs/`` with Gymnasium (idempotent); returns the ids."""
    ids = []
    for env_id in load_suite():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point=ENTRY_POINT,
                kwargs={"env_id": env_id},
                vector_entry_point=VECTOR_ENTRY_POINT,
                disable_env_checker=False,
            )
        ids.append(env_id)
    return ids
