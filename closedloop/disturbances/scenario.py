"""A disturbance scenario: components composed and sampled at the pulse rate.

The CSF thickness at pulse ``i`` is::

    csf_mm[i] = clip(posture + respiration + cardiac + gait + events + drift + sway, 0.5, 12.0)

Each component draws only from its own child of ``np.random.SeedSequence(seed)``; the children
are spawned in the fixed order of :data:`~closedloop.disturbances.trace.PARTS` whether or not
a component is enabled, so enabling, disabling or retuning one component never changes the
draws of another. (Gait and posture-restricted events do depend on the posture *timeline*.)
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from closedloop._config import ConfigError, check_value, from_dict, param
from closedloop._io import check_memory
from closedloop.disturbances._spec import Grid, as_table, children, merge, plain
from closedloop.disturbances.drift import DriftSpec
from closedloop.disturbances.events import EventsSpec
from closedloop.disturbances.periodic import CardiacSpec, GaitSpec, RespirationSpec
from closedloop.disturbances.posture import PostureSpec, codes_at, smooth_levels
from closedloop.disturbances.sway import SwaySpec
from closedloop.disturbances.trace import CSF_RANGE_MM, PARTS, DisturbanceTrace
from closedloop.patients.postures import POSTURES

COMPONENTS = {
    "posture": PostureSpec,
    "respiration": RespirationSpec,
    "cardiac": CardiacSpec,
    "gait": GaitSpec,
    "events": EventsSpec,
    "drift": DriftSpec,
    "sway": SwaySpec,
}
"""Spec class of each component table, in :data:`PARTS` order."""

_TOP_LEVEL = ("name", "description", "duration_s")
_RATE_META = {"lo": 0.0, "lo_open": True, "hi": 1.0e6, "unit": "Hz"}
TRACE_BYTES_PER_PULSE = 200
"""Peak memory of :meth:`Scenario.sample` per pulse (bytes): the trace's arrays (time, six
parts, CSF, impedance, codes) and the temporaries of summing and smoothing them."""


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A named composition of disturbance components; None disables a component.

    Attributes:
        name: Scenario id (the library file name for library scenarios).
        description: What the scenario represents.
        duration_s: Length of a sampled trace (s).
        posture: Posture sequence or chain; None means the patient sits still.
        respiration: Breathing modulation, or None.
        cardiac: Heartbeat modulation, or None.
        gait: Stride modulation while walking, or None.
        events: Coughs, sneezes, bends, or None.
        drift: Lead migration and fibrosis, or None.
        sway: Within-posture variability (slow shifts inside a posture), or None.
    """

    name: str = "custom"
    description: str = ""
    duration_s: float = param(
        600.0,
        "s",
        "design choice: a 10-minute episode",
        0.0,
        lo_open=True,
        doc="length of a sampled trace",
    )
    posture: PostureSpec | None = None
    respiration: RespirationSpec | None = None
    cardiac: CardiacSpec | None = None
    gait: GaitSpec | None = None
    events: EventsSpec | None = None
    drift: DriftSpec | None = None
    sway: SwaySpec | None = None

    def __post_init__(self) -> None:
        for key in ("name", "description"):
            if not isinstance(getattr(self, key), str):
                raise ConfigError(f"{key}={getattr(self, key)!r} must be a string")
        check_value(
            "duration_s", self.duration_s, Scenario.__dataclass_fields__["duration_s"].metadata
        )
        for key, cls in COMPONENTS.items():
            value = getattr(self, key)
            if value is not None and not isinstance(value, cls):
                raise ConfigError(
                    f"{key} must be a {cls.__name__} or None; got {type(value).__name__}"
                )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build a scenario from the TOML schema (a mapping); unknown keys are an error.

        Args:
            data: ``name``, ``description``, ``duration_s`` and component tables
                (``posture``, ``respiration``, ``cardiac``, ``gait``, ``events``, ``drift``);
                a missing or None component is disabled.

        Returns:
            The validated scenario.

        Raises:
            ConfigError: Naming the offending key or field and its valid range or choices.
        """
        data = as_table("scenario", data)
        known = (*_TOP_LEVEL, *COMPONENTS)
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(map(str, unknown))} in scenario "
                f"{data.get('name', '')!r}; known: {', '.join(known)}"
            )
        kwargs = {key: data[key] for key in _TOP_LEVEL if key in data}
        for key, spec in COMPONENTS.items():
            if data.get(key) is None:
                continue
            if spec is EventsSpec:
                kwargs[key] = EventsSpec.from_dict(data[key])
            else:
                kwargs[key] = from_dict(spec, as_table(key, data[key]), where=key)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The scenario in the TOML schema; ``Scenario.from_dict(s.to_dict()) == s``."""
        return plain(self)

    def replace(self, **changes: Any) -> Scenario:
        """A copy with top-level fields or component tables changed (validated).

        Args:
            **changes: As the overrides of :func:`~closedloop.disturbances.load_scenario`:
                ``duration_s=120``; a mapping (or spec) merges into a component; None disables
                it.

        Returns:
            The new scenario.

        Raises:
            ConfigError: On an unknown key or an out-of-range value.
        """
        return Scenario.from_dict(merge(self.to_dict(), changes))

    def describe(self) -> str:
        """A short multi-line text: name, duration, description and enabled components."""
        lines = [f"{self.name} ({self.duration_s:g} s): {' '.join(self.description.split())}"]
        for key in COMPONENTS:
            spec = getattr(self, key)
            if spec is not None:
                lines.append(f"  - {spec.describe()}")
            elif key == "posture":
                lines.append("  - posture: sitting throughout")
        return "\n".join(lines)

    def sample(
        self,
        posture_csf_mm: Mapping[str, float],
        rate_hz: float = 50.0,
        seed: int | np.random.SeedSequence = 0,
    ) -> DisturbanceTrace:
        """Sample the scenario at the pulse rate.

        Args:
            posture_csf_mm: The patient's baseline dorsal CSF thickness per posture (mm), with
                exactly the keys of :data:`closedloop.patients.postures.POSTURES`.
            rate_hz: Pulse rate (Hz); the trace has ``round(duration_s * rate_hz)`` pulses.
            seed: A non-negative int or a SeedSequence (not modified).

        Returns:
            The trace (see :class:`DisturbanceTrace`).

        Raises:
            ConfigError: On bad ``posture_csf_mm``, ``rate_hz`` or ``seed``.
        """
        levels = _posture_levels(posture_csf_mm)
        rate_hz = _real(rate_hz)
        check_value("rate_hz", rate_hz, _RATE_META)
        n = round(self.duration_s * rate_hz)
        if n < 1:
            raise ConfigError(
                f"duration_s * rate_hz = {self.duration_s * rate_hz:g} gives no "
                "pulse; lengthen the scenario or raise the rate"
            )
        check_memory(
            f"scenario {self.name!r}: duration_s={self.duration_s:g} at rate_hz="
            f"{rate_hz:g} ({n:.3g} pulses)",
            n * TRACE_BYTES_PER_PULSE,
            "shorten duration_s or lower rate_hz",
        )
        grid = Grid(np.arange(n) / float(rate_hz), float(rate_hz), float(self.duration_s))
        seeds = dict(zip(PARTS, children(_seed_sequence(seed), len(PARTS)), strict=True))
        parts, posture, event, impedance = self._sample_parts(grid, levels, seeds)
        total = np.zeros(n)
        for key in PARTS:
            total = total + parts[key]
        return DisturbanceTrace(
            t_s=grid.t_s,
            posture=posture,
            csf_mm=np.clip(total, *CSF_RANGE_MM),
            event=event,
            impedance_scale=impedance,
            parts=parts,
            rate_hz=float(rate_hz),
            scenario=self.name,
        )

    def _sample_parts(
        self, grid: Grid, levels: np.ndarray, seeds: Mapping[str, np.random.SeedSequence]
    ) -> tuple:
        """Each component's contribution; returns ``(parts, posture, event, impedance)``."""
        n = len(grid.t_s)

        def rng(key: str) -> np.random.Generator:
            return np.random.default_rng(seeds[key])

        posture_spec = self.posture or PostureSpec()
        timeline = posture_spec.timeline(grid.duration_s, rng("posture"))
        ramp = posture_spec.transition_s
        parts = {key: np.zeros(n) for key in PARTS}
        parts["posture"] = smooth_levels(timeline, levels, grid, ramp)
        for key in ("respiration", "cardiac"):
            if getattr(self, key) is not None:
                parts[key] = getattr(self, key).sample(grid, rng(key))
        if self.gait is not None:
            walking = np.array([p == "walking" for p in POSTURES], dtype=np.float64)
            parts["gait"] = self.gait.sample(
                grid, rng("gait"), smooth_levels(timeline, walking, grid, ramp)
            )
        event = np.zeros(n, dtype=np.int8)
        if self.events is not None:
            parts["events"], event = self.events.sample(
                grid, seeds["events"], lambda t: codes_at(timeline, t)
            )
        impedance = np.ones(n)
        if self.drift is not None:
            parts["drift"], impedance = self.drift.sample(grid, rng("drift"))
        if self.sway is not None:
            scale = smooth_levels(timeline, self.sway.scale_levels(), grid, ramp)
            parts["sway"] = self.sway.sample(grid, rng("sway"), scale)
        return parts, codes_at(timeline, grid.t_s), event, impedance


def _posture_levels(posture_csf_mm: Mapping[str, float]) -> np.ndarray:
    """Check the per-posture CSF mapping and return it as an array in POSTURES order (mm)."""
    if not isinstance(posture_csf_mm, Mapping):
        raise ConfigError("posture_csf_mm must be a mapping posture -> CSF thickness (mm)")
    missing = [p for p in POSTURES if p not in posture_csf_mm]
    unknown = sorted(str(k) for k in posture_csf_mm if k not in POSTURES)
    if missing or unknown:
        raise ConfigError(
            f"posture_csf_mm must have exactly the keys {', '.join(POSTURES)}; "
            f"missing: {', '.join(missing) or 'none'}; unknown: "
            f"{', '.join(unknown) or 'none'}"
        )
    meta = {"lo": 0.0, "lo_open": True, "unit": "mm"}
    values = [_real(posture_csf_mm[p]) for p in POSTURES]
    for p, value in zip(POSTURES, values, strict=True):
        check_value(f"posture_csf_mm.{p}", value, meta)
    return np.array(values, dtype=np.float64)


def _real(value: Any) -> Any:
    """``float(value)`` for real numbers (including NumPy scalars); other values unchanged."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def _seed_sequence(seed: Any) -> np.random.SeedSequence:
    """The root SeedSequence of a trace from an int (>= 0) or a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed={seed!r} must be a non-negative int or a SeedSequence")
    return np.random.SeedSequence(int(seed))
