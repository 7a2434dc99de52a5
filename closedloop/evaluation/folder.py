"""Write the report of an evaluation run into its run folder.

:func:`write_report` is what ``closedloop benchmark`` does after :func:`run_grid`::

    rows = run_grid(controllers, env_ids, "test", seeds, workers=4, out_dir=run)
    report = write_report(rows, run, baseline="open-loop")
    print(report.text)

Run folder layout (every file written atomically)::

    episodes/<key>.json        one finished episode each (resume state, see run_grid)
    trajectories/<key>.npz     recorded runs, if run_grid saved them
    results.json, results.csv  one row per episode, columns of SCHEMA
    summary.json, summary.csv  statistics per controller, env and metric (SUMMARY_SCHEMA),
                               summary.json also holds the ratios to the baseline (RATIO_SCHEMA)
                               and the paired ranking (PAIRED_SCHEMA, under "paired")
    leaderboard.md, .txt       controllers per env in rank groups (paired differences, ties
                               shown as ties, probability of improvement, MCID), and the
                               baseline ratios
    report_card.md             per-patient report card
    plots/*.png                per-controller figures; strip-<env>-<metric>.png (every
                               controller, one dot per patient) and forest-<env>-<metric>.png
                               (paired differences to the baseline, primary metric)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from closedloop._io import write_text_atomic
from closedloop.evaluation.figures import plot_controller
from closedloop.evaluation.rank_figures import plot_ranking
from closedloop.evaluation.ranking import rank_controllers
from closedloop.evaluation.report import (
    LEADERBOARD_METRICS,
    SCHEMA,
    SUMMARY_SCHEMA,
    leaderboard,
    leaderboard_markdown,
    leaderboard_text,
    ratios_markdown,
    report_card,
    results_doc,
    summary_doc,
    write_csv,
    write_json,
)
from closedloop.evaluation.stats import DEFAULT_ALPHA, DEFAULT_RESAMPLES
from closedloop.evaluation.summary import RATIO_METRICS, compare, summarize
from closedloop.evaluation.trace_figures import plot_top_traces


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`write_report` produced.

    Attributes:
        summary: Rows of :func:`~closedloop.evaluation.summarize`.
        ratios: Rows of :func:`~closedloop.evaluation.compare` (empty without a baseline).
        board: The leaderboard, ``env_id -> ranked rows``.
        text: The leaderboard as plain text for the terminal.
        paths: File label -> path written.
        paired: Rows of :func:`~closedloop.evaluation.ranking.rank_controllers`
            (:data:`~closedloop.evaluation.report.PAIRED_SCHEMA`).
    """

    summary: list[dict[str, Any]]
    ratios: list[dict[str, Any]]
    board: dict[str, list[dict[str, Any]]]
    text: str
    paths: dict[str, Path]
    paired: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def write_report(
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    baseline: str | None = None,
    primary: str | Mapping[str, str] = LEADERBOARD_METRICS[0],
    stat: str = "iqm",
    metrics: Sequence[str] = LEADERBOARD_METRICS,
    rank_stat: str = "mean",
    alpha: float = DEFAULT_ALPHA,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    plots: bool = True,
    meta: Mapping[str, Any] | None = None,
) -> Report:
    """Summarise ``rows`` and write the result files, leaderboard, report card and plots.

    Args:
        rows: Result rows of :func:`~closedloop.evaluation.run_grid`.
        out_dir: Run folder (created).
        baseline: Controller label to compare against (e.g. open loop); no ratios, paired
            differences or probabilities of improvement if None.
        primary: Ranking metric: one for every env, or ``env_id -> metric`` (envs not in it:
            :data:`~closedloop.evaluation.ranking.DEFAULT_PRIMARY`).
        stat: Statistic of the leaderboard's metric columns: ``mean``, ``median`` or ``iqm``.
        metrics: Leaderboard and report-card columns.
        rank_stat: Statistic of the paired ranking (:mod:`closedloop.evaluation.ranking`).
        alpha: CVaR fraction of patients.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.
        plots: Write the PNGs (per controller, strip and forest plots, top-controller traces).
        meta: Free-form run description stored in the JSON files (machine, command, ...).

    Returns:
        The :class:`Report`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    summary = summarize(rows, alpha=alpha, n_resamples=n_resamples, seed=seed)
    ratios = (
        []
        if baseline is None
        else compare(rows, baseline, RATIO_METRICS, n_resamples=n_resamples, seed=seed)
    )
    paired = rank_controllers(
        rows, primary, baseline, stat=rank_stat, n_resamples=n_resamples, seed=seed
    )
    first = primary if isinstance(primary, str) else LEADERBOARD_METRICS[0]
    board = leaderboard(summary, first, stat, metrics, ranking=paired)
    scenarios = {r["env_id"]: r["scenario"] for r in rows}
    meta = {
        "n_resamples": n_resamples,
        "bootstrap_seed": seed,
        "alpha": alpha,
        "ranking": {
            p["env_id"]: f"rank groups on the paired {rank_stat} of {p['metric']}" for p in paired
        },
        **dict(meta or {}),
    }
    text = leaderboard_text(board, metrics, stat)
    paths = {
        "results.json": write_json(results_doc(rows, meta), out / "results.json"),
        "results.csv": write_csv(rows, out / "results.csv", SCHEMA),
        "summary.json": write_json(
            summary_doc(summary, ratios, meta, paired), out / "summary.json"
        ),
        "summary.csv": write_csv(summary, out / "summary.csv", SUMMARY_SCHEMA),
        "leaderboard.md": _write_md(
            out / "leaderboard.md",
            "# Leaderboard\n\n"
            + leaderboard_markdown(board, metrics, stat, scenarios)
            + "\n"
            + ratios_markdown(ratios),
        ),
        "leaderboard.txt": _write_md(out / "leaderboard.txt", text),
        "report_card.md": _write_md(out / "report_card.md", report_card(rows, metrics, alpha)),
    }
    if plots:
        cache: dict = {}
        paths |= _plots(rows, out, first, cache)
        paths |= {f"plots/{p.name}": p for p in plot_ranking(rows, paired, out / "plots", metrics)}
        paths |= {
            f"plots/{p.name}": p
            for p in plot_top_traces(rows, paired, out, out / "plots", cache=cache)
        }
    return Report(summary, ratios, board, text, paths, paired)


def _write_md(path: Path, text: str) -> Path:
    return write_text_atomic(path, text.rstrip() + "\n")


def _plots(
    rows: Sequence[Mapping[str, Any]], out: Path, metric: str, cache: dict
) -> dict[str, Path]:
    """Per-controller PNGs in ``out/plots`` (the window measured once per trajectory)."""
    paths = {}
    for controller in dict.fromkeys(r["controller"] for r in rows):
        for path in plot_controller(rows, controller, out / "plots", out, metric, cache=cache):
            paths[f"plots/{path.name}"] = path
    return paths
