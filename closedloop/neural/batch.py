"""Batched kernels: many patients at once, in parallel, by wrapping the scalar kernel.

Every array of the scalar kernel's ``KernelState``, ``KernelTables``, ``KernelParams`` and
``PulseInputs`` gains a leading patient axis; ``run_pulses_batch`` slices patient ``p`` and calls
:func:`closedloop.neural.kernels.run_pulses` on it inside a ``prange`` loop, with one scratch
``KernelWork`` per thread. There is no second
copy of the dynamics. Use :func:`stack` to build the stacked tuples from per-patient ones.

Threads come from numba's threading layer (``NUMBA_THREADING_LAYER``; by default TBB, else
OpenMP, else numba's workqueue). OpenMP threads spin between the calls of a stepping loop, which
on small virtual machines is steadier than the workqueue's sleeping threads, but GNU OpenMP
cannot run a parallel region in a process forked after its threads started: such a child runs
the batch kernels serially (same results), so ``fork`` after a vector env still works.
"""

from __future__ import annotations

import os

import numba
import numpy as np
from numba import get_num_threads, njit, prange

from closedloop.neural.kernels import (
    KernelParams,
    KernelState,
    KernelTables,
    PulseInputs,
    new_work,
    run_pulses,
)


def stack(items: list):
    """Stack a list of same-type NamedTuples field by field along a new leading axis."""
    cls = type(items[0])
    return cls(
        *(
            np.ascontiguousarray(np.stack([np.asarray(getattr(it, f)) for it in items]))
            for f in cls._fields
        )
    )


@njit(cache=True, inline="always")
def _params_at(kparams, p):
    """Patient ``p`` of a stacked ``KernelParams``."""
    return KernelParams(
        kparams.csf0_mm[p],
        kparams.dcsf_mm[p],
        kparams.jitter_rel[p],
        kparams.t_abs_ms[p],
        kparams.rel_amplitude[p],
        kparams.tau_rel_ms[p],
        kparams.sn_amplitude[p],
        kparams.tau_sn_ms[p],
        kparams.adapt_tau0_s[p],
        kparams.adapt_tau1_s[p],
        kparams.adapt_tau2_s[p],
        kparams.adapt_inc0[p],
        kparams.adapt_inc1[p],
        kparams.adapt_inc2[p],
        kparams.adapt_gain0[p],
        kparams.adapt_gain1[p],
        kparams.adapt_gain2[p],
        kparams.sd_exponent[p],
        kparams.init_offset_ms[p],
        kparams.init_pw_fraction[p],
        kparams.sfap_width_ms[p],
        kparams.sfap_asymmetry[p],
        kparams.motor_fraction[p],
        kparams.emg_uv_per_fraction[p],
        kparams.emg_latency_ms[p],
        kparams.emg_width_ms[p],
        kparams.fs_hz[p],
        kparams.interphase_us[p],
        kparams.blank_ms[p],
        kparams.est_end_ms[p],
        kparams.noise_uv_rms[p],
        kparams.artefact_uv_per_ma[p],
        kparams.artefact_offset_uv[p],
        kparams.artefact_tau_ms[p],
        kparams.adc_range_uv[p],
        kparams.adc_lsb_uv[p],
        kparams.use_template[p],
        kparams.template_lag[p],
        kparams.detect_snr[p],
        kparams.seed_pulse_a[p],
        kparams.seed_pulse_b[p],
        kparams.pool_fraction[p],
    )


@njit(cache=True, inline="always")
def _tables_at(tb, p):
    """Patient ``p`` of a stacked ``KernelTables``."""
    return KernelTables(
        tb.rheo_ma[p],
        tb.sfap_uv[p],
        tb.sd_q_ma[p],
        tb.fibre_class[p],
        tb.fibre_hash[p],
        tb.class_delay_ms[p],
        tb.class_mix[p],
        tb.sample_hash[p],
        tb.cell_floor[p],
        tb.sd_ratio_range[p],
        tb.init_delay_ms[p],
        tb.template_ref[p],
        tb.pool_regen_ms[p],
    )


@njit(cache=True, inline="always")
def _state_at(st, p, q):
    """Patient ``p`` of a stacked ``KernelState`` whose recording cache is slot ``q``."""
    return KernelState(
        st.decay_ref[p],
        st.clock_ms[p],
        st.pulse_count[p],
        st.templates[q],
        st.mf[q],
        st.shapes[q],
        st.cache[q],
        st.lag_track[p],
    )


RECORDING_CACHE = ("templates", "mf", "shapes", "cache")
"""The ``KernelState`` fields that depend only on the patient's parameters and the pulse width
(refreshed when the width changes): patients may share them (``cache_index``)."""


@njit(cache=True, inline="always")
def _inputs_at(inp, p):
    """Patient ``p`` of a stacked ``PulseInputs``."""
    return PulseInputs(
        inp.current_ma[p],
        inp.pw_us[p],
        inp.csf_mm[p],
        inp.interval_s[p],
    )


def run_pulses_batch_indexed(
    state, tables, table_index, kparams, inputs, out, wave, cache_index=None
):
    """Deliver pulses to many patients in parallel, patient ``p`` using tables ``table_index[p]``.

    Patients that share anatomy (the same cohort patient in several environments) then share
    one copy of the tables, and may share one recording cache (``RECORDING_CACHE`` fields of
    ``state``, slot ``cache_index[p]``) if they use the pulse width it holds: the kernel then
    only reads it. The patients are split into one contiguous chunk per thread, each with one
    scratch ``KernelWork`` (which then stays in cache).

    Args:
        state: Stacked ``KernelState`` (leading axis: patient; cache slot for the
            ``RECORDING_CACHE`` fields), updated in place.
        tables: Stacked ``KernelTables`` (leading axis: table slot).
        table_index: Table slot of each patient (int64, shape (n_patients,)).
        kparams: Stacked ``KernelParams`` (each field an array over patients).
        inputs: Stacked ``PulseInputs``, arrays of shape (n_patients, P).
        out: Structured array (n_patients, P) of ``PULSE_DTYPE``.
        wave: (n_patients, P, S) sweeps, or (n_patients, 0, S) to skip them.
        cache_index: Recording-cache slot of each patient (int64), or None: patient p's own.

    Raises:
        ValueError: A shared cache slot holds another pulse width than its patients use.
    """
    if cache_index is None:
        cache_index = np.arange(out.shape[0], dtype=np.int64)
    else:
        p = _pw_mismatch(state.cache, cache_index, inputs.pw_us)
        if p >= 0:
            held = state.cache[cache_index, :1]
            raise ValueError(
                f"inputs.pw_us[{p}] must equal the pulse width its shared recording cache "
                f"(cache_index[{p}]={int(cache_index[p])}) holds, {float(held[p, 0]):g} µs; "
                "refresh the slot first (closedloop.neural.recording.refresh_templates)"
            )
    run_batch(state, tables, table_index, cache_index, kparams, inputs, out, wave, batch_threads())


@njit(cache=True)
def _pw_mismatch(cache, cache_index, pw_us):
    """First patient whose pulse widths differ from its recording cache's, or -1."""
    for p in range(pw_us.shape[0]):
        for q in range(pw_us.shape[1]):
            if pw_us[p, q] != cache[cache_index[p], 0]:
                return p
    return -1


@njit(cache=True)
def run_batch(state, tables, table_index, cache_index, kparams, inputs, out, wave, n_threads):
    """:func:`run_pulses_batch_indexed` without its check, for compiled callers.

    ``n_threads`` comes from :func:`batch_threads`; with 1 (or one patient) the patients run
    in the calling thread, with no parallel region.
    """
    if out.shape[0] == 0:
        return
    if n_threads > 1 and out.shape[0] > 1:
        _batch(state, tables, table_index, cache_index, kparams, inputs, out, wave, n_threads)
    else:
        _chunk(
            state,
            tables,
            table_index,
            cache_index,
            kparams,
            inputs,
            out,
            wave,
            0,
            out.shape[0],
            _work_for(state, tables, kparams),
        )


@njit(cache=True, parallel=True)
def _batch(state, tables, table_index, cache_index, kparams, inputs, out, wave, n_threads):
    """:func:`run_pulses_batch_indexed` with ``min(n_patients, n_threads)`` chunks."""
    n = out.shape[0]
    n_chunks = min(n, n_threads)
    for c in prange(n_chunks):
        _chunk(
            state,
            tables,
            table_index,
            cache_index,
            kparams,
            inputs,
            out,
            wave,
            c * n // n_chunks,
            (c + 1) * n // n_chunks,
            _work_for(state, tables, kparams),
        )


@njit(cache=True, inline="always")
def _work_for(state, tables, kparams):
    """A ``KernelWork`` for every patient of a batch."""
    return new_work(
        tables.fibre_class.shape[1],
        state.templates.shape[1],
        state.templates.shape[2],
        kparams.template_lag.max(),
    )


@njit(cache=True, _nrt=False)
def _chunk(state, tables, table_index, cache_index, kparams, inputs, out, wave, lo, hi, work):
    """Patients ``lo:hi`` of :func:`run_pulses_batch_indexed`, one after another.

    Compiled without numba's reference counting (``_nrt=False``): the caller holds every array
    for the whole call, and each patient's views of them (rows, slices, the named tuples of
    :func:`_state_at` and the others) would otherwise cost an atomic increment and decrement
    each: perf put a quarter of an 8-patient step's compiled time in them. It therefore
    allocates nothing (numba refuses to compile an allocation here): ``work`` comes from the
    caller.
    """
    for p in range(lo, hi):
        run_pulses(
            _state_at(state, p, cache_index[p]),
            _tables_at(tables, table_index[p]),
            _params_at(kparams, p),
            _inputs_at(inputs, p),
            out[p],
            wave[p],
            work,
        )


def batch_threads() -> int:
    """Threads for :func:`run_batch`: numba's, or 1 in a child forked from an OpenMP parent."""
    return 1 if _SERIAL else get_num_threads()


_SERIAL = False
"""True in a process forked after this one ran a parallel region on OpenMP (see the module
docstring): the batch kernels then run serially."""


def _after_fork_in_child() -> None:
    global _SERIAL
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region ran: the child may start its own threads
        return
    _SERIAL = _SERIAL or layer == "omp"


os.register_at_fork(after_in_child=_after_fork_in_child)


def run_pulses_batch(state, tables, kparams, inputs, out, wave):
    """Deliver pulses to many patients in parallel, each with its own tables.

    Args:
        state: Stacked ``KernelState`` (leading axis: patient), updated in place.
        tables: Stacked ``KernelTables``.
        kparams: Stacked ``KernelParams`` (each field an array over patients).
        inputs: Stacked ``PulseInputs``, arrays of shape (n_patients, P).
        out: Structured array (n_patients, P) of ``PULSE_DTYPE``.
        wave: (n_patients, P, S) sweeps, or (n_patients, 0, S) to skip them.
    """
    index = np.arange(out.shape[0], dtype=np.int64)
    run_pulses_batch_indexed(state, tables, index, kparams, inputs, out, wave)
