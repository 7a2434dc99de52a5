"""The body postures the simulator knows, in a fixed order (their integer codes)."""

from __future__ import annotations

from closedloop._config import ConfigError

POSTURES = ("supine", "prone", "side", "sitting", "standing", "walking")
"""Posture names; a posture's integer code is its index here."""


def posture_code(name: str) -> int:
    """Integer code of posture ``name``; raises :class:`ConfigError` naming the valid ones."""
    try:
        return POSTURES.index(name)
    except ValueError:
        raise ConfigError(f"posture={name!r} is unknown; valid: {', '.join(POSTURES)}") from None
