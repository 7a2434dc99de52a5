"""The comparison table: its rows, the report that holds them, and the text rendering.

A :class:`Row` is one relation with the MRG (or human) value, the fast model's value, the
target and the verdict. :class:`Report` collects the rows with every metric of both models;
:func:`format_table` renders it as text, grouped, with a final "N of M targets met" line and
the list of misses.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

Value = float | tuple | None


@dataclasses.dataclass(frozen=True)
class Row:
    """One compared relation.

    Attributes:
        group: Section of the table (thresholds, slopes, strength-duration, ...).
        relation: What is compared, with its slice (e.g. "distance slope, D 10 µm, 100 µs").
        mrg: The reference value (MRG, or a human figure where the relation says so); None
            when there is no reference value (the fast value then carries the verdict).
        fast: The fast model's value.
        unit: Unit of both values ("1" for dimensionless).
        target: The target as text; empty for a row that only informs.
        met: Whether the target is met; None without a verdict (no target or no data).
        counted: Whether the row counts towards "N of M targets met" (False for the
            alternative of a human/MRG pair that the model does not target).
        note: Extra detail (e.g. the median ratio and the count beyond tolerance).
    """

    group: str
    relation: str
    mrg: Value
    fast: Value
    unit: str
    target: str = ""
    met: bool | None = None
    counted: bool = True
    note: str = ""

    @property
    def status(self) -> str:
        """One of "met", "MISS", "info", "no reference data", or a not-targeted verdict."""
        if not self.target:
            return "info"
        if self.met is None:
            return "no reference data"
        if not self.counted:
            return ("met" if self.met else "miss") + " (not targeted)"
        return "met" if self.met else "MISS"


@dataclasses.dataclass
class Report:
    """The outcome of :func:`closedloop.fidelity.compare.validate`.

    Attributes:
        rows: Every compared relation, in table order.
        mrg: The metrics of the MRG reference.
        fast: The metrics of the fast model.
        reference: Path of the reference file.
        reference_meta: The reference's ``meta`` section (versions, settings).
        results: The raw results of both models (``{"mrg": ..., "fast": ...}``).
        choices: The human-vs-MRG choices (``{"arp": (target, reason), "sfap": ...}``).
        comparison: Point-by-point fast/MRG threshold ratios per grid (median, largest error,
            count beyond tolerance, the ratios).
    """

    rows: list[Row]
    mrg: dict
    fast: dict
    reference: str
    reference_meta: dict = dataclasses.field(default_factory=dict)
    results: dict = dataclasses.field(default_factory=dict)
    choices: dict = dataclasses.field(default_factory=dict)
    comparison: dict = dataclasses.field(default_factory=dict)

    @property
    def scored(self) -> list[Row]:
        """Rows with a target, a verdict, and counted."""
        return [r for r in self.rows if r.target and r.counted and r.met is not None]

    @property
    def n_met(self) -> int:
        """Targets met."""
        return sum(bool(r.met) for r in self.scored)

    @property
    def n_targets(self) -> int:
        """Targets with a verdict (reference data present)."""
        return len(self.scored)

    @property
    def misses(self) -> list[Row]:
        """Counted targets not met."""
        return [r for r in self.scored if not r.met]

    @property
    def no_data(self) -> list[Row]:
        """Targeted rows without reference data."""
        return [r for r in self.rows if r.target and r.counted and r.met is None]

    def summary(self) -> str:
        """The line "N of M targets met" (and how many lack reference data)."""
        text = f"{self.n_met} of {self.n_targets} targets met"
        if self.no_data:
            text += f" ({len(self.no_data)} more without reference data)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Every row and metric as plain JSON-ready data (NaN kept; see ``_io.nan_to_none``)."""
        rows = [{**dataclasses.asdict(r), "status": r.status} for r in self.rows]
        return {
            "summary": self.summary(),
            "n_met": self.n_met,
            "n_targets": self.n_targets,
            "misses": [r.relation for r in self.misses],
            "reference": self.reference,
            "reference_meta": self.reference_meta,
            "choices": self.choices,
            "rows": rows,
            "metrics": {"mrg": self.mrg, "fast": self.fast, "fast_vs_mrg": self.comparison},
            "results": self.results,
        }


def fmt(value: Value) -> str:
    """A value for the table: 3 significant digits, tuples joined by " / ", "—" if missing."""
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return " / ".join(fmt(v) for v in value)
    v = float(value)
    if not math.isfinite(v):
        return "—"
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}"


HEADER = ("relation", "MRG", "fast", "unit", "target", "status")


def format_table(report: Report) -> str:
    """The comparison table as text: grouped rows, the summary line and every miss."""
    cells = [(r.relation, fmt(r.mrg), fmt(r.fast), r.unit, r.target, r.status) for r in report.rows]
    widths = [max([len(h)] + [len(c[k]) for c in cells]) for k, h in enumerate(HEADER)]

    def line(parts) -> str:
        return " | ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip()

    out = [
        f"fast model vs MRG (reference: {report.reference})",
        line(HEADER),
        "-" * (sum(widths) + 3 * (len(widths) - 1)),
    ]
    group = None
    for row, c in zip(report.rows, cells, strict=True):
        if row.group != group:
            group = row.group
            out.append(f"[{group}]")
        out.append(line(c))
        if row.note:
            out.append(" " * 4 + row.note)
    for name, (target, reason) in report.choices.items():
        out.append(f"{name}: the model targets {target} ({reason})")
    out.append(report.summary())
    for r in report.misses:
        unit = "" if r.unit == "1" else f" {r.unit}"
        out.append(
            f"MISS: {r.relation}: MRG {fmt(r.mrg)}, fast {fmt(r.fast)}{unit} (target {r.target})"
        )
    for r in report.no_data:
        out.append(f"no reference data: {r.relation}")
    return "\n".join(out)


def finite(v) -> bool:
    """Whether ``v`` is a finite number."""
    return v is not None and math.isfinite(float(v))


def comparison_row(group, relation, ref, got, unit, tol=None, *, rel=False, counted=True, note=""):
    """A row comparing ``got`` with ``ref``: |got - ref| <= tol (relative if ``rel``).

    Without ``tol`` the row informs; without a finite ``ref`` it has no verdict.
    """
    if tol is None:
        return Row(group, relation, ref, got, unit, note=note)
    if rel:
        target = f"within {100 * tol:g} %"
    else:
        target = f"within {tol:g}" + {"1": "", "%": " points"}.get(unit, f" {unit}")
    if not finite(ref):
        return Row(group, relation, None, got, unit, target, None, counted, note)
    err = abs(float(got) - float(ref)) if finite(got) else math.inf
    if rel:
        err /= abs(float(ref))
    return Row(group, relation, float(ref), got, unit, target, err <= tol + 1e-12, counted, note)
