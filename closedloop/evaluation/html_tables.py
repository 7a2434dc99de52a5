"""The tables of ``report.html`` as escaped HTML strings: leaderboard, report card, key-value."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from closedloop.evaluation.numbers import display, readable, scaled, shown_unit
from closedloop.evaluation.report import SCHEMA


def escape(text: Any) -> str:
    """``text`` as HTML-escaped text (quotes too)."""
    return html.escape(str(text), quote=True)


def with_ci(row: Mapping[str, Any], key: str, metric: str | None) -> str:
    """``value`` with its CI beneath (``metric`` None: a probability, shown as is)."""

    def fmt(k):
        return (
            readable(row.get(k)) if metric is None else scaled(row.get(k), metric, key != "value")
        )

    return f"{fmt(key)}<span class=ci>[{fmt(key + '_lo')}, {fmt(key + '_hi')}]</span>"


def header_cell(metric: str, extra: str = "", unit_suffix: str = "") -> str:
    """A ``<th>`` for ``metric``: its title (or ``extra``), unit, and its schema text on hover."""
    title, unit = display(metric)[0], shown_unit(metric, bool(unit_suffix))
    return (
        f"<th title='{escape(metric)}: {escape(SCHEMA.get(metric, ''))}'>{escape(extra or title)}"
        f"<span class=unit>{escape(unit)}</span></th>"
    )


def board_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> str:
    """One env's leaderboard: rank groups shaded, ties as ``1=``, CIs under the values."""
    ranked = bool(rows) and "ranking" in rows[0]
    p0 = rows[0]["ranking"] if ranked else {}
    base = p0.get("baseline") or ""
    head = ["<th>#</th><th class=l>controller</th>"]
    if ranked:
        head.append(header_cell(p0["metric"], f"{display(p0['metric'])[0]} ({p0['stat']})"))
        if base:
            head += [
                header_cell(p0["metric"], f"Δ vs {base}", "diff"),
                f"<th>P(better than {escape(base)})<span class=unit>0.5 = same</span></th>",
                f"<th>vs {escape(base)}</th>",
            ]
    head += [header_cell(m) for m in metrics]
    body, last = [], None
    for r in rows:
        p = r.get("ranking", {})
        group = p.get("group", r["rank"])
        cls = f"g{group % 2}" + (" top" if last is not None and group != last else "")
        cls += " base" if r["controller"] == base else ""
        last = group
        cells = [
            f"<td>{escape(r['rank_label'])}</td><td class='l name'>{escape(r['controller'])}</td>"
        ]
        if ranked:
            cells.append(f"<td>{with_ci(p, 'value', p['metric'])}</td>")
            if base:
                verdict = p.get("vs_baseline", "")
                cells += [
                    f"<td>{with_ci(p, 'diff', p['metric'])}</td>",
                    f"<td>{with_ci(p, 'poi', None)}</td>",
                    f"<td class='l {escape(verdict)}'>{escape(verdict)}</td>",
                ]
        cells += [f"<td>{with_ci(r, m, m)}</td>" for m in metrics]
        body.append(f"<tr class='{cls}'>{''.join(cells)}</tr>")
    return (
        f"<div class=wrap><table class=board><thead><tr>{''.join(head)}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def parse_report_card(text: str) -> tuple[str, dict[str, list[tuple[str, list, list]]]]:
    """``(legend, env -> [(patient, header, rows)])`` of a ``report_card.md``."""
    legend, env, patient, out = [], None, None, {}
    for line in text.splitlines():
        if line.startswith("## "):
            env, patient = line[3:].strip(), None
            out[env] = []
        elif line.startswith("### ") and env is not None:
            patient = line[4:].strip()
            out[env].append((patient, [], []))
        elif line.startswith("|") and patient is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            _, head, rows = out[env][-1]
            if all(set(c) <= {"-", ":"} for c in cells):
                continue
            if head:
                rows.append(cells)
            else:
                head.extend(cells)
        elif env is None and line.strip() and not line.startswith("#"):
            legend.append(line.strip())
    return " ".join(legend), out


def card_cell(text: str) -> str:
    """A report-card cell as it is (its numbers are already in display units), ⚠ highlighted."""
    flag = "⚠" in text
    raw = text.replace("⚠", "").strip()
    shown = "–" if raw in ("", "-") else raw
    return f"<td class=flag>{escape(shown)} ⚠</td>" if flag else f"<td>{escape(shown)}</td>"


def card_table(tables: Sequence[tuple[str, list, list]]) -> str:
    """One env's report card: a patient column spanning its controllers' rows."""
    if not tables:
        return ""
    metrics = [h.split(" (")[0] for h in tables[0][1][1:]]  # "mad_uv (µV)" -> "mad_uv"
    head = "<th class=l>patient</th><th class=l>controller</th>" + "".join(
        header_cell(m) for m in metrics
    )
    body = []
    for k, (patient, _, rows) in enumerate(tables):
        for i, cells in enumerate(rows):
            first = f"<td class=l rowspan={len(rows)}>{escape(patient)}</td>" if i == 0 else ""
            body.append(
                f"<tr class='g{k % 2}{' top' if i == 0 else ''}'>{first}"
                f"<td class=l>{escape(cells[0])}</td>"
                + "".join(card_cell(c) for c in cells[1:])
                + "</tr>"
            )
    return (
        f"<div class=wrap><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
        "</tbody></table></div>"
    )


def kv_table(items: Mapping[str, Any]) -> str:
    """A two-column table of ``items`` (key, plain value)."""
    rows = "".join(
        f"<tr><th class=l>{escape(k)}</th><td class=l>{escape(plain(v))}</td></tr>"
        for k, v in items.items()
    )
    return f"<table>{rows}</table>"


def plain(value: Any) -> str:
    """``value`` as plain text: lists and dicts joined, empty ones as ``(none)``."""
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k} = {v}" for k, v in value.items()) or "(none)"
    return str(value)
