"""The sampled disturbance: per-pulse arrays the environment consumes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from closedloop.disturbances.events import EVENT_TYPES
from closedloop.patients.postures import POSTURES

CSF_RANGE_MM = (0.5, 12.0)
"""The total CSF thickness is clipped into this range (mm): the neural model's valid range
(its tables span 0.5-12 mm, :data:`closedloop.neural.geometry.CSF_GRID_MM`). Every pulse at
which the clip acted is flagged in :attr:`DisturbanceTrace.csf_clipped`."""

PARTS = ("posture", "respiration", "cardiac", "gait", "events", "drift", "sway")
"""Component names, in the fixed order their seeds are spawned (a new component is appended,
so that the draws of the others stay as they were)."""


@dataclasses.dataclass(frozen=True)
class DisturbanceTrace:
    """A disturbance sampled at the pulse rate; all arrays have one entry per pulse.

    Attributes:
        t_s: float64, time of each pulse (s), ``arange(n) / rate_hz``.
        posture: int8, posture code (index into :data:`closedloop.patients.postures.POSTURES`);
        during a
            transition, the destination posture.
        csf_mm: float64, total dorsal CSF thickness (mm): the sum of ``parts`` clipped into
            :data:`CSF_RANGE_MM`.
        event: int8, 0 when no event is active, else the 1-based index into
            :data:`~closedloop.disturbances.events.EVENT_TYPES`.
        impedance_scale: float64, factor on the patient's contact impedance (1 at ``t = 0``).
        parts: Each component's CSF contribution (mm, float64, unclipped), keyed by
            :data:`PARTS`; a disabled component contributes zeros.
        rate_hz: Pulse rate (Hz).
        scenario: Name of the scenario that produced the trace.
        csf_clipped: int8, derived from ``parts``: +1 where their sum lay above
            :data:`CSF_RANGE_MM` and ``csf_mm`` was clamped to its upper end (e.g. chronic drift
            past 12 mm), -1 where it was raised to the lower end, else 0.
    """

    t_s: np.ndarray
    posture: np.ndarray
    csf_mm: np.ndarray
    event: np.ndarray
    impedance_scale: np.ndarray
    parts: Mapping[str, np.ndarray]
    rate_hz: float
    scenario: str
    csf_clipped: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        total = np.zeros(len(self.t_s))
        for key in PARTS:  # summed in the order the scenario sums them
            if key in self.parts:
                total = total + self.parts[key]
        lo, hi = CSF_RANGE_MM
        clipped = (total > hi).astype(np.int8) - (total < lo).astype(np.int8)
        object.__setattr__(self, "csf_clipped", clipped)

    @property
    def csf_clipped_fraction(self) -> float:
        """Fraction of the pulses whose CSF thickness was clamped into :data:`CSF_RANGE_MM`."""
        return float(np.count_nonzero(self.csf_clipped)) / max(len(self.t_s), 1)

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def duration_s(self) -> float:
        """Duration covered by the pulses (s), ``n / rate_hz``."""
        return len(self.t_s) / self.rate_hz

    def posture_names(self) -> list[str]:
        """Posture name at each pulse."""
        return [POSTURES[c] for c in self.posture]

    def event_names(self) -> list[str | None]:
        """Active event type name at each pulse (None when no event is active)."""
        return [EVENT_TYPES[c - 1] if c else None for c in self.event]

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-serialisable), with the posture and event names."""
        return {
            "scenario": self.scenario,
            "rate_hz": self.rate_hz,
            "postures": list(POSTURES),
            "event_types": list(EVENT_TYPES),
            "t_s": self.t_s.tolist(),
            "posture": self.posture.tolist(),
            "csf_mm": self.csf_mm.tolist(),
            "event": self.event.tolist(),
            "impedance_scale": self.impedance_scale.tolist(),
            "csf_clipped": self.csf_clipped.tolist(),
            "parts": {k: v.tolist() for k, v in self.parts.items()},
        }
