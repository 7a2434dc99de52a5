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
import numbers
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

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
        A ``dataclasses.field`` carrying the metadata; its ``kind`` (see :data:`KINDS`) comes
        from the default's type (the annotation decides in :func:`validate`).
    """
    meta = {
        "unit": unit,
        "source": source,
        "lo": lo,
        "hi": hi,
        "lo_open": lo_open,
        "choices": choices,
        "doc": doc,
        "kind": _kind_of_default(default),
    }
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


KINDS = ("real", "int", "bool", "text", "tuple", "tuple[int]", "any")
"""Value kinds of a field: a real number, an integer, a bool, a string, a tuple of reals or of
integers, or anything (checked by its owner)."""

_ANNOTATION_KINDS = {
    "float": "real",
    "int": "int",
    "bool": "bool",
    "str": "text",
    "tuple": "tuple",
    "tuple[float, ...]": "tuple",
    "tuple[int, ...]": "tuple[int]",
    "Any": "any",
}


def _kind_of_default(default: Any) -> str:
    """The value kind implied by a field's default (see :data:`KINDS`)."""
    for kind, types in (
        ("bool", bool),
        ("int", int),
        ("real", float),
        ("text", str),
        ("tuple", tuple),
    ):
        if isinstance(default, types):
            return kind
    return "any"


def field_kind(f: dataclasses.Field) -> str:
    """The value kind of dataclass field ``f``: its annotation decides, else its default."""
    annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    return _ANNOTATION_KINDS.get(
        annotation.replace(" ", ""), f.metadata.get("kind") or _kind_of_default(f.default)
    )


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number: int, float or a NumPy real; not bool, not complex."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer: int or a NumPy integer; not bool, not ``2.0``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_value(name: str, value: Any, meta: Mapping[str, Any], kind: str | None = None) -> None:
    """Raise :class:`ConfigError` unless ``value`` has the field's kind and lies in its range.

    Args:
        name: The parameter's name, for the message.
        value: The value to check.
        meta: The field's metadata (:func:`param`): range, unit, choices, ``kind``.
        kind: One of :data:`KINDS`; default ``meta["kind"]``, else a real number. Sequences
            are accepted only for tuple kinds, each element checked against the range.

    Raises:
        ConfigError: Naming the parameter and its valid range or choices.
    """
    kind = kind or meta.get("kind") or "real"
    if kind.startswith("tuple"):
        if not isinstance(value, (tuple, list)):
            raise ConfigError(
                f"{name}={short_repr(value)} must be a list of values, each {range_text(meta)}"
            )
        for i, item in enumerate(value):
            check_value(f"{name}[{i}]", item, meta, "int" if kind == "tuple[int]" else "real")
        return
    if meta.get("choices") or kind == "bool":
        _check_choice(name, value, meta.get("choices") or (False, True))
    elif kind == "text" or meta.get("unit") == "text":
        if not isinstance(value, str):
            raise ConfigError(f"{name}={short_repr(value)} must be a string")
    elif kind == "any" and isinstance(value, (tuple, list, Mapping)):
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            check_value(f"{name}[{key!r}]", item, meta, "real")
    else:
        _check_number(name, value, meta, integer=kind == "int")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    """Raise unless ``value`` equals a choice and has its type (``1`` is not ``True``)."""
    for choice in choices:
        if isinstance(choice, (bool, np.bool_)):
            same = isinstance(value, (bool, np.bool_))
        elif isinstance(choice, str):
            same = isinstance(value, str)
        else:
            same = is_real(value)
        if same and value == choice:
            return
    raise ConfigError(
        f"{name}={short_repr(value)} is invalid; valid: {range_text({'choices': choices})}"
    )


def _check_number(name: str, value: Any, meta: Mapping[str, Any], integer: bool) -> None:
    """Raise unless ``value`` is a finite real (an integer if ``integer``) inside the range."""
    if not (is_integer(value) if integer else is_real(value)):
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{name}={short_repr(value)} must be {what} in {range_text(meta)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    bad = not is_integer(value) and not math.isfinite(value)
    bad = bad or (lo is not None and (value < lo or (meta.get("lo_open") and value == lo)))
    bad = bad or (hi is not None and value > hi)
    if bad:
        raise ConfigError(
            f"{name}={short_repr(value)} is out of range; valid range {range_text(meta)}"
        )


def validate(obj: Any, prefix: str = "") -> None:
    """Check every field of a dataclass instance against its declared type and range."""
    for f in dataclasses.fields(obj):
        if "unit" in f.metadata:
            check_value(prefix + f.name, getattr(obj, f.name), f.metadata, field_kind(f))


def as_real_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array, or :class:`ConfigError` unless it holds real numbers.

    Strings, dicts, None, complex and bool arrays, object arrays holding anything but real
    numbers, and ragged nested lists are refused (NumPy would raise its own error, or drop the
    imaginary part silently). An object array of real numbers is taken as their values, as the
    environments' one-pulse fast path takes a ``(1,)`` object array holding a float.
    """
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ConfigError(
                f"{name}={short_repr(value)} must be an array of real numbers ({exc})"
            ) from None
    if arr.dtype.kind == "O" and all(is_real(v) for v in arr.flat):
        return arr.astype(np.float64)
    if arr.dtype.kind not in "iuf":
        raise ConfigError(
            f"{name}={short_repr(value)} must hold real numbers; got dtype {arr.dtype}"
        )
    return arr.astype(np.float64, copy=False)


def check_table(doc: Any, keys: tuple[str, ...], where: str) -> None:
    """Raise ConfigError unless ``doc`` is a mapping whose keys are all in ``keys``."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: a spec must be a table with keys {', '.join(keys)}")
    unknown = sorted(map(str, set(doc) - set(keys)))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {where}; valid: {', '.join(keys)}"
        )


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
    ctx = f" in {where}" if where else ""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where or cls.__name__}: must be a table (mapping) of "
            f"{', '.join(sorted(known))}; got {type(data).__name__}"
        )
    unknown = sorted(map(str, set(data) - set(known)))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)}{ctx} for {cls.__name__}; "
            f"known: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for key, value in data.items():
        value = value.item() if isinstance(value, np.generic) else value  # a plain scalar
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
        rows.append(
            {
                "name": f.name,
                "default": f.default,
                "unit": m["unit"],
                "range": range_text(m),
                "source": m["source"],
                "doc": m["doc"],
            }
        )
    return rows
