"""Gymnasium environments: the ECAP-tracking suite, registered from ``envs/*.toml``.

``import closedloop`` calls :func:`register_suite`, so every id works with
``gymnasium.make("closedloop/ECAPTracking-v0", **overrides)``.
"""

from __future__ import annotations

import gymnasium as gym

ENTRY_POINT = "closedloop.envs.ecap_env:ECAPTrackingEnv"


def register_suite() -> list[str]:
    """Register every spec in ``envs/`` with Gymnasium (idempotent); returns the ids."""
    from closedloop.envs.config import load_suite

    ids = []
    for env_id in load_suite():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=ENTRY_POINT, kwargs={"env_id": env_id},
                         disable_env_checker=False)
        ids.append(env_id)
    return ids
