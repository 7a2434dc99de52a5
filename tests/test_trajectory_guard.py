"""Every env, the vector env and the evaluation path replay their recorded trajectories.

The guard of issue 20's redesign of the control step: the cases and the recorded arrays are
in :mod:`_trajectory_guard` (``python tests/_trajectory_guard.py`` checks them bit for bit on
one machine). Here they are compared with a relative tolerance of 1e-7: another CPU may let
numba fuse or vectorise floating-point operations differently (differences near 1e-14).
"""

import json

import numpy as np
import pytest
from _trajectory_guard import DATA, all_cases, scalar_case


@pytest.fixture(scope="module")
def recorded():
    with np.load(DATA / "trajectory_guard.npz") as z:
        arrays = {key: z[key] for key in z.files}
    cases: dict[str, dict] = {}
    for key, value in arrays.items():
        name, field = key.split("::")
        cases.setdefault(name, {})[field] = value
    return cases


@pytest.fixture(scope="module")
def replayed():
    return all_cases()


def test_every_case_is_recorded(recorded, replayed):
    names = json.loads((DATA / "trajectory_guard.json").read_text())
    assert set(names) == set(recorded) == set(replayed)
    kinds = {name.split("|")[0] for name in names}
    assert kinds == {"scalar", "vector", "episodes"}


def test_cases_replay_their_recorded_arrays(recorded, replayed):
    for name, case in replayed.items():
        assert sorted(case) == sorted(recorded[name]), name
        for key, value in case.items():
            np.testing.assert_allclose(
                value, recorded[name][key], rtol=1e-7, atol=1e-9, err_msg=f"{name}: {key}"
            )


def test_the_guard_sees_a_changed_trajectory(recorded):
    """A different action sequence (seed) gives other arrays: the comparison can fail."""
    name = next(n for n in recorded if n.startswith("scalar|") and n.endswith("|0"))
    other = scalar_case(name.split("|")[1], 7)
    assert not np.allclose(other["obs"], recorded[name]["obs"], rtol=1e-7, atol=1e-9)
