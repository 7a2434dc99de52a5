"""Parameters of the neural response model: lead, fibre population, excitability, recording.

Each field carries its unit, valid range and source (see :func:`closedloop._config.param`);
``closedloop model-card`` prints them all. Sources refer to ``shared/domain.md``: [C] a figure seen
in the cited source, [M] a commonly quoted value; "calibrated" values were fitted so that the
default patient reproduces the published growth-curve and frequency figures (docs/model_card.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from closedloop._config import ConfigError, from_dict, param, validate
from closedloop.neural.signal_params import RecordingParams, ResponseParams

PLATINUM_SHANNON = "Shannon criterion for platinum, ~30 µC/cm² [M]"


@dataclasses.dataclass(frozen=True)
class LeadParams:
    """Percutaneous lead: contacts along the cord axis, stimulation and recording contacts."""

    n_contacts: int = param(8, "1", "8-16 contacts per lead [M]", 2, 32, doc="contacts on the lead")
    contact_length_mm: float = param(
        3.0,
        "mm",
        "typical percutaneous lead [M]",
        0.5,
        10.0,
        doc="length of one contact along the lead",
    )
    pitch_mm: float = param(
        7.0,
        "mm",
        "recording 2-6 contacts at 15-50 mm [C Parker 2012]",
        1.0,
        15.0,
        doc="centre-to-centre contact spacing",
    )
    configuration: str = param(
        "tripolar",
        "1",
        "guarded cathode common in ECAP systems [M]",
        choices=("monopolar", "bipolar", "tripolar"),
        doc="stimulation polarity pattern around the cathode",
    )
    cathode: int = param(2, "1", "assumption: third contact", 0, 31, doc="index of the cathode")
    recording_contact: int = param(
        7,
        "1",
        "5 contacts = 35 mm, inside 15-50 mm [C]",
        0,
        31,
        doc="index of the recording contact",
    )
    lateral_offset_mm: float = param(
        0.0,
        "mm",
        "assumption: lead on the midline",
        -3.0,
        3.0,
        doc="mediolateral offset of the lead from the cord midline",
    )

    def __post_init__(self) -> None:  # noqa: D105
        validate(self, "lead.")
        for name in ("cathode", "recording_contact"):
            if getattr(self, name) >= self.n_contacts:
                raise ConfigError(
                    f"lead.{name}={getattr(self, name)} is out of range; valid range "
                    f"[0, {self.n_contacts - 1}] for {self.n_contacts} contacts"
                )
        idx = [c for c, _ in self.stim_weights()]
        if min(idx) < 0 or max(idx) >= self.n_contacts:
            raise ConfigError(
                f"lead.cathode={self.cathode}: a {self.configuration} configuration "
                f"needs anodes inside [0, {self.n_contacts - 1}]"
            )
        if self.recording_contact in idx:
            raise ConfigError(
                f"lead.recording_contact={self.recording_contact} is a stimulating "
                f"contact; choose one outside {idx}"
            )

    def stim_weights(self) -> list[tuple[int, float]]:
        """(contact index, weight) pairs; the cathode carries weight -1 (per mA of current)."""
        c = self.cathode
        if self.configuration == "monopolar":
            return [(c, -1.0)]
        if self.configuration == "bipolar":
            return [(c, -1.0), (c + 1, 1.0)]
        return [(c - 1, 0.5), (c, -1.0), (c + 1, 0.5)]

    @property
    def recording_distance_mm(self) -> float:
        """Distance along the lead from the cathode to the recording contact (mm)."""
        return abs(self.recording_contact - self.cathode) * self.pitch_mm


@dataclasses.dataclass(frozen=True)
class PopulationParams:
    """The modelled dorsal-column fibre population (importance-sampled large-fibre tail)."""

    n_fibres: int = param(
        2048,
        "1",
        "chosen by convergence study (docs/model_card.md)",
        16,
        1_000_000,
        doc="modelled fibres",
    )
    diameter_median_um: float = param(
        3.0,
        "µm",
        "Feirabend 2002: skewed to small fibres [C]",
        1.0,
        10.0,
        doc="median of the lognormal diameter distribution",
    )
    diameter_sigma_ln: float = param(
        0.49,
        "1",
        "calibrated: 0.5 % > 10.7 µm [C Feirabend 2002]",
        0.05,
        1.5,
        doc="log-space spread of fibre diameters",
    )
    diameter_min_um: float = param(
        7.5,
        "µm",
        "ECAP CV >= 45 m/s [C]; 38.6 m/s (MRG law)",
        1.0,
        15.0,
        doc="smallest modelled diameter",
    )
    diameter_max_um: float = param(
        13.5,
        "µm",
        "ECAP CV <= 80 m/s [C]; 77.3 m/s (MRG law)",
        5.0,
        25.0,
        doc="largest modelled diameter",
    )
    depth_max_mm: float = param(
        2.0,
        "mm",
        "Feirabend: large fibres activated to ~0.25 mm [C]; modelled deeper so the limit emerges",
        0.1,
        3.0,
        doc="deepest modelled fibre below the cord surface",
    )
    half_width_mm: float = param(
        3.0,
        "mm",
        "assumption: dorsal-column half width",
        0.5,
        5.0,
        doc="mediolateral half width of the modelled population",
    )
    n_classes: int = param(
        32,
        "1",
        "assumption: 0.2 µm bins; delay error < 1 sample",
        4,
        256,
        doc="diameter classes for ECAP synthesis",
    )

    def __post_init__(self) -> None:  # noqa: D105
        validate(self, "population.")


MAX_ABS_OVER_TAU_REL = 60.0
"""Largest ``t_abs_ms / tau_rel_ms``: exp(-60) = 9e-27 stays far above the kernel's flush level."""


@dataclasses.dataclass(frozen=True)
class ExcitabilityParams:
    """Thresholds, strength-duration, stochasticity, refractoriness and adaptation."""

    sigma_long_s_per_mm: float = param(
        1 / 3000,
        "S/mm",
        "Grill-lab DC model, ModelDB 267728 [C]",
        0.0,
        1.0,
        lo_open=True,
        doc="conductivity along fibres",
    )
    sigma_trans_s_per_mm: float = param(
        1 / 12000,
        "S/mm",
        "Grill-lab DC model, ModelDB 267728 [C]",
        0.0,
        1.0,
        lo_open=True,
        doc="conductivity across fibres",
    )
    threshold_scale: float = param(
        3.0,
        "1",
        "calibrated: 4 mA ECAP threshold [C Pilitsis 2021]",
        0.01,
        100.0,
        doc="multiplies every MRG-fitted fibre threshold (stands for the CSF, dura and fat "
        "that the homogeneous medium omits)",
    )
    jitter_rel: float = param(
        0.03,
        "1",
        "relative spread a few % [M Verveen]",
        0.0,
        0.25,
        doc="relative sd of the per-pulse threshold jitter",
    )
    t_abs_ms: float = param(
        0.7,
        "ms",
        "human sensory fibres ~0.7 ms [C Tackmann & Lehmann "
        "1974]; MRG 37 °C 1.02 ms (fidelity reference)",
        0.0,
        5.0,
        doc="absolute refractory period",
    )
    rel_amplitude: float = param(
        5.91,
        "1",
        "fit to the MRG recovery cycle (10 µm, 37 °C; docs/fidelity.md)",
        0.0,
        100.0,
        doc="relative-refractory threshold gain",
    )
    tau_rel_ms: float = param(
        0.558,
        "ms",
        "fit to the MRG recovery cycle",
        0.01,
        50.0,
        doc="relative-refractory time constant",
    )
    sn_amplitude: float = param(
        0.4,
        "1",
        "fit to the MRG recovery cycle (bounded at 0.4)",
        0.0,
        0.9,
        doc="supernormal excitability gain",
    )
    tau_sn_ms: float = param(
        10.7, "ms", "fit to the MRG recovery cycle", 0.01, 500.0, doc="supernormal time constant"
    )
    adapt_tau_s: tuple = param(
        (0.0379, 0.5, 5.0),
        "s",
        "first: the MRG late subnormal period "
        "(fit, fidelity reference); others calibrated: log-frequency "
        "ECAP fall 2-455 Hz [C Gmel 2021]",
        1e-4,
        1e4,
        lo_open=True,
        doc="time constants of the slow adaptation processes",
    )
    adapt_increment: tuple = param(
        (1.0, 0.0887, 0.0012),
        "1",
        "first: 1, a reset per spike "
        "(the MRG paired-pulse cycle); others calibrated: Gmel 2021 "
        "[C]",
        0.0,
        1.0,
        doc="saturating increment of each process per spike",
    )
    adapt_gain: tuple = param(
        (0.158, 0.383, 0.275),
        "1",
        "first: the MRG late subnormality (fit); others calibrated: Gmel 2021 [C]",
        0.0,
        10.0,
        doc="threshold gain of each adaptation process",
    )
    pool_fraction: bool = param(
        True,
        "1",
        "assumption: each modelled fibre stands for a pool of real fibres with the "
        "same threshold law; it fires the expected fraction of them (mean field; all-or-none "
        "scatter 18 % at a fixed current against EVOKE's few %, issue 18)",
        choices=(False, True),
        doc="mean-field pool mode: each modelled fibre fires the fraction of its pool whose "
        "jittered threshold lies below the current (the jitter law's CDF, no draw), and its "
        "processes move by that fraction; off: all-or-none with a jitter draw per pulse",
    )

    def __post_init__(self) -> None:  # noqa: D105
        validate(self, "excitability.")
        n = {len(self.adapt_tau_s), len(self.adapt_increment), len(self.adapt_gain)}
        if n != {3}:
            raise ConfigError(
                "excitability.adapt_tau_s/adapt_increment/adapt_gain must each "
                "have exactly 3 entries"
            )
        if self.t_abs_ms > MAX_ABS_OVER_TAU_REL * self.tau_rel_ms:
            raise ConfigError(
                f"excitability.t_abs_ms={self.t_abs_ms} is out of range; valid "
                f"range [0, {MAX_ABS_OVER_TAU_REL:g} * tau_rel_ms = "
                f"{MAX_ABS_OVER_TAU_REL * self.tau_rel_ms:g}] ms (the kernel "
                "tests absolute refractoriness on exp(-t / tau_rel))"
            )


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """All parameters of one patient's neural response model."""

    lead: LeadParams = dataclasses.field(default_factory=LeadParams)
    population: PopulationParams = dataclasses.field(default_factory=PopulationParams)
    excitability: ExcitabilityParams = dataclasses.field(default_factory=ExcitabilityParams)
    response: ResponseParams = dataclasses.field(default_factory=ResponseParams)
    recording: RecordingParams = dataclasses.field(default_factory=RecordingParams)

    def __post_init__(self) -> None:  # noqa: D105
        for f in dataclasses.fields(self):
            part = getattr(self, f.name)
            if not isinstance(part, _SECTIONS[f.name]):
                raise ConfigError(f"{f.name} must be a {_SECTIONS[f.name].__name__}")
            validate(part, f.name + ".")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> ModelParams:
        """Build from nested dicts ``{"lead": {...}, "population": {...}, ...}``."""
        unknown = sorted(set(data) - set(_SECTIONS))
        if unknown:
            raise ConfigError(
                f"unknown section(s) {', '.join(unknown)}; known: {', '.join(_SECTIONS)}"
            )
        return cls(**{k: from_dict(_SECTIONS[k], v, where=f"{where}{k}") for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict of every parameter (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def replace(self, **sections: dict[str, Any]) -> ModelParams:
        """Copy with some fields changed, e.g. ``replace(lead={"cathode": 3})``."""
        data = self.to_dict()
        for name, changes in sections.items():
            if name not in _SECTIONS:
                raise ConfigError(f"unknown section {name!r}; known: {', '.join(_SECTIONS)}")
            from_dict(_SECTIONS[name], changes, where=name)  # rejects unknown keys early
            data[name].update(changes)
        return ModelParams.from_dict(data)


_SECTIONS = {
    "lead": LeadParams,
    "population": PopulationParams,
    "excitability": ExcitabilityParams,
    "response": ResponseParams,
    "recording": RecordingParams,
}
