"""Transient events: coughs, sneezes and bends push the cord towards the lead.

Per event type, bursts arrive as a Poisson process at ``rate_per_hour``; each burst holds
``burst_size`` events (uniform integer in ``[low, high]``, default exactly 1) separated by
pauses of ``burst_gap_s``, which makes "cough storms" expressible. Each event lowers the CSF
thickness by a raised-cosine pulse of peak ``amplitude_mm`` lasting ``duration_s`` (both drawn
uniformly in their ranges). An event whose onset falls in a posture not listed in ``postures``
is dropped, so ``rate_per_hour`` is the rate per hour spent in the listed postures. Events at
fixed times (``scheduled``) are always kept. Overlapping events add up; the ``event`` marker
shows the later one.

The qualitative picture (the ECAP jumps for a fraction of a second to a second) is Medtronic's
[C, qualitative, domain.md §2]; sizes, durations and rates are assumptions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from closedloop._config import ConfigError, check_value, from_dict, param
from closedloop.disturbances._spec import (
    Grid,
    as_table,
    check_fields,
    check_int,
    check_interval,
    children,
    hann_pulse,
    index_window,
    uniform,
)
from closedloop.patients.postures import POSTURES, posture_code

EVENT_TYPES = ("cough", "sneeze", "bend")
"""Event type names; the trace's ``event`` code is the 1-based index here (0 = none)."""

_SHAPE = "assumption: domain.md §2 says a fraction of a second to a second [C, qualitative]"


@dataclasses.dataclass(frozen=True)
class EventTypeSpec:
    """One event type: Poisson bursts of raised-cosine CSF dips (defaults: a cough)."""

    WHERE: ClassVar[str] = "events.cough"

    rate_per_hour: float = param(
        10.0,
        "1/h",
        "assumption: busy, so a 10-minute episode holds a cough or two",
        0.0,
        3600.0,
        doc="mean rate of bursts (events when burst_size = [1, 1])",
    )
    amplitude_mm: tuple = param(
        (0.6, 1.2), "mm", "assumption", 0.0, 5.0, doc="[low, high] peak CSF decrease of one event"
    )
    duration_s: tuple = param(
        (0.2, 0.6), "s", _SHAPE, 0.0, 10.0, lo_open=True, doc="[low, high] duration of one event"
    )
    burst_size: tuple = param(
        (1, 1),
        "1",
        "assumption: single events by default",
        1.0,
        100.0,
        doc="[low, high] number of events in a burst",
    )
    burst_gap_s: tuple = param(
        (0.3, 1.0), "s", "assumption", 0.0, 60.0, doc="[low, high] pause between events of a burst"
    )
    postures: tuple = param(
        POSTURES,
        "1",
        "assumption: any posture",
        choices=POSTURES,
        doc="postures in which the event can start",
    )

    def __post_init__(self) -> None:
        check_fields(self, self.WHERE)
        for name in ("amplitude_mm", "duration_s", "burst_size", "burst_gap_s"):
            check_interval(f"{self.WHERE}.{name}", getattr(self, name))
        for i, size in enumerate(self.burst_size):
            check_int(f"{self.WHERE}.burst_size[{i}]", size)

    @property
    def name(self) -> str:
        """The event type name (``cough``, ``sneeze`` or ``bend``)."""
        return self.WHERE.rsplit(".", 1)[-1]

    def draw(
        self, duration_s: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw this type's random events over ``[0, duration_s)``.

        Args:
            duration_s: Scenario duration (s).
            rng: This event type's generator.

        Returns:
            ``(onset_s, amplitude_mm, duration_s)`` arrays, one entry per event (not yet
            filtered by posture or duration).
        """
        n_bursts = rng.poisson(self.rate_per_hour * duration_s / 3600.0)
        burst_t = np.sort(rng.uniform(0.0, duration_s, n_bursts))
        sizes = rng.integers(int(self.burst_size[0]), int(self.burst_size[1]) + 1, n_bursts)
        m = int(sizes.sum())
        amp = uniform(rng, self.amplitude_mm, m)
        dur = uniform(rng, self.duration_s, m)
        step = dur + uniform(rng, self.burst_gap_s, m)
        before = np.cumsum(step) - step
        first = np.repeat(np.cumsum(sizes) - sizes, sizes)
        onset = np.repeat(burst_t, sizes) + before - before[first]
        return onset, amp, dur


@dataclasses.dataclass(frozen=True)
class CoughSpec(EventTypeSpec):
    """Coughs (the :class:`EventTypeSpec` defaults)."""

    WHERE: ClassVar[str] = "events.cough"


@dataclasses.dataclass(frozen=True)
class SneezeSpec(EventTypeSpec):
    """Sneezes: rarer, a little larger than coughs."""

    WHERE: ClassVar[str] = "events.sneeze"

    rate_per_hour: float = param(
        1.0,
        "1/h",
        "assumption",
        0.0,
        3600.0,
        doc="mean rate of bursts (events when burst_size = [1, 1])",
    )
    amplitude_mm: tuple = param(
        (0.8, 1.5), "mm", "assumption", 0.0, 5.0, doc="[low, high] peak CSF decrease of one event"
    )
    duration_s: tuple = param(
        (0.2, 0.5), "s", _SHAPE, 0.0, 10.0, lo_open=True, doc="[low, high] duration of one event"
    )


@dataclasses.dataclass(frozen=True)
class BendSpec(EventTypeSpec):
    """Bends (flexion): slower and smaller, only when sitting or standing by default."""

    WHERE: ClassVar[str] = "events.bend"

    rate_per_hour: float = param(
        6.0,
        "1/h",
        "assumption",
        0.0,
        3600.0,
        doc="mean rate of bursts (events when burst_size = [1, 1])",
    )
    amplitude_mm: tuple = param(
        (0.4, 0.9), "mm", "assumption", 0.0, 5.0, doc="[low, high] peak CSF decrease of one event"
    )
    duration_s: tuple = param(
        (0.8, 2.0),
        "s",
        "assumption: a bend lasts 1-2 s",
        0.0,
        10.0,
        lo_open=True,
        doc="[low, high] duration of one event",
    )
    postures: tuple = param(
        ("sitting", "standing"),
        "1",
        "assumption: one bends when upright",
        choices=POSTURES,
        doc="postures in which the event can start",
    )


TYPE_SPECS = {"cough": CoughSpec, "sneeze": SneezeSpec, "bend": BendSpec}
"""Spec class per event type, in :data:`EVENT_TYPES` order."""


@dataclasses.dataclass(frozen=True)
class EventsSpec:
    """Random and scheduled events; a type left out (None) has no random events."""

    WHERE: ClassVar[str] = "events"

    cough: CoughSpec | None = None
    sneeze: SneezeSpec | None = None
    bend: BendSpec | None = None
    scheduled: tuple = param(
        (),
        "s",
        "design choice: events at fixed times",
        0.0,
        doc="[time_s, type] events; size drawn from the type's ranges",
    )

    def __post_init__(self) -> None:
        for name, cls in TYPE_SPECS.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, cls):
                raise ConfigError(f"{self.WHERE}.{name} must be a {cls.__name__} or None")
        object.__setattr__(self, "scheduled", _check_scheduled(self.scheduled))

    @classmethod
    def from_dict(cls, data: Any) -> EventsSpec:
        """Build from a TOML-like table: ``cough``/``sneeze``/``bend`` tables and ``scheduled``."""
        data = as_table(cls.WHERE, data)
        unknown = sorted(set(data) - {*EVENT_TYPES, "scheduled"})
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)} in {cls.WHERE}; known: "
                f"{', '.join((*EVENT_TYPES, 'scheduled'))}"
            )
        kwargs = {
            name: from_dict(
                spec, as_table(f"{cls.WHERE}.{name}", data[name]), where=f"{cls.WHERE}.{name}"
            )
            for name, spec in TYPE_SPECS.items()
            if name in data
        }
        return cls(**kwargs, scheduled=data.get("scheduled", ()))

    def spec(self, name: str) -> EventTypeSpec:
        """The enabled spec of type ``name``, or its defaults (for scheduled events)."""
        return getattr(self, name) or TYPE_SPECS[name]()

    def sample(
        self,
        grid: Grid,
        seed: np.random.SeedSequence,
        posture_at: Callable[[np.ndarray], np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """CSF contribution (mm, <= 0) and event marker (int8) at each pulse.

        Args:
            grid: Pulse times.
            seed: The events component's seed; one child per type, then one for the scheduled
                events, so enabling a type never changes another type's draws.
            posture_at: Posture code (int8 array) at given times (s).

        Returns:
            ``(csf_mm, event)``: the summed dips and the 1-based :data:`EVENT_TYPES` code.
        """
        rngs = [np.random.default_rng(s) for s in children(seed, len(EVENT_TYPES) + 1)]
        drawn = [
            self._random(k, grid.duration_s, rngs[k], posture_at) for k in range(len(EVENT_TYPES))
        ]
        drawn.append(self._scheduled(grid.duration_s, rngs[-1]))
        onset, amp, dur, code = (np.concatenate(x) for x in zip(*drawn, strict=True))
        return _render(grid, onset, amp, dur, code)

    def _random(
        self,
        k: int,
        duration_s: float,
        rng: np.random.Generator,
        posture_at: Callable[[np.ndarray], np.ndarray],
    ) -> tuple[np.ndarray, ...]:
        spec = getattr(self, EVENT_TYPES[k])
        if spec is None:
            return _no_events()
        onset, amp, dur = spec.draw(duration_s, rng)
        allowed = [posture_code(p) for p in spec.postures]
        keep = (onset < duration_s) & np.isin(posture_at(onset), allowed)
        return onset[keep], amp[keep], dur[keep], np.full(int(keep.sum()), k + 1, np.int8)

    def _scheduled(self, duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        u = rng.uniform(size=(len(self.scheduled), 2))
        rows = []
        for (time_s, name), (u_amp, u_dur) in zip(self.scheduled, u, strict=True):
            spec = self.spec(name)
            (a0, a1), (d0, d1) = spec.amplitude_mm, spec.duration_s
            if time_s < duration_s:
                rows.append(
                    (
                        time_s,
                        a0 + u_amp * (a1 - a0),
                        d0 + u_dur * (d1 - d0),
                        EVENT_TYPES.index(name) + 1,
                    )
                )
        if not rows:
            return _no_events()
        onset, amp, dur, code = (np.array(col) for col in zip(*rows, strict=True))
        return onset, amp, dur, code.astype(np.int8)

    def describe(self) -> str:
        """One line summarising the component."""
        parts = [
            f"{n} {getattr(self, n).rate_per_hour:g}/h"
            for n in EVENT_TYPES
            if getattr(self, n) is not None
        ]
        if self.scheduled:
            parts.append(f"{len(self.scheduled)} scheduled")
        return "events: " + (", ".join(parts) or "none")


def _check_scheduled(value: Any) -> tuple:
    name = f"{EventsSpec.WHERE}.scheduled"
    if not isinstance(value, (tuple, list)):
        raise ConfigError(f"{name} must be a list of [time_s, type] pairs")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ConfigError(f"{name}[{i}]={item!r} must be a [time_s, type] pair")
        check_value(f"{name}[{i}].time_s", item[0], {"lo": 0.0, "unit": "s"})
        check_value(f"{name}[{i}].type", item[1], {"choices": EVENT_TYPES})
        out.append((float(item[0]), item[1]))
    return tuple(sorted(out))


def _no_events() -> tuple[np.ndarray, ...]:
    empty = np.zeros(0)
    return empty, empty, empty, np.zeros(0, dtype=np.int8)


def _render(
    grid: Grid, onset: np.ndarray, amp: np.ndarray, dur: np.ndarray, code: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sum the raised-cosine dips (mm, negative) and mark the active event type per pulse."""
    n = len(grid.t_s)
    part, marker = np.zeros(n), np.zeros(n, dtype=np.int8)
    for k in np.argsort(onset, kind="stable"):
        window = index_window(onset[k], onset[k] + dur[k], grid.rate_hz, n)
        part[window] -= amp[k] * hann_pulse((grid.t_s[window] - onset[k]) / dur[k])
        marker[window] = code[k]
    return part, marker
