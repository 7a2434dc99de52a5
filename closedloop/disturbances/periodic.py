"""Periodic cord motion: respiration, the heartbeat and gait.

Each trace draws its frequency uniformly from the spec's ``[low, high]`` range and a uniform
random phase; the amplitude is the peak deviation of the CSF thickness (mm), i.e. half the
peak-to-peak swing. The depth of cardiac and respiratory ECAP modulation is not published;
domain.md §2 suggests assuming 5-20 % [M], so the amplitudes are placeholders to be calibrated
against that figure with the neural model.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from closedloop._config import param
from closedloop.disturbances._spec import Grid, check_fields, check_interval, uniform

_RESP_SOURCE = (
    "calibrated on 12 train patients at the comfort current: ECAP modulated "
    "~10 % (5-20 % [M]); rescaled x1.22 for the issue-17 model (8.2 % before)"
)
_CARDIAC_SOURCE = (
    "calibrated on 12 train patients at the comfort current: ECAP modulated "
    "~6 % (5-20 % [M]); rescaled x1.28 for the issue-17 model (4.7 % before)"
)


def _phase(grid: Grid, frequency: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Cycles elapsed at each pulse, ``f t + phi`` with f and phi drawn from ``rng``."""
    f = uniform(rng, frequency)
    phi = rng.uniform(0.0, 1.0)
    return f * grid.t_s + phi


@dataclasses.dataclass(frozen=True)
class RespirationSpec:
    """Breathing: a sinusoidal CSF modulation at the breathing rate."""

    WHERE: ClassVar[str] = "respiration"

    frequency_hz: tuple = param(
        (0.2, 0.33),
        "Hz",
        "assumption: resting adults breathe 12-20 times a minute",
        0.02,
        2.0,
        doc="[low, high] range the breathing rate is drawn from",
    )
    amplitude_mm: float = param(0.0305, "mm", _RESP_SOURCE, 0.0, 2.0, doc="peak CSF deviation")

    def __post_init__(self) -> None:
        check_fields(self, self.WHERE)
        check_interval(f"{self.WHERE}.frequency_hz", self.frequency_hz)

    def sample(self, grid: Grid, rng: np.random.Generator) -> np.ndarray:
        """CSF contribution (mm) at each pulse; draws rate and phase from ``rng``."""
        return self.amplitude_mm * np.sin(2.0 * np.pi * _phase(grid, self.frequency_hz, rng))

    def describe(self) -> str:
        """One line summarising the component."""
        lo, hi = self.frequency_hz
        return f"respiration {lo:g}-{hi:g} Hz, ±{self.amplitude_mm:g} mm"


@dataclasses.dataclass(frozen=True)
class CardiacSpec:
    """Heartbeat: a periodic train of Gaussian pulses (systole), shifted to zero mean.

    The cord is assumed to move towards the lead at systole (a negative CSF pulse); the sign is
    an assumption, the waveform has zero mean over each beat either way.
    """

    WHERE: ClassVar[str] = "cardiac"

    frequency_hz: tuple = param(
        (1.0, 1.5),
        "Hz",
        "assumption: resting heart rate 60-90 beats per minute",
        0.3,
        4.0,
        doc="[low, high] range the heart rate is drawn from",
    )
    amplitude_mm: float = param(
        0.0102, "mm", _CARDIAC_SOURCE, 0.0, 2.0, doc="half the peak-to-peak CSF swing"
    )
    pulse_width: float = param(
        0.08,
        "1",
        "assumption: systolic pulse ~0.1 s at 1.2 Hz",
        0.01,
        0.3,
        doc="sd of each Gaussian pulse as a fraction of a beat",
    )

    def __post_init__(self) -> None:
        check_fields(self, self.WHERE)
        check_interval(f"{self.WHERE}.frequency_hz", self.frequency_hz)

    def sample(self, grid: Grid, rng: np.random.Generator) -> np.ndarray:
        """CSF contribution (mm) at each pulse; draws heart rate and phase from ``rng``."""
        cycles = _phase(grid, self.frequency_hz, rng)
        d = cycles - np.floor(cycles) - 0.5
        s = self.pulse_width
        bump = np.exp(-0.5 * (d / s) ** 2)
        mean = s * math.sqrt(2.0 * math.pi) * math.erf(0.5 / (s * math.sqrt(2.0)))
        peak_to_peak = 1.0 - math.exp(-0.5 * (0.5 / s) ** 2)
        return -(2.0 * self.amplitude_mm / peak_to_peak) * (bump - mean)

    def describe(self) -> str:
        """One line summarising the component."""
        lo, hi = self.frequency_hz
        return f"cardiac {lo:g}-{hi:g} Hz, ±{self.amplitude_mm:g} mm"


@dataclasses.dataclass(frozen=True)
class GaitSpec:
    """Walking: a sinusoidal CSF modulation at the stride rate, only while walking.

    The modulation is gated by the walking posture; the gate ramps in and out with the posture
    transitions, so gait fades in over ``posture.transition_s``.
    """

    WHERE: ClassVar[str] = "gait"

    frequency_hz: tuple = param(
        (0.85, 0.95),
        "Hz",
        "assumption: stride rate ~0.9 Hz (about 110 steps/min)",
        0.2,
        3.0,
        doc="[low, high] range the stride rate is drawn from",
    )
    amplitude_mm: float = param(
        0.04,
        "mm",
        "assumption: larger than breathing (~15 % ECAP)",
        0.0,
        2.0,
        doc="peak CSF deviation while walking",
    )

    def __post_init__(self) -> None:
        check_fields(self, self.WHERE)
        check_interval(f"{self.WHERE}.frequency_hz", self.frequency_hz)

    def sample(self, grid: Grid, rng: np.random.Generator, walking: np.ndarray) -> np.ndarray:
        """CSF contribution (mm) at each pulse.

        Args:
            grid: Pulse times.
            rng: The gait component's generator (stride rate and phase).
            walking: Gate in [0, 1] per pulse, 1 while walking.

        Returns:
            float64 array (mm).
        """
        wave = np.sin(2.0 * np.pi * _phase(grid, self.frequency_hz, rng))
        return self.amplitude_mm * walking * wave

    def describe(self) -> str:
        """One line summarising the component."""
        lo, hi = self.frequency_hz
        return f"gait {lo:g}-{hi:g} Hz, ±{self.amplitude_mm:g} mm while walking"
