"""Disturbances: what moves the spinal cord relative to the epidural lead.

A :class:`Scenario` composes components that each add to the dorsal CSF thickness (mm) seen at
every stimulation pulse: posture (with ~1 s transitions), respiration, the heartbeat, gait,
transient events (cough, sneeze, bend), within-posture sway and chronic drift (lead migration;
fibrosis raises the contact impedance). Scenarios are data: TOML files in ``disturbances/library/``.

Example::

    from closedloop.disturbances import load_scenario
    scenario = load_scenario("clinic", duration_s=120)
    trace = scenario.sample(patient.posture_csf_now_mm, rate_hz=50.0, seed=0)
    trace.csf_mm, trace.posture, trace.event, trace.impedance_scale

Sampling is vectorised NumPy, seeded only through ``np.random.SeedSequence(seed)`` (one child
per component), and bit-for-bit reproducible.
"""

from closedloop.disturbances.drift import DriftSpec
from closedloop.disturbances.events import (
    EVENT_TYPES,
    BendSpec,
    CoughSpec,
    EventsSpec,
    EventTypeSpec,
    SneezeSpec,
)
from closedloop.disturbances.library import list_scenarios, load_scenario
from closedloop.disturbances.periodic import CardiacSpec, GaitSpec, RespirationSpec
from closedloop.disturbances.posture import PostureSpec
from closedloop.disturbances.scenario import COMPONENTS, Scenario
from closedloop.disturbances.sway import SwaySpec
from closedloop.disturbances.trace import CSF_RANGE_MM, PARTS, DisturbanceTrace

__all__ = [
    "COMPONENTS",
    "CSF_RANGE_MM",
    "EVENT_TYPES",
    "PARTS",
    "BendSpec",
    "CardiacSpec",
    "CoughSpec",
    "DisturbanceTrace",
    "DriftSpec",
    "EventTypeSpec",
    "EventsSpec",
    "GaitSpec",
    "PostureSpec",
    "RespirationSpec",
    "Scenario",
    "SneezeSpec",
    "SwaySpec",
    "list_scenarios",
    "load_scenario",
]
