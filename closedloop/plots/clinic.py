"""Clinic figures: scenario timelines, run traces with the therapeutic window, posture growth."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from closedloop.disturbances import EVENT_TYPES
from closedloop.patients.postures import POSTURES
from closedloop.plots._save import new_figure, save_png

EVENT_COLOURS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
PART_COLOURS = {
    "respiration": "tab:blue",
    "cardiac": "tab:red",
    "gait": "tab:green",
    "events": "tab:brown",
    "drift": "tab:purple",
}
POSTURE_COLOURS = ("tab:blue", "tab:cyan", "tab:green", "tab:orange", "tab:red", "tab:purple")
SMOOTH_AFTER_S = 120.0
"""Runs longer than this (s) are drawn as per-bin means with min-max bands."""
BIN_S = 1.0
"""Width of those bins (s)."""
CLIP_PERCENTILE = 99.5
"""Percentile of the true ECAP that the ECAP axis covers (%), see :func:`ecap_axis_top`."""
CLIP_TARGET_RATIO = 3.0
"""The ECAP axis stops at this multiple of the target (or just above the window's top)."""
SENSATION_FLOOR = 1e-2
"""Sensation drawn at this floor when lower (log axis; 0 = nothing felt)."""


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


def _runs(mask) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of each run of True in ``mask``."""
    on = np.r_[False, np.asarray(mask, dtype=bool), False].astype(np.int8)
    return np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1) - 1


def _mark_events(ax, t, event, names, label: bool = True) -> None:
    """Shade the pulses during which an event is active, one colour per event type."""
    event = np.asarray(event)
    for code in np.unique(event[event > 0]):
        starts, stops = _runs(event == code)
        name = names[code - 1] if 0 < code <= len(names) else f"event {code}"
        colour = EVENT_COLOURS[(code - 1) % len(EVENT_COLOURS)]
        for k, (a, b) in enumerate(zip(starts, stops, strict=True)):
            ax.axvspan(
                t[a], t[b], color=colour, alpha=0.3, label=name if (label and k == 0) else None
            )


def plot_scenario(trace, path, title: str | None = None) -> Path:
    """Save a scenario timeline: posture, CSF thickness (total and parts), events, impedance.

    Args:
        trace: A :class:`~closedloop.disturbances.DisturbanceTrace`.
        path: Output PNG path (written atomically).
        title: Figure title; the scenario name by default.

    Returns:
        The path written.
    """
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


def bin_samples(t_s, bin_s: float = BIN_S) -> int:
    """Samples per bin of about ``bin_s`` seconds (at least 1).

    That is ``round(bin_s / dt)``, with ``dt`` the median step of ``t_s`` (s).
    """
    t = np.asarray(t_s, dtype=np.float64)
    dt = float(np.median(np.diff(t))) if t.size >= 2 else 0.0
    return max(1, int(round(bin_s / dt))) if dt > 0 else 1


def binned(t, values, n: int) -> tuple[np.ndarray, ...]:
    """``(t, mean, min, max)`` of ``values`` over consecutive bins of ``n`` samples.

    A bin's time is that of its first sample; NaN samples are ignored (an all-NaN bin is NaN),
    and the last bin may be shorter. With ``n <= 1`` the values come back as they are.
    """
    t, y = np.asarray(t, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if n <= 1:
        return t, y, y, y
    padded = np.full(-(-y.size // n) * n, np.nan)
    padded[: y.size] = y
    blocks = padded.reshape(-1, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins stay NaN
        return t[::n], np.nanmean(blocks, 1), np.nanmin(blocks, 1), np.nanmax(blocks, 1)


def ecap_axis_top(
    ecap_uv,
    target_uv: float,
    window_hi_uv=None,
    percentile: float = CLIP_PERCENTILE,
    max_ratio: float = CLIP_TARGET_RATIO,
) -> float:
    """Top of the ECAP axis (µV), so that brief spikes (coughs) do not flatten the trace.

    It shows the ``percentile`` of the ECAP, the target and the window's top with a 10 %
    margin, but stops at ``max_ratio`` times the target (or just above the window's top, if
    higher): values above are drawn as markers on the top edge.

    Args:
        ecap_uv: The ECAP values drawn (µV).
        target_uv: The target (µV); no cap if it is not a positive number.
        window_hi_uv: ECAP at discomfort along the run (µV), NaN where unknown; optional.
        percentile: Percentile of the finite ECAP values the axis covers (%).
        max_ratio: Cap of the axis as a multiple of the target.
    """
    y = np.asarray(ecap_uv, dtype=np.float64)
    y = y[np.isfinite(y)]
    hi = np.asarray([] if window_hi_uv is None else window_hi_uv, dtype=np.float64)
    hi = hi[np.isfinite(hi)]
    target = float(target_uv) if np.isfinite(target_uv) and target_uv > 0 else math.nan
    wanted = [float(np.percentile(y, percentile))] if y.size else []
    wanted += ([1.3 * target] if np.isfinite(target) else []) + (
        [float(hi.max())] if hi.size else []
    )
    top = 1.1 * max(wanted, default=1.0)
    if np.isfinite(target):
        top = min(top, max(max_ratio * target, 1.05 * float(hi.max()) if hi.size else 0.0))
    return top if np.isfinite(top) and top > 0 else 1.0


def _ecap_panel(ax, t, traj, n: int, unscored=None) -> None:
    """ECAP (measured and true) against the target and the window; spikes clipped and marked."""
    _window_band(ax, t, traj, n)
    _unscored_spans(ax, t, traj, unscored)
    tt, ymax = _ecap_lines(ax, t, traj, n)
    _mark_events(ax, t, traj.event, EVENT_TYPES)
    top = ecap_axis_top(traj.ecap_true_uv, traj.target_uv, traj.window_hi_uv)
    over = ymax > top
    if np.any(over):
        ax.plot(
            tt[over],
            np.full(np.count_nonzero(over), top),
            "^",
            color="tab:red",
            ms=5,
            clip_on=False,
            zorder=30,
            label=f"true ECAP above the axis (peak {np.nanmax(ymax):.0f} µV)",
        )
    ax.set_ylim(0.0, top)
    ax.set_ylabel("ECAP (µV)")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, ncol=4, frameon=False)
    ax.grid(alpha=0.3)


def _window_band(ax, t, traj, n: int) -> None:
    """The therapeutic window (ECAP at perception to discomfort, µV) as a shaded band."""
    tb, lo = binned(t, traj.window_lo_uv, n)[:2]
    hi = binned(t, traj.window_hi_uv, n)[1]
    ax.fill_between(tb, lo, hi, color="tab:green", alpha=0.1, step="post", lw=0)
    for edge in (lo, hi):
        ax.step(tb, edge, where="post", color="tab:green", lw=0.9, alpha=0.8)
    ax.fill_between(
        [],
        [],
        color="tab:green",
        alpha=0.3,
        label="therapeutic window (ECAP at perception to discomfort)",
    )


def _unscored_spans(ax, t, traj, unscored) -> None:
    """Grey the warm-up and hatch the unscored stretches (``unscored``: a bool per pulse)."""
    k = int(np.searchsorted(traj.t_s, traj.t_s[0] + traj.warmup_s))
    if traj.warmup_s > 0 and k > 0:
        ax.axvspan(
            t[0],
            t[min(k, t.size - 1)],
            color="0.5",
            alpha=0.12,
            lw=0,
            zorder=0,
            label="warm-up (not scored)",
        )
    if unscored is not None and np.any(unscored):
        for j, (a, b) in enumerate(zip(*_runs(unscored), strict=True)):
            ax.axvspan(
                t[a],
                t[b],
                facecolor="none",
                edgecolor="0.7",
                hatch="//",
                lw=0,
                zorder=0,
                label=None if j else "not scored (the env's unscored postures)",
            )


def _ecap_lines(ax, t, traj, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Measured and true ECAP (µV, binned if ``n > 1``) and the target.

    Returns:
        ``(t_bins, true_max)``: the bins' times and the true ECAP's maximum in each bin (µV).
    """
    tm, m = binned(t, traj.ecap_uv, n)[:2]
    tt, mean, ymin, ymax = binned(t, traj.ecap_true_uv, n)
    per = f", {BIN_S:g}-s means" if n > 1 else ""
    ax.plot(tm, m, color="0.55", lw=0.5, label=f"measured ECAP{per}")
    if n > 1:
        ax.fill_between(
            tt,
            ymin,
            ymax,
            color="tab:blue",
            alpha=0.12,
            lw=0,
            label=f"true ECAP, {BIN_S:g}-s min to max",
        )
    ax.plot(tt, mean, color="tab:blue", lw=0.9, label=f"true ECAP{per}")
    ax.axhline(
        traj.target_uv, color="black", ls="--", lw=1.0, label=f"target {traj.target_uv:.1f} µV"
    )
    return tt, ymax


def _current_panel(ax, t, traj, n: int) -> None:
    """Delivered current, bin means and ranges for long runs; no offset notation."""
    if n > 1:
        tb, mean, lo, hi = binned(t, traj.current_ma, n)
        ax.fill_between(tb, lo, hi, color="tab:orange", alpha=0.25, lw=0)
        ax.plot(tb, mean, color="tab:orange", lw=0.9)
    else:
        ax.plot(t, traj.current_ma, color="tab:orange", lw=1.0)
    i = np.asarray(traj.current_ma, dtype=np.float64)
    i = i[np.isfinite(i)]
    if i.size:
        mid, half = 0.5 * (i.min() + i.max()), max(0.55 * (i.max() - i.min()), 0.25)
        ax.set_ylim(max(0.0, mid - half), mid + half)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_ylabel("current (mA)")
    ax.grid(alpha=0.3)


def _sensation_panel(ax, t, traj, n: int) -> None:
    """Sensation on a log axis, with the perception and discomfort thresholds."""
    s = np.maximum(np.asarray(traj.sensation, dtype=np.float64), SENSATION_FLOOR)
    if n > 1:
        tb, mean, lo, hi = binned(t, s, n)
        ax.fill_between(tb, lo, hi, color="tab:purple", alpha=0.25, lw=0)
        ax.semilogy(tb, mean, color="tab:purple", lw=0.8)
    else:
        ax.semilogy(t, s, color="tab:purple", lw=0.8)
    ax.axhline(1.0, color="tab:green", ls=":", label="perception")
    ax.axhline(traj.discomfort_level, color="tab:red", ls=":", label="discomfort")
    ax.axhspan(1.0, traj.discomfort_level, color="tab:green", alpha=0.1)
    ax.set_ylabel("sensation\n(× perception)")
    ax.legend(loc="upper right", fontsize=7)
    ax.grid(alpha=0.3, which="both")


def _event_rug(ax, t, event) -> None:
    """Event onsets as ticks on an ``events`` row above the posture strip."""
    event = np.asarray(event)
    onsets = np.flatnonzero((event > 0) & (np.r_[0, event[:-1]] != event))
    for code in np.unique(event[onsets]):
        at = onsets[event[onsets] == code]
        ax.plot(
            t[at],
            np.full(at.size, len(POSTURES)),
            "|",
            ms=9,
            mew=1.5,
            color=EVENT_COLOURS[(code - 1) % len(EVENT_COLOURS)],
        )
    ax.set_yticks(range(len(POSTURES) + 1), [*POSTURES, "events"], fontsize=8)
    ax.set_ylim(-0.5, len(POSTURES) + 0.5)


def plot_trajectory(traj, path, title: str | None = None, unscored=None) -> Path:
    """Save a run trace: ECAP vs target with the window shaded, current, sensation, posture.

    Runs longer than :data:`SMOOTH_AFTER_S` are drawn as :data:`BIN_S` means with min-max
    bands (an hour at 50 Hz is 180,000 pulses). The ECAP axis stops at
    :func:`ecap_axis_top`: spikes above it (coughs) are marked on its top edge. Events are
    shaded on the ECAP panel and ticked on the posture strip; the warm-up is shaded grey.

    Args:
        traj: A :class:`~closedloop.evaluation.trajectory.Trajectory` (its window is drawn where
        known,
            see :func:`closedloop.evaluation.figures.with_window`).
        path: Output PNG path (written atomically).
        title: Figure title.
        unscored: Optional boolean per entry, True where the env does not score the run
            (:func:`closedloop.metrics.unscored_mask`); hatched on the ECAP panel.

    Returns:
        The path written.
    """
    t_s = np.asarray(traj.t_s)
    t, xlabel = _time_axis(t_s)
    long_run = t_s.size >= 2 and float(t_s[-1] - t_s[0]) > SMOOTH_AFTER_S
    n = bin_samples(t_s) if long_run else 1
    fig = new_figure(11.0, 9.0)
    ax_e, ax_i, ax_s, ax_p = fig.subplots(4, 1, sharex=True, height_ratios=(2.6, 1.0, 1.4, 1.0))
    _ecap_panel(ax_e, t, traj, n, unscored)
    _current_panel(ax_i, t, traj, n)
    _sensation_panel(ax_s, t, traj, n)
    _posture_strip(ax_p, t, traj.posture)
    _event_rug(ax_p, t, traj.event)
    ax_p.set_xlabel(xlabel)
    fig.suptitle(title or f"Patient {traj.patient_id}, scenario {traj.scenario}")
    return save_png(fig, path)


def plot_posture_growth(
    curves: dict, path, calibrations: dict | None = None, title: str | None = None
) -> Path:
    """Save a patient's growth curves per posture, perception and discomfort marked.

    Args:
        curves: Posture name -> :class:`~closedloop.neural.GrowthCurve`.
        path: Output PNG path (written atomically).
        calibrations: Posture name -> :class:`~closedloop.patients.calibration.PostureCalibration`,
            whose perception and discomfort points are marked.
        title: Figure title.

    Returns:
        The path written.
    """
    fig = new_figure(8.0, 5.5)
    ax = fig.subplots()
    for posture, curve in curves.items():
        colour = POSTURE_COLOURS[POSTURES.index(posture) % len(POSTURE_COLOURS)]
        ax.plot(
            curve.currents_ma,
            curve.ecap_uv,
            color=colour,
            lw=1.3,
            label=f"{posture} (CSF {curve.csf_mm:.2f} mm)",
        )
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
