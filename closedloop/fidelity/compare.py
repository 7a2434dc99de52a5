"""Fast model against MRG: the metrics of issue 17 and :func:`validate`.

Every relation is reduced to numbers by the same function for both models
(:func:`side_metrics` on a reference-shaped document), and each number is compared with its
target (:func:`~closedloop.fidelity.rows.build_rows`; the targets and the lead's choices are in
:mod:`closedloop.fidelity.targets`). The stored MRG results are package data
(``data/mrg_reference.json``); the fast model's side is computed on the reference's axes by
:mod:`closedloop.fidelity.fast`. A section missing from the reference gives rows marked "no
reference data".

Example:
    >>> from closedloop.fidelity.compare import validate
    >>> report = validate()                                   # doctest: +SKIP
    >>> print(report.summary())                               # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from closedloop.fidelity import fast
from closedloop.fidelity import targets as tg
from closedloop.fidelity.loader import REFERENCE_PATH, load_reference
from closedloop.fidelity.metrics import (
    interp,
    loglog_slope,
    recovery_features,
    sfap_exponent,
    strength_duration,
)
from closedloop.fidelity.rows import HELDOUT_LABELS, build_rows, threshold_comparison
from closedloop.fidelity.table import Report, Row

_NULL = float("nan")

__all__ = [
    "HELDOUT_LABELS",
    "REFERENCE_PATH",
    "Report",
    "Row",
    "build_rows",
    "load_reference",
    "loglog_slope",
    "recovery_features",
    "sfap_exponent",
    "side_metrics",
    "strength_duration",
    "threshold_comparison",
    "validate",
]


# --------------------------------------------------------------- the metrics of one model
def _threshold_metrics(sec: dict) -> dict:
    """Distance slopes per (D, PW), diameter slopes per (d, PW), rheobase and chronaxie."""
    th = np.asarray(sec["threshold_ma"], float)
    D, d, pw = (np.asarray(sec[k], float) for k in ("diameter_um", "distance_mm", "pw_us"))
    lo, hi = tg.DISTANCE_SLOPE_RANGE_MM
    near = (d >= lo - 1e-9) & (d <= hi + 1e-9)
    sd = [[strength_duration(pw, th[i, j]) for j in range(d.size)] for i in range(D.size)]
    return {
        "distance_slope": [
            [loglog_slope(d[near], th[i, near, k]) for k in range(pw.size)] for i in range(D.size)
        ],
        "diameter_slope": [
            [loglog_slope(D, th[:, j, k]) for k in range(pw.size)] for j in range(d.size)
        ],
        "rheobase_ma": [[s[0] for s in row] for row in sd],
        "chronaxie_us": [[s[1] for s in row] for row in sd],
    }


def _cv_metrics(sec: dict) -> dict:
    """CV per diameter and its linear fit CV = a D + b."""
    D, cv = np.asarray(sec["diameter_um"], float), np.asarray(sec["cv_m_s"], float)
    ok = np.isfinite(cv)
    a, b = np.polyfit(D[ok], cv[ok], 1) if ok.sum() >= 2 else (_NULL, _NULL)
    return {
        "diameter_um": D.tolist(),
        "cv_m_s": cv.tolist(),
        "fit_slope_m_s_per_um": float(a),
        "fit_intercept_m_s": float(b),
    }


def _latency_metrics(sec: dict) -> dict:
    """Initiation time (ms after pulse onset) at I/I_th in ``targets.LATENCY_RATIOS``."""
    ratios, times = sec["current_ratio"], np.asarray(sec["ap_time_ms"], float)
    return {
        "initiation_ms": [
            [[interp(r, ratios, row) for r in tg.LATENCY_RATIOS] for row in block]
            for block in times
        ],
        "at_ratio": list(tg.LATENCY_RATIOS),
    }


def side_metrics(doc: dict) -> dict:
    """Every metric of one model from its normalised results.

    Args:
        doc: Results in the layout of :func:`closedloop.fidelity.loader.normalise` (the MRG
            reference) and of :mod:`closedloop.fidelity.fast` (the fast model).

    Returns:
        A dict per section (thresholds, cv, recovery, sfap, latency); a section missing
        from ``doc`` is missing here.
    """
    out: dict = {}
    if "thresholds" in doc:
        out["thresholds"] = _threshold_metrics(doc["thresholds"])
    if "cv" in doc:
        out["cv"] = _cv_metrics(doc["cv"])
    if "recovery" in doc:
        sec = doc["recovery"]
        out["recovery"] = recovery_features(
            sec["interval_ms"], sec["threshold_ratio"], sec.get("arp_ms")
        )
        out["recovery_by_diameter"] = [
            {
                "diameter_um": c["diameter_um"],
                **recovery_features(c["interval_ms"], c["threshold_ratio"], c.get("arp_ms")),
            }
            for c in sec.get("by_diameter", [])
        ]
    if "sfap" in doc:
        n1 = np.asarray(doc["sfap"]["n1_uv"], float)
        out["sfap"] = {
            "exponent": [
                sfap_exponent(doc["sfap"]["diameter_um"], n1[:, k]) for k in range(n1.shape[1])
            ]
        }
    if "latency" in doc:
        out["latency"] = _latency_metrics(doc["latency"])
    return out


def validate(reference: str | Path | None = None) -> Report:
    """Compare the fast model with MRG and check every target of issue 17.

    Args:
        reference: An MRG reference JSON file; the stored package data if None.

    Returns:
        The :class:`Report`: one row per relation with both values, target and verdict.

    Raises:
        ConfigError: If a given reference file is missing or malformed.
    """
    ref = load_reference(reference)
    fst = fast.results_like(ref, tg.LATENCY_RATIOS)
    mrg_m, fast_m = side_metrics(ref), side_metrics(fst)
    rows = build_rows(ref, fst, mrg_m, fast_m)
    return Report(
        rows=rows,
        mrg=mrg_m,
        fast=fast_m,
        comparison=threshold_comparison(ref, fst),
        reference=str(reference if reference is not None else REFERENCE_PATH),
        reference_meta=ref.get("meta", {}),
        results={"mrg": ref, "fast": fst},
        choices={
            "absolute refractory period": (tg.ARP_TARGET, tg.ARP_TARGET_REASON),
            "SFAP exponent": (tg.SFAP_TARGET, tg.SFAP_TARGET_REASON),
        },
    )
