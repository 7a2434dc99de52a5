"""A preallocated, validation-free path into the pulse kernel for step-by-step simulation.

:meth:`NeuralModel.stimulate` checks its inputs and allocates its outputs on every call, which
costs more than the kernel itself when a controller delivers one pulse at a time. A
:class:`PulseRunner` allocates once, and calls the compiled kernel's entry point for the exact
argument types (skipping numba's per-call type dispatch). It runs the same kernel,
:func:`closedloop.neural.kernels.run_pulses`, so results are bit-identical to ``stimulate``.
The caller guarantees valid inputs (currents 0-25.5 mA, pulse width 20-1000 µs, CSF inside the
tabulated grid, positive intervals), e.g. because they passed the device model.
"""

from __future__ import annotations

import functools
import struct
import sys

import numba
import numpy as np

from closedloop.neural.kernels import PULSE_DTYPE, PulseInputs, run_pulses

_STRUCT_CODES = {("b", 1): "?", ("i", 1): "b", ("i", 2): "h", ("i", 4): "i", ("i", 8): "q",
                 ("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q", ("f", 2): "e",
                 ("f", 4): "f", ("f", 8): "d"}


def record_struct(dtype: np.dtype) -> struct.Struct | None:
    """A :class:`struct.Struct` unpacking one record of ``dtype`` as ``ndarray.item`` does.

    Returns None unless every field is a little-endian scalar (of a little-endian machine)
    of a kind :mod:`struct` reads: bool, integer or float.
    """
    if sys.byteorder != "little":  # pragma: no cover
        return None
    fmt, pos = "<", 0
    for name in dtype.names:
        field, offset = dtype.fields[name][:2]
        code = _STRUCT_CODES.get((field.kind, field.itemsize))
        if code is None or field.byteorder == ">" or offset < pos:
            return None
        fmt += f"{offset - pos}x{code}" if offset > pos else code
        pos = offset + field.itemsize
    return struct.Struct(fmt + (f"{dtype.itemsize - pos}x" if dtype.itemsize > pos else ""))


class PulseRunner:
    """Deliver ``n_pulses`` pulses per call into one :class:`NeuralModel`.

    The records land in ``out``. ``fields[name]`` is ``out[name]``, made once (indexing a
    structured array by field name builds a new view on every call), and ``record()`` returns
    the first pulse's record as a tuple of Python scalars in field order, equal to
    ``out.item(0)`` at a fraction of its cost (for callers that deliver one pulse at a time).

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
        self._make_views()

    def _make_views(self) -> None:
        """``fields``, ``record`` and the memoryviews of ``inputs`` used by :meth:`run_one`."""
        self.fields = {name: self.out[name] for name in self.out.dtype.names}
        layout = record_struct(self.out.dtype)
        self.record = (functools.partial(self.out.item, 0) if layout is None else
                       functools.partial(layout.unpack_from, memoryview(self.out.view(np.uint8))))
        self._scalar_inputs = tuple(memoryview(a) for a in self.inputs)

    def _bind(self):
        """The compiled kernel for these argument types (normal dispatch if unavailable)."""
        m = self.model
        args = (m.state, m.tables, m.kp, self.inputs, self.out, self.wave, m.work)
        try:
            return run_pulses.compile(tuple(numba.typeof(a) for a in args))
        except Exception:  # pragma: no cover - an unusual numba build
            return run_pulses

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_kernel", "fields", "record", "_scalar_inputs"):
            del state[key]             # entry points and memoryviews do not pickle, and views
        return state                   # would unpickle as copies detached from their arrays

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._kernel = self._bind()
        self._make_views()

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
        self._kernel(m.state, m.tables, m.kp, inp, self.out, self.wave, m.work)
        return self.out

    def run_one(self, current_ma: float, pw_us: float, csf_mm: float, interval_s: float) -> None:
        """:meth:`run` for a runner of one pulse with scalar inputs, without returning ``out``.

        Writes element 0 of each input array instead of filling it (several times cheaper for
        one pulse); read the record with ``record()``, ``fields`` or ``out``.
        """
        current, pw, csf, interval = self._scalar_inputs
        current[0] = current_ma
        pw[0] = pw_us
        csf[0] = csf_mm
        interval[0] = interval_s
        m = self.model
        self._kernel(m.state, m.tables, m.kp, self.inputs, self.out, self.wave, m.work)
