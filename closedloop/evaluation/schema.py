"""The documented schema of the result files: column -> meaning with unit.

:data:`SCHEMA` (one row per episode, ``results.csv``/``results.json``), :data:`SUMMARY_SCHEMA`
(``summary.csv``/``summary.json``), :data:`RATIO_SCHEMA` and :data:`PAIRED_SCHEMA` (the paired
ranking of :mod:`closedloop.evaluation.ranking`). :mod:`closedloop.evaluation.report` writes
the files; :mod:`closedloop.evaluation.numbers` reads the units here.
"""

from __future__ import annotations

from closedloop.evaluation.episode_runner import EPISODE_METRICS
from closedloop.evaluation.stats import STATISTICS

RESULTS_FORMAT = "closedloop.results/1"
SUMMARY_FORMAT = "closedloop.summary/1"

SCHEMA: dict[str, str] = {
    "episode": "episode key, a hash of the grid cell; names its files in the run folder (text)",
    "controller": "controller label (text)",
    "env_id": "registered Gymnasium id (text)",
    "scenario": "disturbance scenario of the env (text)",
    "patient": "patient id (text)",
    "seed": "seed of env.reset: scenario draws and recording noise (integer)",
    "target_uv": "target ECAP of the episode, from the calibration (µV)",
    "n_steps": "env steps played, warm-up included (count)",
    **EPISODE_METRICS,
    "wall_s": "wall-clock time of the episode, env construction included (s)",
}
"""Episode result column -> meaning with unit (``results.csv``, ``results.json``)."""

SUMMARY_SCHEMA: dict[str, str] = {
    "controller": "controller label (text)",
    "env_id": "registered Gymnasium id (text)",
    "scenario": "disturbance scenario of the env (text)",
    "metric": "the summarised column of SCHEMA (text)",
    "direction": "+1 higher is better, -1 lower is better, 0 neutral (1)",
    "n_patients": "patients in the group (count)",
    "n_episodes": "episodes with a finite value (count)",
    **{
        k: f"{doc} over all episodes (metric's unit)"
        for k, doc in (
            ("mean", "mean"),
            ("median", "median"),
            ("iqm", "interquartile mean (mean of the middle 50 %)"),
        )
    },
    **{
        f"{s}_{end}": f"{word} end of the bootstrap CI of {s} (metric's unit)"
        for s in STATISTICS
        for end, word in (("lo", "lower"), ("hi", "upper"))
    },
    "worst": "worst patient's mean over seeds, in the metric's direction (metric's unit)",
    "worst_patient": "id of that patient (text)",
    "cvar": "mean of the worst ceil(alpha x patients) patient means (metric's unit)",
    "alpha": "CVaR fraction of patients (1)",
}
"""Summary column -> meaning with unit (``summary.csv``, ``summary.json``)."""

RATIO_SCHEMA: dict[str, str] = {
    "controller": "controller label (text)",
    "baseline": "baseline controller label (text)",
    "env_id": "registered Gymnasium id (text)",
    "scenario": "disturbance scenario (text)",
    "metric": "column of SCHEMA (text)",
    "stat": "statistic compared: mean, median or iqm",
    "direction": "+1 higher is better, -1 lower is better (1)",
    "value": "the controller's statistic (metric's unit)",
    "baseline_value": "the baseline's statistic (metric's unit)",
    "ratio": "value / baseline_value (1)",
    "ratio_lo": "lower end of the paired bootstrap CI of the ratio (1)",
    "ratio_hi": "upper end of the paired bootstrap CI of the ratio (1)",
    "better": "the controller beats the baseline in the metric's direction (bool)",
}
"""Baseline-ratio column -> meaning (``summary.json`` under ``ratios``)."""

PAIRED_SCHEMA: dict[str, str] = {
    "env_id": "registered Gymnasium id (text)",
    "scenario": "disturbance scenario (text)",
    "metric": "primary metric of the env, a column of SCHEMA (text)",
    "stat": "statistic of values and differences: mean, median or iqm (text)",
    "direction": "+1 higher is better, -1 lower is better (1)",
    "mcid": "minimal clinically important difference used, NaN if none (metric's unit)",
    "controller": "controller label (text)",
    "position": "place in the sorted order, best first (1-based)",
    "rank": "rank of the controller's group: its leader's position (1-based)",
    "rank_label": "rank as shown: '1=' for a group of several controllers (text)",
    "group": "rank group number, 1 = best (1-based)",
    "leader": "controller leading the group (text)",
    **{
        f"value{e}": f"{w} of the controller's statistic (metric's unit)"
        for e, w in (("", "value"), ("_lo", "CI lower end"), ("_hi", "CI upper end"))
    },
    **{
        f"vs_leader{e}": f"{w} of stat(controller - leader), paired (metric's unit)"
        for e, w in (("", "value"), ("_lo", "CI lower end"), ("_hi", "CI upper end"))
    },
    "baseline": "baseline controller label, empty if none (text)",
    **{
        f"diff{e}": f"{w} of stat(controller - baseline), paired (metric's unit)"
        for e, w in (("", "value"), ("_lo", "CI lower end"), ("_hi", "CI upper end"))
    },
    **{
        f"poi{e}": f"{w} of P(controller better than baseline), rliable's (1)"
        for e, w in (("", "value"), ("_lo", "CI lower end"), ("_hi", "CI upper end"))
    },
    "vs_baseline": "better, worse or tied with the baseline by the ranking rule (text)",
    "n_patients": "patients played (count)",
    "n_episodes": "episodes where controller and baseline are both finite (count)",
}
"""Paired-ranking column -> meaning (``summary.json`` under ``paired``)."""
