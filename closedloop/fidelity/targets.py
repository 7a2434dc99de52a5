"""The targets of issue 17 for the fast model against MRG, and the lead's choices.

:mod:`closedloop.fidelity.rows` reads these at call time (``targets.NAME``), so a test or a
study can set one with ``monkeypatch.setattr(targets, NAME, value)``.
"""

from __future__ import annotations

THRESHOLD_TOL_REL = 0.10
"""Thresholds within 10 % of MRG over the whole grid."""
SLOPE_TOL = 0.15
"""Distance and diameter log-log slopes within 0.15 of MRG."""
CHRONAXIE_TOL_REL = 0.20
"""Chronaxie within 20 % of MRG."""
CHRONAXIE_DISTANCE_MM = 3.0
"""Distance (mm) of the per-diameter chronaxie rows (all distances enter the worst-case row)."""
RECOVERY_TIME_TOL_MS = 0.2
"""Recovery-cycle times (ARP, end of the relative period, supernormal peak) within 0.2 ms."""
RECOVERY_DEPTH_TOL_PCT = 5.0
"""Supernormal and late subnormal depths within 5 percentage points."""
SFAP_EXPONENT_TOL = 0.2
"""SFAP amplitude exponent in D within 0.2 of MRG."""
CV_TOL_REL = 0.05
"""Conduction velocity (dt -> 0) within 5 % of MRG."""
LATENCY_TOL_MS: float | None = None
"""Initiation-time tolerance (ms); issue 17 sets none, so the latency rows are information."""
REPORT_PWS_US = (100.0, 300.0)
"""Pulse widths (µs) of the slope rows (the JSON holds every pulse width)."""
DISTANCE_SLOPE_RANGE_MM = (2.0, 6.0)
"""Distances (mm) of the threshold-distance log-log slope (issue 17: 2-6 mm)."""
LATENCY_RATIOS = (1.05, 1.2, 2.0)
"""Currents relative to threshold at which the initiation time is compared."""

HUMAN_ARP_MS = 0.7
"""Absolute refractory period of human sensory fibres (ms) [Tackmann & Lehmann 1974]."""
HUMAN_SFAP_EXPONENT = (1.5, 2.0)
"""Human single-unit amplitude ∝ CV^1.5-2, i.e. D^1.5-2 [JNNP 1981 44(6):476]."""
ARP_TARGET = "human"
"""Which absolute refractory period the fast model targets: "human" or "mrg"."""
ARP_TARGET_REASON = (
    "the patient model is of human dorsal-column fibres; human sensory nerves "
    "give about 0.7 ms [Tackmann & Lehmann 1974], MRG at 37 °C longer"
)
SFAP_TARGET = "mrg"
"""Which SFAP exponent the fast model targets: "mrg" (within 0.2) or "human" (1.5-2)."""
SFAP_TARGET_RADIAL_MM: tuple[float, ...] | None = None
"""Radial distances (mm) whose SFAP exponent rows carry the target (None: every distance).
MRG's exponent grows with distance (1.5 at 1 mm to 2.1 at 5 mm); a distance-independent fast
exponent cannot meet all of them within 0.2."""
SFAP_TARGET_REASON = (
    "the human range D^1.5-2 [JNNP 1981] holds MRG's exponent, so matching "
    "MRG within 0.2 also stays near the human data"
)
