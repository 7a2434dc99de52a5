"""Hypothesis strategies of bad values, and a TOML writer for spec files (for ``fuzz_cases``).

A value from :func:`bad_value` is invalid for the field whatever else is set: a wrong type,
NaN, an infinity, a number outside the declared range, a non-integral float for an integer, a
name that is not among the choices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

NAN, INF = float("nan"), float("inf")
NAME = string.ascii_letters + string.digits + "-_."
TEXT = st.text(NAME, min_size=1, max_size=6)
"""Readable random names (printable, so reproducers and TOML files stay plain)."""


def wrong_types(text_ok: bool = False, none_ok: bool = False) -> st.SearchStrategy:
    """Values of a type no scalar field takes: lists, tables, None, complex, bytes, nesting."""
    parts = [
        st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=2),
        st.dictionaries(st.sampled_from(["a", "x"]), st.integers(-2, 2), min_size=1, max_size=2),
        st.complex_numbers(max_magnitude=10, allow_nan=False, allow_infinity=False).filter(
            lambda z: z.imag != 0
        ),
        st.sampled_from([[[1.0]], {"a": {"b": [None]}}, (1.0,), b"1", [None], [1.0, "a"]]),
    ]
    if not none_ok:
        parts.append(st.none())
    if not text_ok:
        parts.append(TEXT)
    return st.one_of(parts)


def not_finite() -> st.SearchStrategy:
    """NaN and the infinities."""
    return st.sampled_from([NAN, INF, -INF])


def out_of_range(meta: Mapping[str, Any], integer: bool) -> st.SearchStrategy:
    """Numbers below ``lo`` (or at it, if open) or above ``hi`` of a field's metadata."""
    lo, hi = meta.get("lo"), meta.get("hi")
    parts = [not_finite()]
    if lo is not None:
        if integer:
            top = math.ceil(lo) if meta.get("lo_open") and lo == int(lo) else math.ceil(lo) - 1
            parts.append(st.integers(max_value=int(top)))
        else:
            parts.append(
                st.floats(
                    max_value=lo,
                    exclude_max=not meta.get("lo_open"),
                    allow_nan=False,
                    allow_infinity=False,
                )
            )
    if hi is not None:
        if integer:
            parts.append(st.integers(min_value=math.floor(hi) + 1))
        else:
            parts.append(
                st.floats(min_value=hi, exclude_min=True, allow_nan=False, allow_infinity=False)
            )
    return st.one_of(parts)


def non_integral(meta: Mapping[str, Any]) -> st.SearchStrategy:
    """Floats with a fractional part inside an integer field's range."""
    lo = 0.0 if meta.get("lo") is None else float(meta["lo"])
    hi = lo + 1e6 if meta.get("hi") is None else float(meta["hi"])
    return st.floats(lo, hi, allow_nan=False).filter(lambda x: not float(x).is_integer())


def bad_value(meta: Mapping[str, Any] | None, default: Any) -> st.SearchStrategy:
    """Values invalid for a field with metadata ``meta`` (from ``closedloop._config.param``)."""
    meta = meta or {}
    if meta.get("choices"):
        choices = list(meta["choices"])
        if all(isinstance(c, bool) for c in choices):
            return st.one_of(
                wrong_types(),
                st.integers().filter(lambda i: i not in (0, 1)),
                st.floats(0.1, 0.9),
                not_finite(),
            )
        return st.one_of(
            wrong_types(), TEXT.filter(lambda s: s not in choices), st.integers(-5, 5), not_finite()
        )
    if meta.get("unit") == "text" or isinstance(default, str):
        return st.one_of(wrong_types(text_ok=True), st.integers(-5, 5), not_finite(), st.booleans())
    if isinstance(default, bool):
        return st.one_of(wrong_types(), st.floats(0.1, 0.9), not_finite())
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        integer = isinstance(default, int)
        parts = [wrong_types(), st.booleans(), out_of_range(meta, integer)]
        if integer:
            parts.append(non_integral(meta))
        return st.one_of(parts)
    # a tuple, mapping or nested default: only values that can never be one
    return st.one_of(TEXT, not_finite(), st.just([[[1.0]]]), st.just({"zz": 1.0}))


def not_a_table() -> st.SearchStrategy:
    """Values where a table (a dict) belongs."""
    return st.one_of(
        TEXT,
        st.integers(-3, 3),
        not_finite(),
        st.lists(st.integers(0, 3), min_size=1, max_size=2),
        st.just([{"a": 1}]),
    )


class UnrepresentableError(ValueError):
    """A value that TOML cannot hold (None, complex, bytes)."""


def must_refuse_actions(shape: tuple[int, ...]) -> st.SearchStrategy:
    """Actions that can never be valid for an action of ``shape``."""
    size = int(np.prod(shape))
    bad_size = st.integers(0, 5).filter(lambda n: n != size and n != 1 and n != shape[-1])
    return st.one_of(
        TEXT,
        st.none(),
        st.dictionaries(TEXT, st.floats(-1, 1), min_size=1, max_size=2),
        st.just(b"\x00"),
        st.just(np.array(["a"] * size, dtype=object).reshape(shape)),
        st.just(np.array([None] * size, dtype=object).reshape(shape)),
        st.builds(
            lambda z: np.full(shape, z),
            st.complex_numbers(max_magnitude=1, allow_nan=False).filter(lambda z: z.imag != 0),
        ),
        st.builds(
            lambda v, i: _with(np.zeros(shape, np.float32), i, v),
            not_finite(),
            st.integers(0, size - 1),
        ),
        st.builds(lambda n: np.zeros(n, np.float32), bad_size),
        st.just(np.zeros((2, 2, 2), np.float32)),
        st.just([[0.0], [0.0, 1.0]]),
    )


def _with(a: np.ndarray, i: int, v: float) -> np.ndarray:
    a.reshape(-1)[i] = v
    return a


def either_actions(shape: tuple[int, ...]) -> st.SearchStrategy:
    """Unusual but valid-looking actions: accepted (clipped) or refused, never garbage."""
    floats = st.floats(-1e300, 1e300, allow_nan=False)
    return st.one_of(
        st.builds(lambda v: np.full(shape, v, np.float64), floats),
        st.builds(lambda v: np.full(shape, v, np.float32), st.floats(-1, 1, width=32)),
        st.builds(lambda v: np.full(shape, v, np.int64), st.integers(-(10**6), 10**6)),
        st.builds(lambda v: np.full(shape, v), st.booleans()),
        st.builds(lambda v: np.full(shape, v).tolist(), st.floats(-5, 5)),
        st.builds(lambda v: np.full(shape, v, object), st.floats(-1, 1)),
    )


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (inline tables for dicts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items())
            + "}"
        )
    raise UnrepresentableError(f"{type(value).__name__} has no TOML form")


def toml_doc(doc: Mapping[str, Any]) -> str:
    """A document of top-level keys (tables inline)."""
    return "".join(f"{json.dumps(str(k))} = {toml_value(v)}\n" for k, v in doc.items())


def representable(value: Any) -> bool:
    """Whether :func:`toml_value` can write ``value``."""
    try:
        toml_value(value)
    except UnrepresentableError:
        return False
    return True


def show(value: Any) -> str:
    """A short, readable repr for reproducers (NaN and the infinities as Python expressions)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, np.ndarray):
        body = np.array2string(value, threshold=16, separator=", ")
        return f"np.array({body}, dtype={value.dtype.name})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def kwargs_text(kwargs: Mapping[str, Any]) -> str:
    """``k=v, ...`` for reproducers (``**{...}`` for keys that are not identifiers)."""
    plain = {k: v for k, v in kwargs.items() if isinstance(k, str) and k.isidentifier()}
    rest = {k: v for k, v in kwargs.items() if k not in plain}
    parts = [f"{k}={show(v)}" for k, v in plain.items()]
    if rest:
        parts.append("**{" + ", ".join(f"{k!r}: {show(v)}" for k, v in rest.items()) + "}")
    return ", ".join(parts)


def fields_of(cls: type) -> list[tuple[str, Mapping[str, Any], Any]]:
    """(name, metadata, default) of every field of a dataclass."""
    return [(f.name, f.metadata, f.default) for f in dataclasses.fields(cls)]


def write_file(tmp: Path, text: str, name: str, suffix: str = ".toml") -> Path:
    """Write ``text`` to a new sub-folder of ``tmp`` (named by its hash) and return the path."""
    folder = tmp / hashlib.sha1(text.encode()).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    path.write_text(text, encoding="utf-8")
    return path
