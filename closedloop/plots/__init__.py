"""Figures (matplotlib, imported lazily, drawn on a bare Figure and saved atomically as PNG).

* :func:`plot_growth_curve`: a growth curve with its fit and recorded sweeps.
* :func:`plot_posture_growth`: a patient's growth curves per posture with the window marked.
* :func:`plot_scenario`: a scenario timeline (posture, CSF thickness, events).
* :func:`plot_trajectory`: ECAP against target with the therapeutic window shaded, current,
  sensation and posture of one run.
"""

from closedloop.plots.clinic import plot_posture_growth, plot_scenario, plot_trajectory
from closedloop.plots.growth import default_waveform_currents, nearest_rows, plot_growth_curve

__all__ = [
    "default_waveform_currents",
    "nearest_rows",
    "plot_growth_curve",
    "plot_posture_growth",
    "plot_scenario",
    "plot_trajectory",
]
