"""Saving figures: PNG, atomically, from a bare Figure (no pyplot, no display needed)."""

from __future__ import annotations

from pathlib import Path

from closedloop._io import write_atomic

DPI = 120


def save_png(fig, path) -> Path:
    """Save ``fig`` as PNG to ``path`` atomically; the directory must exist."""
    return write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI), binary=True)


def new_figure(width_in: float, height_in: float, **kwargs):
    """A bare matplotlib Figure with constrained layout (matplotlib imported lazily)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained", **kwargs)
