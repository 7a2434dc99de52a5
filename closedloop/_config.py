"""Typed, validated configuration: a field helper that carries unit, range and source.

Every model parameter is declared with :func:`param`, which stores its unit, valid range and
provenance in the dataclass field metadata. :func:`validate` checks a dataclass instance against
those ranges, :func:`from_dict` builds one from a mapping and rejects unknown keys, and the model
card (``closedloop model-card``) is generated from the same metadata, so the card can never
disagree with the code.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A parameter is unknown, malformed or outside its valid range."""


def param(
    default: Any,
    unit: str,
    source: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    choices: tuple | None = None,
    doc: str = "",
) -> Any:
    """Declare a dataclass field with unit, valid range and source.

    Args:
        default: Default value.
        unit: Physical unit ("mA", "µs", "1" for dimensionless, "text" for free strings).
        source: Where the default comes from: a citation from shared/domain.md tagged [C] or
            [M], or "assumption: ..." / "calibrated: ...".
        lo: Lowest valid value (inclusive unless ``lo_open``), or None.
        hi: Highest valid value (inclusive), or None.
        lo_open: Whether ``lo`` itself is excluded.
        choices: For categorical parameters, the allowed values.
        doc: One-line meaning of the parameter.

    Returns:
        A ``dataclasses.field`` carrying the metadata.
    """
    meta = {"unit": unit, "source": source, "lo": lo, "hi": hi, "lo_open": lo_open,
            "choices": choices, "doc": doc}
    return dataclasses.field(default=default, metadata=meta)


def range_text(meta: Mapping[str, Any]) -> str:
    """Human-readable valid range of a field, e.g. ``(0, 25.5] mA``."""
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    lo, hi = meta.get("lo"), meta.get("hi")
    left = "-inf" if lo is None else f"{lo:g}"
    right = "inf" if hi is None else f"{hi:g}"
    bracket = "(" if (lo is None or meta.get("lo_open")) else "["
    close = ")" if hi is None else "]"
    unit = meta.get("unit", "")
    return f"{bracket}{left}, {right}{close}" + (f" {unit}" if unit and unit != "1" else "")


def check_value(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` unless ``value`` lies in the field's valid range."""
    if meta.get("choices"):
        if value not in meta["choices"]:
            raise ConfigError(f"{name}={value!r} is invalid; valid: {range_text(meta)}")
        return
    if meta.get("unit") == "text":
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} must be a string")
        return
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            check_value(f"{name}[{i}]", v, meta)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}={value!r} must be a number in {range_text(meta)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    bad = not math.isfinite(value)
    bad = bad or (lo is not None and (value < lo or (meta.get("lo_open") and value == lo)))
    bad = bad or (hi is not None and value > hi)
    if bad:
        raise ConfigError(f"{name}={value!r} is out of range; valid range {range_text(meta)}")


def validate(obj: Any, prefix: str = "") -> None:
    """Check every field of a dataclass instance against its declared range."""
    for f in dataclasses.fields(obj):
        if "unit" in f.metadata:
            check_value(prefix + f.name, getattr(obj, f.name), f.metadata)


def check_table(doc: Any, keys: tuple[str, ...], where: str) -> None:
    """Raise ConfigError unless ``doc`` is a mapping whose keys are all in ``keys``."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: a spec must be a table with keys {', '.join(keys)}")
    unknown = sorted(set(doc) - set(keys))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {where}; valid: "
                          f"{', '.join(keys)}")


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys by name.

    Args:
        cls: A dataclass type whose fields were declared with :func:`param`.
        data: Keyword values; missing keys take their defaults.
        where: Context for error messages (e.g. the config file name).

    Returns:
        The validated instance.

    Raises:
        ConfigError: If a key is unknown or a value is out of range.
    """
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        ctx = f" in {where}" if where else ""
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)}{ctx} for {cls.__name__}; "
            f"known: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for key, value in data.items():
        as_tuple = isinstance(known[key].default, tuple) and isinstance(value, list)
        kwargs[key] = tuple(value) if as_tuple else value
    return cls(**kwargs)


def describe(cls: type) -> list[dict[str, Any]]:
    """Rows (name, default, unit, range, source, doc) for every declared field of ``cls``."""
    rows = []
    for f in dataclasses.fields(cls):
        if "unit" not in f.metadata:
            continue
        m = f.metadata
        rows.append({"name": f.name, "default": f.default, "unit": m["unit"],
                     "range": range_text(m), "source": m["source"], "doc": m["doc"]})
    return rows
