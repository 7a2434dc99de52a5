"""Is the prone posture reachable within the device's 25.5 mA? (issue 17, test cohort)

    python benchmarks/prone_reachability.py [--split test] [--out FILE]

For every patient of the cohort, at the prone CSF thickness (Holsheimer 1994: +2.2 mm at T11,
+3.4 mm at T12) and 250 µs, 50 Hz, it reports:

* the lowest fibre threshold (mA): where recruitment starts;
* the noise-free ECAP threshold (mA): the soft-knee fit to the true N1-P2;
* the measured ECAP threshold (mA): the same fit to the estimate the device sees (artefact,
  noise and ADC included);
* the perception and discomfort currents (mA) of the programming sweep;

each NaN when not reached by 25.5 mA, and the fraction of patients for which each is reached.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from closedloop._io import write_text_atomic
from closedloop.neural import fibre, geometry, growth_curve
from closedloop.neural.growth import fit_growth
from closedloop.patients.calibration import calibrate
from closedloop.patients.cohort import load_cohort

CURRENTS = np.arange(0.0, 25.51, 0.25)
LIMIT_MA = 25.5


def lowest_fibre_threshold(model, csf_mm: float, pw_us: float) -> float:
    """Smallest fibre threshold (mA) at a CSF thickness, from the tables (nearest grid row)."""
    g = int(np.argmin(np.abs(geometry.csf_grid() - csf_mm)))
    t = model.tables
    th = t.rheo_ma[g].astype(float) + t.sd_q_ma[g].astype(float) * pw_us ** -fibre.sd_exponent()
    return float(th.min())


def patient_row(patient) -> dict:
    model = patient.model()
    csf = patient.csf_mm("prone")
    curve = growth_curve(model, CURRENTS, pw_us=250.0, rate_hz=50.0, csf_mm=csf)
    rec = calibrate(patient, postures=("supine", "prone", "sitting"), model=model)
    pc = rec.posture("prone")
    return {
        "patient": patient.patient_id,
        "level": patient.vertebral_level,
        "csf_mm": csf,
        "supine_ecap_ma": rec.posture("supine").ecap_threshold_ma,
        "fibre_ma": lowest_fibre_threshold(model, csf, 250.0),
        "true_ecap_ma": fit_growth(CURRENTS, curve.ecap_true_uv)[0],
        "measured_ecap_ma": curve.threshold_ma,
        "perception_ma": pc.perception_ma,
        "discomfort_ma": pc.discomfort_ma,
    }


def report(rows: list[dict]) -> str:
    cols = ("fibre_ma", "true_ecap_ma", "measured_ecap_ma", "perception_ma", "discomfort_ma")
    lines = [
        "patient     level  prone CSF mm  supine ECAP mA | " + "  ".join(f"{c:>16}" for c in cols)
    ]
    for r in rows:
        lines.append(
            f"{r['patient']:<11} {r['level']:<5} {r['csf_mm']:12.2f} "
            f"{r['supine_ecap_ma']:15.2f} | " + "  ".join(f"{r[c]:16.2f}" for c in cols)
        )
    n = len(rows)
    lines.append("")
    for c in cols:
        ok = [r[c] for r in rows if np.isfinite(r[c]) and r[c] <= LIMIT_MA]
        med = f"median {np.median(ok):.2f} mA" if ok else ""
        lines.append(
            f"{c:<17} reached by {LIMIT_MA} mA in {len(ok)} of {n} patients "
            f"({100 * len(ok) / n:.0f} %) {med}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    text = report([patient_row(p) for p in load_cohort(args.split)])
    print(text, end="")
    if args.out:
        write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
