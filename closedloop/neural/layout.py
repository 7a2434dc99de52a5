"""The layout of the neural kernels' arguments: records, parameters, tables, state and scratch.

The arguments, by the names the kernels give them (:mod:`closedloop.neural.model` builds them)::
    state:   ``KernelState``  (mutable fibre state, pulse counter, template cache)
    work:    ``KernelWork``   (scratch of one call)
    tables:  ``KernelTables`` (immutable per-patient arrays)
    kparams:      ``KernelParams`` (immutable scalars, a NamedTuple of floats)
    inputs:  ``PulseInputs``  (per-pulse current, pulse width, CSF thickness, interval)
    out:     structured array of ``PULSE_DTYPE``, one record per pulse
    wave:    (P, S) array for the recorded sweeps, or (0, S) to skip them
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from closedloop import _jit_cache  # noqa: F401 (before any @njit(cache=True): see it)

PULSE_DTYPE = np.dtype(
    [
        ("ecap_uv", "f8"),  # amplitude the loop sees (the configured estimator), µV
        ("ecap_n1p2_uv", "f8"),  # N1-P2 of the recorded sweep in the estimator window, µV
        ("ecap_template_uv", "f8"),  # matched-filter estimate, µV
        ("ecap_true_uv", "f8"),  # N1-P2 of the noise- and artefact-free neural response, µV
        ("detected", "?"),  # template estimate above detect_snr noise sd
        ("saturated", "?"),  # ADC clipped inside the estimator window
        ("n_recruited", "i8"),  # modelled fibres that fired (pool mode: rounded sum of q)
        ("frac_recruited", "f8"),  # n_recruited / n_fibres (pool mode: sum of q / n_fibres)
        ("n1_latency_ms", "f8"),  # N1 time after pulse onset (noise-free), NaN without ECAP
        ("charge_uc", "f8"),  # charge per phase, µC
        ("emg_uv", "f8"),  # peak of the late muscle response, µV
    ]
)


class KernelParams(NamedTuple):
    """Scalar parameters of the kernel (units in the names)."""

    csf0_mm: float
    dcsf_mm: float
    jitter_rel: float
    t_abs_ms: float
    rel_amplitude: float
    tau_rel_ms: float
    sn_amplitude: float
    tau_sn_ms: float
    adapt_tau0_s: float
    adapt_tau1_s: float
    adapt_tau2_s: float
    adapt_inc0: float
    adapt_inc1: float
    adapt_inc2: float
    adapt_gain0: float
    adapt_gain1: float
    adapt_gain2: float
    sd_exponent: float
    init_offset_ms: float
    init_pw_fraction: float
    sfap_width_ms: float
    sfap_asymmetry: float
    motor_fraction: float
    emg_uv_per_fraction: float
    emg_latency_ms: float
    emg_width_ms: float
    fs_hz: float
    interphase_us: float
    blank_ms: float
    est_end_ms: float
    noise_uv_rms: float
    artefact_uv_per_ma: float
    artefact_offset_uv: float
    artefact_tau_ms: float
    adc_range_uv: float
    adc_lsb_uv: float
    use_template: float
    template_lag: int
    detect_snr: float
    seed_pulse_a: np.uint64
    seed_pulse_b: np.uint64
    pool_fraction: float  # 1.0: mean-field pool mode (ExcitabilityParams.pool_fraction)


class KernelTables(NamedTuple):
    """Immutable per-patient arrays."""

    rheo_ma: np.ndarray  # (G, N) float32 rheobase threshold on the CSF grid, mA
    sfap_uv: np.ndarray  # (G, N) float32 SFAP N1 depth on the CSF grid, µV
    sd_q_ma: np.ndarray  # (G, N) float32 Q of threshold = rheo + Q PW^-beta (PW in µs), mA
    fibre_class: np.ndarray  # (N,) uint8 diameter class (n_classes <= 256)
    fibre_hash: np.ndarray  # (N,) uint32 per-fibre hash base
    class_delay_ms: np.ndarray  # (B,) conduction time to the recording contact, ms
    class_mix: np.ndarray  # (B,) class weights of the matched-filter template
    sample_hash: np.ndarray  # (S,) uint32 per-sample hash base of the amplifier noise
    cell_floor: np.ndarray  # (G-1, NB) float32 screening floor per grid cell and block, mA
    sd_ratio_range: np.ndarray  # (2,) smallest and largest Q / rheo over fibres and grid
    init_delay_ms: np.ndarray  # (INIT_TABLE_SIZE + 1,) regenerative initiation delay on
    # th / current, ms
    template_ref: np.ndarray  # (3, B) the "recruited" template's per-class SFAP weight (sum 1),
    # mean th / current and mean regenerative delay (ms); all zero:
    # the class-mix template (recording.refresh_templates)
    pool_regen_ms: np.ndarray  # (POOL_TABLE_SIZE + 1,) pool mode: mean regenerative delay of a
    # pool's firing members on rho = th / current
    # (pool.pool_regen_table), ms


class KernelState(NamedTuple):
    """Mutable per-patient state.

    Each fibre carries five exponentially decaying processes (k = 0 relative refractoriness,
    1 supernormality, 2-4 the slow adaptation processes). They are stored lazily: process k of
    fibre i is ``decay_ref[k, i] * exp(-(clock_ms[0] - clock_ms[1 + k]) / tau_k)``, so a pulse
    touches only the fibres that might fire (see :func:`closedloop.neural.kernels.recruit`).
    """

    decay_ref: np.ndarray  # (5, N) float32 process values at the reference times clock_ms[1:]
    clock_ms: np.ndarray  # (6,) time of the last pulse, then each process's reference time
    pulse_count: np.ndarray  # (1,) int64 pulses delivered so far
    templates: np.ndarray  # (B, S) float32 class SFAP templates at the cached pulse width
    mf: np.ndarray  # (S,) matched-filter template at the cached pulse width
    shapes: np.ndarray  # (2, S) artefact decay (NaN during the pulse) and EMG shape
    cache: np.ndarray  # (CACHE_SIZE,) cached pw_us, 1/sum(mf²) in window, mf N1-P2,
    # noise sd, then the width's per-pulse constants
    # (recording.cache_pulse_constants)
    lag_track: np.ndarray  # (>= 2 L + 3,) template estimator's lag tracking: time constant (s,
    # 0 = off), pulse width of the average (µs, NaN = none), then the
    # averaged projection per lag (estimators.tracked_projection)


class KernelWork(NamedTuple):
    """Scratch arrays of one call (no state: any contents on entry); see :func:`new_work`."""

    sweeps: np.ndarray  # (2, S) noise-free and recorded sweep, µV
    class_acc: np.ndarray  # (B,) summed SFAP weight per diameter class, µV
    class_delay: np.ndarray  # (B,) summed SFAP weight x initiation delay per class, µV ms
    factors: np.ndarray  # (2, 5) the processes' decay and gain factors
    th: np.ndarray  # (N,) jittered thresholds of the examined fibres, mA
    idx: np.ndarray  # (N,) uint32 indices of the recruited fibres (unsigned: no
    # negative-index wraparound code when indexing with them)
    scratch: np.ndarray  # (S + 4 L + 16,) template estimator's window and lag sums


@njit(cache=True)
def new_work(n_fibres, n_classes, n_samples, max_lag):
    """A ``KernelWork`` for these sizes.

    Args:
        n_fibres: Fibres of the patient.
        n_classes: Diameter classes.
        n_samples: Samples per sweep.
        max_lag: The template estimator's largest lag L (``KernelParams.template_lag``),
            samples.
    """
    return KernelWork(
        np.zeros((2, n_samples)),
        np.zeros(n_classes),
        np.zeros(n_classes),
        np.zeros((2, 5)),
        np.zeros(n_fibres),
        np.zeros(n_fibres, np.uint32),
        np.zeros(n_samples + 4 * max_lag + 16),
    )


class PulseInputs(NamedTuple):
    """Per-pulse stimulation and anatomy (arrays of length P)."""

    current_ma: np.ndarray
    pw_us: np.ndarray
    csf_mm: np.ndarray
    interval_s: np.ndarray  # time since the previous pulse, s
