"""``NeuralModel``: one patient's neural response model, built from parameters and a seed.

Example:
    >>> from closedloop.neural import NeuralModel
    >>> model = NeuralModel(seed=0)                      # default patient, fibres from seed 0
    >>> rec = model.pulse_train(current_ma=5.0, rate_hz=50.0, n_pulses=100)
    >>> rec["ecap_uv"].mean()                            # doctest: +SKIP
"""

from __future__ import annotations

import copy
import numbers

import numpy as np

from closedloop._config import ConfigError
from closedloop._io import check_memory
from closedloop.neural import fibre as fibre_model
from closedloop.neural import geometry
from closedloop.neural.kernels import FLOOR_BLOCK, run_pulses_unshared
from closedloop.neural.layout import (
    PULSE_DTYPE,
    KernelParams,
    KernelState,
    KernelTables,
    KernelWork,
    PulseInputs,
    new_work,
)
from closedloop.neural.params import ModelParams, RecordingParams
from closedloop.neural.pool import pool_regen_table
from closedloop.neural.population import Fibres, contact_sources, draw_fibres, tail_fraction
from closedloop.neural.recording import (
    CACHE_SIZE,
    ORDER_PW_US,
    conduction_velocity_m_s,
    initiation_table,
    recruited_template,
)
from closedloop.neural.rng import fmix32_np, seed_words
from closedloop.neural.validation import (
    CSF_RANGE_MM,
    CURRENT_RANGE_MA,
    PW_RANGE_US,
    check_inputs,
    check_rate,
    check_scalar,
)

MIN_CV_M_S = 1.0
"""Slowest conduction velocity (m/s) a diameter class may have (the CV law's intercept)."""
MIX_RECRUITED_FRACTION = 0.15
"""Recruited fraction whose ECAP shape defines the matched-filter template."""
CHUNK_PULSES = 16_384
"""Most pulses per call of the compiled kernel. Python handles Ctrl-C only between calls, so a
long train is delivered in chunks (about 0.05 s each); the kernel state carries the pulse count
and every process from chunk to chunk, so the records are the same, bit for bit."""
INPUT_BYTES_PER_PULSE = 5 * 8
"""Bytes per pulse of the per-pulse inputs (four float64 arrays, and the caller's current)."""


class NeuralModel:
    """One patient's dorsal-column response to SCS pulses.

    The fibre population is drawn once from ``seed``; ``reset(seed)`` restores the resting
    fibre state and keys the per-pulse jitter and amplifier noise.

    Args:
        params: Model parameters (default patient if omitted).
        seed: Seed of the fibre population (anatomy). The same seed gives the same patient.
    """

    default_csf_mm: float = 3.5
    """CSF thickness used when none is given (mm): T11 supine, Holsheimer 1994 (2-6 mm)."""

    def __init__(self, params: ModelParams | None = None, seed: int = 0) -> None:
        self.params = params if params is not None else ModelParams()
        ss = np.random.SeedSequence(seed)
        pop_ss, noise_ss = ss.spawn(2)
        drawn = draw_fibres(self.params.population, np.random.default_rng(pop_ss))
        self.fibres: Fibres
        self.fibres, self.tables = build_tables(self.params, drawn, seed_words(pop_ss)[2:])
        self._base_kparams = build_kernel_params(self.params)
        self.kparams = self._base_kparams
        self.state: KernelState = self.initial_state()
        self.work: KernelWork = new_work(
            self.n_fibres,
            self.params.population.n_classes,
            self.n_samples,
            self.kparams.template_lag,
        )
        self.reset(noise_ss)

    @property
    def n_fibres(self) -> int:
        """Number of modelled fibres."""
        return self.tables.fibre_class.size

    @property
    def n_samples(self) -> int:
        """Samples per recorded sweep."""
        return self.tables.sample_hash.size

    @property
    def sample_times_ms(self) -> np.ndarray:
        """Time of every sweep sample after pulse onset (ms)."""
        return np.arange(self.n_samples) * 1e3 / self.params.recording.fs_hz

    @property
    def tail_fraction(self) -> float:
        """Fraction of all dorsal-column fibres that the modelled population stands for."""
        return tail_fraction(self.params.population)

    def clone(self) -> NeuralModel:
        """A model of the same patient sharing its (read-only) tables, with its own state.

        The clone starts at rest with the same noise keys; ``reset(seed)`` re-keys it.
        """
        twin = copy.copy(self)
        twin.state = self.initial_state()
        twin.work = KernelWork(*(a.copy() for a in self.work))
        return twin

    def initial_state(self) -> KernelState:
        """A resting fibre state (no recent spikes, no adaptation)."""
        n, (n_cls, n_s) = self.n_fibres, (self.params.population.n_classes, self.n_samples)
        return KernelState(
            decay_ref=np.zeros((5, n), np.float32),
            clock_ms=np.zeros(6),
            pulse_count=np.zeros(1, np.int64),
            templates=np.zeros((n_cls, n_s), np.float32),
            mf=np.zeros(n_s),
            shapes=np.zeros((2, n_s)),
            cache=np.full(CACHE_SIZE, np.nan),
            lag_track=lag_track_state(self.params.recording),
        )

    def reset(self, seed: int | np.random.SeedSequence | None = None) -> None:
        """Return every fibre to rest and key the jitter and noise streams from ``seed``.

        Args:
            seed: Seed of the per-pulse randomness; None keeps the current stream and restarts
                it from pulse 0.
        """
        if seed is not None:
            words = seed_words(seed)
            self.kparams = self._base_kparams._replace(seed_pulse_a=words[0], seed_pulse_b=words[1])
        fresh = self.initial_state()
        for mine, new in zip(self.state, fresh, strict=True):
            mine[...] = new

    def stimulate(self, current_ma, pw_us, csf_mm, interval_s, waveforms: bool = False):
        """Deliver pulses with per-pulse parameters (arrays or scalars broadcast together).

        Args:
            current_ma: Cathodic current of each pulse (mA), in [0, 25.5].
            pw_us: Pulse width per phase (µs), in [20, 1000].
            csf_mm: Dorsal CSF thickness at each pulse (mm), inside the tabulated grid.
            interval_s: Time since the previous pulse (s), > 0.
            waveforms: Also return the recorded sweeps, shape (P, n_samples), µV.

        Returns:
            The per-pulse records (``PULSE_DTYPE``), and the sweeps if ``waveforms``.

        Raises:
            ConfigError: If an input is empty, not real numbers (strings, bytes, dicts, None,
                bool or complex values), outside its range, or the inputs do not broadcast.
        """
        inputs = PulseInputs(*check_inputs(current_ma, pw_us, csf_mm, interval_s))
        n = inputs.current_ma.size
        self.check_memory(n, waveforms)
        out = np.empty(n, PULSE_DTYPE)
        wave = np.empty((n if waveforms else 0, self.n_samples))
        if n <= CHUNK_PULSES:
            run_pulses_unshared(self.state, self.tables, self.kparams, inputs, out, wave, self.work)
        else:
            self._run_chunked(inputs, out, wave)
        return (out, wave) if waveforms else out

    def _run_chunked(self, inputs: PulseInputs, out: np.ndarray, wave: np.ndarray) -> None:
        """Run the kernel on :data:`CHUNK_PULSES` pulses at a time (Ctrl-C works between)."""
        keep = wave.shape[0] > 0
        for lo in range(0, inputs.current_ma.size, CHUNK_PULSES):
            part = slice(lo, lo + CHUNK_PULSES)
            run_pulses_unshared(
                self.state,
                self.tables,
                self.kparams,
                PulseInputs(*(a[part] for a in inputs)),
                out[part],
                wave[part] if keep else wave,
                self.work,
            )

    def check_memory(self, n_pulses: int, waveforms: bool = False, name: str = "n_pulses") -> None:
        """Refuse ``n_pulses`` pulses whose records would not fit in the available memory.

        Args:
            n_pulses: Pulses of one call.
            waveforms: Whether the sweeps are kept (``n_samples`` float64 per pulse).
            name: The caller's name for the number of pulses (in the message).

        Raises:
            ConfigError: Saying how much memory the pulses would need.
        """
        per_pulse = (
            PULSE_DTYPE.itemsize + INPUT_BYTES_PER_PULSE + (8 * self.n_samples if waveforms else 0)
        )
        check_memory(
            f"{name}={n_pulses:g} ({per_pulse} bytes per pulse)",
            float(n_pulses) * per_pulse,
            "deliver fewer pulses per call",
        )

    def pulse_train(
        self,
        current_ma: float,
        rate_hz: float = 50.0,
        n_pulses: int = 50,
        pw_us: float = 250.0,
        csf_mm: float | None = None,
        waveforms: bool = False,
    ):
        """Deliver a regular train of identical pulses.

        Args:
            current_ma: Cathodic current (mA), a number in [0, 25.5].
            rate_hz: Pulse rate (Hz), a number in [1, 10000].
            n_pulses: Number of pulses, an integer >= 1 (as many as fit in memory).
            pw_us: Pulse width per phase (µs), a number in [20, 1000].
            csf_mm: CSF thickness (mm) inside the tabulated grid; the model's default if None.
            waveforms: Also return the sweeps.

        Returns:
            As :meth:`stimulate`.

        Raises:
            ConfigError: If an argument is not a number (a list, string, bool or complex value
                included) or lies outside its range, or the records would not fit in memory.
        """
        current = check_scalar("current_ma", current_ma, *CURRENT_RANGE_MA, "mA")
        interval = 1.0 / check_rate(rate_hz)
        pw = check_scalar("pw_us", pw_us, *PW_RANGE_US, "µs")
        csf = check_scalar(
            "csf_mm", self.default_csf_mm if csf_mm is None else csf_mm, *CSF_RANGE_MM, "mm"
        )
        if (
            isinstance(n_pulses, bool)
            or not isinstance(n_pulses, numbers.Integral)
            or (n_pulses < 1)
        ):
            raise ConfigError(f"n_pulses={n_pulses!r} is invalid; valid: an integer in [1, inf)")
        n = int(n_pulses)
        self.check_memory(n, waveforms)
        return self.stimulate(np.full(n, current), pw, csf, interval, waveforms)


def lag_track_state(recording: RecordingParams) -> np.ndarray:
    """A resting ``KernelState.lag_track``: the time constant (s), no average yet.

    Sized for the largest template lag ``template_lag_ms`` may have at the sampling rate, so
    that patients with different lags but the same sweep stack into one batch state (the
    kernel uses the first ``2 template_lag + 3`` elements).

    Args:
        recording: The patient's ``RecordingParams``.
    """
    top_ms = RecordingParams.__dataclass_fields__["template_lag_ms"].metadata["hi"]
    track = np.zeros(2 * int(round(top_ms * recording.fs_hz * 1e-3)) + 3)
    track[0], track[1] = recording.lag_tracking_s, np.nan
    return track


def build_tables(
    params: ModelParams, fibres: Fibres, words: np.ndarray
) -> tuple[Fibres, KernelTables]:
    """Put the fibres in screening order and compute the patient's static tables.

    Args:
        params: Model parameters.
        fibres: The drawn fibres (any order).
        words: Two uint64 seed words (fibre hashes, sample hashes).

    Returns:
        ``(fibres, tables)``: the fibres in screening order (:func:`screening_order`) and the
        tables, one column per fibre in that order.
    """
    lead, pop, exc, resp, recp = (
        params.lead,
        params.population,
        params.excitability,
        params.response,
        params.recording,
    )
    grid = geometry.csf_grid()
    src_x, src_w = contact_sources(lead)
    span = 2.0 * lead.pitch_mm + lead.contact_length_mm
    rheo, q = geometry.sd_tables(
        fibres.diameter_um,
        fibres.lateral_mm,
        fibres.depth_mm,
        fibres.node_phase,
        grid,
        src_x,
        src_w,
        lead.lateral_offset_mm,
        exc.sigma_long_s_per_mm,
        exc.sigma_trans_s_per_mm,
        span,
        exc.threshold_scale,
    )
    rheo, q = rheo.astype(np.float32), q.astype(np.float32)  # stored as float32
    order = screening_order(rheo, q)
    fibres = fibres.take(order)
    rheo, q = np.ascontiguousarray(rheo[:, order]), np.ascontiguousarray(q[:, order])
    sfap = geometry.sfap_weight_table(
        fibres.diameter_um, fibres.lateral_mm, fibres.depth_mm, grid, lead.lateral_offset_mm, resp
    ).astype(np.float32)
    edges = np.linspace(pop.diameter_min_um, pop.diameter_max_um, pop.n_classes + 1)
    cls = np.clip(np.searchsorted(edges, fibres.diameter_um) - 1, 0, pop.n_classes - 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    cv = conduction_velocity_m_s(centres, resp)
    if not (cv >= MIN_CV_M_S).all():
        raise ConfigError(
            f"response.cv_intercept_m_s={resp.cv_intercept_m_s:g} gives a conduction velocity "
            f"of {cv.min():.3g} m/s at {centres.min():.3g} µm; valid range: cv_intercept_m_s >= "
            f"{MIN_CV_M_S:g} - cv_per_um * {centres.min():.3g} = "
            f"{MIN_CV_M_S - resp.cv_per_um * centres.min():.3g} m/s"
        )
    delay = lead.recording_distance_mm / cv  # mm / (mm/ms) = ms
    n_s = int(round(recp.window_ms * recp.fs_hz * 1e-3))
    first = slice(0, max(1, int(MIX_RECRUITED_FRACTION * order.size)))  # lowest reference keys
    g_ref = _reference_cell()
    mix = np.bincount(
        cls[first], weights=sfap[g_ref, first].astype(np.float64), minlength=pop.n_classes
    )
    init = initiation_table(resp)
    return fibres, KernelTables(
        rheo_ma=rheo,
        sfap_uv=sfap,
        sd_q_ma=q,
        fibre_class=cls.astype(np.uint8),
        fibre_hash=fmix32_np(fibres.fibre_id.astype(np.uint64) ^ words[0]).astype(np.uint32),
        class_delay_ms=delay,
        class_mix=mix / mix.sum(),
        sample_hash=fmix32_np(
            np.arange(n_s, dtype=np.uint64) * np.uint64(0x27D4EB2F) ^ words[1]
        ).astype(np.uint32),
        cell_floor=cell_floors(rheo, q),
        sd_ratio_range=sd_ratio_range(rheo, q),
        init_delay_ms=init,
        template_ref=recruited_template(
            recp.template_shape,
            rheo[g_ref].astype(np.float64) + q[g_ref].astype(np.float64) * order_s(),
            sfap[g_ref],
            cls,
            pop.n_classes,
            init,
        ),
        pool_regen_ms=pool_regen_table(exc.jitter_rel if exc.pool_fraction else 0.0, init),
    )


def _reference_cell() -> int:
    """Grid point nearest the default CSF thickness, where the screening order is set."""
    return int(np.argmin(np.abs(geometry.csf_grid() - NeuralModel.default_csf_mm)))


def order_s() -> float:
    """``ORDER_PW_US^-beta``: the strength-duration term of the screening key."""
    return ORDER_PW_US ** -fibre_model.sd_exponent()


def sd_ratio_range(rheo_ma: np.ndarray, q_ma: np.ndarray) -> np.ndarray:
    """Smallest and largest ``Q / rheo`` over fibres and grid (float64, widened by 1e-6)."""
    c = q_ma.astype(np.float64) / rheo_ma.astype(np.float64)
    return np.array([c.min() * (1.0 - 1e-6), c.max() * (1.0 + 1e-6)])


def screening_order(rheo_ma: np.ndarray, q_ma: np.ndarray) -> np.ndarray:
    """Fibre order by threshold at 250 µs and the default CSF thickness (stable argsort).

    The kernel examines only a leading run of fibres in this order, so the fibres likely to
    fire are contiguous in memory; at other CSF thicknesses the order is nearly kept.

    Args:
        rheo_ma: (G, N) rheobase thresholds on the CSF grid (mA).
        q_ma: (G, N) strength-duration coefficients Q on the CSF grid (mA).

    Returns:
        (N,) indices into the fibres.
    """
    g = _reference_cell()
    key = rheo_ma[g].astype(np.float64) + q_ma[g].astype(np.float64) * order_s()
    return np.argsort(key, kind="stable")


def cell_floors(rheo_ma: np.ndarray, q_ma: np.ndarray) -> np.ndarray:
    """Screening floor of every grid cell and block of ``FLOOR_BLOCK`` fibres, float32.

    A fibre's screening key in cell j is its threshold at 250 µs from the lower corners of the
    cell, ``min(r_j, r_j+1) + min(Q_j, Q_j+1) * 250^-beta`` (mA), rounded down to
    float32 (so it stays a lower bound of the float64 key). ``floor[j, b]`` is the smallest key
    of the fibres from block ``b`` on, so it is non-decreasing in ``b``; the kernel examines
    the blocks before the first whose floor forbids a threshold below the current
    (:func:`closedloop.neural.kernels.exam_count`).

    Args:
        rheo_ma: (G, N) rheobase thresholds on the CSF grid (mA).
        q_ma: (G, N) strength-duration coefficients Q (mA), in the same fibre order.

    Returns:
        (G - 1, ceil(N / FLOOR_BLOCK)) float32.
    """
    r, q = rheo_ma.astype(np.float64), q_ma.astype(np.float64)
    key = np.minimum(r[:-1], r[1:]) + np.minimum(q[:-1], q[1:]) * order_s()
    k32 = key.astype(np.float32)
    k32 = np.where(k32 > key, np.nextafter(k32, np.float32(-np.inf)), k32)
    n_blocks = -(-k32.shape[1] // FLOOR_BLOCK)
    pad = np.full((k32.shape[0], n_blocks * FLOOR_BLOCK), np.inf, np.float32)
    pad[:, : k32.shape[1]] = k32
    block_min = pad.reshape(k32.shape[0], n_blocks, FLOOR_BLOCK).min(axis=2)
    return np.minimum.accumulate(block_min[:, ::-1], axis=1)[:, ::-1].copy()


def build_kernel_params(params: ModelParams) -> KernelParams:
    """Flatten the parameters the kernel needs into a ``KernelParams`` tuple."""
    exc, resp, rec = params.excitability, params.response, params.recording
    lo, hi, n = geometry.CSF_GRID_MM
    return KernelParams(
        csf0_mm=lo,
        dcsf_mm=(hi - lo) / (n - 1),
        jitter_rel=exc.jitter_rel,
        t_abs_ms=exc.t_abs_ms,
        rel_amplitude=exc.rel_amplitude,
        tau_rel_ms=exc.tau_rel_ms,
        sn_amplitude=exc.sn_amplitude,
        tau_sn_ms=exc.tau_sn_ms,
        adapt_tau0_s=exc.adapt_tau_s[0],
        adapt_tau1_s=exc.adapt_tau_s[1],
        adapt_tau2_s=exc.adapt_tau_s[2],
        adapt_inc0=exc.adapt_increment[0],
        adapt_inc1=exc.adapt_increment[1],
        adapt_inc2=exc.adapt_increment[2],
        adapt_gain0=exc.adapt_gain[0],
        adapt_gain1=exc.adapt_gain[1],
        adapt_gain2=exc.adapt_gain[2],
        sd_exponent=fibre_model.sd_exponent(),
        init_offset_ms=resp.initiation_offset_ms,
        init_pw_fraction=resp.initiation_pw_fraction,
        sfap_width_ms=resp.sfap_width_ms,
        sfap_asymmetry=resp.sfap_asymmetry,
        motor_fraction=resp.motor_fraction,
        emg_uv_per_fraction=resp.emg_uv_per_fraction,
        emg_latency_ms=resp.emg_latency_ms,
        emg_width_ms=resp.emg_width_ms,
        fs_hz=rec.fs_hz,
        interphase_us=rec.interphase_us,
        blank_ms=rec.blank_ms,
        est_end_ms=rec.est_end_ms,
        noise_uv_rms=rec.noise_uv_rms,
        artefact_uv_per_ma=rec.artefact_uv_per_ma,
        artefact_offset_uv=rec.artefact_offset_uv,
        artefact_tau_ms=rec.artefact_tau_ms,
        adc_range_uv=rec.adc_range_uv,
        adc_lsb_uv=2.0 * rec.adc_range_uv / 2.0**rec.adc_bits,
        use_template=1.0 if rec.estimator == "template" else 0.0,
        template_lag=int(round(rec.template_lag_ms * rec.fs_hz * 1e-3)),
        detect_snr=rec.detect_snr,
        seed_pulse_a=np.uint64(0),
        seed_pulse_b=np.uint64(0),
        pool_fraction=1.0 if exc.pool_fraction else 0.0,
    )
