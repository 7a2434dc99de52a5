"""The preallocated pulse runner runs the same kernel as NeuralModel.stimulate, bit for bit."""

import pickle

import numpy as np
from numpy.testing import assert_array_equal

from closedloop.neural.pulse_runner import PulseRunner
from closedloop.patients.cohort import get_patient


def test_runner_equals_stimulate_bit_for_bit():
    model = get_patient("thin-csf").model()
    currents = np.linspace(1.0, 6.0, 40)
    csf = np.linspace(2.4, 3.2, 40)
    model.reset(5)
    ref, ref_wave = model.stimulate(currents, 300.0, csf, 0.01, waveforms=True)
    model.reset(5)
    runner = PulseRunner(model, 1, waveforms=True)
    got, waves = [], []
    for i, c in zip(currents, csf, strict=True):
        got.append(runner.run(i, 300.0, c, 0.01).copy())
        waves.append(runner.wave[0].copy())
    got = np.concatenate(got)
    assert np.isnan(ref["n1_latency_ms"]).any()  # pulses without an ECAP: NaN latency
    for name in ref.dtype.names:  # field by field: NaNs in the same places are equal
        assert_array_equal(got[name], ref[name], err_msg=name)
    assert_array_equal(np.array(waves), ref_wave)


def test_runner_with_several_pulses_and_pickling():
    model = get_patient("default").model()
    model.reset(1)
    ref = model.stimulate(np.full(20, 6.0), 250.0, 3.9, 0.001)
    model.reset(1)
    runner = pickle.loads(pickle.dumps(PulseRunner(model, 10)))
    model = runner.model
    out = np.concatenate([runner.run(6.0, 250.0, 3.9, 0.001).copy() for _ in range(2)])
    for name in ref.dtype.names:  # field by field: NaN latencies (no ECAP) in the same places
        assert_array_equal(out[name], ref[name], err_msg=name)


def test_kernel_arrays_are_c_contiguous():
    """The kernel reads table rows (one CSF cell's fibres): a Fortran-ordered table made every
    fibre's read a separate cache line, three times slower with the same results."""
    model = get_patient("default").model()
    for group in (model.tables, model.state, model.work):
        for name, a in zip(group._fields, group, strict=True):
            assert a.flags.c_contiguous, f"{type(group).__name__}.{name} is not C-contiguous"
