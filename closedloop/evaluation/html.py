"""A self-contained ``report.html`` of a run folder (no network: figures embedded as PNG).

:func:`write_html_report` reads what :func:`~closedloop.evaluation.write_report` wrote into a run
folder (``summary.json``, ``report_card.md``, ``plots/*.png``, and ``suite.json`` if the
benchmark recorded one) and writes ``report.html`` beside them::

    report = write_report(rows, run, baseline="open-loop")
    write_html_report(run)        # run/report.html

It holds the suite and the machine; per env the leaderboard in rank groups (ties marked), the
comparison figures (forest and strip plots), the traces of representative patients and the
per-patient report card; and relative links to the raw files. Every text is escaped.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError
from closedloop._io import write_text_atomic
from closedloop.evaluation.figures import slug
from closedloop.evaluation.html_tables import (
    board_table,
    card_table,
    escape,
    kv_table,
    parse_report_card,
)
from closedloop.evaluation.numbers import display, scaled, shown_unit
from closedloop.evaluation.report import (
    LEADERBOARD_METRICS,
    RANKING_LEGEND,
    leaderboard,
)

HTML_FILE = "report.html"
LEADERBOARD_STAT = "iqm"
"""Statistic of the leaderboard's metric columns (write_report's default)."""
RAW_FILES = (
    "results.json",
    "results.csv",
    "summary.json",
    "summary.csv",
    "leaderboard.md",
    "leaderboard.txt",
    "report_card.md",
    "suite.json",
)
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0 auto;
max-width:1400px;padding:0 24px 48px}
h1{font-size:26px;margin:24px 0 4px}h2{font-size:21px;margin:36px 0 8px;padding-top:8px;
border-top:2px solid #ccd}h3{font-size:16px;margin:20px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d8d8e0;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#eef0f6;font-weight:600;text-align:center}
td.l,th.l{text-align:left}td.name{white-space:nowrap}.wrap{overflow-x:auto;max-width:100%}
.ci{display:block;color:#777;font-size:11px;white-space:nowrap}
.unit{display:block;font-weight:400;color:#666;font-size:11px}
tr.g1 td{background:#fff}tr.g0 td{background:#f5f7fb}tr.top td{border-top:2px solid #99a}
.base td.name{font-style:italic}.better{color:#1a7a2e}.worse{color:#b42318}
td.flag{background:#fde8e6 !important}.note{color:#555;max-width:1000px}
.warn{background:#fff4e0;border:1px solid #e0b060;padding:6px 12px;max-width:1000px}
img{max-width:min(100%,1200px);height:auto;border:1px solid #eee;margin:4px 0}
.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.figs figure{margin:0;
flex:1 1 560px;max-width:100%}figcaption{font-size:12px;color:#555}
nav ul{margin:4px 0}nav li{margin:2px 0}code{font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:0 40px;align-items:flex-start}.cards h2{border:0;
font-size:17px;margin:14px 0 4px;padding:0}.cards td{max-width:480px}
.cards section{flex:1 1 0;min-width:380px}
details summary{cursor:pointer;color:#2a4d9b;margin:6px 0}
"""


def _load(run: Path) -> dict[str, Any]:
    """summary.json's summary, paired rows and meta (None -> NaN); ConfigError if absent."""
    path = run / "summary.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        summary = [{k: math.nan if v is None else v for k, v in s.items()} for s in doc["summary"]]
        paired = [
            {k: math.nan if v is None else v for k, v in p.items()} for p in doc.get("paired", [])
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{path} is not a run summary ({type(exc).__name__}: {exc}); write "
            "the report first (closedloop report RUN_DIR)"
        ) from None
    suite = None
    if (run / "suite.json").is_file():
        try:
            suite = json.loads((run / "suite.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            suite = None
    return {"summary": summary, "paired": paired, "meta": doc.get("meta") or {}, "suite": suite}


def _board(data: Mapping[str, Any]) -> tuple[dict[str, list[dict]], list[str]]:
    """The leaderboard (report.leaderboard on the summary and the paired ranking)."""
    have = {s["metric"] for s in data["summary"]}
    metrics = [m for m in LEADERBOARD_METRICS if m in have]
    if not metrics:
        raise ConfigError(
            f"summary.json holds none of the leaderboard metrics ({', '.join(LEADERBOARD_METRICS)})"
        )
    board = leaderboard(
        data["summary"], metrics[0], LEADERBOARD_STAT, metrics, ranking=data["paired"] or None
    )
    return board, metrics


def _ranking_note(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows or "ranking" not in rows[0]:
        return (
            "<p class=note>Not ranked (no paired ranking in summary.json): ordered by the "
            "statistic of the first metric.</p>"
        )
    p = rows[0]["ranking"]
    title, unit = display(p["metric"])[0], shown_unit(p["metric"], diff=True)
    better = "higher" if p["direction"] > 0 else "lower"
    mcid = (
        f"MCID {scaled(p['mcid'], p['metric'], True)} {unit}"
        if isinstance(p["mcid"], float | int) and math.isfinite(p["mcid"])
        else "no MCID (ties on the CI only)"
    )
    base = f"; Δ and P(better) against {p['baseline']}" if p["baseline"] else ""
    return (
        f"<p class=note>Ranked on the paired {escape(p['stat'])} of <b>{escape(title)}</b> "
        f"(<code>{escape(p['metric'])}</code>, {better} is better) over "
        f"{escape(p['n_patients'])} patients; {escape(mcid)}{escape(base)}. Metric columns: "
        f"{LEADERBOARD_STAT} across patients and seeds, 95 % bootstrap CI beneath.</p>"
    )


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f"<figure><img alt='{escape(caption)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _figures(run: Path, env_id: str, metric: str | None) -> tuple[str, str]:
    """The comparison figures (forest, strip plots) and the traces of one env, as HTML."""
    plots, env = run / "plots", slug(env_id.split("/")[-1])
    strips = sorted(plots.glob(f"strip-{env}-*.png"))
    main = [
        p
        for p in [plots / f"forest-{env}-{metric}.png", plots / f"strip-{env}-{metric}.png"]
        if metric and p.is_file()
    ]
    rest = [p for p in strips if p not in main]
    figs = (
        "".join(_img(p, p.stem) for p in main)
        or "<p class=note>No comparison figure in plots/ (drawn without --no-plots).</p>"
    )
    more = "".join(_img(p, p.stem) for p in rest)
    figs = f"<div class=figs>{figs}</div>" + (
        f"<details><summary>strip plots of the other metrics ({len(rest)})</summary>"
        f"<div class=figs>{more}</div></details>"
        if rest
        else ""
    )
    trace = plots / f"traces-{env}.png"
    traces = (
        f"<div class=figs>{_img(trace, trace.stem)}</div>"
        if trace.is_file()
        else "<p class=note>No trace figure: the run kept no trajectories of these episodes.</p>"
    )
    return figs, traces


def _front(run: Path, data: Mapping[str, Any], board: Mapping[str, list]) -> list[str]:
    """Suite, machine, raw files and left-out controllers."""
    meta, suite = data["meta"], data["suite"] or data["meta"].get("suite")
    played = {
        "controllers": sorted({r["controller"] for rows in board.values() for r in rows}),
        "envs": len(board),
        "patients per env": sorted({int(s["n_patients"]) for s in data["summary"]}),
        "episodes": sum(
            int(s["n_episodes"])
            for s in data["summary"]
            if s["metric"] == data["summary"][0]["metric"]
        ),
    }
    machine = meta.get("machine")
    if machine:
        machine = {**machine, **{k: meta[k] for k in ("workers", "ray", "ray_cpus") if k in meta}}
    files = " · ".join(
        f"<a href='{escape(n)}'>{escape(n)}</a>" for n in RAW_FILES if (run / n).is_file()
    )
    parts = [
        "<div class=cards><section><h2 id=suite>Suite</h2>",
        kv_table(suite) if suite else "<p>Suite: not recorded.</p>",
        "</section><section><h2>Played</h2>",
        kv_table(played),
        "<h2 id=machine>Machine</h2>",
        kv_table(machine) if machine else "<p>Machine: not recorded.</p>",
        f"<h2 id=files>Raw files</h2><p>{files or 'none'}</p></section></div>",
        f"<h2 id=reading>Reading the leaderboards</h2><p class=note>{escape(RANKING_LEGEND)} "
        "Shaded bands are rank groups; a thick line starts the next group.</p>",
    ]
    left = meta.get("left_out") or []
    if left:
        rows = "".join(
            f"<tr><td class=l>{escape(x.get('controller'))}</td><td class=l>"
            f"{escape(x.get('env_id'))}</td><td class=l>{escape(x.get('reason'))}</td></tr>"
            for x in left
        )
        parts.append(
            "<h2 id=left-out>Left out of the ranking</h2><div class=warn><table><tr>"
            "<th class=l>controller</th><th class=l>env</th><th class=l>why</th>"
            f"</tr>{rows}</table></div>"
        )
    return parts


def html_report(run_dir: str | Path) -> str:
    """The text of ``report.html`` for a run folder (see the module docstring)."""
    run = Path(run_dir)
    data = _load(run)
    board, metrics = _board(data)
    card = run / "report_card.md"
    legend, cards = (
        parse_report_card(card.read_text(encoding="utf-8")) if card.is_file() else ("", {})
    )
    ids = {e: "env-" + slug(e.split("/")[-1]).lower() for e in board}
    name = (data["suite"] or {}).get("name") or run.name
    toc = "".join(
        f"<li><a href='#{ids[e]}'>{escape(e)}</a>: <a href='#{ids[e]}-board'>"
        f"leaderboard</a> · <a href='#{ids[e]}-figs'>figures</a> · <a href="
        f"'#{ids[e]}-traces'>traces</a> · <a href='#{ids[e]}-card'>report card</a>"
        "</li>"
        for e in board
    )
    extra = "<li><a href='#left-out'>left out</a></li>" if data["meta"].get("left_out") else ""
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Benchmark "
        f"{escape(name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Benchmark report: {escape(name)}</h1><p class=note>Run folder "
        f"<code>{escape(run.resolve().name)}</code>.</p>",
        "<nav><b>Contents</b><ul><li><a href='#suite'>suite</a> · <a href='#machine'>"
        f"machine</a> · <a href='#files'>raw files</a> · <a href='#reading'>reading the "
        f"leaderboards</a></li>{extra}{toc}</ul></nav>",
        *_front(run, data, board),
    ]
    for env_id, rows in board.items():
        parts += _env_section(
            run,
            env_id,
            rows,
            metrics,
            ids[env_id],
            legend,
            cards.get(env_id, []),
            data["meta"].get("left_out") or [],
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _env_section(
    run: Path,
    env_id: str,
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    anchor: str,
    legend: str,
    card: Sequence[tuple[str, list, list]],
    left: Sequence[Mapping],
) -> list[str]:
    """The HTML of one env: leaderboard, figures, traces, report card."""
    p = rows[0].get("ranking", {}) if rows else {}
    scen = f" (scenario {p['scenario']})" if p.get("scenario") else ""
    figs, traces = _figures(run, env_id, p.get("metric"))
    mine = [x for x in left if x.get("env_id") == env_id]
    gone = (
        "<p class=warn>Left out here: "
        + "; ".join(f"{escape(x.get('controller'))}: {escape(x.get('reason'))}" for x in mine)
        + "</p>"
        if mine
        else ""
    )
    closed = "" if len(card) <= 6 else " (click to open)"
    return [
        f"<h2 id={anchor}>{escape(env_id)}{escape(scen)}</h2>",
        f"<h3 id={anchor}-board>Leaderboard</h3>",
        _ranking_note(rows),
        board_table(rows, metrics),
        gone,
        f"<h3 id={anchor}-figs>Comparison figures</h3>",
        figs,
        f"<h3 id={anchor}-traces>Traces of representative patients</h3>",
        traces,
        f"<h3 id={anchor}-card>Per-patient report card</h3>",
        f"<details{'' if closed else ' open'}><summary>{len(card)} patients{closed}"
        f"</summary><p class=note>{escape(legend)}</p>{card_table(card)}</details>"
        if card
        else "<p class=note>No report card (report_card.md absent).</p>",
    ]


def write_html_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` (atomically) from the report files in the folder.

    Args:
        run_dir: A run folder holding ``summary.json`` (written by
            :func:`~closedloop.evaluation.write_report`).

    Returns:
        The path of ``report.html``.

    Raises:
        ConfigError: If the folder holds no readable ``summary.json``.
    """
    return write_text_atomic(Path(run_dir) / HTML_FILE, html_report(run_dir))
