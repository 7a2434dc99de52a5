"""A preallocated, validation-free path into the pulse kernel for step-by-step simulation.

:meth:`NeuralModel.stimulate` checks its inputs and allocates its outputs on every call, which
costs more than the kernel itself when a controller delivers one pulse at a time. A
:class:`PulseRunner` allocates once, and calls the compiled kernel's entry point for the exact
argument types (skipping numba's per-call type dispatch). It runs the same kernel,
:func:`closedloop.neural.kernels.run_pulses` (as ``stimulate`` does, through
:func:`~closedloop.neural.kernels.run_pulses_unshared`), so results are bit-identical.
The caller guarantees valid inputs (currents 0-25.5 mA, pulse width 20-1000 µs, CSF inside the
tabulated grid, positive intervals), e.g. because they passed the device model.
"""

from __future__ import annotations

import numba
import numpy as np

from closedloop.neural.kernels import PULSE_DTYPE, PulseInputs, run_pulses_unshared


def entry_point(dispatcher, args: tuple):
    """``dispatcher`` compiled for the exact types of ``args``, as a directly callable entry point.

    Calling it skips numba's per-call type dispatch (it must then only get arguments of those
    types). Falls back to the dispatcher itself if a numba build cannot compile this way.
    """
    try:
        return dispatcher.compile(tuple(numba.typeof(a) for a in args))
    except Exception:  # pragma: no cover - an unusual numba build
        return dispatcher


class PulseRunner:
    """Deliver ``n_pulses`` pulses per call into one :class:`NeuralModel`.

    The records land in ``out``, the sweeps (if asked for) in ``wave``. The control step's NumPy
    reference (:func:`closedloop.envs.step_reference.reference_step`) runs the kernel this way.

    Args:
        model: The patient's model (its state is advanced in place).
        n_pulses: Pulses per call.
        waveforms: Also record the sweeps (``self.wave``, shape (n_pulses, n_samples)).
    """

    def __init__(self, model, n_pulses: int, waveforms: bool = False) -> None:
        self.model = model
        self.inputs = PulseInputs(*(np.zeros(n_pulses) for _ in range(4)))
        self.out = np.empty(n_pulses, PULSE_DTYPE)
        self.wave = np.empty((n_pulses if waveforms else 0, model.n_samples))
        self._kernel = self._bind()

    def _bind(self):
        """The compiled kernel for these argument types (normal dispatch if unavailable)."""
        m = self.model
        return entry_point(
            run_pulses_unshared,
            (m.state, m.tables, m.kparams, self.inputs, self.out, self.wave, m.work),
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_kernel": None}  # entry points do not pickle

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._kernel = self._bind()

    def run(self, current_ma: float, pw_us: float, csf_mm, interval_s: float) -> np.ndarray:
        """Deliver the pulses; returns the records (a view reused by the next call).

        Args:
            current_ma: Current of every pulse (mA).
            pw_us: Pulse width (µs).
            csf_mm: CSF thickness per pulse (mm), scalar or array of ``n_pulses``.
            interval_s: Interval before each pulse (s).
        """
        inp = self.inputs
        inp.current_ma[:] = current_ma
        inp.pw_us[:] = pw_us
        inp.csf_mm[:] = csf_mm
        inp.interval_s[:] = interval_s
        m = self.model
        self._kernel(m.state, m.tables, m.kparams, inp, self.out, self.wave, m.work)
        return self.out
