"""The evaluation path: play controllers, score the runs, summarise across patients and seeds.

* :mod:`~closedloop.evaluation.episode_runner`: :func:`run_episode` plays one controller through one
  episode, records a :class:`~closedloop.evaluation.trajectory.Trajectory` and scores it after
  warm-up; :mod:`~closedloop.evaluation.batch_runner`: :func:`run_episodes` plays many episodes of
  one controller spec at once through the native vector env, with identical results.
* :mod:`~closedloop.evaluation.grid`: :func:`run_grid` plays controllers x env ids x patients x
  fixed seeds in worker processes, resumably.
* :mod:`~closedloop.evaluation.stats`: IQM, CVaR, worst, bootstrap CIs on arrays.
* :mod:`~closedloop.evaluation.summary`: :func:`summarize` and :func:`compare` on result rows.
* :mod:`~closedloop.evaluation.ranking`: paired differences to a baseline, rliable's
  probability of improvement, rank groups with ties and minimal clinically important
  differences (:data:`MCID`); :mod:`~closedloop.evaluation.rank_figures`: strip and forest
  plots.
* :mod:`~closedloop.evaluation.report` and :mod:`~closedloop.evaluation.folder`: leaderboard,
  per-patient report card, result files with :data:`SCHEMA`, plots (:func:`write_report`);
  :mod:`~closedloop.evaluation.html`: the self-contained ``report.html``
  (:func:`write_html_report`); :mod:`~closedloop.evaluation.reopen`: every row of a run folder
  (:func:`rows_from_folder`), the report rebuilt from it (:func:`rebuild_report`) and two runs
  compared (:func:`compare_runs`).

Example::

    from closedloop.evaluation import run_grid, write_report
    rows = run_grid({"open-loop": "open-loop", "pid": "pid"},
                    ["closedloop/ECAPClinic-Test-v0"], "test", seeds=[0, 1], workers=4,
                    out_dir="runs/demo")
    print(write_report(rows, "runs/demo", baseline="open-loop").text)
"""

from closedloop.evaluation.batch_runner import run_episodes
from closedloop.evaluation.compare import compare_runs
from closedloop.evaluation.episode_runner import (
    DIRECTION,
    EPISODE_METRICS,
    EpisodeResult,
    run_episode,
)
from closedloop.evaluation.episode_spec import EpisodeSpec
from closedloop.evaluation.folder import Report, write_report
from closedloop.evaluation.grid import grid_specs, play_spec, run_grid
from closedloop.evaluation.html import write_html_report
from closedloop.evaluation.paired import probability_of_improvement
from closedloop.evaluation.ranking import (
    MCID,
    paired_differences,
    rank_controllers,
    rank_groups,
)
from closedloop.evaluation.reopen import rebuild_report, rows_from_folder
from closedloop.evaluation.report import (
    LEADERBOARD_METRICS,
    PAIRED_SCHEMA,
    RATIO_SCHEMA,
    SCHEMA,
    SUMMARY_SCHEMA,
    leaderboard,
    leaderboard_markdown,
    leaderboard_text,
    report_card,
)
from closedloop.evaluation.stats import bootstrap_ci, cvar, describe, iqm, paired_ratio, worst
from closedloop.evaluation.summary import compare, summarize

__all__ = [
    "DIRECTION",
    "EPISODE_METRICS",
    "LEADERBOARD_METRICS",
    "MCID",
    "PAIRED_SCHEMA",
    "RATIO_SCHEMA",
    "SCHEMA",
    "SUMMARY_SCHEMA",
    "EpisodeResult",
    "EpisodeSpec",
    "Report",
    "bootstrap_ci",
    "compare",
    "compare_runs",
    "cvar",
    "describe",
    "grid_specs",
    "iqm",
    "leaderboard",
    "leaderboard_markdown",
    "leaderboard_text",
    "paired_differences",
    "paired_ratio",
    "play_spec",
    "probability_of_improvement",
    "rank_controllers",
    "rank_groups",
    "rebuild_report",
    "report_card",
    "rows_from_folder",
    "run_episode",
    "run_episodes",
    "run_grid",
    "summarize",
    "worst",
    "write_html_report",
    "write_report",
]
