"""Patients: a neural response model plus posture-dependent anatomy.

This module holds the named patients used before cohorts exist. A patient is data (a frozen
dataclass); :meth:`Patient.model` builds its :class:`~closedloop.neural.NeuralModel`.

Posture CSF offsets (added to the supine dorsal CSF thickness):

* prone +2.2 mm: Holsheimer et al., AJNR 1994, T11 [C].
* sitting +0.45 mm, standing +0.5 mm, walking +0.5 mm, side-lying +0.25 mm: assumptions
  calibrated so that the threshold charge rises by about 0.5 µC from lying to sitting/standing,
  as Cameron & Alo (Neuromodulation 1998) report for thoracic leads (0.49 ± 0.30 µC) [C].
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from closedloop._config import ConfigError
from closedloop.neural.model import NeuralModel
from closedloop.neural.params import ModelParams

POSTURE_CSF_OFFSET_MM = MappingProxyType({
    "supine": 0.0,
    "prone": 2.2,
    "side": 0.25,
    "sitting": 0.45,
    "standing": 0.5,
    "walking": 0.5,
})
"""Dorsal CSF thickness change from supine, per posture (mm)."""
POSTURES = tuple(POSTURE_CSF_OFFSET_MM)


@dataclasses.dataclass(frozen=True)
class Patient:
    """A virtual patient.

    Attributes:
        patient_id: Stable identifier.
        seed: Seed of the fibre population.
        csf_supine_mm: Dorsal CSF thickness lying supine (mm); Holsheimer 1994 T11: 2-6 mm.
        params: Neural response model parameters.
    """

    patient_id: str
    seed: int = 0
    csf_supine_mm: float = 3.5
    params: ModelParams = dataclasses.field(default_factory=ModelParams)

    def csf_mm(self, posture: str = "supine") -> float:
        """Dorsal CSF thickness in ``posture`` (mm)."""
        if posture not in POSTURE_CSF_OFFSET_MM:
            raise ConfigError(f"posture={posture!r} is unknown; valid: {', '.join(POSTURES)}")
        return self.csf_supine_mm + POSTURE_CSF_OFFSET_MM[posture]

    def model(self) -> NeuralModel:
        """Build this patient's neural response model."""
        model = NeuralModel(self.params, seed=self.seed)
        model.default_csf_mm = self.csf_supine_mm
        return model


_NAMED = {
    "default": Patient("default"),
    "thin-csf": Patient("thin-csf", seed=1, csf_supine_mm=2.5),
    "thick-csf": Patient("thick-csf", seed=2, csf_supine_mm=4.5),
    "lateral-lead": Patient("lateral-lead", seed=3,
                            params=ModelParams().replace(lead={"lateral_offset_mm": 1.0})),
}
NAMED_PATIENTS = tuple(_NAMED)


def get_patient(name: str) -> Patient:
    """A named patient; raises :class:`ConfigError` naming the valid choices."""
    try:
        return _NAMED[name]
    except KeyError:
        raise ConfigError(f"patient={name!r} is unknown; valid: {', '.join(_NAMED)}") from None
