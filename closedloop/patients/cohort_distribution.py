"""The distribution cohort patients are drawn from: every parameter with its unit and source."""

from __future__ import annotations

import dataclasses

from closedloop._config import param, validate


@dataclasses.dataclass(frozen=True)
class CohortDistribution:
    """How cohort patients are drawn. ``sd_ln`` are log-space sds of lognormal multipliers."""

    t11_probability: float = param(
        0.6,
        "1",
        "assumption: T11 vs T12 leads (levels with CSF data in Holsheimer 1994 [C])",
        0.0,
        1.0,
        doc="share of T11 leads",
    )
    csf_mean_t11_mm: float = param(
        3.4,
        "mm",
        "Holsheimer 1994 T11 supine 2-6 mm [C]; mean is an assumption",
        2.0,
        6.0,
        doc="supine CSF mean, T11",
    )
    csf_mean_t12_mm: float = param(
        2.9,
        "mm",
        "Holsheimer 1994 T12 supine 1.5-4.5 mm [C]; mean an assumption",
        1.5,
        4.5,
        doc="supine CSF mean, T12",
    )
    csf_sd_mm: float = param(
        0.4,
        "mm",
        "assumption: thresholds mostly 2-8 mA [C/M]",
        0.0,
        3.0,
        doc="supine CSF sd (normal, truncated to the level's range)",
    )
    prone_t11_mm: float = param(
        2.2, "mm", "Holsheimer 1994 [C]", 0.0, 6.0, doc="prone CSF offset mean, T11"
    )
    prone_t12_mm: float = param(
        3.4, "mm", "Holsheimer 1994 [C]", 0.0, 6.0, doc="prone CSF offset mean, T12"
    )
    prone_sd_mm: float = param(0.5, "mm", "assumption", 0.0, 3.0, doc="prone offset sd")
    side_mm: float = param(0.25, "mm", "assumption", -2.0, 3.0, doc="side-lying offset mean")
    side_sd_mm: float = param(0.2, "mm", "assumption", 0.0, 2.0, doc="side-lying offset sd")
    sitting_mm: float = param(
        0.45,
        "mm",
        "calibrated: +0.5 µC lying->upright [C Cameron & Alo 1998]",
        -2.0,
        3.0,
        doc="sitting offset mean",
    )
    sitting_sd_mm: float = param(
        0.3,
        "mm",
        "Cameron & Alo: ±0.30 µC; lowest lying in 20/23 [C]",
        0.0,
        2.0,
        doc="sitting offset sd",
    )
    standing_extra_mm: float = param(
        0.1,
        "mm",
        "calibrated: Cameron & Alo [C]",
        -1.0,
        1.0,
        doc="standing offset over sitting, mean",
    )
    standing_extra_sd_mm: float = param(
        0.1, "mm", "assumption", 0.0, 1.0, doc="standing offset over sitting, sd"
    )
    walking_extra_sd_mm: float = param(
        0.05,
        "mm",
        "assumption: walking ~ standing",
        0.0,
        1.0,
        doc="walking offset over standing, sd (mean 0)",
    )
    lateral_sd_mm: float = param(
        0.5,
        "mm",
        "assumption: small lateral offset, within ±1.5 mm",
        0.0,
        1.5,
        doc="lead lateral offset sd (truncated ±1.5 mm)",
    )
    excitability_sd_ln: float = param(
        0.15, "1", "assumption", 0.0, 1.0, doc="spread of the fibre threshold scale"
    )
    diameter_sd_ln: float = param(
        0.05, "1", "assumption", 0.0, 0.5, doc="spread of the median fibre diameter"
    )
    sfap_sd_ln: float = param(
        0.25,
        "1",
        "assumption: slopes 5-50 µV/mA [M]",
        0.0,
        1.0,
        doc="spread of the single-fibre AP size (recording gain)",
    )
    impedance_median_ohm: float = param(
        900.0,
        "Ω",
        "0.5-1.5 kΩ [M]",
        100.0,
        10_000.0,
        doc="contact impedance median (truncated 500-1500 Ω)",
    )
    impedance_sd_ln: float = param(0.25, "1", "assumption", 0.0, 2.0, doc="impedance spread")
    perception_db_sd: float = param(
        0.74,
        "dB",
        "median |error| 0.5 dB [C Pilitsis 2021]",
        0.0,
        6.0,
        doc="perception re ECAP threshold sd (normal, ±3 dB)",
    )
    discomfort_ratio_median: float = param(
        1.6,
        "1",
        "assumption: 1.3-2.5 [M]",
        1.05,
        5.0,
        doc="discomfort / perception current, median",
    )
    discomfort_ratio_sd_ln: float = param(
        0.15, "1", "assumption", 0.0, 1.0, doc="its spread (clipped to 1.25-2.5)"
    )
    target_position_mean: float = param(
        0.5,
        "1",
        "assumption: a comfortable mid-window target",
        0.0,
        1.0,
        doc="target place in the common window, mean",
    )
    target_position_sd: float = param(
        0.15, "1", "assumption", 0.0, 1.0, doc="its sd (normal, clipped to 0.1-0.9)"
    )
    subperception_probability: float = param(
        0.17,
        "1",
        "calibrated on train+validation: EVOKE closed-loop lower quartile 48 % in "
        "window [C]; targets set below perception, clinic-calibration.md 4.2 [inference]",
        0.0,
        1.0,
        doc="share of patients whose target lies below perception",
    )
    subperception_position: float = param(
        -0.15,
        "1",
        "assumption",
        -1.0,
        0.0,
        doc="their target_position, mean (sd 0.1, clipped to -0.6..-0.02)",
    )
    migration_probability: float = param(
        0.1,
        "1",
        "West 2023 pooled lead migration 9.97 % (95 % CI 7.6-12.6 %) [C]",
        0.0,
        1.0,
        doc="share of patients whose lead migrated since programming",
    )
    migration_max_mm: float = param(
        1.5,
        "mm",
        "assumption: migrations that lose coverage [C West 2023, qualitative]",
        0.0,
        3.0,
        doc="migration CSF change, uniform in [1/3, 1] x this",
    )
    snr_mean: float = param(
        4.6,
        "1",
        "Freshwater/Rosella: mean ECAP SNR 4.6 ± 1.2 [C]",
        0.5,
        50.0,
        doc="ECAP SNR at the target (target / single-sweep noise rms)",
    )
    snr_sd: float = param(1.2, "1", "same [C]", 0.0, 20.0, doc="its sd (normal, truncated to 1-10)")
    max_discomfort_ma: float = param(
        20.0,
        "mA",
        "assumption: headroom below the 25.5 mA device maximum",
        1.0,
        25.5,
        doc="implant screening limit",
    )

    def __post_init__(self) -> None:
        validate(self, "cohort.")
