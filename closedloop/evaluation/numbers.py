"""Numbers for reading: one formatting of metric values for the terminal, Markdown and HTML.

Units come from the metric's documentation (the ``(unit)`` that ends its entry in
:data:`~closedloop.evaluation.episode_runner.EPISODE_METRICS`), so a metric added there is
shown with its unit everywhere. Fractions (unit ``1``, names ending ``_frac``) are shown in percent;
counts and everything from 1000 up as whole numbers with thousands separators (``2,265``,
never ``2.27e+03``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from closedloop.evaluation.episode_runner import EPISODE_METRICS
from closedloop.evaluation.schema import SCHEMA

LABELS = {
    "time_in_window_frac": "time in window",
    "mad_uv": "mean |ECAP − target|",
    "time_above_discomfort_frac": "time above discomfort",
    "time_below_perception_frac": "time below perception",
    "overstim_events": "overstimulation events",
    "charge_per_pulse_uc": "charge per pulse",
    "device_interventions": "device interventions",
}
"""Readable titles of the leaderboard's columns (others: the name, unit suffix dropped)."""
_UNIT = re.compile(r"\(([^()]*)\)\s*$")


def metric_unit(metric: str) -> str:
    """The unit of a metric or result column (``""`` if it documents none)."""
    m = _UNIT.search(EPISODE_METRICS.get(metric) or SCHEMA.get(metric, ""))
    return m.group(1) if m else ""


def display(metric: str) -> tuple[str, str, float]:
    """``(title, unit shown, scale)`` of a metric: fractions are shown in percent."""
    unit = metric_unit(metric)
    title = LABELS.get(metric) or metric.rsplit("_", 1)[0].replace("_", " ")
    if unit == "1" and metric.endswith("_frac"):
        return title, "%", 100.0
    return title, "/h" if unit == "1/h" else unit, 1.0


def shown_unit(metric: str, diff: bool = False) -> str:
    """The unit a metric is shown in: ``%`` for fractions, ``% points`` for their differences."""
    unit = display(metric)[1]
    return "% points" if unit == "%" and diff else unit


def readable(value: Any, unit: str = "") -> str:
    """A number for reading: 3 significant digits in fixed notation, thousands separated.

    Counts from 100 up and every value from 1000 up are whole numbers (``2,265``, never
    ``2.27e+03``); trailing zeros are dropped; missing or non-finite values are ``–``.
    """
    if value is None or isinstance(value, str):
        return "–" if not value else str(value)
    v = float(value)
    if not math.isfinite(v):
        return "–"
    if abs(v) >= 1000 or (unit == "count" and abs(v) >= 100):
        return f"{v:,.0f}"
    if v == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(v))))
    if digits > 9:
        return f"{v:.2e}"
    text = f"{v:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def scaled(value: Any, metric: str, diff: bool = False) -> str:
    """A metric's value in its display unit (percent for fractions), without the unit."""
    _, unit, scale = display(metric)
    return readable(None if value is None else float(value) * scale, "" if diff else unit)


def with_unit(metric: str, value: Any) -> str:
    """A metric's value followed by its unit (``93.4 %``, ``6.1 µV``, ``2,265``)."""
    if isinstance(value, bool) or (value is not None and not isinstance(value, int | float)):
        return str(value)
    _, unit, _ = display(metric)
    shown = "" if unit in ("1", "count", "") else f" {unit}"
    return scaled(value, metric) + shown
