"""Reopen a run folder: every episode row it holds, what can be ranked, a rebuilt report.

:func:`rows_from_folder` reads the rows back from ``episodes/*.json`` (one record per finished
episode, written by :func:`~closedloop.evaluation.run_grid`), or from ``results.json``, or
from ``results.csv``, so that a report rebuilt from a folder covers every episode in it, also
those added later from Python. :func:`rankable` says which controllers a paired ranking must
leave out (and why) and :func:`rebuild_report` writes the whole report again
(:mod:`closedloop.evaluation.compare` compares two run folders)::

    rows = rows_from_folder("runs/benchmark-quick")
    report, notes = rebuild_report("runs/benchmark-quick")
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError
from closedloop.evaluation.episode_spec import EPISODE_FORMAT, EPISODES_DIR, trajectory_path
from closedloop.evaluation.folder import write_report
from closedloop.evaluation.html import write_html_report
from closedloop.evaluation.ranking import DEFAULT_PRIMARY
from closedloop.evaluation.report import results_doc, write_csv, write_json
from closedloop.evaluation.schema import SCHEMA
from closedloop.evaluation.suite import PRIMARY_METRICS, Suite, read_suite_file
from closedloop.evaluation.summary import groups
from closedloop.evaluation.trace_figures import trace_episodes

META_REBUILT = ("n_resamples", "bootstrap_seed", "alpha", "ranking", "left_out")
"""Meta keys that :func:`~closedloop.evaluation.write_report` or :func:`rankable` recompute."""


def _damaged(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"{path} is not a finished-episode record ({why}); the run folder is "
        "damaged: delete that file (its episode is played again by the next "
        "run), or start afresh"
    )


def _episode_rows(run: Path) -> list[dict[str, Any]]:
    """Rows of every ``closedloop.episode/1`` record in ``run/episodes`` (others ignored)."""
    rows = []
    for path in sorted((run / EPISODES_DIR).glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise _damaged(path, f"{type(exc).__name__}: {exc}") from None
        if not isinstance(doc, dict):
            raise _damaged(path, "not a JSON object")
        if doc.get("format") != EPISODE_FORMAT:
            continue
        row = doc.get("row")
        if not isinstance(row, dict) or not set(SCHEMA) <= set(row):
            raise _damaged(path, "its row lacks the result columns")
        rows.append({k: math.nan if v is None else v for k, v in row.items()})
    return rows


def _is_text(column: str) -> bool:
    """Whether a result column holds text (its unit in SCHEMA is ``text``)."""
    return SCHEMA.get(column, "").endswith("(text)")


def _cell(column: str, text: str) -> Any:
    """A CSV cell back as the value it was written from.

    Text columns of SCHEMA stay text; numbers come back as ``int`` if written as one
    (``500``) and ``float`` otherwise (``500.0``, ``0.25``; empty is NaN). A column outside
    SCHEMA that is not a number stays text.
    """
    if _is_text(column):
        return text
    if text == "":
        return math.nan
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        if column in SCHEMA:
            raise
        return text


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``results.csv``, numbers converted back; ConfigError naming it if damaged."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = [{k: _cell(k, v) for k, v in r.items()} for r in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, ValueError, csv.Error, AttributeError) as exc:
        raise ConfigError(f"{path} is not a results table ({type(exc).__name__}: {exc})") from None
    if rows and not set(SCHEMA) <= set(rows[0]):
        raise ConfigError(
            f"{path} lacks the result columns {', '.join(sorted(set(SCHEMA) - set(rows[0])))}"
        )
    return rows


def _json_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``results.json``; ConfigError naming it if damaged."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        if not all(isinstance(r, dict) and set(SCHEMA) <= set(r) for r in rows):
            raise ValueError("a row lacks the result columns")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a results document ({type(exc).__name__}: {exc})"
        ) from None
    return [{k: math.nan if v is None else v for k, v in r.items()} for r in rows]


def rows_from_folder(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every episode row of a run folder, each episode key once.

    Read from ``episodes/*.json`` if it holds any episode record (sorted controller x env x
    patient x seed, envs in the order of ``suite.json`` if there is one), else from
    ``results.json``, else from ``results.csv`` (in file order; numeric columns converted
    back to numbers as :data:`~closedloop.evaluation.report.SCHEMA` says).

    Args:
        run_dir: The run folder.

    Returns:
        The rows; missing values are NaN.

    Raises:
        ConfigError: If the folder holds no results, or naming a damaged file.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(
            f"run_dir={str(run_dir)!r} is not a folder; valid: a run folder "
            "written by closedloop benchmark or run_grid"
        )
    rows = _episode_rows(run)
    if rows:
        rows.sort(key=_grid_order(run, rows))
    elif (run / "results.json").is_file():
        rows = _json_rows(run / "results.json")
    elif (run / "results.csv").is_file():
        rows = _csv_rows(run / "results.csv")
    if not rows:
        raise ConfigError(
            f"{run} holds no results: no {EPISODES_DIR}/*.json episode records, "
            "results.json or results.csv"
        )
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(str(row["episode"]), row)
    return list(seen.values())


def _grid_order(run: Path, rows: Sequence[Mapping[str, Any]]):
    """Sort key of rows: controller, env, patient, seed.

    Envs and a list of patients go in the order of ``suite.json`` if there is one; a split's
    ids are ordered by name, as the cohorts list them.
    """
    doc: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads((run / "suite.json").read_text(encoding="utf-8"))
    at = {}
    for field, key in (("env_ids", "env_id"), ("patients", "patient")):
        named = doc.get(field) if isinstance(doc, dict) else None
        order = [str(x) for x in named] if isinstance(named, list) else []
        order += sorted({str(r[key]) for r in rows} - set(order))
        at[key] = {x: i for i, x in enumerate(order)}
    return lambda r: (
        r["controller"],
        at["env_id"][r["env_id"]],
        at["patient"][r["patient"]],
        int(r["seed"]),
    )


def rankable(
    rows: Sequence[Mapping[str, Any]], baseline: str | None = None
) -> tuple[list[Mapping[str, Any]], list[dict[str, str]]]:
    """The rows a paired ranking can use, and what it leaves out with the reason.

    Per env, every controller must have played the same (patient, seed) episodes as the
    reference: the baseline, or (without one) the set most controllers played. A controller
    that played others is left out of that env; an env the baseline did not play is left out
    whole. A controller that was not played on an env the others have is listed too (nothing
    is removed for it).

    Args:
        rows: Result rows.
        baseline: Controller label of the baseline, or None.

    Returns:
        ``(kept rows, left out)``: each left-out item a dict ``controller``, ``env_id``,
        ``reason``.
    """
    by = groups(rows)
    envs = list(dict.fromkeys(e for _, e in by))
    names = list(dict.fromkeys(c for c, _ in by))
    left, drop = [], set()
    for env in envs:
        here = [c for c in names if (c, env) in by]
        eps = {c: {(r["patient"], int(r["seed"])) for r in by[(c, env)]} for c in here}
        for c in names:
            if c not in here:
                left.append({"controller": c, "env_id": env, "reason": "not played on this env"})
        if baseline is not None and baseline not in here:
            reason = f"the baseline {baseline} was not played on this env"
            left += [{"controller": c, "env_id": env, "reason": reason} for c in here]
            drop |= {(c, env) for c in here}
            continue
        ref = (
            baseline
            if baseline is not None
            else max(here, key=lambda c: sum(eps[o] == eps[c] for o in here))
        )
        for c in here:
            if eps[c] != eps[ref]:
                miss, extra = len(eps[ref] - eps[c]), len(eps[c] - eps[ref])
                left.append(
                    {
                        "controller": c,
                        "env_id": env,
                        "reason": (
                            f"played other episodes than {ref} ({miss} of its "
                            f"{len(eps[ref])} (patient, seed) missing, {extra} extra); paired "
                            "ranking needs the same"
                        ),
                    }
                )
                drop.add((c, env))
    kept = [r for r in rows if (r["controller"], r["env_id"]) not in drop]
    return kept, left


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    """The ``meta`` of a folder's ``summary.json`` (else ``results.json``); {} if none."""
    for name in ("summary.json", "results.json"):
        try:
            meta = json.loads((Path(run_dir) / name).read_text(encoding="utf-8")).get("meta")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(meta, dict):
            return meta
    return {}


def suite_of(run_dir: str | Path):
    """The :class:`~closedloop.evaluation.suite.Suite` recorded in a run folder, or None."""
    doc = read_suite_file(Path(run_dir))
    return None if doc is None else Suite.from_dict(doc, str(Path(run_dir) / "suite.json"))


def primary_metrics(run_dir: str | Path, env_ids: Sequence[str]) -> dict[str, str]:
    """Env id -> primary metric: the folder's suite, else the built-in defaults."""
    suite = suite_of(run_dir)
    chosen = {**PRIMARY_METRICS, **(dict(suite.primary_metrics) if suite else {})}
    return {e: chosen.get(e, DEFAULT_PRIMARY) for e in env_ids}


def choose_baseline(
    rows: Sequence[Mapping[str, Any]], run_dir: str | Path, baseline: str | None = None
) -> str | None:
    """The baseline: ``baseline`` if given, else the suite's, else open loop (if played)."""
    names = list(dict.fromkeys(r["controller"] for r in rows))
    if baseline is not None:
        if baseline not in names:
            raise ConfigError(
                f"--baseline={baseline!r} was not played in this run folder; "
                f"valid: {', '.join(names)}"
            )
        return baseline
    suite = suite_of(run_dir)
    for name in (suite.baseline if suite else None, "open-loop"):
        if name in names:
            return name
    return None


def rebuild_report(run_dir: str | Path, baseline: str | None = None, plots: bool = True):
    """Write a run folder's report again from every episode row it holds, and its HTML.

    The baseline is ``baseline``, else the suite's, else open loop; the primary metrics are
    the suite's (:func:`primary_metrics`). The meta of the old report (suite, machine) is
    kept; the controllers :func:`rankable` leaves out are stored under ``meta["left_out"]``
    and their rows stay in ``results.json`` and ``results.csv`` (not in the summary, the
    leaderboard, the report card or the figures).
    Trace figures are redrawn only from saved trajectories (an env without any keeps its
    existing ``traces-*.png``).

    Args:
        run_dir: The run folder.
        baseline: Controller label to compare against, or None for the default.
        plots: Redraw the PNGs.

    Returns:
        ``(report, notes)``: the :class:`~closedloop.evaluation.Report` (``paths`` includes
        ``report.html``) and lines saying what was left out or not redrawn.

    Raises:
        ConfigError: If the folder holds no results, a file is damaged, the baseline was not
            played, or nothing can be ranked.
    """
    run = Path(run_dir)
    rows = rows_from_folder(run)
    base = choose_baseline(rows, run, baseline)
    meta = {k: v for k, v in read_meta(run).items() if k not in META_REBUILT}
    report, kept, left = report_rows(run, rows, base, meta, plots)
    notes = [f"left out: {x['controller']} on {x['env_id']}: {x['reason']}" for x in left]
    notes += (
        _trace_notes(kept, report.paired, run)
        if plots
        else ["--no-plots: the figures in plots/ were not redrawn"]
    )
    report.paths["report.html"] = write_html_report(run)
    return report, notes


def report_rows(
    run: Path,
    rows: Sequence[Mapping[str, Any]],
    baseline: str | None,
    meta: Mapping[str, Any],
    plots: bool,
):
    """Write the report of ``rows`` into ``run``: the rankable ones ranked, none dropped.

    The controllers :func:`rankable` leaves out are listed in ``meta["left_out"]`` (and in
    ``report.html``); their rows stay in ``results.json`` and ``results.csv``. The primary
    metrics are the folder's suite's (:func:`primary_metrics`).

    Returns:
        ``(report, kept rows, left out)``.

    Raises:
        ConfigError: If nothing can be ranked (no env has episodes of the baseline).
    """
    kept, left = rankable(rows, baseline)
    if not kept:
        raise ConfigError(f"{run}: no env has episodes of the baseline {baseline}; nothing to rank")
    envs = list(dict.fromkeys(r["env_id"] for r in kept))
    report = write_report(
        kept,
        run,
        baseline=baseline,
        primary=primary_metrics(run, envs),
        plots=plots,
        meta={**meta, "left_out": left},
    )
    if len(kept) < len(rows):
        _keep_all_results(rows, run)
    return report, kept, left


def _keep_all_results(rows: Sequence[Mapping[str, Any]], run: Path) -> None:
    """Rewrite results.json/.csv with every row, the left-out ones too (same meta)."""
    meta = json.loads((run / "results.json").read_text(encoding="utf-8"))["meta"]
    write_json(results_doc(rows, meta), run / "results.json")
    write_csv(rows, run / "results.csv", SCHEMA)


def _trace_notes(
    rows: Sequence[Mapping[str, Any]], paired: Sequence[Mapping[str, Any]], run: Path
) -> list[str]:
    """A line if episodes the trace figures draw have no saved trajectory."""
    need = trace_episodes(rows, paired)
    missing = [r for r in need if not trajectory_path(run, r["episode"]).is_file()]
    if not missing:
        return []
    return [
        f"trace figures: {len(missing)} of the {len(need)} episodes they draw have no saved "
        "trajectory; an env without any keeps its existing traces-*.png"
    ]
