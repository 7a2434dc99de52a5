"""Posture component: which posture the patient is in, and the baseline CSF it sets.

Two modes:

* ``sequence`` — a fixed protocol of ``[posture, dwell_s]`` steps (e.g. a clinic visit),
  optionally repeated to fill the scenario.
* ``markov`` — a semi-Markov chain: each posture is held for a random dwell time (lognormal with
  the posture's mean, or exponential), then the next posture is drawn from the row of
  ``transitions`` (weights, normalised per row).

At each change the CSF moves from the old posture's baseline to the new one with a raised-cosine
ramp lasting ``transition_s``; the posture code switches to the destination at the ramp's start.
The dwell time includes the ramp.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import numpy as np

from closedloop._config import ConfigError, check_value, param
from closedloop.disturbances._spec import (
    Grid,
    check_fields,
    index_window,
    posture_mapping,
    raised_cosine_ramp,
)
from closedloop.patients.postures import POSTURES, posture_code

DEFAULT_MEAN_DWELL_S = (
    ("supine", 1800.0),
    ("prone", 900.0),
    ("side", 1800.0),
    ("sitting", 900.0),
    ("standing", 180.0),
    ("walking", 120.0),
)
"""Daily-living mean dwell per posture (s); assumption: sitting 10-20 min, standing 2-5 min,
walking 1-5 min, lying much longer."""

DEFAULT_TRANSITIONS = (
    ("supine", (("side", 2.0), ("sitting", 2.0), ("prone", 1.0))),
    ("prone", (("supine", 1.0), ("side", 1.0))),
    ("side", (("supine", 2.0), ("sitting", 1.0), ("prone", 1.0))),
    ("sitting", (("standing", 4.0), ("supine", 1.0))),
    ("standing", (("sitting", 3.0), ("walking", 4.0), ("supine", 1.0))),
    ("walking", (("standing", 1.0),)),
)
"""Daily-living transition weights ``(from, ((to, weight), ...))``; assumption: one walks only
from standing and lies down from sitting or standing."""


class PostureTimeline(NamedTuple):
    """Posture segments: segment ``k`` starts at ``start_s[k]`` in posture ``code[k]``."""

    start_s: np.ndarray
    code: np.ndarray


@dataclasses.dataclass(frozen=True)
class PostureSpec:
    """Posture sequence or Markov chain, and the transition ramp (see module docstring)."""

    WHERE: ClassVar[str] = "posture"

    mode: str = param(
        "sequence",
        "1",
        "design choice",
        choices=("sequence", "markov"),
        doc="fixed protocol or random semi-Markov chain",
    )
    transition_s: float = param(
        1.0,
        "s",
        "assumption: a posture change takes about a second",
        0.0,
        10.0,
        doc="raised-cosine CSF ramp between baselines",
    )
    sequence: tuple = param(
        (("sitting", 60.0),),
        "s",
        "assumption: sit still by default",
        0.0,
        lo_open=True,
        doc="sequence mode: [posture, dwell_s] steps",
    )
    repeat: bool = param(
        True,
        "1",
        "design choice",
        choices=(True, False),
        doc="sequence mode: repeat the steps to fill the duration",
    )
    start: str = param(
        "sitting",
        "1",
        "assumption: awake patient",
        choices=(*POSTURES, "random", "stationary"),
        doc="markov mode: first posture ('random': uniform over the chain's; "
        "'stationary': the chain's long-run posture mix, mid-dwell)",
    )
    mean_dwell_s: Any = param(
        DEFAULT_MEAN_DWELL_S,
        "s",
        "assumption: sitting 10-20 min, standing 2-5 min, walking 1-5 min, lying longer",
        0.0,
        lo_open=True,
        doc="markov mode: mean dwell per posture",
    )
    dwell_distribution: str = param(
        "lognormal",
        "1",
        "assumption: dwell times are right-skewed",
        choices=("lognormal", "exponential"),
        doc="markov mode: law of each dwell time",
    )
    dwell_sigma: float = param(
        0.6,
        "1",
        "assumption",
        0.0,
        3.0,
        lo_open=True,
        doc="markov mode: sd of log(dwell) for lognormal dwells",
    )
    min_dwell_s: float = param(
        5.0,
        "s",
        "assumption: no posture is held for under 5 s",
        0.0,
        lo_open=True,
        doc="markov mode: dwell times are at least this",
    )
    transitions: Any = param(
        DEFAULT_TRANSITIONS,
        "1",
        "assumption: daily living",
        0.0,
        lo_open=True,
        doc="markov mode: weights from -> {to: weight}",
    )

    def __post_init__(self) -> None:
        where = self.WHERE
        check_fields(self, where, skip=("sequence", "mean_dwell_s", "transitions"))
        dwell = posture_mapping(f"{where}.mean_dwell_s", self.mean_dwell_s)
        dwell = MappingProxyType({**dict(DEFAULT_MEAN_DWELL_S), **dwell})
        object.__setattr__(self, "mean_dwell_s", dwell)
        check_fields(self, where, skip=("sequence", "transitions"))
        object.__setattr__(self, "sequence", _check_sequence(f"{where}.sequence", self.sequence))
        object.__setattr__(
            self, "transitions", _check_transitions(f"{where}.transitions", self.transitions)
        )
        if self.mode == "markov":
            _check_chain(f"{where}.transitions", self.transitions, self.start)

    def timeline(self, duration_s: float, rng: np.random.Generator) -> PostureTimeline:
        """Draw the posture segments covering ``[0, duration_s)``.

        Args:
            duration_s: Scenario duration (s).
            rng: The posture component's generator (unused in sequence mode).

        Returns:
            The segments, start times in s and posture codes (int8).
        """
        if self.mode == "sequence":
            return _sequence_timeline(self, duration_s)
        return _markov_timeline(self, duration_s, rng)

    def describe(self) -> str:
        """One line summarising the posture component."""
        if self.mode == "sequence":
            steps = " -> ".join(f"{p} {d:g}s" for p, d in self.sequence)
            return f"posture sequence{' (repeated)' if self.repeat else ''}: {steps}"
        return (
            f"posture markov from {self.start} over {', '.join(self.transitions)} "
            f"({self.dwell_distribution} dwells)"
        )


def _check_sequence(name: str, value: Any) -> tuple:
    if not isinstance(value, (tuple, list)) or not value:
        raise ConfigError(f"{name} must be a non-empty list of [posture, dwell_s] steps")
    steps = []
    for i, step in enumerate(value):
        if not isinstance(step, (tuple, list)) or len(step) != 2:
            raise ConfigError(f"{name}[{i}]={step!r} must be a [posture, dwell_s] pair")
        check_value(f"{name}[{i}].posture", step[0], {"choices": POSTURES})
        check_value(f"{name}[{i}].dwell_s", step[1], {"lo": 0.0, "lo_open": True, "unit": "s"})
        steps.append((step[0], float(step[1])))
    return tuple(steps)


def _check_transitions(name: str, value: Any) -> MappingProxyType:
    rows = posture_mapping(name, value)
    meta = {"lo": 0.0, "lo_open": True, "unit": "1"}
    out = {}
    for src, row in rows.items():
        targets = posture_mapping(f"{name}.{src}", row)
        if src in targets:
            raise ConfigError(f"{name}.{src}.{src}: a posture cannot transition to itself")
        for dst, weight in targets.items():
            check_value(f"{name}.{src}.{dst}", weight, meta)
        if not targets:
            raise ConfigError(f"{name}.{src} must list at least one destination posture")
        out[src] = MappingProxyType({k: float(v) for k, v in targets.items()})
    return MappingProxyType(out)


def _check_chain(name: str, rows: Mapping[str, Mapping[str, float]], start: str) -> None:
    if not rows:
        raise ConfigError(f"{name} must have at least one row in markov mode")
    if start not in ("random", "stationary") and start not in rows:
        raise ConfigError(
            f"{name} has no row for the start posture {start!r}; rows: {', '.join(rows) or 'none'}"
        )
    for src, row in rows.items():
        for dst in row:
            if dst not in rows:
                raise ConfigError(f"{name} has no row for {dst!r}, reachable from {src!r}")


def _sequence_timeline(spec: PostureSpec, duration_s: float) -> PostureTimeline:
    codes = np.array([posture_code(p) for p, _ in spec.sequence], dtype=np.int8)
    dwell = np.array([d for _, d in spec.sequence])
    if spec.repeat:
        reps = max(1, math.ceil(duration_s / dwell.sum()))
        codes, dwell = np.tile(codes, reps), np.tile(dwell, reps)
    start = np.concatenate(([0.0], np.cumsum(dwell)[:-1]))
    keep = start < duration_s
    return PostureTimeline(start[keep], codes[keep])


def _markov_timeline(
    spec: PostureSpec, duration_s: float, rng: np.random.Generator
) -> PostureTimeline:
    rows = {
        posture_code(src): (
            np.array([posture_code(d) for d in row]),
            np.array(list(row.values())) / sum(row.values()),
        )
        for src, row in spec.transitions.items()
    }
    states = sorted(rows)
    if spec.start == "stationary":
        code, t = _stationary_start(spec, rows, rng)
    else:
        code = (
            states[rng.integers(len(states))]
            if spec.start == "random"
            else posture_code(spec.start)
        )
        t = _draw_dwell(spec, spec.mean_dwell_s[POSTURES[code]], rng)
    starts, codes = [0.0], [code]
    while t < duration_s:
        targets, weights = rows[code]
        code = int(targets[rng.choice(len(targets), p=weights)])
        starts.append(t)
        codes.append(code)
        t += _draw_dwell(spec, spec.mean_dwell_s[POSTURES[code]], rng)
    return PostureTimeline(np.array(starts), np.array(codes, dtype=np.int8))


def long_run_mix(spec: PostureSpec) -> dict[str, float]:
    """Long-run fraction of time in each posture of the Markov chain (sums to 1).

    The stationary distribution ``pi`` of the chain of postures visited (the embedded jump
    chain, rows of ``transitions`` normalised), weighted by each posture's mean dwell:
    ``p_i = pi_i m_i / sum_j pi_j m_j`` (a semi-Markov process's time fractions; the
    ``min_dwell_s`` floor is ignored, it moves a mean by under 0.1 % at the library's dwells).

    Raises:
        ConfigError: If ``spec`` is not in markov mode or its chain has no unique stationary
            distribution (it is not irreducible).
    """
    if spec.mode != "markov":
        raise ConfigError(f"long_run_mix needs a markov posture spec, got mode={spec.mode!r}")
    names = sorted(spec.transitions, key=posture_code)
    n = len(names)
    p = np.zeros((n, n))
    for i, src in enumerate(names):
        row = spec.transitions[src]
        total = sum(row.values())
        for dst, w in row.items():
            p[i, names.index(dst)] = w / total
    a = np.vstack((p.T - np.eye(n), np.ones(n)))
    pi, *_ = np.linalg.lstsq(a, np.r_[np.zeros(n), 1.0], rcond=None)
    if (
        not np.allclose(a @ pi, np.r_[np.zeros(n), 1.0], atol=1e-9)
        or np.any(pi < -1e-12)
        or np.linalg.matrix_rank(a) < n
    ):
        raise ConfigError(
            f"{spec.WHERE}.transitions: the chain has no unique long-run mix "
            "(some posture cannot be reached from another)"
        )
    time = np.maximum(pi, 0.0) * np.array([spec.mean_dwell_s[k] for k in names])
    return {k: float(v) for k, v in zip(names, time / time.sum(), strict=True)}


def _stationary_start(
    spec: PostureSpec, rows: Mapping, rng: np.random.Generator
) -> tuple[int, float]:
    """First posture drawn from the long-run mix, and the time left in its dwell (s).

    The dwell in progress at a random time is length-biased (density ``x f(x) / m``): for a
    lognormal dwell it is the same lognormal with ``mu + sigma²``, for an exponential one a
    gamma of shape 2; the time left is a uniform fraction of it (the ``min_dwell_s`` floor is
    applied to the whole dwell, as for every other).
    """
    mix = long_run_mix(spec)
    names = list(mix)
    code = posture_code(names[rng.choice(len(names), p=np.array(list(mix.values())))])
    mean_s = spec.mean_dwell_s[POSTURES[code]]
    if spec.dwell_distribution == "exponential":
        whole = rng.gamma(2.0, mean_s)
    else:
        sigma = spec.dwell_sigma
        whole = rng.lognormal(math.log(mean_s) + 0.5 * sigma**2, sigma)
    return code, float(rng.uniform()) * max(spec.min_dwell_s, float(whole))


def _draw_dwell(spec: PostureSpec, mean_s: float, rng: np.random.Generator) -> float:
    if spec.dwell_distribution == "exponential":
        dwell = rng.exponential(mean_s)
    else:
        sigma = spec.dwell_sigma
        dwell = rng.lognormal(math.log(mean_s) - 0.5 * sigma**2, sigma)
    return max(spec.min_dwell_s, float(dwell))


def codes_at(timeline: PostureTimeline, t_s: np.ndarray) -> np.ndarray:
    """Posture code (int8) at each time ``t_s`` (s): the segment the time falls in."""
    idx = np.searchsorted(timeline.start_s, t_s, side="right") - 1
    return timeline.code[np.maximum(idx, 0)]


def smooth_levels(
    timeline: PostureTimeline, levels: np.ndarray, grid: Grid, transition_s: float
) -> np.ndarray:
    """Per-pulse value of a per-posture level, with raised-cosine ramps at posture changes.

    Args:
        timeline: The posture segments.
        levels: Value per posture code (e.g. the CSF thickness in mm), length ``len(POSTURES)``.
        grid: Pulse times.
        transition_s: Ramp duration (s); 0 gives steps.

    Returns:
        float64 array, one value per pulse. Overlapping ramps superpose, so the curve is
        continuous and ends at the last posture's level.
    """
    values = np.asarray(levels, dtype=np.float64)[timeline.code]
    out = values[np.maximum(np.searchsorted(timeline.start_s, grid.t_s, side="right") - 1, 0)]
    if transition_s <= 0:
        return out
    for k in np.flatnonzero(np.diff(values)) + 1:
        t0 = timeline.start_s[k]
        window = index_window(t0, t0 + transition_s, grid.rate_hz, len(grid.t_s))
        u = (grid.t_s[window] - t0) / transition_s
        out[window] += (values[k] - values[k - 1]) * (raised_cosine_ramp(u) - 1.0)
    return out
