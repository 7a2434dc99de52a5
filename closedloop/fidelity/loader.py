"""Reading the stored MRG reference, tolerant of missing sections and key spellings.

:func:`load_reference` returns the reference in the layout that
:func:`closedloop.fidelity.compare.side_metrics` reads, the layout
:mod:`closedloop.fidelity.fast` writes for the fast model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from closedloop._config import ConfigError

REFERENCE_PATH = Path(__file__).resolve().parent / "data" / "mrg_reference.json"
"""The stored MRG results (made by ``benchmarks/mrg_reference.py``)."""


def load_reference(path: str | Path | None = None) -> dict:
    """Read an MRG reference file and normalise it (:func:`normalise`).

    Args:
        path: The JSON file; the stored package data if None.

    Returns:
        The normalised reference (empty if the stored file does not exist yet).

    Raises:
        ConfigError: If a given file does not exist or is not a JSON object.
    """
    if path is None and not REFERENCE_PATH.exists():
        return {}
    file = Path(path) if path is not None else REFERENCE_PATH
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"reference={str(file)!r} does not exist; valid: an MRG reference "
            "JSON file (see closedloop/fidelity/mrg_reference.py)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"reference={str(file)!r} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"reference={str(file)!r} must hold a JSON object")
    return normalise(raw, f"reference={str(file)!r}")


def _first(sec: dict, *names):
    """The value of the first key of ``names`` present in ``sec`` (None if none)."""
    return next((sec[n] for n in names if n in sec and sec[n] is not None), None)


def normalise(raw: dict, where: str = "reference") -> dict:
    """Map a reference document onto the layout :func:`side_metrics` reads.

    Tolerant of missing sections (their rows then say "no reference data") and of a few key
    spellings; ``meta`` and ``convergence`` are passed through.

    Raises:
        ConfigError: If a section is present but malformed, or no section is present.
    """
    out = {k: raw[k] for k in ("meta", "convergence") if isinstance(raw.get(k), dict)}
    found = 0
    for name, norm in _NORMALISERS.items():
        sec = raw.get(name)
        if sec is None:
            continue
        why = ""
        try:
            got = norm(sec) if isinstance(sec, (dict, list)) else None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            got, why = None, f" ({type(exc).__name__}: {exc})"
        if got is None:
            raise ConfigError(
                f"{where}: section {name!r} is malformed{why}; valid: the layout "
                "written by closedloop/fidelity/mrg_reference.py"
            )
        out[name] = got
        found += 1
    if not found:
        raise ConfigError(
            f"{where} holds none of the sections {', '.join(_NORMALISERS)}; "
            "valid: an MRG reference from closedloop/fidelity/mrg_reference.py"
        )
    return out


AXIS_RANGES = {
    "diameter_um": (2.0, 16.0),
    "distance_mm": (0.01, 100.0),
    "radial_mm": (0.01, 100.0),
    "pw_us": (1.0, 10_000.0),
    "interval_ms": (0.01, 10_000.0),
    "current_ratio": (1.0, 100.0),
}
"""Valid range of each axis (MRG-interpolation diameters 2-16 µm; the fast model outside its
ranges is not compared)."""


def _axis(sec: dict, name: str) -> list[float]:
    """A non-empty list of finite numbers inside :data:`AXIS_RANGES` (ValueError otherwise)."""
    values = np.asarray(sec[name], float)
    lo, hi = AXIS_RANGES[name]
    if (
        values.ndim != 1
        or values.size == 0
        or not np.all(np.isfinite(values) & (values >= lo) & (values <= hi))
    ):
        raise ValueError(f"{name} must be a list of numbers in [{lo:g}, {hi:g}]")
    return values.tolist()


def _norm_grid(sec: dict) -> dict | None:
    """A threshold grid with ``threshold_ma[D][d][pw]`` of the axes' shape, positive."""
    D, d, pw = (_axis(sec, k) for k in ("diameter_um", "distance_mm", "pw_us"))
    th = np.asarray(sec["threshold_ma"], float)
    if th.shape != (len(D), len(d), len(pw)) or not np.all(th > 0):
        return None
    return {
        "diameter_um": D,
        "distance_mm": d,
        "pw_us": pw,
        "offset_internodes": float(sec.get("offset_internodes", 0.0)),
        "threshold_ma": th.tolist(),
    }


def _norm_cv(sec: dict) -> dict | None:
    """``{"diameter_um", "cv_m_s"}`` from the reference's CV section (dt → 0 values)."""
    D = _axis(sec, "diameter_um")
    cv = np.asarray(_first(sec, "cv_m_s_dt0", "cv_dt0_m_s"), float)
    return {"diameter_um": D, "cv_m_s": cv.tolist()} if cv.shape == (len(D),) else None


def _norm_curve(curve: dict) -> dict | None:
    """One recovery curve: ``interval_ms``, ``threshold_ratio`` and ``arp_ms``.

    ``arp_ms`` is the midpoint of ``arp_bracket_ms`` (the reference script's interval
    bisection) when present.
    """
    x, y = _axis(curve, "interval_ms"), curve["threshold_ratio"]
    if len(y) != len(x) or not all(v is None or float(v) > 0 for v in y) or x != sorted(x):
        return None
    bracket = curve.get("arp_bracket_ms")
    return {
        "interval_ms": x,
        "threshold_ratio": y,
        "diameter_um": float(curve.get("diameter_um", 10.0)),
        "arp_ms": None if bracket is None else 0.5 * (bracket[0] + bracket[1]),
    }


def _norm_recovery(sec: dict) -> dict | None:
    """The 10 µm recovery curve (or the first), and every curve under ``by_diameter``."""
    curves = _first(sec, "curves", "per_diameter")
    curves = (
        [_norm_curve(c) for c in curves]
        if isinstance(curves, list) and curves
        else [_norm_curve(sec)]
    )
    if any(c is None for c in curves):
        return None
    ten = [c for c in curves if abs(c["diameter_um"] - 10.0) < 1e-6]
    return {
        **(ten or curves)[0],
        "pw_us": float(sec.get("pw_us", 100.0)),
        "max_test_ratio": float(sec.get("max_test_ratio", 10.0)),
        "by_diameter": curves,
    }


def _norm_sfap(sec: dict) -> dict | None:
    """``{"diameter_um", "radial_mm", "n1_uv"[D][r]}`` from the reference's SFAP section."""
    D, r = _axis(sec, "diameter_um"), _axis(sec, "radial_mm")
    n1 = np.abs(np.asarray(sec["n1_uv"], float)).reshape(len(D), len(r))
    return {"diameter_um": D, "radial_mm": r, "n1_uv": n1.tolist()}


def _norm_latency(sec: dict) -> dict | None:
    """``ap_time_ms[D][pw][ratio]`` at the initiation node, from the latency section."""
    D, pw, ratios = (_axis(sec, k) for k in ("diameter_um", "pw_us", "current_ratio"))
    near = np.asarray(_first(sec, "ap_time_centre_ms", "ap_time_ms"), float)
    near = near.reshape(len(D), len(pw), len(ratios))
    far = sec.get("ap_time_far_ms")
    return {
        "diameter_um": D,
        "pw_us": pw,
        "current_ratio": ratios,
        "ap_time_ms": near.tolist(),
        "ap_time_far_ms": far,
    }


HELDOUT_CONFIGURATIONS = ("point", "tripolar")
"""Source configurations of the held-out points (``mrg_protocols.source_set``)."""


def _norm_heldout(sec: list) -> dict | None:
    """Held-out points (a list of dicts) as columns; None unless every point is valid.

    Columns: ``diameter_um``, ``distance_mm``, ``pw_us``, ``offset_internodes`` (in [0, 1)),
    ``configuration`` (one of :data:`HELDOUT_CONFIGURATIONS`) and ``threshold_ma`` (> 0).
    """
    if not isinstance(sec, list) or not sec or not all(isinstance(p, dict) for p in sec):
        return None
    cols = {k: _axis({k: [p[k] for p in sec]}, k) for k in ("diameter_um", "distance_mm", "pw_us")}
    off = np.asarray([p.get("offset_internodes", 0.0) for p in sec], float)
    th = np.asarray([_first(p, "threshold_ma") for p in sec], float)
    kinds = [p.get("configuration", "point") for p in sec]
    if not (
        np.all((off >= 0.0) & (off < 1.0))
        and np.all(th > 0)
        and np.all(np.isfinite(th))
        and all(k in HELDOUT_CONFIGURATIONS for k in kinds)
    ):
        return None
    return {
        **cols,
        "offset_internodes": off.tolist(),
        "configuration": kinds,
        "threshold_ma": th.tolist(),
    }


_NORMALISERS = {
    "thresholds": _norm_grid,
    "thresholds_offset": _norm_grid,
    "thresholds_heldout": _norm_heldout,
    "cv": _norm_cv,
    "recovery": _norm_recovery,
    "sfap": _norm_sfap,
    "latency": _norm_latency,
}
