"""Fit the fast threshold rule to the stored MRG reference and write its table.

    python benchmarks/fit_fibre_model.py            # writes closedloop/neural/data/fibre_mdf.json

Reads ``closedloop/fidelity/data/mrg_reference.json`` (made by ``benchmarks/mrg_reference.py``),
fits the modified driving function's weight decay and critical value per (diameter, pulse width)
and the strength-duration exponent (``closedloop.fidelity.fit.fit_mdf``), prints the fit errors
and writes the table atomically. Rerun it, then regenerate the cohorts and published results,
whenever the reference changes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from closedloop._io import write_text_atomic
from closedloop.fidelity.fit import fit_mdf

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "closedloop" / "fidelity" / "data" / "mrg_reference.json"
OUT = ROOT / "closedloop" / "neural" / "data" / "fibre_mdf.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    table = fit_mdf(json.loads(args.reference.read_text()))
    fit = table["fit"]
    print(f"driving function alone: max error {100 * fit['direct_max_rel_error']:.2f} %")
    print(
        f"with the strength-duration law (beta {table['sd_exponent']}): max "
        f"{100 * fit['sd_law_max_rel_error']:.2f} %, median "
        f"{100 * fit['sd_law_median_rel_error']:.2f} % over {fit['points']} MRG points"
    )
    write_text_atomic(args.out, json.dumps(table, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
