"""Clinic figures: scenario timelines, run traces with the therapeutic window, posture growth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from closedloop.plots._save import new_figure, save_png
from closedloop.postures import POSTURES

EVENT_COLOURS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
PART_COLOURS = {"respiration": "tab:blue", "cardiac": "tab:red", "gait": "tab:green",
                "events": "tab:brown", "drift": "tab:purple"}
POSTURE_COLOURS = ("tab:blue", "tab:cyan", "tab:green", "tab:orange", "tab:red", "tab:purple")


def _time_axis(t_s: np.ndarray) -> tuple[np.ndarray, str]:
    """Time in s, min or h depending on the span, and its axis label."""
    span = float(t_s[-1] - t_s[0]) if t_s.size else 0.0
    if span > 3 * 3600:
        return t_s / 3600.0, "time (h)"
    if span > 600:
        return t_s / 60.0, "time (min)"
    return t_s, "time (s)"


def _posture_strip(ax, t, posture) -> None:
    """Posture as a step plot with named ticks."""
    ax.step(t, posture, where="post", color="black", lw=1.2)
    ax.set_yticks(range(len(POSTURES)), POSTURES, fontsize=8)
    ax.set_ylim(-0.5, len(POSTURES) - 0.5)
    ax.set_ylabel("posture")
    ax.grid(alpha=0.3)


def _mark_events(ax, t, event, names, label: bool = True) -> None:
    """Shade the pulses during which an event is active, one colour per event type."""
    event = np.asarray(event)
    for code in np.unique(event[event > 0]):
        on = np.r_[False, event == code, False].astype(np.int8)
        starts, stops = np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1) - 1
        name = names[code - 1] if 0 < code <= len(names) else f"event {code}"
        colour = EVENT_COLOURS[(code - 1) % len(EVENT_COLOURS)]
        for k, (a, b) in enumerate(zip(starts, stops, strict=True)):
            ax.axvspan(t[a], t[b], color=colour, alpha=0.3,
                       label=name if (label and k == 0) else None)


def plot_scenario(trace, path, title: str | None = None) -> Path:
    """Save a scenario timeline: posture, CSF thickness (total and parts), events, impedance.

    Args:
        trace: A :class:`~closedloop.disturbances.DisturbanceTrace`.
        path: Output PNG path (written atomically).
        title: Figure title; the scenario name by default.

    Returns:
        The path written.
    """
    from closedloop.disturbances import EVENT_TYPES

    t, xlabel = _time_axis(np.asarray(trace.t_s))
    fig = new_figure(11.0, 7.0)
    ax_p, ax_c, ax_d = fig.subplots(3, 1, sharex=True, height_ratios=(1.0, 2.0, 1.2))
    _posture_strip(ax_p, t, trace.posture)
    ax_c.plot(t, trace.csf_mm, color="black", lw=1.0, label="total")
    _mark_events(ax_c, t, trace.event, EVENT_TYPES)
    ax_c.set_ylabel("dorsal CSF thickness (mm)")
    ax_c.grid(alpha=0.3)
    ax_c.legend(loc="upper right", fontsize=8)
    for name, part in trace.parts.items():
        part = np.asarray(part)
        if name != "posture" and np.any(part != 0):
            ax_d.plot(t, part, lw=0.8, label=name, color=PART_COLOURS.get(name, "0.3"))
    ax_d.set_ylabel("CSF change (mm)")
    ax_d.grid(alpha=0.3)
    scale = np.asarray(trace.impedance_scale)
    if np.ptp(scale) > 0:
        ax_z = ax_d.twinx()
        ax_z.plot(t, scale, color="tab:gray", ls="--", lw=1.0, label="impedance ×")
        ax_z.set_ylabel("impedance scale")
    if ax_d.get_legend_handles_labels()[0]:
        ax_d.legend(loc="lower left", fontsize=8, ncol=5)
    ax_d.set_xlabel(xlabel)
    fig.suptitle(title or f"Scenario {trace.scenario}: {t.size} pulses at {trace.rate_hz:g} Hz")
    return save_png(fig, path)


def plot_trajectory(traj, path, title: str | None = None) -> Path:
    """Save a run trace: ECAP vs target with the window shaded, current, sensation, posture.

    Args:
        traj: A :class:`~closedloop.trajectory.Trajectory`.
        path: Output PNG path (written atomically).
        title: Figure title.

    Returns:
        The path written.
    """
    from closedloop.disturbances import EVENT_TYPES

    t, xlabel = _time_axis(np.asarray(traj.t_s))
    fig = new_figure(11.0, 8.5)
    ax_e, ax_i, ax_s, ax_p = fig.subplots(4, 1, sharex=True, height_ratios=(2.4, 1.0, 1.4, 0.9))
    ax_e.fill_between(t, traj.window_lo_uv, traj.window_hi_uv, color="tab:green", alpha=0.15,
                      step="post", label="therapeutic window (ECAP at perception-discomfort)")
    ax_e.plot(t, traj.ecap_uv, color="0.6", lw=0.5, label="measured ECAP")
    ax_e.plot(t, traj.ecap_true_uv, color="tab:blue", lw=1.0, label="true ECAP")
    ax_e.axhline(traj.target_uv, color="black", ls="--", lw=1.0,
                 label=f"target {traj.target_uv:.1f} µV")
    _mark_events(ax_e, t, traj.event, EVENT_TYPES)
    ax_e.set_ylabel("ECAP (µV)")
    ax_e.legend(loc="upper right", fontsize=7, ncol=2)
    ax_e.grid(alpha=0.3)
    ax_i.plot(t, traj.current_ma, color="tab:orange", lw=1.0)
    ax_i.set_ylabel("current (mA)")
    ax_i.grid(alpha=0.3)
    ax_s.semilogy(t, np.maximum(traj.sensation, 1e-2), color="tab:purple", lw=0.8)
    ax_s.axhline(1.0, color="tab:green", ls=":", label="perception")
    ax_s.axhline(traj.discomfort_level, color="tab:red", ls=":", label="discomfort")
    ax_s.axhspan(1.0, traj.discomfort_level, color="tab:green", alpha=0.1)
    ax_s.set_ylabel("sensation\n(× perception)")
    ax_s.legend(loc="upper right", fontsize=7)
    ax_s.grid(alpha=0.3, which="both")
    _posture_strip(ax_p, t, traj.posture)
    ax_p.set_xlabel(xlabel)
    fig.suptitle(title or f"Patient {traj.patient_id}, scenario {traj.scenario}")
    return save_png(fig, path)


def plot_posture_growth(curves: dict, path, calibrations: dict | None = None,
                        title: str | None = None) -> Path:
    """Save a patient's growth curves per posture, perception and discomfort marked.

    Args:
        curves: Posture name -> :class:`~closedloop.neural.GrowthCurve`.
        path: Output PNG path (written atomically).
        calibrations: Posture name -> :class:`~closedloop.calibration.PostureCalibration`,
            whose perception and discomfort points are marked.
        title: Figure title.

    Returns:
        The path written.
    """
    fig = new_figure(8.0, 5.5)
    ax = fig.subplots()
    for posture, curve in curves.items():
        colour = POSTURE_COLOURS[POSTURES.index(posture) % len(POSTURE_COLOURS)]
        ax.plot(curve.currents_ma, curve.ecap_uv, color=colour, lw=1.3,
                label=f"{posture} (CSF {curve.csf_mm:.2f} mm)")
        pc = (calibrations or {}).get(posture)
        if pc is not None:
            ax.plot([pc.perception_ma], [pc.perception_ecap_uv], "o", color=colour, mfc="white")
            ax.plot([pc.discomfort_ma], [pc.discomfort_ecap_uv], "X", color=colour, ms=8)
    if calibrations:
        ax.plot([], [], "o", color="black", mfc="white", label="perception")
        ax.plot([], [], "X", color="black", label="discomfort")
    ax.set_xlabel("current (mA)")
    ax.set_ylabel("measured ECAP (µV)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Growth curves per posture")
    return save_png(fig, path)
