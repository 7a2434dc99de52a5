"""Bit-for-bit comparison of episode results, shared by the batched-path identity tests.

Importable from the tests as ``from _identity import differences, same`` (pytest puts the
tests folder on ``sys.path``: it is not a package). Also the neural kernel's pulse records,
field by field: :func:`assert_records_close` and :func:`assert_records_identical`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from closedloop.neural import PULSE_DTYPE


def same(a, b) -> bool:
    """Bit-for-bit equality of two values (arrays by dtype, shape and bytes; NaN equals NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return type(a) is type(b) and (a == b or (a != a and b != b))


def differences(got, ref) -> list[str]:
    """Names of the row columns and trajectory fields where two ``EpisodeResult`` s differ."""
    row, ref_row = got.row(), ref.row()
    del row["wall_s"], ref_row["wall_s"]
    out = [
        k
        for k in row.keys() | ref_row.keys()
        if k not in row or k not in ref_row or not same(row[k], ref_row[k])
    ]
    return out + [
        f"trajectory.{f.name}"
        for f in dataclasses.fields(ref.trajectory)
        if not same(getattr(got.trajectory, f.name), getattr(ref.trajectory, f.name))
    ]


def assert_records_close(a, b, rtol: float = 1e-9, atol: float = 1e-9) -> None:
    """Two arrays of pulse records agree: floats to tolerance (NaN where NaN), others exactly."""
    for name in PULSE_DTYPE.names:
        if PULSE_DTYPE[name].kind == "f":
            assert_allclose(a[name], b[name], rtol=rtol, atol=atol, equal_nan=True, err_msg=name)
        else:
            assert_array_equal(a[name], b[name], err_msg=name)


def assert_records_identical(a, b) -> None:
    """Two arrays of pulse records are equal field by field (NaNs in the same places)."""
    for name in PULSE_DTYPE.names:
        assert_array_equal(a[name], b[name], err_msg=name)
