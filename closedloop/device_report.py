"""What the device limits did: each pulse's limit flags, counted per limit over an episode."""

from __future__ import annotations

import numpy as np

from closedloop._config import ConfigError
from closedloop.device_limits import LIMIT_FLAGS

_NAMES = tuple(LIMIT_FLAGS)
# _BIT_TABLE[f, k] is 1 when flag value f (0-31) has the bit of limit k set.
_BIT_TABLE = np.array(
    [[(f >> k) & 1 for k in range(len(_NAMES))] for f in range(32)], dtype=np.int64
)
_NAMES_SET = tuple(tuple(n for k, n in enumerate(_NAMES) if (f >> k) & 1) for f in range(32))
"""The limit names set in each flag value (0-31): :meth:`InterventionCounter.add`'s table."""


def limit_report(flags) -> dict[str, int]:
    """Count, per limit name, the entries of ``flags`` in which that limit acted.

    Args:
        flags: Flags from :func:`apply_limits` (any shape, including ``()`` and empty).

    Returns:
        ``{name: count}`` for every name in :data:`LIMIT_FLAGS`, in order.
    """
    f = np.asarray(flags)
    if f.size and (f.min() < 0 or f.max() > 31):
        raise ConfigError(f"flags must lie in [0, 31], got [{f.min()}, {f.max()}]")
    hist = np.bincount(f.ravel().astype(np.intp, copy=False), minlength=32)
    return dict(zip(_NAMES, (int(c) for c in hist @ _BIT_TABLE), strict=True))


class InterventionCounter:
    """Running count of the safety model's interventions, per limit, e.g. over an episode.

    Example:
        >>> counter = InterventionCounter()
        >>> _, flags = apply_limits(30.0, 25.0, 250.0, 1000.0, 0.0, 25.5, DeviceParams())
        >>> counter.update(flags)["compliance"]
        1
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(_NAMES, 0)
        self.n_seen = 0
        """Number of flag entries counted so far (control steps x patients)."""

    def update(self, flags) -> dict[str, int]:
        """Add the interventions in ``flags``; return a copy of the running counts."""
        for name, count in limit_report(flags).items():
            self.counts[name] += count
        self.n_seen += int(np.size(flags))
        return dict(self.counts)

    def add(self, flags: int) -> None:
        """Add one entry's flags (a Python int, 0-31): :meth:`update` without NumPy, per step."""
        for name in _NAMES_SET[flags]:
            self.counts[name] += 1
        self.n_seen += 1

    def reset(self) -> None:
        """Set all counts to zero (call at the start of an episode)."""
        self.counts = dict.fromkeys(_NAMES, 0)
        self.n_seen = 0
