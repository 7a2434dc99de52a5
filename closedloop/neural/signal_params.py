"""Parameters of what a recording sees: the fibres' responses and the recording chain.

The fibres' responses are conduction, spike initiation, single-fibre action potentials and late
muscle responses; the recording chain is sampling, artefact, noise, ADC and the estimators.

Each field carries its unit, valid range and source (see :func:`closedloop._config.param`);
:class:`~closedloop.neural.params.ModelParams` gathers them with the lead, population and
excitability parameters of :mod:`closedloop.neural.params`.
"""

from __future__ import annotations

import dataclasses

from closedloop._config import param, validate


@dataclasses.dataclass(frozen=True)
class ResponseParams:
    """Conduction, spike initiation, single-fibre action potentials and late muscle responses.

    A recruited fibre (current I, its jittered threshold th this pulse, r = I / th >= 1) fires
    at ``initiation_offset + initiation_pw_fraction * PW / r + min(initiation_log *
    ln(1 + initiation_ratio_scale / (r - 1)), initiation_log_max)`` ms after the pulse onset
    (:func:`closedloop.neural.latency.initiation_delay_ms`; PW the cathodic phase, ms) and
    conducts at ``cv_per_um * D + cv_intercept_m_s`` m/s
    (:func:`closedloop.neural.latency.conduction_velocity_m_s`). Against MRG (37 °C, point
    source at 3 mm, D 5.7/10/16 µm, PW 100/300 µs, I/th 1.001-3) the delay law is within
    0.04 ms (rms 0.02 ms); it has no diameter term (MRG's small fibres start ~0.02 ms later).
    """

    cv_per_um: float = param(
        6.44,
        "m/s per µm",
        "fit to MRG at 37 °C, 5.7-16 µm, dt -> 0 (fidelity reference); Hursh 6 m/s per µm [M]",
        1.0,
        10.0,
        doc="conduction velocity per µm of diameter",
    )
    cv_intercept_m_s: float = param(
        -9.67,
        "m/s",
        "fit to MRG at 37 °C, 5.7-16 µm, dt -> 0 (fidelity reference)",
        -30.0,
        30.0,
        doc="conduction velocity at zero diameter (CV = per_um D + intercept)",
    )
    initiation_offset_ms: float = param(
        0.0093,
        "ms",
        "fit to MRG AP time at the stimulated node, 5.7-16 µm, 3 mm, 100/300 µs, I/th 1.001-3",
        0.0,
        1.0,
        doc="initiation delay after pulse onset at very high current",
    )
    initiation_pw_fraction: float = param(
        0.863,
        "1",
        "fit to MRG (as initiation_offset_ms)",
        0.0,
        2.0,
        doc="charging delay per pulse width at threshold (times th / I)",
    )
    initiation_log_ms: float = param(
        0.0877,
        "ms",
        "fit to MRG (as initiation_offset_ms)",
        0.0,
        1.0,
        doc="regenerative delay per e-fold of 1 / (I / th - 1)",
    )
    initiation_ratio_scale: float = param(
        0.208,
        "1",
        "fit to MRG (as initiation_offset_ms)",
        0.0,
        10.0,
        lo_open=True,
        doc="I / th - 1 below which the regenerative delay grows logarithmically",
    )
    initiation_log_max_ms: float = param(
        0.5,
        "ms",
        "MRG at I / th = 1.001: ~0.46 ms",
        0.0,
        5.0,
        doc="cap of the regenerative delay (reached at I = th)",
    )
    sfap_width_ms: float = param(
        0.10,
        "ms",
        "assumption: ~0.3 ms triphasic SFAP at the contact",
        0.01,
        2.0,
        doc="time scale of the SFAP",
    )
    sfap_asymmetry: float = param(
        0.35,
        "1",
        "assumption: P2 larger than P1 [C Parker 2012 shape]",
        0.0,
        1.0,
        doc="odd (first-derivative) part of the SFAP",
    )
    sfap_uv: float = param(
        0.9,
        "µV",
        "calibrated: 15-18 µV/mA slope [C Pilitsis 2021]; targets of tens of µV [C]",
        0.0,
        1e4,
        lo_open=True,
        doc="N1 depth of one 10 µm fibre at 4 mm (per 2048)",
    )
    sfap_diameter_exponent: float = param(
        1.87,
        "1",
        "MRG N1 at 3 mm (fidelity reference); human 1.5-2 [C JNNP 1981]",
        0.0,
        3.0,
        doc="SFAP amplitude ∝ D^exponent at 3 mm",
    )
    sfap_exponent_per_ln_mm: float = param(
        0.36,
        "1",
        "MRG N1 exponent 1.50 / 1.87 / 2.08 at 1 / 3 / 5 mm (fidelity reference)",
        -2.0,
        2.0,
        doc="change of the diameter exponent per e-fold of recording distance",
    )
    sfap_distance_exponent: float = param(
        1.4,
        "1",
        "MRG N1, 10 µm: 1.31 (1-3 mm), 1.54 (3-5 mm) (fidelity reference)",
        0.0,
        4.0,
        doc="SFAP amplitude ∝ distance^-exponent",
    )
    motor_fraction: float = param(
        0.35,
        "1",
        "assumption: reflex at high recruitment [C Parker 2012, qualitative]",
        0.0,
        1.0,
        doc="recruited fraction above which muscle responses appear",
    )
    emg_uv_per_fraction: float = param(
        800.0,
        "µV",
        "assumption: EMG hundreds of µV",
        0.0,
        1e5,
        doc="EMG amplitude per recruited fraction above motor",
    )
    emg_latency_ms: float = param(
        6.0,
        "ms",
        "late responses 3-13 ms [C Bioelectron Med 2024]",
        2.0,
        20.0,
        doc="EMG peak latency",
    )
    emg_width_ms: float = param(1.0, "ms", "assumption", 0.1, 5.0, doc="EMG time scale")

    def __post_init__(self) -> None:  # noqa: D105
        validate(self, "response.")


@dataclasses.dataclass(frozen=True)
class RecordingParams:
    """Recording chain: sampling, artefact, amplifier noise, ADC and the amplitude estimators."""

    fs_hz: float = param(
        30_000.0, "Hz", "issue: >= 20 kHz", 20_000.0, 200_000.0, doc="sampling rate"
    )
    window_ms: float = param(
        7.0,
        "ms",
        "issue: covers 0-5 ms and late responses",
        5.0,
        20.0,
        doc="length of the recorded sweep after pulse onset",
    )
    interphase_us: float = param(
        30.0,
        "µs",
        "assumption: typical interphase gap",
        0.0,
        1000.0,
        doc="gap between the two phases of the biphasic pulse",
    )
    blank_ms: float = param(
        0.1,
        "ms",
        "assumption: amplifier blanking after the pulse",
        0.0,
        2.0,
        doc="time after the pulse before the estimator window opens",
    )
    est_end_ms: float = param(
        3.0,
        "ms",
        "ECAP window 1-2.5 ms [C Bioelectron Med 2024]",
        1.0,
        10.0,
        doc="end of the ECAP estimator window",
    )
    noise_uv_rms: float = param(
        3.0,
        "µV",
        "a few µV rms single sweep [M]",
        0.0,
        100.0,
        doc="amplifier noise, input referred",
    )
    artefact_uv_per_ma: float = param(
        10.0,
        "µV/mA",
        "assumption: artefact linear in current [C Chakravarthy 2022]",
        0.0,
        1e4,
        doc="artefact at pulse end per mA",
    )
    artefact_offset_uv: float = param(
        2.0, "µV", "assumption", -1e4, 1e4, doc="current-independent artefact at pulse end"
    )
    artefact_tau_ms: float = param(
        0.15,
        "ms",
        "assumption: decaying exponential [C]",
        0.01,
        10.0,
        doc="artefact decay time constant",
    )
    adc_range_uv: float = param(
        2000.0, "µV", "assumption", 10.0, 1e6, doc="ADC full scale (±), input referred"
    )
    adc_bits: int = param(14, "1", "assumption", 4, 24, doc="ADC resolution")
    template_lag_ms: float = param(
        0.25,
        "ms",
        "assumption: N1 latency varies with recruitment",
        0.0,
        1.0,
        doc="largest shift searched by the template estimator",
    )
    lag_tracking_s: float = param(
        0.5,
        "s",
        "assumption: a device averages over pulses",
        0.0,
        60.0,
        doc="time constant of the template estimator's tracked "
        "lag (0: the lag of the largest projection, which reads high "
        "in noise)",
    )
    template_shape: str = param(
        "class-mix",
        "1",
        "assumption: the device learns the patient's ECAP at programming",
        choices=("class-mix", "recruited"),
        doc="reference ECAP of the matched filter",
    )
    estimator: str = param(
        "template",
        "1",
        "assumption; both are reported",
        choices=("template", "n1p2"),
        doc="amplitude the loop sees",
    )
    detect_snr: float = param(
        4.0,
        "1",
        "assumption: 3 sd above noise",
        0.0,
        100.0,
        doc="detection threshold in estimator noise sd",
    )

    def __post_init__(self) -> None:  # noqa: D105
        validate(self, "recording.")
