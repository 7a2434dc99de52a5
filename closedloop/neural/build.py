"""Building a patient's kernel inputs from its parameters: the tables and the kernel parameters.

:func:`build_tables` computes the fibre population's threshold, delay and template tables
(:class:`~closedloop.neural.layout.KernelTables`); :func:`build_kernel_params` the scalar
:class:`~closedloop.neural.layout.KernelParams`. :class:`~closedloop.neural.model.NeuralModel`
calls both once per patient.
"""

from __future__ import annotations

import numpy as np

from closedloop._config import ConfigError
from closedloop.neural import fibre as fibre_model
from closedloop.neural import geometry
from closedloop.neural.kernels import FLOOR_BLOCK
from closedloop.neural.latency import conduction_velocity_m_s, initiation_table
from closedloop.neural.layout import (
    KernelParams,
    KernelTables,
)
from closedloop.neural.params import ModelParams
from closedloop.neural.pool import pool_regen_table
from closedloop.neural.population import Fibres, contact_sources
from closedloop.neural.recording import ORDER_PW_US, recruited_template
from closedloop.neural.rng import fmix32_np

DEFAULT_CSF_MM = 3.5
"""CSF thickness used when none is given (mm): T11 supine, Holsheimer 1994 (2-6 mm)."""


MIN_CV_M_S = 1.0
"""Slowest conduction velocity (m/s) a diameter class may have (the CV law's intercept)."""


MIX_RECRUITED_FRACTION = 0.15
"""Recruited fraction whose ECAP shape defines the matched-filter template."""


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
    fibres, rheo, q, order = _threshold_tables(params, fibres)
    grid = geometry.csf_grid()
    sfap = geometry.sfap_weight_table(
        fibres.diameter_um, fibres.lateral_mm, fibres.depth_mm, grid, lead.lateral_offset_mm, resp
    ).astype(np.float32)
    cls, delay = _classes(params, fibres.diameter_um)
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


def _threshold_tables(params: ModelParams, fibres: Fibres) -> tuple:
    """The fibres in screening order and their strength-duration tables.

    Returns:
        ``(fibres, rheo_ma, q_ma, order)``: the reordered fibres, the rheobase and charge terms
        (mA, float32, CSF grid x fibre, in that order) and the permutation applied.
    """
    lead, exc = params.lead, params.excitability
    src_x, src_w = contact_sources(lead)
    span = 2.0 * lead.pitch_mm + lead.contact_length_mm
    rheo, q = geometry.sd_tables(
        fibres.diameter_um,
        fibres.lateral_mm,
        fibres.depth_mm,
        fibres.node_phase,
        geometry.csf_grid(),
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
    rheo, q = np.ascontiguousarray(rheo[:, order]), np.ascontiguousarray(q[:, order])
    return fibres.take(order), rheo, q, order


def _classes(params: ModelParams, diameter_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each fibre's diameter class and each class's conduction delay to the recording (ms).

    Raises:
        ConfigError: If a class's conduction velocity is below ``MIN_CV_M_S``.
    """
    pop, resp = params.population, params.response
    edges = np.linspace(pop.diameter_min_um, pop.diameter_max_um, pop.n_classes + 1)
    cls = np.clip(np.searchsorted(edges, diameter_um) - 1, 0, pop.n_classes - 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    cv = conduction_velocity_m_s(centres, resp)
    if not (cv >= MIN_CV_M_S).all():
        raise ConfigError(
            f"response.cv_intercept_m_s={resp.cv_intercept_m_s:g} gives a conduction velocity "
            f"of {cv.min():.3g} m/s at {centres.min():.3g} µm; valid range: cv_intercept_m_s >= "
            f"{MIN_CV_M_S:g} - cv_per_um * {centres.min():.3g} = "
            f"{MIN_CV_M_S - resp.cv_per_um * centres.min():.3g} m/s"
        )
    return cls, params.lead.recording_distance_mm / cv  # mm / (mm/ms) = ms


def _reference_cell() -> int:
    """Grid point nearest the default CSF thickness, where the screening order is set."""
    return int(np.argmin(np.abs(geometry.csf_grid() - DEFAULT_CSF_MM)))


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
