"""Checks of a cohort against the published figures, used to tune the cohort distribution.

:func:`distribution_report` is a tuning entry point: it may read the train and validation
cohorts only (:func:`closedloop.patients.cohort.tuning_session`).
"""

from __future__ import annotations

import numpy as np

from closedloop.patients.calibration import calibrate_many
from closedloop.patients.cohort import load_cohort, tuning_entry_point
from closedloop.patients.cohort_draw import check_count

CHECK_POSTURES = ("supine", "sitting", "standing")


def threshold_agreement_db(records) -> np.ndarray:
    """Perception threshold re ECAP threshold (dB), per patient and posture (NaN if missing)."""
    out = []
    for rec in records:
        for pc in rec.postures:
            ratio = pc.perception_ma / pc.ecap_threshold_ma
            out.append(20.0 * np.log10(ratio) if ratio > 0 else np.nan)
    return np.array(out)


@tuning_entry_point("cohort distribution")
def distribution_report(
    split: str = "train", n: int | None = None, workers: int = 1, progress: bool = False
) -> dict:
    """Summary figures of a cohort next to the published ranges (shared/domain.md).

    Args:
        split: ``train`` or ``validation`` (the test cohort is refused).
        n: Only the first ``n`` patients.
        workers: Parallel processes.
        progress: Show a progress bar.

    Returns:
        A dict of figures: share of sitting ECAP thresholds in 2-8 mA and slopes in 5-50 µV/mA
        (Pilitsis 2021 [C]/[M]); median |perception - ECAP threshold| (dB; Pilitsis: 0.5) and
        the correlation of their logarithms (Pilitsis: r = 0.93); the spread of the ECAP at
        discomfort across postures (Pilitsis: up to 3x); the median target (µV).
    """
    patients = load_cohort(split)[: None if n is None else check_count("n", n)]
    records = calibrate_many(patients, CHECK_POSTURES, workers=workers, progress=progress)
    sit = [r.posture("sitting") for r in records]
    th = np.array([p.ecap_threshold_ma for p in sit])
    slope = np.array([p.slope_uv_per_ma for p in sit])
    db = threshold_agreement_db(records)
    pairs = np.array(
        [(pc.ecap_threshold_ma, pc.perception_ma) for r in records for pc in r.postures]
    )
    ok = np.all(np.isfinite(pairs) & (pairs > 0), axis=1)
    top = np.array([[pc.discomfort_ecap_uv for pc in r.postures] for r in records])
    spread = np.nanmax(top, axis=1) / np.nanmin(top, axis=1)
    return {
        "split": split,
        "n_patients": len(records),
        "threshold_in_2_8_ma_frac": float(np.mean((th >= 2) & (th <= 8))),
        "slope_in_5_50_frac": float(np.mean((slope >= 5) & (slope <= 50))),
        "threshold_sitting_median_ma": float(np.nanmedian(th)),
        "slope_sitting_median_uv_per_ma": float(np.nanmedian(slope)),
        "perception_vs_ecap_median_abs_db": float(np.nanmedian(np.abs(db))),
        "perception_vs_ecap_log_r": float(np.corrcoef(np.log(pairs[ok]).T)[0, 1]),
        "discomfort_ecap_spread_median": float(np.nanmedian(spread)),
        "discomfort_ecap_spread_max": float(np.nanmax(spread)),
        "target_median_uv": float(np.median([r.target_uv for r in records])),
    }
