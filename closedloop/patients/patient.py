"""Virtual patients: anatomy per posture, contact impedance, perception and the neural model.

A :class:`Patient` is data (a frozen dataclass) that saves to and loads from a human-readable
JSON file; :meth:`Patient.model` builds its :class:`~closedloop.neural.NeuralModel`. Cohort
patients (``train-000`` ... ``test-019``) come from :mod:`closedloop.patients.cohort`; a few named
patients are kept for examples and tests.

Default posture CSF offsets, added to the supine dorsal CSF thickness (cohort patients draw their
own, see :mod:`closedloop.patients.cohort`):

* prone +2.2 mm: Holsheimer et al., AJNR 1994, T11 [C] (T12: +3.4 mm).
* sitting +0.45 mm, standing +0.55 mm, walking +0.55 mm, side-lying +0.25 mm: assumptions
  calibrated so that the threshold charge rises by about 0.5 µC from lying to sitting/standing,
  as Cameron & Alo (Neuromodulation 1998) report for thoracic leads (0.49 ± 0.30 µC) [C].
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from closedloop._config import ConfigError, check_value, from_dict, short_repr
from closedloop._io import write_text_atomic
from closedloop.neural.model import NeuralModel
from closedloop.neural.params import ModelParams
from closedloop.patients.perception import PerceptionParams, derive_perception
from closedloop.patients.postures import POSTURES

POSTURE_CSF_OFFSET_MM = MappingProxyType(
    {
        "supine": 0.0,
        "prone": 2.2,
        "side": 0.25,
        "sitting": 0.45,
        "standing": 0.55,
        "walking": 0.55,
    }
)
"""Default dorsal CSF thickness change from supine, per posture (mm)."""
VERTEBRAL_LEVELS = ("T11", "T12")
"""Lead levels with published CSF thickness (Holsheimer 1994 [C])."""
CSF_RANGE_MM = (0.5, 12.0)
"""Valid CSF thickness (mm): the neural model's tabulated range."""
IMPEDANCE_RANGE_OHM = (100.0, 10_000.0)
"""Valid contact impedance (Ω); typical 500-1500 Ω [M]."""
TARGET_POSITION_RANGE = (-1.0, 1.0)
"""Valid :attr:`Patient.target_position`: below 0 the target lies below perception."""
MIGRATION_RANGE_MM = (-3.0, 3.0)
"""Valid :attr:`Patient.migration_mm` (mm)."""
REFERENCE_POSTURE = "sitting"
"""Posture of the programming session, in which perception and discomfort are defined."""
FILE_FORMAT = "closedloop.patient/1"
PATIENT_KEYS = (
    "format",
    "patient_id",
    "seed",
    "vertebral_level",
    "posture_csf_mm",
    "impedance_ohm",
    "target_position",
    "migration_mm",
    "perception",
    "model_overrides",
)
"""Keys of a patient file (:meth:`Patient.to_dict`)."""
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def episode_seeds(
    seed: int, patient: Patient
) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """The scenario-trace and recording-noise seeds of one episode of ``patient``.

    Both derive from the episode's seed and the patient's id together (the id's CRC-32, stable
    across processes and Python versions), so that one seed gives each patient a day of their
    own; the env (from a draw of its reset seed) and
    :func:`closedloop.evaluation.simulate.open_loop` use it.

    Args:
        seed: Non-negative integer.
        patient: The episode's patient.
    """
    key = zlib.crc32(patient.patient_id.encode("utf-8"))
    trace_ss, noise_ss = np.random.SeedSequence([int(seed), key]).spawn(2)
    return trace_ss, noise_ss


def default_posture_csf(csf_supine_mm: float) -> dict[str, float]:
    """Per-posture CSF thickness (mm) from the supine value and the default offsets."""
    return {p: float(csf_supine_mm) + POSTURE_CSF_OFFSET_MM[p] for p in POSTURES}


@dataclasses.dataclass(frozen=True)
class Patient:
    """A virtual patient.

    Attributes:
        patient_id: Stable identifier (letters, digits, ``_.-``).
        seed: Seed of the fibre population (anatomy).
        vertebral_level: Level of the stimulating cathode, one of :data:`VERTEBRAL_LEVELS`.
        posture_csf_mm: Dorsal CSF thickness per posture (mm), every posture of
            :data:`closedloop.patients.postures.POSTURES`; Holsheimer 1994: T11 supine 2-6 mm.
        impedance_ohm: Contact impedance (Ω), typical 500-1500 Ω [M].
        target_position: Where the patient's ECAP target was programmed, as a fraction of the
            common therapeutic window in µV (0: the highest perception ECAP, 1: the lowest
            discomfort ECAP; see :func:`closedloop.patients.calibration.calibrate`). Below 0 the
            target is ``(1 + target_position)`` times the perception ECAP: a patient who prefers
            stimulation they do not feel, or whose target was set too low. In [-1, 1].
        migration_mm: Change of the dorsal CSF thickness the lead sees since the programming
            session (mm; positive: the cord is further from the lead), in every posture. The
            calibration (target, comfort current, limits) is made before it and goes stale;
            every simulation uses :attr:`posture_csf_now_mm`. In [-3, 3].
        perception: The perception model (thresholds of sensation).
        params: Neural response model parameters.
    """

    patient_id: str
    seed: int = 0
    vertebral_level: str = "T11"
    posture_csf_mm: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: default_posture_csf(3.5)
    )
    impedance_ohm: float = 900.0
    target_position: float = 0.5
    migration_mm: float = 0.0
    perception: PerceptionParams = dataclasses.field(default_factory=PerceptionParams)
    params: ModelParams = dataclasses.field(default_factory=ModelParams)

    def __post_init__(self) -> None:
        if not isinstance(self.patient_id, str) or not _ID.match(self.patient_id):
            raise ConfigError(
                f"patient_id={self.patient_id!r} must be 1-64 characters of "
                "letters, digits and _.- starting with a letter or digit"
            )
        check_value("seed", self.seed, {"lo": 0, "unit": "1"}, "int")
        object.__setattr__(self, "seed", int(self.seed))
        check_value("vertebral_level", self.vertebral_level, {"choices": VERTEBRAL_LEVELS})
        if not isinstance(self.posture_csf_mm, Mapping):
            raise ConfigError(
                f"posture_csf_mm={short_repr(self.posture_csf_mm)} must be a "
                f"table posture -> CSF thickness (mm) over {', '.join(POSTURES)}"
            )
        csf = dict(self.posture_csf_mm)
        if set(csf) != set(POSTURES):
            raise ConfigError(
                f"posture_csf_mm must have exactly the keys {', '.join(POSTURES)}; "
                f"got {', '.join(sorted(map(str, csf)))}"
            )
        meta = {"lo": CSF_RANGE_MM[0], "hi": CSF_RANGE_MM[1], "unit": "mm"}
        for posture in POSTURES:
            check_value(f"posture_csf_mm.{posture}", csf[posture], meta)
        object.__setattr__(
            self, "posture_csf_mm", MappingProxyType({p: float(csf[p]) for p in POSTURES})
        )
        check_value(
            "impedance_ohm",
            self.impedance_ohm,
            {"lo": IMPEDANCE_RANGE_OHM[0], "hi": IMPEDANCE_RANGE_OHM[1], "unit": "Ω"},
        )
        for name, (lo, hi), unit in (
            ("target_position", TARGET_POSITION_RANGE, "1"),
            ("migration_mm", MIGRATION_RANGE_MM, "mm"),
        ):
            check_value(name, getattr(self, name), {"lo": lo, "hi": hi, "unit": unit})
            object.__setattr__(self, name, float(getattr(self, name)))
        for name, cls in (("perception", PerceptionParams), ("params", ModelParams)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name} must be a {cls.__name__}")

    def __hash__(self) -> int:
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(json.dumps(self.to_dict(), sort_keys=True))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __reduce__(self):
        """Pickle through :meth:`to_dict` (the posture mapping is a read-only proxy)."""
        return (Patient.from_dict, (self.to_dict(),))

    @property
    def csf_supine_mm(self) -> float:
        """Dorsal CSF thickness lying supine (mm)."""
        return self.posture_csf_mm["supine"]

    @property
    def posture_csf_now_mm(self) -> dict[str, float]:
        """Per-posture CSF thickness the lead sees now (mm).

        The programmed one plus the migration, clipped into :data:`CSF_RANGE_MM`; scenarios
        are sampled from it.
        """
        lo, hi = CSF_RANGE_MM
        return {p: min(hi, max(lo, v + self.migration_mm)) for p, v in self.posture_csf_mm.items()}

    def csf_mm(self, posture: str = "supine") -> float:
        """Dorsal CSF thickness in ``posture`` (mm)."""
        if posture not in self.posture_csf_mm:
            raise ConfigError(f"posture={posture!r} is unknown; valid: {', '.join(POSTURES)}")
        return self.posture_csf_mm[posture]

    def model(self) -> NeuralModel:
        """Build this patient's neural response model (about 0.3 s)."""
        model = NeuralModel(self.params, seed=self.seed)
        model.default_csf_mm = self.csf_supine_mm
        return model

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict; model parameters only where they differ from the defaults."""
        return {
            "format": FILE_FORMAT,
            "patient_id": self.patient_id,
            "seed": self.seed,
            "vertebral_level": self.vertebral_level,
            "posture_csf_mm": dict(self.posture_csf_mm),
            "impedance_ohm": self.impedance_ohm,
            "target_position": self.target_position,
            "migration_mm": self.migration_mm,
            "perception": dataclasses.asdict(self.perception),
            "model_overrides": model_overrides(self.params),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "patient") -> Patient:
        """Build from :meth:`to_dict` output; unknown keys are errors naming the key."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where}: a patient must be a table (JSON object) with keys "
                f"{', '.join(PATIENT_KEYS)}; got {type(data).__name__}"
            )
        data = dict(data)
        fmt = data.pop("format", FILE_FORMAT)
        if not isinstance(fmt, str) or fmt != FILE_FORMAT:
            raise ConfigError(
                f"{where}: format={short_repr(fmt)} is not supported; valid: {FILE_FORMAT!r}"
            )
        known = {f.name for f in dataclasses.fields(cls)} - {"perception", "params"}
        unknown = sorted(map(str, set(data) - known - {"perception", "model_overrides"}))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)} in {where}; known: "
                f"{', '.join(sorted(known | {'perception', 'model_overrides'}))}"
            )
        perception = from_dict(PerceptionParams, data.pop("perception", {}), f"{where}.perception")
        overrides = data.pop("model_overrides", {})
        if not isinstance(overrides, Mapping):
            raise ConfigError(
                f"{where}.model_overrides={short_repr(overrides)} must be a table "
                "of model sections (lead, population, ...)"
            )
        params = ModelParams.from_dict(overrides, f"{where}.model_overrides.")
        return cls(perception=perception, params=params, **data)

    def save(self, path: str | Path) -> Path:
        """Write this patient as indented JSON to ``path`` (atomically)."""
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")


def load_patient(path: str | Path) -> Patient:
    """Read a patient saved by :meth:`Patient.save`.

    Raises:
        ConfigError: If ``path`` is not a readable file of valid JSON, or the JSON is not a
            patient (naming the offending key and its valid range).
    """
    if not isinstance(path, (str, Path)):
        raise ConfigError(f"path={short_repr(path)} must be a file path (str or Path)")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"patient file {str(path)!r} cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return Patient.from_dict(data, where=str(path))


def model_overrides(params: ModelParams) -> dict[str, dict[str, Any]]:
    """The fields of ``params`` that differ from :class:`ModelParams` defaults, by section."""
    base, mine = ModelParams().to_dict(), params.to_dict()
    out: dict[str, dict[str, Any]] = {}
    for section, fields in mine.items():
        diff = {k: v for k, v in fields.items() if not _same(v, base[section][k])}
        if diff:
            out[section] = {k: list(v) if isinstance(v, tuple) else v for k, v in diff.items()}
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal values (floats compared exactly, NaN-safe)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


_NAMED = {
    "default": dict(seed=0, csf_supine_mm=3.5),
    "thin-csf": dict(seed=1, csf_supine_mm=2.5),
    "thick-csf": dict(seed=2, csf_supine_mm=4.5),
    "lateral-lead": dict(
        seed=3, csf_supine_mm=3.5, params=ModelParams().replace(lead={"lateral_offset_mm": 1.0})
    ),
}
NAMED_PATIENTS = tuple(_NAMED)


@functools.cache
def named_patient(name: str) -> Patient:
    """One of :data:`NAMED_PATIENTS`, its perception thresholds derived (cached).

    :func:`closedloop.patients.cohort.get_patient` finds cohort patients too.
    """
    spec = dict(_NAMED[name])
    csf = default_posture_csf(spec.pop("csf_supine_mm"))
    draft = Patient(name, posture_csf_mm=csf, **spec)
    perception = derive_perception(draft.model(), csf[REFERENCE_POSTURE])
    if perception is None:
        raise ConfigError(f"patient {name!r} has no measurable ECAP threshold")
    return dataclasses.replace(draft, perception=perception)
