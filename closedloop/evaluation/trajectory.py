"""A recorded run: one entry per stimulation pulse, and its clinical metrics.

A :class:`Trajectory` holds what happened (ground truth and what the device measured) as plain
arrays; :meth:`Trajectory.metrics` scores it with the pure functions of
:mod:`closedloop.metrics`. Scoring uses the noise-free ECAP (``ecap_true_uv``) against the
calibrated target, and the patient's sensation against perception (1) and ``discomfort_level``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from closedloop._io import write_atomic
from closedloop.metrics import clinical_metrics

BYTES_PER_PULSE = 256
"""Peak memory per pulse of a simulated run (bytes): the disturbance trace, the pulse records
and the trajectory. Measured 206 bytes (tracemalloc, ``clinic``, 10,000 and 20,000 pulses);
the window and a margin make 256."""
ARRAYS = (
    "t_s",
    "posture",
    "csf_mm",
    "event",
    "impedance_ohm",
    "current_ma",
    "ecap_uv",
    "ecap_true_uv",
    "detected",
    "frac_recruited",
    "sensation",
    "charge_uc",
    "window_lo_uv",
    "window_hi_uv",
)


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """Per-pulse record of one run (every array has one entry per pulse).

    Attributes:
        patient_id: The patient.
        scenario: The scenario name.
        rate_hz: Pulse rate (Hz).
        pw_us: Pulse width (µs).
        target_uv: Target ECAP (µV) from the calibration.
        discomfort_level: Sensation at which discomfort begins (perception = 1).
        warmup_s: Time excluded from scoring at the start (s).
        t_s: Pulse time (s).
        posture: Posture code (index into :data:`closedloop.patients.postures.POSTURES`).
        csf_mm: Dorsal CSF thickness (mm).
        event: Disturbance event code (0 none; see ``closedloop.disturbances.EVENT_TYPES``).
        impedance_ohm: Contact impedance (Ω).
        current_ma: Delivered current (mA).
        ecap_uv: Measured ECAP estimate (µV), what a device sees.
        ecap_true_uv: Noise-free ECAP N1-P2 (µV), ground truth.
        detected: Whether the device detected an ECAP.
        frac_recruited: Recruited fraction of the modelled fibres.
        sensation: The patient's sensation (perception threshold = 1).
        charge_uc: Charge per phase (µC).
        window_lo_uv: Measured ECAP at perception for the pulse's CSF (µV), NaN if unknown.
        window_hi_uv: Measured ECAP at discomfort for the pulse's CSF (µV), NaN if unknown.
    """

    patient_id: str
    scenario: str
    rate_hz: float
    pw_us: float
    target_uv: float
    discomfort_level: float
    warmup_s: float
    t_s: np.ndarray
    posture: np.ndarray
    csf_mm: np.ndarray
    event: np.ndarray
    impedance_ohm: np.ndarray
    current_ma: np.ndarray
    ecap_uv: np.ndarray
    ecap_true_uv: np.ndarray
    detected: np.ndarray
    frac_recruited: np.ndarray
    sensation: np.ndarray
    charge_uc: np.ndarray
    window_lo_uv: np.ndarray
    window_hi_uv: np.ndarray

    def __post_init__(self) -> None:
        n = np.shape(self.t_s)
        for name in ARRAYS:
            if np.shape(getattr(self, name)) != n:
                raise ValueError(
                    f"Trajectory.{name} has shape {np.shape(getattr(self, name))}, expected {n}"
                )

    @property
    def n_pulses(self) -> int:
        """Number of pulses."""
        return int(np.size(self.t_s))

    def metrics(self, warmup_s: float | None = None, **kwargs) -> dict:
        """Clinical metrics of this run (see :func:`closedloop.metrics.clinical_metrics`).

        Args:
            warmup_s: Unscored start (s); the trajectory's own warm-up if None.
            **kwargs: Passed on (battery, min_gap_s, band_rel, horizon_s).
        """
        return clinical_metrics(
            self.t_s,
            self.ecap_true_uv,
            self.target_uv,
            self.sensation,
            self.discomfort_level,
            self.charge_uc,
            self.current_ma,
            self.pw_us,
            self.impedance_ohm,
            posture=self.posture,
            warmup_s=self.warmup_s if warmup_s is None else warmup_s,
            **kwargs,
        )

    def save(self, path: str | Path) -> Path:
        """Save as a compressed ``.npz`` (atomically); :func:`load_trajectory` reads it."""
        meta = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ARRAYS
        }
        arrays = {name: np.asarray(getattr(self, name)) for name in ARRAYS}
        return write_atomic(
            path,
            lambda fh: np.savez_compressed(
                fh, **arrays, **{f"meta_{k}": np.asarray(v) for k, v in meta.items()}
            ),
            binary=True,
        )


def load_trajectory(path: str | Path) -> Trajectory:
    """Read a trajectory written by :meth:`Trajectory.save`."""
    with np.load(path) as data:
        fields = {}
        for f in dataclasses.fields(Trajectory):
            value = data[f.name] if f.name in ARRAYS else data[f"meta_{f.name}"].item()
            fields[f.name] = value
    return Trajectory(**fields)
