"""``render_mode="rgb_array"``: the recent ECAP trace, target and window, and the last sweep."""

from __future__ import annotations

import numpy as np

WIDTH_IN, HEIGHT_IN, DPI = 6.4, 4.8, 80


def draw(env) -> np.ndarray:
    """Draw ``env``'s recent history into an RGB array of shape (384, 512, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax_e, ax_w = fig.subplots(2, 1, height_ratios=(2.0, 1.0))
    buf = np.array(env._render_buf) if env._render_buf else np.zeros((0, 4))
    cal = env.calibration
    ref = cal.reference
    ax_e.axhspan(
        ref.perception_ecap_uv,
        ref.discomfort_ecap_uv,
        color="tab:green",
        alpha=0.15,
        label="window (calibration posture)",
    )
    ax_e.axhline(env.target_uv, color="black", ls="--", lw=1.0, label="target")
    if buf.size:
        ax_e.plot(buf[:, 0], buf[:, 1], color="0.6", lw=0.8, label="measured")
        ax_e.plot(buf[:, 0], buf[:, 2], color="tab:blue", lw=1.2, label="true")
    ax_e.set_xlabel("time (s)")
    ax_e.set_ylabel("ECAP (µV)")
    ax_e.legend(loc="upper left", fontsize=7)
    ax_e.set_title(f"{env.patient.patient_id}: current {env._current:.2f} mA", fontsize=9)
    if env._wave is not None:
        t = np.arange(env._wave.size) * 1e3 / env.patient.params.recording.fs_hz
        ax_w.plot(t, env._wave, color="tab:purple", lw=0.8)
    ax_w.set_xlabel("time after pulse (ms)")
    ax_w.set_ylabel("sweep (µV)")
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
