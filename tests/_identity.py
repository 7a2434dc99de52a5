"""Bit-for-bit comparison of episode results, shared by the batched-path identity tests.

Importable from the tests as ``from _identity import differences, same`` (pytest puts the
tests folder on ``sys.path``: it is not a package).
"""

from __future__ import annotations

import dataclasses

import numpy as np


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
    out = [k for k in row.keys() | ref_row.keys()
           if k not in row or k not in ref_row or not same(row[k], ref_row[k])]
    return out + [f"trajectory.{f.name}" for f in dataclasses.fields(ref.trajectory)
                  if not same(getattr(got.trajectory, f.name), getattr(ref.trajectory, f.name))]
