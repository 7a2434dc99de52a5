"""``closedloop report`` and ``closedloop compare``: rebuild a run's report, compare two runs."""

from __future__ import annotations

import argparse
import json
import sys

from closedloop.cli._common import PROG


def add_parsers(sub) -> None:
    """Add the ``report`` and ``compare`` subcommands."""
    p = sub.add_parser(
        "report",
        help="rebuild the report of a run folder (leaderboard, figures, report.html)",
        description="Rebuild the report of a run folder from every episode it holds "
        "(episodes/*.json, else results.json, else results.csv): results, summary, "
        "leaderboard, report card, figures and the self-contained report.html. "
        "Controllers that cannot be ranked are listed, not dropped silently.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder")
    p.add_argument(
        "--no-plots",
        action="store_true",
        help="keep the PNGs in plots/ as they are (report.html embeds them)",
    )
    p.add_argument(
        "--baseline",
        metavar="NAME",
        help="controller to compare against (default: the suite's, else open-loop)",
    )
    p.set_defaults(run=run_report_cli)
    c = sub.add_parser(
        "compare",
        help="what changed between two run folders",
        description="Controllers, envs, patients and seeds added or removed from RUN_A to "
        "RUN_B, and for each controller and env in both, the metric's mean in "
        "each and their difference, paired over the (patient, seed) episodes "
        "both played.",
    )
    c.add_argument("run_a", metavar="RUN_A", help="the earlier run folder")
    c.add_argument("run_b", metavar="RUN_B", help="the later run folder")
    c.add_argument(
        "--metric", metavar="M", help="metric to compare (default: each env's primary metric)"
    )
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.set_defaults(run=run_compare_cli)


def run_report_cli(args: argparse.Namespace) -> int:
    """Run the ``report`` subcommand."""
    from closedloop.evaluation.reopen import rebuild_report

    report, notes = rebuild_report(args.run_dir, baseline=args.baseline, plots=not args.no_plots)
    print(report.text)
    for note in notes:
        print(f"{PROG} report: {note}", file=sys.stderr)
    print(f"report: {report.paths['report.html']}")
    return 0


def run_compare_cli(args: argparse.Namespace) -> int:
    """Run the ``compare`` subcommand."""
    from closedloop._io import nan_to_none
    from closedloop.evaluation.compare import compare_runs

    doc = compare_runs(args.run_a, args.run_b, args.metric)
    if args.json:
        print(json.dumps(nan_to_none(doc), indent=1, ensure_ascii=False))
    else:
        print(compare_text(doc))
    return 0


def compare_text(doc: dict) -> str:
    """The result of :func:`~closedloop.evaluation.compare.compare_runs` as a readable table."""
    from closedloop.evaluation.numbers import display, readable, shown_unit

    lines = [f"A: {doc['run_a']}", f"B: {doc['run_b']}", ""]
    for key, (a, b) in doc["suite"].items():
        lines.append(f"suite {key}: {a} -> {b}")
    for label in ("controllers", "envs", "patients", "seeds"):
        for how in ("added", "removed"):
            if doc[label][how]:
                lines.append(f"{label} {how}: {', '.join(map(str, doc[label][how]))}")
    for which, pairs in (("A", doc["only_a"]), ("B", doc["only_b"])):
        lines += [f"only in {which}: {c} on {e}" for c, e in pairs]
    if len(lines) == 3:
        lines.append("same controllers, envs, patients and seeds")
    head = [
        "env",
        "controller",
        "metric",
        "mean A",
        "mean B",
        "B - A (paired)",
        "episodes",
        "change",
    ]
    body = []
    for r in doc["cells"]:
        _, unit, scale = display(r["metric"])
        shown = shown_unit(r["metric"], diff=True)

        def num(v, unit=unit, scale=scale):
            return readable(None if v is None else v * scale, unit)

        body.append(
            [
                r["env_id"].split("/")[-1],
                r["controller"],
                f"{r['metric']} ({unit})",
                num(r["mean_a"]),
                num(r["mean_b"]),
                f"{readable(r['diff'] * scale)} {shown}".strip(),
                str(r["n_paired"]),
                r["change"],
            ]
        )
    if body:
        widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
        lines += [
            "",
            *(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in (head, *body)
            ),
        ]
    return "\n".join(lines)
