"""``StepInfo``: the env's per-step ``info`` dict, cheap to deep-copy.

SB3's ``DummyVecEnv`` deep-copies every step's ``info``. Ours holds about a dozen immutable
scalars (float, int, bool, str), so a deep copy is a shallow copy plus deep copies of the few
other values (the episode-end intervention counts, a ``Monitor``'s episode record). ``copy``'s
generic walk over the dict costs several times more per step.
"""

from __future__ import annotations

import copy

_IMMUTABLE = frozenset((float, int, bool, str, type(None)))


class StepInfo(dict):
    """A ``dict`` whose deep copy skips its immutable scalar values (see the module docstring)."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict) -> StepInfo:
        out = StepInfo(self)
        for key, value in self.items():
            if type(value) not in _IMMUTABLE:
                out[key] = copy.deepcopy(value, memo)
        return out
