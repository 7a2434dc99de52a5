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
from closedloop.neural.build import (
    DEFAULT_CSF_MM,
    build_kernel_params,
    build_tables,
)
from closedloop.neural.kernels import run_pulses_unshared
from closedloop.neural.layout import (
    PULSE_DTYPE,
    KernelState,
    KernelWork,
    PulseInputs,
    new_work,
)
from closedloop.neural.params import ModelParams, RecordingParams
from closedloop.neural.population import Fibres, draw_fibres, tail_fraction
from closedloop.neural.recording import (
    CACHE_SIZE,
)
from closedloop.neural.rng import seed_words
from closedloop.neural.validation import (
    CSF_RANGE_MM,
    CURRENT_RANGE_MA,
    PW_RANGE_US,
    check_inputs,
    check_rate,
    check_scalar,
)

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

    default_csf_mm: float = DEFAULT_CSF_MM
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
