"""The native vector env's one-pulse step as one compiled call.

:func:`vector_step` runs :func:`~closedloop.envs.step_kernels.before_pulse`, the batch kernel
(:mod:`closedloop.neural.batch`, which wraps the scalar kernel) and
:func:`~closedloop.envs.step_kernels.after_pulse` for every patient; :func:`checked_step`
checks and clips the raw actions first, in the same call (each NumPy call and compiled call
from Python costs a few µs when PPO's network has just run between two steps). Their
arguments live in one :class:`BatchArgs` (a numba StructRef, made when the env's stacked arrays
change): numba unboxes it as one object, where the stacked named tuples (some 70 arrays) took
several µs per call. The env fills every table slot's recording cache at its own pulse width,
so the shared cache needs no check here
(:func:`~closedloop.neural.batch.run_pulses_batch_indexed` checks it for other callers).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.core import types
from numba.experimental import structref

from closedloop.envs.step_kernels import after_pulse, before_pulse, checked_actions
from closedloop.neural.batch import run_batch

CONSTS = (
    "action_mode",
    "max_delta_ma",
    "max_log_step",
    "rate_hz",
    "pw_us",
    "max_current_ma",
    "compliance_v",
    "bound_uv",
)
"""The env-wide numbers in ``BatchArgs.consts``, in order: action mode (index in
:data:`~closedloop.envs.config.ACTION_MODES`) and its scales (mA; log-current), pulse rate
(Hz), pulse width (µs), hardware maximum (mA), compliance (V), ECAP bound (µV)."""


@structref.register
class BatchArgsType(types.StructRef):
    """Numba type of :class:`BatchArgs`."""

    def preprocess_fields(self, fields):
        """Fields typed without literal values (one compiled step serves every batch)."""
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class BatchArgs(structref.StructRefProxy):
    """Everything :func:`vector_step` reads and writes (references to the env's arrays).

    Fields: the batch kernel's ``state``, ``tables``, ``table_index``, ``kp``, ``inputs``,
    ``out`` and ``wave``; per patient ``t_s`` (s), ``last`` (trace index), the ``csf`` (mm),
    ``scale`` (impedance) and ``clip`` (CSF clip code) traces, ``max_change`` (mA per
    pulse), ``before`` and ``after`` (the tuples of
    :func:`~closedloop.envs.step_kernels.before_pulse` and
    :func:`~closedloop.envs.step_kernels.after_pulse`) and ``hist``; the reward ``weights``
    and the ``consts`` (:data:`CONSTS`).
    """


FIELDS = (
    "state",
    "tables",
    "table_index",
    "kp",
    "inputs",
    "out",
    "wave",
    "t_s",
    "last",
    "csf",
    "scale",
    "clip",
    "max_change",
    "before",
    "after",
    "hist",
    "weights",
    "consts",
)
structref.define_proxy(BatchArgs, BatchArgsType, list(FIELDS))


@njit(cache=True)
def batch_args(
    state,
    tables,
    table_index,
    kp,
    inputs,
    out,
    wave,
    t_s,
    last,
    csf,
    scale,
    clip,
    max_change,
    before,
    after,
    hist,
    weights,
    consts,
):
    """A :class:`BatchArgs` of these (compiled once and cached)."""
    return BatchArgs(
        state,
        tables,
        table_index,
        kp,
        inputs,
        out,
        wave,
        t_s,
        last,
        csf,
        scale,
        clip,
        max_change,
        before,
        after,
        hist,
        weights,
        consts,
    )


@njit(cache=True)
def vector_step(actions, a, n_threads):
    """One pulse for every patient: action mapping, device limits, kernel, sensation, reward.

    Args:
        actions: Action component 0 of each patient, finite, in [-1, 1], (N,).
        a: The :class:`BatchArgs`; states, clocks, currents, levels and histories are updated.
        n_threads: Threads of the batch kernel (:func:`closedloop.neural.batch.batch_threads`).

    Returns:
        New arrays ``(obs, values, flags, limit_flags)``: the first three as
        :func:`~closedloop.envs.step_kernels.after_pulse` returns them, then the device's limit
        bitmasks.
    """
    c = a.consts
    flags = np.empty(actions.size, np.int64)
    seen = np.empty((2, actions.size))
    before_pulse(
        actions,
        int(c[0]),
        (c[1], c[2]),
        a.t_s,
        c[3],
        a.last,
        (a.csf, a.scale, a.clip),
        a.before,
        c[4],
        c[5],
        c[6],
        a.max_change,
        a.inputs,
        flags,
        seen,
    )
    run_batch(
        a.state, a.tables, a.table_index, a.table_index, a.kp, a.inputs, a.out, a.wave, n_threads
    )
    obs, values, step_flags = after_pulse(
        a.out, a.after, a.weights, a.hist, a.t_s, 1.0 / c[3], c[3], a.last, c[7], seen
    )
    return obs, values, step_flags, flags


@njit(cache=True)
def checked_step(actions, a, n_threads):
    """:func:`vector_step` after checking and clipping the raw actions.

    Compiled for each float dtype and layout of ``actions``; the step itself
    (:func:`vector_step`) is compiled once, for all of them.

    Args:
        actions: (N, 1) actions, clipped to [-1, 1].
        a: The :class:`BatchArgs`.
        n_threads: Threads of the batch kernel.

    Returns:
        ``(bad, obs, values, flags, limit_flags)``: ``bad`` is -1 after a step; otherwise
        nothing was stepped (the arrays are empty) and ``bad`` is what
        :func:`~closedloop.envs.step_kernels.checked_actions` returned.
    """
    clipped = np.empty(a.t_s.size)
    bad = checked_actions(actions, clipped)
    if bad != -1:
        return (
            bad,
            np.empty((0, 0), np.float32),
            np.empty((0, 0)),
            np.empty((0, 0), np.bool_),
            np.empty(0, np.int64),
        )
    obs, values, flags, limits = vector_step(clipped, a, n_threads)
    return bad, obs, values, flags, limits
