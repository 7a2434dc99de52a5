"""Leaderboard, per-patient report card and result files with a documented schema.

Everything here is a function of result rows (:func:`closedloop.evaluation.run_grid`) and their
summary (:func:`closedloop.evaluation.summarize`). Files are written atomically. The column
meanings are data, in :mod:`closedloop.evaluation.schema` (:data:`SCHEMA` and the others are
importable from here too).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError
from closedloop._io import nan_to_none, write_text_atomic
from closedloop.evaluation.episode_runner import DIRECTION
from closedloop.evaluation.numbers import readable, scaled, shown_unit
from closedloop.evaluation.schema import (
    PAIRED_SCHEMA,
    RATIO_SCHEMA,
    RESULTS_FORMAT,
    SCHEMA,
    SUMMARY_FORMAT,
    SUMMARY_SCHEMA,
)
from closedloop.evaluation.stats import DEFAULT_ALPHA, STATISTICS, row_statistic
from closedloop.evaluation.summary import groups, score_matrix

LEADERBOARD_METRICS = (
    "time_in_window_frac",
    "mad_uv",
    "time_above_discomfort_frac",
    "overstim_events",
    "time_below_perception_frac",
    "charge_per_pulse_uc",
    "device_interventions",
)
"""Columns of the leaderboard; the first is the default ranking metric."""


def _fmt(value: Any) -> str:
    """A number for reading (:func:`~closedloop.evaluation.numbers.readable`; '-' if missing)."""
    if isinstance(value, str):
        return value
    text = readable(value)
    return "-" if text == "–" else text


def _fmt_metric(value: Any, metric: str, diff: bool = False) -> str:
    """A metric's value in its display unit (percent for fractions; '-' if missing)."""
    text = scaled(value, metric, diff)
    return "-" if text == "–" else text


def _head(metric: str, diff: bool = False) -> str:
    """A column title: the metric and its display unit, e.g. ``time_in_window_frac (%)``."""
    unit = shown_unit(metric, diff)
    return f"{metric} ({unit})" if unit and unit != "1" else metric


def _index(summary: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], Mapping]:
    return {(s["env_id"], s["controller"], s["metric"]): s for s in summary}


def leaderboard(
    summary: Sequence[Mapping[str, Any]],
    primary: str = LEADERBOARD_METRICS[0],
    stat: str = "iqm",
    metrics: Sequence[str] = LEADERBOARD_METRICS,
    ranking: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Controllers per env, best first: in rank groups if ``ranking`` is given.

    Args:
        summary: Output of :func:`~closedloop.evaluation.summarize` covering ``metrics``.
        primary: Ranking metric without ``ranking`` (its direction decides the order).
        stat: ``mean``, ``median`` or ``iqm``, shown with its CI for every metric.
        metrics: Columns.
        ranking: Rows of :func:`closedloop.evaluation.ranking.rank_controllers`; they set the
            order, ``rank`` (the group's rank), ``rank_label`` (``1=`` for ties) and
            ``ranking`` (the paired row) of every env they cover. Without it, or for an env
            they do not cover, controllers are ordered by ``stat`` of ``primary`` and ``rank``
            is the position.

    Returns:
        ``env_id -> rows`` with ``rank``, ``rank_label``, ``controller``, per metric
        ``<metric>``, ``<metric>_lo`` and ``<metric>_hi``, and ``ranking`` if ranked.
    """
    if stat not in STATISTICS:
        raise ConfigError(f"stat={stat!r} is unknown; valid: {', '.join(STATISTICS)}")
    at = _index(summary)
    have = sorted({m for _, _, m in at})
    for metric in (primary, *metrics):
        if metric not in have:
            raise ConfigError(f"metric {metric!r} is not in the summary; valid: {', '.join(have)}")
    out: dict[str, list[dict[str, Any]]] = {}
    for env_id, controller, _ in at:
        out.setdefault(env_id, [])
        if controller in (r["controller"] for r in out[env_id]):
            continue
        row: dict[str, Any] = {"controller": controller}
        for metric in metrics:
            s = at[(env_id, controller, metric)]
            row |= {
                metric: s[stat],
                f"{metric}_lo": s[f"{stat}_lo"],
                f"{metric}_hi": s[f"{stat}_hi"],
            }
        row["_key"] = at[(env_id, controller, primary)][stat]
        out[env_id].append(row)
    sign = DIRECTION[primary] or -1
    paired = {(p["env_id"], p["controller"]): p for p in ranking or ()}
    for env_id, rows in out.items():
        rows.sort(key=lambda r: -sign * r["_key"] if math.isfinite(r["_key"]) else math.inf)
        for rank, r in enumerate(rows, 1):
            r.pop("_key")
            r["rank"], r["rank_label"] = rank, str(rank)
        if all((env_id, r["controller"]) in paired for r in rows):
            for r in rows:
                p = r["ranking"] = paired[(env_id, r["controller"])]
                r["rank"], r["rank_label"] = p["rank"], p["rank_label"]
            rows.sort(key=lambda r: r["ranking"]["position"])
    return out


def _ci(r: Mapping[str, Any], key: str, metric: str | None = None, diff: bool = False) -> str:
    """``value [low, high]`` of ``r[key]``, in ``metric``'s display unit if given."""

    def f(k: str) -> str:
        return _fmt(r[k]) if metric is None else _fmt_metric(r[k], metric, diff)

    return f"{f(key)} [{f(key + '_lo')}, {f(key + '_hi')}]"


def _paired_cells(rows: Sequence[Mapping]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the ranking columns (none if the env is not ranked)."""
    if not rows or "ranking" not in rows[0]:
        return [], [[] for _ in rows]
    p0 = rows[0]["ranking"]
    m = p0["metric"]
    head = [f"{_head(m)}, {p0['stat']}"]
    if p0["baseline"]:
        unit = shown_unit(m, diff=True)
        head += [
            f"Δ vs {p0['baseline']}" + (f" ({unit})" if unit not in ("", "1") else ""),
            f"P(better than {p0['baseline']})",
        ]
    body = [
        [
            _ci(r["ranking"], "value", m),
            *(
                (_ci(r["ranking"], "diff", m, True), _ci(r["ranking"], "poi"))
                if p0["baseline"]
                else ()
            ),
        ]
        for r in rows
    ]
    return head, body


def _cells(
    board: Mapping[str, list[dict]], metrics: Sequence[str]
) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Header and string cells of each env's leaderboard (ranking columns first, if ranked)."""
    out = {}
    for env_id, rows in board.items():
        p_head, p_body = _paired_cells(rows)
        out[env_id] = (
            ["#", "controller", *p_head, *(_head(m) for m in metrics)],
            [
                [r["rank_label"], r["controller"], *pc, *(_ci(r, m, m) for m in metrics)]
                for r, pc in zip(rows, p_body, strict=True)
            ],
        )
    return out


def ranking_note(rows: Sequence[Mapping]) -> str:
    """One line naming an env's primary metric, statistic, direction, MCID and baseline."""
    if not rows or "ranking" not in rows[0]:
        return ""
    p = rows[0]["ranking"]
    better = "higher" if p["direction"] > 0 else "lower"
    mcid = (
        f"MCID {_fmt_metric(p['mcid'], p['metric'], True)} "
        f"({shown_unit(p['metric'], diff=True) or '1'})"
        if math.isfinite(p["mcid"])
        else "no MCID (ties on the CI only)"
    )
    base = f"; Δ and P(better) against {p['baseline']}" if p["baseline"] else ""
    return f"Ranked on the {p['stat']} of {p['metric']} ({better} is better), paired; {mcid}{base}."


def _md_table(head: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def leaderboard_markdown(
    board: Mapping[str, list[dict]],
    metrics: Sequence[str] = LEADERBOARD_METRICS,
    stat: str = "iqm",
    scenarios: Mapping | None = None,
) -> str:
    """The leaderboard as Markdown: one table per env, cells ``stat [CI low, CI high]``."""
    parts = [
        f"Cells: {stat} across patients and seeds [95 % bootstrap CI], in the unit of "
        "each column (fractions in %; the schema in results.json has every unit).\n"
    ]
    if any("ranking" in rows[0] for rows in board.values() if rows):
        parts.append(RANKING_LEGEND)
    for env_id, (head, body) in _cells(board, metrics).items():
        scen = f" (scenario {scenarios[env_id]})" if scenarios and env_id in scenarios else ""
        note = ranking_note(board[env_id])
        parts.append(
            f"## {env_id}{scen}\n\n{note + chr(10) * 2 if note else ''}{_md_table(head, body)}\n"
        )
    return "\n".join(parts)


RANKING_LEGEND = (
    "Ranking (docs/ranking.md): controllers are sorted by the primary statistic; each joins the "
    "group of the leader above it (shown '1=', '3=': the leader's place) unless it is worse "
    "than that leader by at least the MCID with the paired 95 % CI excluding 0. The first "
    "ranking columns: the primary statistic [95 % CI], the paired difference controller − "
    "baseline over the same patients and seeds [CI], and the probability of improvement over "
    "the baseline (rliable's; 0.5 = no difference) [CI].\n"
)
"""Legend of the ranked leaderboard."""


def leaderboard_text(
    board: Mapping[str, list[dict]], metrics: Sequence[str] = LEADERBOARD_METRICS, stat: str = "iqm"
) -> str:
    """The leaderboard as aligned plain text for the terminal."""
    parts = []
    for env_id, (head, body) in _cells(board, metrics).items():
        widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]
        line = "  ".join
        parts.append(f"{env_id}  ({stat} [95 % CI])")
        if note := ranking_note(board[env_id]):
            parts.append(note)
        parts.append(line(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        parts += [line(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
        parts.append("")
    return "\n".join(parts)


def ratios_markdown(ratios: Sequence[Mapping[str, Any]]) -> str:
    """Ratios to the baseline as a Markdown table."""
    if not ratios:
        return ""
    head = ["env", "controller", "metric", "stat", "ratio [95 % CI]", "better"]
    body = [
        [
            r["env_id"],
            r["controller"],
            r["metric"],
            r["stat"],
            f"{_fmt(r['ratio'])} [{_fmt(r['ratio_lo'])}, {_fmt(r['ratio_hi'])}]",
            "yes" if r["better"] else "no",
        ]
        for r in ratios
    ]
    return f"## Ratio to {ratios[0]['baseline']}\n\n{_md_table(head, body)}\n"


def report_card(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] = LEADERBOARD_METRICS,
    alpha: float = DEFAULT_ALPHA,
) -> str:
    """Per-patient report card (Markdown): per env and patient, each controller's key metrics.

    Values are means over seeds. A cell is flagged ``⚠`` when the patient is among that
    controller's worst ``ceil(alpha x patients)`` patients on that metric (its CVaR tail) and
    strictly worse than the controller's median patient.
    """
    flagged, means, order = {}, {}, {}
    for (controller, env_id), group in groups(rows).items():
        order.setdefault(env_id, []).append(controller)
        for metric in metrics:
            m, patients, _ = score_matrix(group, metric)
            for pid, value, bad in zip(patients, *_tail_flags(m, metric, alpha), strict=True):
                means[(env_id, pid, controller, metric)] = value
                flagged[(env_id, pid, controller, metric)] = bad
    parts = [
        f"# Per-patient report card\n\nMeans over seeds, in the unit of each column "
        "(fractions in %). ⚠: among the controller's worst "
        f"{alpha:.0%} of patients on that metric, and worse than its median patient.\n"
    ]
    for env_id, controllers in order.items():
        parts.append(f"## {env_id}\n")
        pids = dict.fromkeys(p for e, p, _, _ in means if e == env_id)
        for pid in pids:
            body = [
                [
                    c,
                    *(
                        _fmt_metric(means[(env_id, pid, c, m)], m)
                        + (" ⚠" if flagged[(env_id, pid, c, m)] else "")
                        for m in metrics
                    ),
                ]
                for c in controllers
                if (env_id, pid, c, metrics[0]) in means
            ]
            head = ["controller", *(_head(m) for m in metrics)]
            parts.append(f"### {pid}\n\n{_md_table(head, body)}\n")
    return "\n".join(parts)


def _tail_flags(m, metric: str, alpha: float) -> tuple[list[float], list[bool]]:
    """Per-patient means of a score matrix and whether each is in the worst-alpha tail."""
    import numpy as np

    per = row_statistic(m, "mean")
    direction = DIRECTION[metric]
    bad = np.zeros(per.size, bool)
    ok = np.flatnonzero(np.isfinite(per))
    if direction and ok.size:
        k = math.ceil(alpha * ok.size - 1e-9)
        order = ok[np.argsort(direction * per[ok], kind="stable")]
        bad[order[:k]] = True
        bad &= direction * (per - np.median(per[ok])) < 0  # ties with the median: no flag
    return [float(v) for v in per], [bool(b) for b in bad]


def write_csv(
    rows: Sequence[Mapping[str, Any]], path: str | Path, schema: Mapping[str, str] = SCHEMA
) -> Path:
    """Write rows as CSV (atomically): the schema's columns first, then any others; NaN empty."""
    columns = list(schema) + sorted({k for r in rows for k in r} - set(schema))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
                for k, v in row.items()
            }
        )
    return write_text_atomic(path, buf.getvalue())


def write_json(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write a JSON document atomically (NaN as null)."""
    return write_text_atomic(
        path, json.dumps(nan_to_none(dict(doc)), indent=1, ensure_ascii=False) + "\n"
    )


def results_doc(
    rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``results.json`` document: format, schema, free-form meta and the rows."""
    return {
        "format": RESULTS_FORMAT,
        "schema": SCHEMA,
        "meta": dict(meta or {}),
        "rows": list(rows),
    }


def summary_doc(
    summary: Sequence[Mapping[str, Any]],
    ratios: Sequence[Mapping[str, Any]] = (),
    meta: Mapping[str, Any] | None = None,
    paired: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The ``summary.json`` document: schemas, meta, summary, baseline ratios, paired ranking."""
    return {
        "format": SUMMARY_FORMAT,
        "schema": SUMMARY_SCHEMA,
        "ratio_schema": RATIO_SCHEMA,
        "paired_schema": PAIRED_SCHEMA,
        "meta": dict(meta or {}),
        "summary": list(summary),
        "ratios": list(ratios),
        "paired": list(paired),
    }
