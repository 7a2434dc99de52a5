"""The comparison figure of ``closedloop validate --plot`` (matplotlib, imported lazily).

Four panels, MRG solid with markers and the fast model dashed: threshold against distance per
diameter, strength-duration curves, the recovery cycle, and conduction velocity against
diameter. A section without reference data shows the fast model alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from closedloop.fidelity.table import Report
from closedloop.plots._save import new_figure, save_png

PLOT_PW_US = 100.0
"""Pulse width (µs) of the threshold-distance panel."""
SD_DISTANCE_MM = 3.0
"""Distance (mm) of the strength-duration panel."""
SD_DIAMETERS_UM = (5.7, 10.0, 16.0)
"""Diameters (µm) of the strength-duration panel."""


def _nearest(values, wanted: float) -> int:
    """Index of the value nearest ``wanted``."""
    return int(np.argmin(np.abs(np.asarray(values, float) - wanted)))


def _both(results: dict, section: str):
    """``[(label, style, section)]`` for the models that have ``section``."""
    styles = (("MRG", {"ls": "-", "marker": "o", "ms": 3}), ("fast", {"ls": "--"}))
    return [
        (label, style, results[key][section])
        for (label, style), key in zip(styles, ("mrg", "fast"), strict=True)
        if section in results.get(key, {})
    ]


def _distance_panel(ax, results: dict) -> None:
    """Threshold against distance at :data:`PLOT_PW_US`, one colour per diameter."""
    for label, style, sec in _both(results, "thresholds"):
        k = _nearest(sec["pw_us"], PLOT_PW_US)
        th = np.asarray(sec["threshold_ma"], float)
        for i, D in enumerate(sec["diameter_um"]):
            ax.plot(
                sec["distance_mm"],
                th[i, :, k],
                color=f"C{i % 10}",
                **style,
                label=f"{label} {D:g} µm" if label == "MRG" else None,
            )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="distance (mm)",
        ylabel="threshold (mA)",
        title=f"threshold vs distance, {PLOT_PW_US:g} µs (fast dashed)",
    )
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xticks([1, 2, 3, 4, 5, 6])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=6, ncol=2)


def _sd_panel(ax, results: dict) -> None:
    """Strength-duration curves at :data:`SD_DISTANCE_MM` for a few diameters."""
    for label, style, sec in _both(results, "thresholds"):
        j = _nearest(sec["distance_mm"], SD_DISTANCE_MM)
        th = np.asarray(sec["threshold_ma"], float)
        for n, D in enumerate(SD_DIAMETERS_UM):
            i = _nearest(sec["diameter_um"], D)
            ax.plot(
                sec["pw_us"],
                th[i, j],
                color=f"C{n}",
                **style,
                label=f"{label} {sec['diameter_um'][i]:g} µm",
            )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="pulse width (µs)",
        ylabel="threshold (mA)",
        title=f"strength-duration, {SD_DISTANCE_MM:g} mm",
    )
    ax.legend(fontsize=6)


def _recovery_panel(ax, results: dict) -> None:
    """Threshold ratio against the conditioning-test interval."""
    for label, style, sec in _both(results, "recovery"):
        y = [np.nan if v is None else v for v in sec["threshold_ratio"]]
        ax.plot(sec["interval_ms"], y, color="k", **style, label=label)
        if sec.get("arp_ms") is not None:
            ax.axvline(
                sec["arp_ms"],
                color="C3",
                ls=style["ls"],
                lw=0.8,
                label=f"{label} ARP {sec['arp_ms']:.2f} ms",
            )
    ax.axhline(1.0, color="0.6", lw=0.8)
    ax.set(
        xscale="log",
        xlabel="interval (ms)",
        ylabel="test / resting threshold",
        title="recovery cycle, 10 µm",
    )
    ax.legend(fontsize=7)


def _cv_panel(ax, results: dict) -> None:
    """Conduction velocity against diameter."""
    for label, style, sec in _both(results, "cv"):
        ax.plot(sec["diameter_um"], sec["cv_m_s"], color="k", **style, label=label)
    ax.set(xlabel="diameter (µm)", ylabel="CV (m/s)", title="conduction velocity (dt → 0)")
    ax.legend(fontsize=7)


def plot_validation(report: Report, path) -> Path:
    """Save the four-panel comparison figure of ``report`` as PNG (atomically).

    Args:
        report: The outcome of :func:`closedloop.fidelity.compare.validate`.
        path: Output PNG path; its directory must exist.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    fig = new_figure(10.0, 7.5)
    axes = fig.subplots(2, 2)
    for panel, ax in zip(
        (_distance_panel, _sd_panel, _recovery_panel, _cv_panel), axes.flat, strict=True
    ):
        panel(ax, report.results)
    fig.suptitle(f"fast model vs MRG: {report.summary()}")
    return save_png(fig, path)
