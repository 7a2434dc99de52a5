"""Figures of the neural response model (matplotlib, imported lazily, Agg canvas).

The figures are drawn on a bare :class:`matplotlib.figure.Figure`, never through ``pyplot``, so
saving one neither needs a display nor changes the backend of an interactive session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from closedloop.neural.growth import GrowthCurve, soft_knee
from closedloop.neural.params import RecordingParams
from closedloop.plots._save import save_png

SWEEP_COLOURS = ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown", "tab:olive")


def default_waveform_currents(curve: GrowthCurve) -> list[float]:
    """About three levels from below threshold to the top of the sweep (mA).

    Args:
        curve: The growth curve.

    Returns:
        Ascending, distinct currents taken from ``curve.currents_ma``.
    """
    cur = curve.currents_ma
    th = curve.threshold_ma
    wanted = (
        (0.75 * th, 1.5 * th, cur[-1])
        if 0.0 < th < cur[-1]
        else (cur[0], 0.5 * (cur[0] + cur[-1]), cur[-1])
    )
    return sorted({float(cur[i]) for i in nearest_rows(cur, wanted)})


def nearest_rows(currents_ma: np.ndarray, wanted_ma) -> list[int]:
    """Indices of the levels nearest to each wanted current, without repeats, in order."""
    rows: list[int] = []
    for w in wanted_ma:
        i = int(np.argmin(np.abs(np.asarray(currents_ma) - w)))
        if i not in rows:
            rows.append(i)
    return rows


def plot_growth_curve(
    curve: GrowthCurve,
    path,
    sample_times_ms=None,
    title=None,
    *,
    waveform_currents_ma=None,
    window_ms=None,
) -> Path:
    """Save a two-panel PNG: the growth curve with its fit, and recorded sweeps.

    Args:
        curve: A growth curve; the right panel needs ``growth_curve(..., waveforms=True)``
            (without sweeps it says so instead).
        path: Output PNG path; written atomically.
        sample_times_ms: Time of each sweep sample (ms); by default from the default
            sampling rate.
        title: Figure title.
        waveform_currents_ma: Currents (mA) whose sweeps are shown (the nearest levels);
            default :func:`default_waveform_currents`.
        window_ms: (start, end) of the ECAP estimator window (ms), shaded if given.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.0, 4.8), layout="constrained")
    ax_g, ax_w = fig.subplots(1, 2)
    wanted = (
        default_waveform_currents(curve) if waveform_currents_ma is None else (waveform_currents_ma)
    )
    rows = nearest_rows(curve.currents_ma, wanted)
    _draw_growth(ax_g, curve, rows)
    _draw_sweeps(ax_w, curve, rows, sample_times_ms, window_ms)
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def _draw_growth(ax, curve: GrowthCurve, rows: list[int]) -> None:
    """Left panel: ECAP against current, true ECAP, soft-knee fit and threshold."""
    i = curve.currents_ma
    ax.errorbar(
        i,
        curve.ecap_uv,
        yerr=curve.ecap_sd_uv,
        fmt="o",
        ms=4,
        capsize=2,
        color="black",
        label="estimated ECAP (mean ± sd)",
    )
    ax.plot(
        i, curve.ecap_true_uv, "-", color="tab:green", lw=1.5, label="true ECAP (noise-free N1-P2)"
    )
    fine = np.linspace(i[0], i[-1], 400)
    fit = soft_knee(fine, curve.threshold_ma, curve.slope_uv_per_ma, curve.knee_ma)
    ax.plot(
        fine,
        fit,
        "--",
        color="tab:gray",
        lw=1.5,
        label=f"soft-knee fit: {curve.slope_uv_per_ma:.1f} µV/mA",
    )
    ax.axvline(
        curve.threshold_ma,
        color="tab:red",
        ls=":",
        lw=1.5,
        label=f"threshold {curve.threshold_ma:.2f} mA",
    )
    for k, r in enumerate(rows):
        ax.plot(
            i[r],
            curve.ecap_uv[r],
            "s",
            ms=9,
            mfc="none",
            mew=2,
            color=SWEEP_COLOURS[k % len(SWEEP_COLOURS)],
            label="levels whose sweeps are shown" if k == 0 else None,
        )
    top = np.nanmax(np.r_[curve.ecap_uv + curve.ecap_sd_uv, curve.ecap_true_uv])
    ax.set_ylim(min(0.0, np.nanmin(curve.ecap_uv)) - 0.03 * top, 1.08 * top)
    ax.set_xlabel("current (mA)")
    ax.set_ylabel("ECAP amplitude (µV)")
    ax.set_title(
        f"Growth curve ({curve.pw_us:g} µs, {curve.rate_hz:g} Hz, CSF {curve.csf_mm:g} mm)"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def _draw_sweeps(ax, curve: GrowthCurve, rows, sample_times_ms, window_ms) -> None:
    """Right panel: one recorded sweep per chosen level, the estimator window shaded."""
    ax.set_xlabel("time after pulse onset (ms)")
    ax.set_ylabel("recorded signal (µV)")
    ax.set_title("Recorded sweeps (last pulse of each level)")
    ax.grid(alpha=0.3)
    if curve.waveforms_uv is None:
        ax.text(
            0.5,
            0.5,
            "no sweeps stored\n(growth_curve(..., waveforms=True))",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        return
    wave = curve.waveforms_uv
    t = (
        np.arange(wave.shape[1]) * 1e3 / RecordingParams().fs_hz
        if sample_times_ms is None
        else np.asarray(sample_times_ms)
    )
    for k, r in enumerate(rows):
        ax.plot(
            t,
            wave[r],
            lw=1.2,
            color=SWEEP_COLOURS[k % len(SWEEP_COLOURS)],
            label=f"{curve.currents_ma[r]:g} mA",
        )
    shown = wave[rows][:, t >= window_ms[0]] if window_ms else wave[rows]
    if window_ms:
        ax.axvspan(*window_ms, color="gold", alpha=0.2, label="ECAP estimator window")
        ax.axvspan(
            t[0], window_ms[0], color="0.85", alpha=0.6, label="stimulus + blanking (clipped)"
        )
    lo, hi = float(shown.min()), float(shown.max())
    pad = 0.1 * max(hi - lo, 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(t[0], t[-1])
    ax.legend(loc="upper right", fontsize=8)
