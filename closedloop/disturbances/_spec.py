"""Shared helpers of the disturbance specs: validation, the time grid and smooth ramps.

Every component spec is a frozen dataclass whose fields are declared with
:func:`closedloop._config.param`. :func:`check_fields` validates such a spec (scalars, ``[low,
high]`` ranges, tuples of choices and per-posture mappings) and prefixes each error with the
spec's place in the scenario (e.g. ``events.cough.rate_per_hour``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from closedloop._config import ConfigError, check_value, field_kind, is_real, short_repr
from closedloop.patients.postures import POSTURES


class Grid(NamedTuple):
    """The pulse times a trace is sampled at.

    Attributes:
        t_s: Time of each pulse (s), ``arange(n) / rate_hz``.
        rate_hz: Pulse rate (Hz).
        duration_s: Scenario duration (s).
    """

    t_s: np.ndarray
    rate_hz: float
    duration_s: float


def check_fields(obj: Any, where: str, skip: tuple[str, ...] = ()) -> None:
    """Validate every :func:`param` field of dataclass ``obj`` not named in ``skip``.

    Tuples are checked element by element (``name[i]``); the mappings of fields typed ``Any``
    per key (``name.key``).

    Args:
        obj: A spec dataclass instance.
        where: Prefix of the field names in error messages (e.g. ``"respiration"``).
        skip: Field names the caller validates itself.

    Raises:
        ConfigError: Naming the field and its valid range or choices.
    """
    for f in dataclasses.fields(obj):
        if f.name in skip or "unit" not in f.metadata:
            continue
        name, value, kind = f"{where}.{f.name}", getattr(obj, f.name), field_kind(f)
        if kind == "any" and isinstance(value, Mapping):  # per-posture values
            for key, item in value.items():
                check_value(f"{name}.{key}", item, f.metadata, "real")
        else:
            check_value(name, value, f.metadata, kind)


def check_interval(name: str, value: Any) -> tuple[float, float]:
    """Check a ``[low, high]`` pair (two real numbers, low <= high) and return it as floats."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ConfigError(f"{name}={short_repr(value)} must be a [low, high] pair")
    for i, item in enumerate(value):
        check_value(f"{name}[{i}]", item, {}, "real")
    if value[0] > value[1]:
        raise ConfigError(f"{name}={list(value)!r} must have low <= high")
    return float(value[0]), float(value[1])


def check_int(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a whole number (``3`` or ``3.0``)."""
    if not (is_real(value) and math.isfinite(value) and float(value).is_integer()):
        raise ConfigError(f"{name}={short_repr(value)} must be an integer")


def as_table(name: str, value: Any) -> Mapping[str, Any]:
    """Return ``value`` if it is a mapping (a TOML table), else raise :class:`ConfigError`."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a table (mapping); got {type(value).__name__}")
    return value


def posture_mapping(name: str, value: Any) -> MappingProxyType:
    """Normalise a per-posture mapping (or tuple of pairs) and check its keys are postures."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (tuple, list)) and all(
        isinstance(p, (tuple, list)) and len(p) == 2 for p in value
    ):
        pairs = list(value)
    else:
        raise ConfigError(
            f"{name}={short_repr(value)} must be a table posture -> value, "
            f"postures among {', '.join(POSTURES)}"
        )
    items = {}
    for key, item in pairs:
        check_value(f"{name} key", key, {"choices": POSTURES})
        items[key] = item
    return MappingProxyType({p: items[p] for p in POSTURES if p in items})


def plain(value: Any) -> Any:
    """Convert a spec value to plain TOML-like data (dicts, lists, numbers, strings)."""
    if dataclasses.is_dataclass(value):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``overrides`` into ``base``: tables merge, other values replace.

    Spec dataclasses among the overrides are converted with :func:`plain` first.
    """
    out = dict(base)
    for key, value in overrides.items():
        value = plain(value) if dataclasses.is_dataclass(value) else value
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def raised_cosine_ramp(u: np.ndarray) -> np.ndarray:
    """Smooth step from 0 (``u <= 0``) to 1 (``u >= 1``): ``(1 - cos(pi u)) / 2``."""
    u = np.clip(u, 0.0, 1.0)
    return 0.5 * (1.0 - np.cos(np.pi * u))


def hann_pulse(u: np.ndarray) -> np.ndarray:
    """Raised-cosine pulse over ``0 <= u <= 1`` with peak 1 at ``u = 0.5``, 0 outside."""
    inside = (u >= 0.0) & (u <= 1.0)
    return np.where(inside, 0.5 * (1.0 - np.cos(2.0 * np.pi * u)), 0.0)


def index_window(start_s: float, stop_s: float, rate_hz: float, n: int) -> slice:
    """Slice of the pulses ``i`` with ``start_s <= i / rate_hz < stop_s`` (clipped to n)."""
    i0 = max(0, math.ceil(start_s * rate_hz - 1e-9))
    i1 = min(n, max(i0, math.ceil(stop_s * rate_hz - 1e-9)))
    return slice(i0, i1)


def uniform(rng: np.random.Generator, interval: tuple[float, float], size: Any = None) -> Any:
    """Draw uniformly from the closed ``[low, high]`` interval (exactly ``low`` if equal)."""
    return rng.uniform(interval[0], interval[1], size)


def children(seed: np.random.SeedSequence, count: int) -> list[np.random.SeedSequence]:
    """The next ``count`` children of ``seed``, as ``seed.spawn(count)`` would give them.

    Unlike :meth:`~numpy.random.SeedSequence.spawn`, ``seed`` is not modified, so sampling twice
    from the same SeedSequence gives the same result.
    """
    first = seed.n_children_spawned
    return [
        np.random.SeedSequence(
            seed.entropy, spawn_key=(*seed.spawn_key, first + i), pool_size=seed.pool_size
        )
        for i in range(count)
    ]
