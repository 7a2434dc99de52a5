"""A fast driver for MRG fibres in NEURON, built by PyFibers (the ``validate`` extra).

PyFibers builds the fibre (MRG_INTERPOLATION geometry, channels and the double-cable
extracellular layers) and checks its rest state; this driver then plays stimuli with one
``PtrVector.scatter`` per change of the waveform and lets NEURON integrate in between, instead
of PyFibers' Python loop over every section at every time step. The result is the same run
(checked against ``ScaledStim.run_sim`` in the slow tests) several times faster.

Units: µm and mm as named, ms, mA for stimulus currents, mV for potentials, S/m for
conductivity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIGMA_S_PER_M = 0.6
"""Conductivity of the homogeneous isotropic medium of the comparison (issue 17)."""
TEMPERATURE_C = 37.0


def _neuron():
    """Import NEURON and PyFibers, or explain how to install them."""
    try:
        from neuron import h
        from pyfibers import FiberModel, build_fiber
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "the detailed model needs the validate extra: "
            "pip install 'closedloop[validate]' (PyFibers and NEURON), then run "
            "pyfibers_compile once"
        ) from exc
    return h, FiberModel, build_fiber


@dataclass
class Pulse:
    """One rectangular phase of a stimulus: onset (ms), width (ms) and amplitude (mA).

    Negative amplitudes are cathodic.
    """

    onset_ms: float
    width_ms: float
    amplitude_ma: float


class MRGFibre:
    """A straight MRG fibre at 37 °C with a node of Ranvier at its centre.

    Args:
        diameter_um: Fibre diameter (µm), 2-16 (MRG interpolation range).
        length_mm: Fibre length (mm).
        dt_ms: Time step (ms).
    """

    def __init__(self, diameter_um: float, length_mm: float = 60.0, dt_ms: float = 0.005):
        h, model, build = _neuron()
        self.h = h
        self.diameter_um = float(diameter_um)
        self.dt_ms = float(dt_ms)
        self.fibre = build(
            model.MRG_INTERPOLATION,
            diameter=self.diameter_um,
            length=length_mm * 1e3,
            temperature=TEMPERATURE_C,
        )
        self.sections = list(self.fibre.sections)
        self._ptr = h.PtrVector(len(self.sections))
        for i, sec in enumerate(self.sections):
            self._ptr.pset(i, sec(0.5)._ref_e_extracellular)
        index = {sec.name(): i for i, sec in enumerate(self.sections)}
        self.node_sections = np.array([index[n.name()] for n in self.fibre.nodes])
        self.z_um = np.asarray(self.fibre.longitudinal_coordinates, float)
        self.centre = len(self.node_sections) // 2
        self.z_centre_um = float(self.z_um[self.node_sections[self.centre]])
        self.fibre.apcounts(thresh=-30.0)
        self._vm = None
        self._t_rec = None
        self._clamps: list = []
        self.imem_na = None
        """Membrane currents (nA, outward positive) of every section over the last run with
        ``record_imem``, shape (n_sections, T); with the double cable this is the current into
        the extracellular medium (NEURON's ``i_membrane_``)."""
        self.t_ms = None
        """Times (ms) of the samples of the last recorded run."""

    @property
    def n_nodes(self) -> int:
        """Nodes of Ranvier on the fibre."""
        return len(self.node_sections)

    @property
    def internode_mm(self) -> float:
        """Node-to-node spacing (mm)."""
        z = self.z_um[self.node_sections]
        return float(np.median(np.diff(z))) * 1e-3

    def point_source(
        self, distance_mm: float, offset_mm: float = 0.0, sigma: float = SIGMA_S_PER_M
    ) -> np.ndarray:
        """Potential (mV per mA) at every section from a point source.

        Args:
            distance_mm: Perpendicular distance of the source from the fibre (mm).
            offset_mm: Longitudinal offset of the source from the centre node (mm).
            sigma: Conductivity of the homogeneous isotropic medium (S/m).
        """
        dz = (self.z_um - self.z_centre_um - offset_mm * 1e3) * 1e-6
        r = np.sqrt(dz * dz + (distance_mm * 1e-3) ** 2)
        return 1.0 / (4.0 * math.pi * sigma * r)

    def _scatter(self, values: np.ndarray) -> None:
        self._ptr.scatter(self.h.Vector(np.ascontiguousarray(values, float)))

    def _rest(self) -> None:
        """Initialise at rest and settle for 200 ms with a 5 ms step, as PyFibers does."""
        h = self.h
        h.celsius = TEMPERATURE_C
        h.finitialize(self.fibre.v_rest)
        self._scatter(np.zeros(len(self.sections)))
        h.t, h.dt = -200.0, 5.0
        while h.t < 0.0:
            h.fadvance()
        h.t, h.dt = 0.0, self.dt_ms
        h.fcurrent()
        h.frecord_init()

    def run(
        self,
        ve_mv_per_ma: np.ndarray,
        pulses: list[Pulse],
        tstop_ms: float,
        stop_node: int | None = None,
        record_vm: bool = False,
        record_imem: bool = False,
    ) -> np.ndarray:
        """Run one stimulus; return the last AP time (ms) at every node (NaN: no AP).

        Args:
            ve_mv_per_ma: Potential per mA at every section, shape (n_sections,).
            pulses: Rectangular phases (may overlap in time; their amplitudes add).
            tstop_ms: End of the run (ms).
            stop_node: Stop early once this node has fired (checked every 0.05 ms).
            record_vm: Record the membrane potential at every node (see :attr:`vm`).
            record_imem: Record the membrane current of every section (see :attr:`imem_na`).
        """
        h = self.h
        if record_vm:
            self._vm = [
                h.Vector().record(self.fibre.nodes[i](0.5)._ref_v) for i in range(self.n_nodes)
            ]
        imem = self._start_imem(record_imem)
        if record_vm or record_imem:
            self._t_rec = h.Vector().record(h._ref_t)
        self._rest()
        try:
            return self._play_run(ve_mv_per_ma, pulses, tstop_ms, stop_node)
        finally:
            if self._t_rec is not None:
                self.t_ms = np.asarray(self._t_rec).copy()
            if imem is not None:
                self.imem_na = np.array([np.asarray(v) for v in imem])
                h.cvode.use_fast_imem(0)

    def _start_imem(self, record: bool):
        """Switch on NEURON's fast ``i_membrane_`` and record it at every section."""
        if not record:
            return None
        self.h.cvode.use_fast_imem(1)
        return [self.h.Vector().record(sec(0.5)._ref_i_membrane_) for sec in self.sections]

    def _play_run(self, ve_mv_per_ma, pulses, tstop_ms, stop_node) -> np.ndarray:
        h = self.h
        edges = sorted({p.onset_ms for p in pulses} | {p.onset_ms + p.width_ms for p in pulses})
        apc = self.fibre.apc
        for t_next in [*edges, tstop_ms]:
            t_next = min(t_next, tstop_ms)
            while h.t < t_next - 0.5 * self.dt_ms:
                h.fadvance()
                if (
                    stop_node is not None
                    and apc[stop_node].n > 0
                    and round(h.t / self.dt_ms) % 10 == 0
                ):
                    return self._ap_times()
            amp = sum(
                p.amplitude_ma
                for p in pulses
                if p.onset_ms <= h.t + 0.5 * self.dt_ms < p.onset_ms + p.width_ms
            )
            self._scatter(amp * ve_mv_per_ma)
            if t_next >= tstop_ms:
                break
        return self._ap_times()

    def _ap_times(self) -> np.ndarray:
        times = np.array([a.time if a.n > 0 else np.nan for a in self.fibre.apc])
        counts = np.array([a.n for a in self.fibre.apc])
        self.ap_counts = counts
        return times

    @property
    def vm(self) -> np.ndarray:
        """Membrane potential (mV) at every node over the last recorded run, shape (nodes, T)."""
        return np.array([np.asarray(v) for v in self._vm])

    def threshold(
        self,
        ve_mv_per_ma: np.ndarray,
        shape,
        guess_ma: float,
        *,
        detect_nodes: int = 8,
        tail_ms: float = 1.5,
        rel_tol: float = 0.002,
        max_ma: float = 1e4,
    ) -> tuple[float, float]:
        """Smallest current scale that starts a propagating AP (bisection in log current).

        Args:
            ve_mv_per_ma: Potential per mA at every section.
            shape: Callable ``amplitude -> list[Pulse]``: the stimulus at a given scale (mA).
            guess_ma: A first guess of the threshold (mA, positive).
            detect_nodes: An AP must reach the node this many nodes from the centre (both
                sides are watched; the far side of the fibre is used).
            tail_ms: Time after the last phase to wait for an AP (ms).
            rel_tol: Relative width of the final bracket.
            max_ma: Give up above this current (returns inf).

        Returns:
            (threshold in mA, AP time at the detection node in ms).
        """
        node = min(self.centre + detect_nodes, self.n_nodes - 1)

        def fires(amp: float) -> float:
            pulses = shape(amp)
            t_end = max(p.onset_ms + p.width_ms for p in pulses) + tail_ms
            times = self.run(ve_mv_per_ma, pulses, t_end, stop_node=node)
            return times[node]

        lo, hi = guess_ma / 1.1, guess_ma * 1.1
        t_hi = fires(hi)
        while np.isnan(t_hi):
            lo, hi = hi, hi * 1.5
            if hi > max_ma:
                return math.inf, math.nan
            t_hi = fires(hi)
        while not np.isnan(fires(lo)):
            hi, lo = lo, lo / 1.5
        t_hi = fires(hi)
        while hi / lo > 1.0 + rel_tol:
            mid = math.sqrt(lo * hi)
            t = fires(mid)
            if np.isnan(t):
                lo = mid
            else:
                hi, t_hi = mid, t
        return hi, float(t_hi)

    # --- stepwise control: intracellular clamps, saved states, watched nodes -----------------

    def add_iclamp(
        self, node: int, amplitude_na: float, delay_ms: float = 0.1, width_ms: float = 0.1
    ) -> None:
        """Inject an intracellular current pulse at a node (used to start an AP at one end).

        Args:
            node: Node index (0 is one end).
            amplitude_na: Current (nA, depolarising positive).
            delay_ms: Onset (ms) after the start of the run.
            width_ms: Duration (ms).
        """
        clamp = self.h.IClamp(self.fibre.nodes[node](0.5))
        clamp.delay, clamp.dur, clamp.amp = delay_ms, width_ms, amplitude_na
        self._clamps.append(clamp)

    def clear_iclamps(self) -> None:
        """Remove every intracellular clamp."""
        self._clamps.clear()

    def start(self) -> None:
        """Initialise at rest (t = 0) for stepwise control with :meth:`play`."""
        self._rest()

    def save_state(self):
        """Snapshot of the whole simulation state (NEURON ``SaveState``), for :meth:`restore`."""
        state = self.h.SaveState()
        state.save()
        return state

    def restore(self, state) -> None:
        """Return to a snapshot taken by :meth:`save_state` (including the time)."""
        state.restore()

    def play(
        self,
        ve_mv_per_ma: np.ndarray,
        pulses: list[Pulse],
        until_ms: float,
        watch_node: int | None = None,
        v_thresh_mv: float = -30.0,
    ) -> float:
        """Advance from the current time to ``until_ms`` with the given stimulus.

        Args:
            ve_mv_per_ma: Potential per mA at every section.
            pulses: Rectangular phases; only their parts after the current time are played.
            until_ms: End time (ms).
            watch_node: Stop at the first upward crossing of ``v_thresh_mv`` at this node.
            v_thresh_mv: Crossing threshold (mV).

        Returns:
            Time (ms) of the crossing at ``watch_node`` (NaN: none, or no node watched).
        """
        h, half = self.h, 0.5 * self.dt_ms
        seg = None if watch_node is None else self.fibre.nodes[watch_node](0.5)
        above = seg is not None and seg.v > v_thresh_mv
        edges = sorted(
            {
                e
                for p in pulses
                for e in (p.onset_ms, p.onset_ms + p.width_ms)
                if h.t + half < e < until_ms - half
            }
        )
        for t_next in [*edges, until_ms]:
            amp = sum(
                p.amplitude_ma for p in pulses if p.onset_ms <= h.t + half < p.onset_ms + p.width_ms
            )
            self._scatter(amp * ve_mv_per_ma)
            while h.t < t_next - half:
                h.fadvance()
                if seg is not None:
                    if seg.v > v_thresh_mv and not above:
                        return float(h.t)
                    above = seg.v > v_thresh_mv
        return math.nan


def monophasic(width_ms: float, onset_ms: float = 0.0):
    """Shape of a cathodic monophasic pulse: ``amplitude -> [Pulse]``."""
    return lambda amp: [Pulse(onset_ms, width_ms, -amp)]
