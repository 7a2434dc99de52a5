"""Paired ranking: differences to a baseline, probability of improvement, rank groups, figures."""

import json
import math

import numpy as np
import pytest

from closedloop._config import ConfigError
from closedloop.benchmark import Suite, load_suite
from closedloop.evaluation import (
    MCID,
    PAIRED_SCHEMA,
    paired_differences,
    probability_of_improvement,
    rank_controllers,
    rank_groups,
    write_report,
)
from closedloop.evaluation.episode_runner import EPISODE_METRICS
from closedloop.evaluation.rank_figures import plot_forest, plot_strip
from closedloop.evaluation.report import leaderboard, leaderboard_markdown
from closedloop.evaluation.summary import summarize

ENV = "closedloop/ECAPClinic-Test-v0"
FAST = {"n_resamples": 200}
BASE = np.array([[0.40, 0.46], [0.55, 0.50], [0.62, 0.70], [0.31, 0.35], [0.80, 0.74]])
"""Time in window of the baseline: 5 patients x 2 seeds, spread wide across patients."""


def rows_of(controllers, env_id=ENV, mad_of=None):
    """Result rows: controller -> (patients, seeds) time in window (mad_uv = 100 x (1 - tiw))."""
    rows = []
    for name, m in controllers.items():
        for p, s in np.ndindex(m.shape):
            tiw = float(m[p, s])
            rows.append(
                {
                    "controller": name,
                    "env_id": env_id,
                    "scenario": "clinic",
                    "patient": f"p{p}",
                    "seed": s,
                    "time_in_window_frac": tiw,
                    "mad_uv": 100.0 * (1.0 - tiw),
                }
            )
    return rows


def by_name(out):
    return {r["controller"]: r for r in out}


# -- paired differences and probability of improvement --------------------------------------------


def test_paired_difference_is_the_known_shift_with_a_tight_ci():
    shift = np.array([[0.10, 0.12], [0.08, 0.10], [0.10, 0.10], [0.12, 0.08], [0.10, 0.10]])
    rows = rows_of({"open": BASE, "loop": BASE + shift})
    got = by_name(paired_differences(rows, ENV, "time_in_window_frac", "open", **FAST))
    loop = got["loop"]
    assert loop["diff"] == pytest.approx(0.10)  # mean of the hand-written shifts
    assert 0.08 <= loop["diff_lo"] <= 0.10 <= loop["diff_hi"] <= 0.12
    assert loop["vs_baseline"] == "better" and loop["poi"] == 1.0
    assert got["open"]["diff"] == 0.0 and got["open"]["poi"] == 0.5
    mad = by_name(paired_differences(rows, ENV, "mad_uv", "open", **FAST))["loop"]
    assert mad["diff"] == pytest.approx(-10.0) and mad["direction"] == -1  # raw, signed
    assert mad["vs_baseline"] == "better"


def test_a_shift_below_the_mcid_is_tied_even_with_a_ci_excluding_zero():
    rows = rows_of({"open": BASE, "nudge": BASE + 0.02})
    nudge = by_name(paired_differences(rows, ENV, "time_in_window_frac", "open", **FAST))["nudge"]
    assert nudge["diff_lo"] > 0 and nudge["diff"] < MCID["time_in_window_frac"]
    assert nudge["vs_baseline"] == "tied"
    no_mcid = by_name(
        paired_differences(rows, ENV, "time_in_window_frac", "open", mcid={}, **FAST)
    )["nudge"]
    assert no_mcid["vs_baseline"] == "better" and math.isnan(no_mcid["mcid"])


def test_probability_of_improvement_by_hand():
    assert probability_of_improvement(BASE, BASE, **FAST) == {
        "poi": 0.5,
        "poi_lo": 0.5,
        "poi_hi": 0.5,
    }
    assert probability_of_improvement(BASE + 0.2, BASE, **FAST)["poi"] == 1.0
    assert probability_of_improvement(BASE + 0.2, BASE, -1, **FAST)["poi"] == 0.0
    # one patient, seeds x = [1, 3], y = [2, 2]: pairs 1<2, 1<2, 3>2, 3>2 -> 0.5;
    # a second patient x = [2], y = [2] is a tie -> 0.5; x = [5] vs [4] -> 1 (rliable: P(X>Y)
    # per task over all run pairs, ties 0.5, mean over tasks)
    x = np.array([[1.0, 3.0], [2.0, 2.0], [5.0, 5.0]])
    y = np.array([[2.0, 2.0], [2.0, 2.0], [4.0, 4.0]])
    assert probability_of_improvement(x, y, **FAST)["poi"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    mixed = probability_of_improvement(x, y, **FAST)
    assert 0.0 <= mixed["poi_lo"] < mixed["poi"] < mixed["poi_hi"] <= 1.0


def test_probability_of_improvement_is_rliables_formula():
    """rliable.metrics.probability_of_improvement: per task, Mann-Whitney U / (n_x n_y)."""
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(7)
    x = rng.integers(0, 4, (6, 3)).astype(float)  # small integers: many ties
    y = rng.integers(0, 4, (6, 3)).astype(float)
    want = np.mean(
        [
            0.5
            if np.array_equal(a, b)
            else mannwhitneyu(a, b, alternative="greater").statistic / 9.0
            for a, b in zip(x, y, strict=True)
        ]
    )
    assert probability_of_improvement(x, y, **FAST)["poi"] == pytest.approx(want)


def test_mismatched_episodes_are_refused():
    rows = rows_of({"open": BASE, "loop": BASE + 0.1})
    rows = [r for r in rows if not (r["controller"] == "loop" and r["patient"] == "p4")]
    with pytest.raises(
        ConfigError,
        match=r"'open' and 'loop' were not played on the same "
        r"episodes.*2 \(patient, seed\) only for 'open'",
    ):
        paired_differences(rows, ENV, "time_in_window_frac", "open")
    with pytest.raises(ConfigError, match="not played on the same episodes"):
        rank_groups(rows, ENV, "time_in_window_frac")
    with pytest.raises(ConfigError, match="baseline='nobody' has no rows"):
        paired_differences(rows_of({"open": BASE}), ENV, "mad_uv", "nobody")


@pytest.mark.parametrize(
    ("metric", "message"), [("madd", "'madd'.*unknown"), ("n_pulses", "no better direction")]
)
def test_a_metric_that_cannot_rank_is_refused(metric, message):
    with pytest.raises(ConfigError, match=message):
        rank_groups(rows_of({"open": BASE}), ENV, metric)


# -- rank groups -------------------------------------------------------------------------------


def test_identical_controllers_are_tied_and_a_clear_winner_is_alone():
    rows = rows_of({"open": BASE, "copy": BASE.copy(), "best": BASE + 0.2, "almost": BASE + 0.19})
    ranked = rank_groups(rows, ENV, "time_in_window_frac", **FAST)
    assert [r["controller"] for r in ranked] == ["best", "almost", "copy", "open"]
    assert [r["rank_label"] for r in ranked] == ["1=", "1=", "3=", "3="]
    assert [r["leader"] for r in ranked] == ["best", "best", "copy", "copy"]
    assert ranked[1]["vs_leader"] == pytest.approx(-0.01)
    assert ranked[2]["rank"] > ranked[0]["rank"]


def test_better_on_every_episode_by_more_than_the_mcid_is_a_strictly_better_group():
    noise = np.random.default_rng(3).uniform(0.0, 0.05, BASE.shape)
    rows = rows_of({"open": BASE, "loop": BASE + MCID["time_in_window_frac"] + 0.01 + noise})
    ranked = by_name(rank_groups(rows, ENV, "time_in_window_frac", **FAST))
    assert ranked["loop"]["rank_label"] == "1" and ranked["open"]["rank_label"] == "2"
    assert ranked["loop"]["group"] < ranked["open"]["group"]
    # lower is better: mad_uv = 100 (1 - tiw) ranks the same way round
    mad = by_name(rank_groups(rows, ENV, "mad_uv", **FAST))
    assert mad["loop"]["position"] == 1 and mad["open"]["group"] == 2


def test_ranking_is_deterministic_and_covers_the_schema():
    rows = rows_of({"open": BASE, "b": BASE[::-1] + 0.01, "c": BASE + 0.3})
    first = rank_controllers(rows, {ENV: "mad_uv"}, "open", **FAST)
    assert first == rank_controllers(rows, {ENV: "mad_uv"}, "open", **FAST)
    assert all(list(r) == list(PAIRED_SCHEMA) for r in first)
    assert {r["metric"] for r in first} == {"mad_uv"}
    alone = rank_controllers(rows, None, None, **FAST)
    assert alone[0]["baseline"] == "" and math.isnan(alone[0]["diff"])


def test_every_mcid_names_a_ranked_metric():
    assert {
        "time_in_window_frac",
        "mad_uv",
        "time_below_perception_frac",
        "time_above_discomfort_frac",
        "overstim_events_per_hour",
        "charge_per_pulse_uc",
    } <= set(MCID)
    assert set(MCID) <= set(EPISODE_METRICS) and all(v > 0 for v in MCID.values())


# -- leaderboard and files -----------------------------------------------------------------------


def test_leaderboard_shows_ties_differences_and_probability():
    rows = rows_of({"open": BASE, "copy": BASE.copy(), "best": BASE + 0.2})
    paired = rank_controllers(rows, "time_in_window_frac", "open", **FAST)
    summary = summarize(rows, ["time_in_window_frac", "mad_uv"], n_resamples=50)
    board = leaderboard(summary, metrics=["time_in_window_frac", "mad_uv"], ranking=paired)
    assert [(r["rank_label"], r["controller"]) for r in board[ENV]] == [
        ("1", "best"),
        ("2=", "copy"),
        ("2=", "open"),
    ]
    text = leaderboard_markdown(board, ["time_in_window_frac", "mad_uv"])
    assert "| Δ vs open (% points) | P(better than open) |" in text  # fractions shown in %
    assert "| 2= | copy | 54.3 [" in text and "MCID 5 (% points)" in text
    assert "| 1 | best | 74.3 [" in text and "20 [20, 20] | 1 [1, 1]" in text
    assert "| time_in_window_frac (%) | mad_uv (µV) |" in text


def test_report_writes_paired_results_and_non_empty_figures(tmp_path):
    rows = rows_of({"open": BASE, "loop": BASE + 0.1})
    report = write_report(
        rows,
        tmp_path,
        baseline="open",
        primary={ENV: "mad_uv"},
        metrics=["time_in_window_frac", "mad_uv"],
        n_resamples=50,
    )
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["paired_schema"] == PAIRED_SCHEMA and len(doc["paired"]) == 2
    assert doc["paired"][0]["controller"] == "loop" and doc["paired"][0]["metric"] == "mad_uv"
    assert "Δ vs open" in (tmp_path / "leaderboard.txt").read_text()
    names = {f"strip-ECAPClinic-Test-v0-{m}.png" for m in ("time_in_window_frac", "mad_uv")}
    names.add("forest-ECAPClinic-Test-v0-mad_uv.png")
    for name in names:
        png = report.paths[f"plots/{name}"]
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000


def test_figures_refuse_bad_input(tmp_path):
    rows = rows_of({"open": BASE})
    with pytest.raises(ConfigError, match="no rows for controller='x'"):
        plot_strip(rows, ENV, "mad_uv", tmp_path / "a.png", order=["x"])
    with pytest.raises(ConfigError, match="ranked rows of one env, with a baseline"):
        plot_forest(rank_controllers(rows, None, None, **FAST), tmp_path / "b.png")


# -- suites --------------------------------------------------------------------------------------


def test_suite_primary_metrics_round_trip_and_defaults(tmp_path):
    suite = Suite(primary_metrics=(("closedloop/ECAPTracking-Test-v0", "mad_uv"),))
    assert Suite.from_dict(suite.to_dict()) == suite
    assert suite.primary() == {
        "closedloop/ECAPClinic-Test-v0": "mad_uv",
        "closedloop/ECAPTracking-Test-v0": "mad_uv",
        "closedloop/ECAPCoughStorm-Test-v0": "time_in_window_frac",
        "closedloop/ECAPWalking-Test-v0": "time_in_window_frac",
        "closedloop/ECAPSleep-Test-v0": "time_in_window_frac",
        "closedloop/ECAPDrift-Test-v0": "time_in_window_frac",
    }
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "s"\n[primary_metrics]\n'
        '"closedloop/ECAPCoughStorm-Test-v0" = "time_above_discomfort_frac"\n'
    )
    assert load_suite(path).primary()["closedloop/ECAPCoughStorm-Test-v0"] == (
        "time_above_discomfort_frac"
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('"closedloop/ECAPClinic-Test-v0" = "madd"', r"primary_metrics\[.*\]='madd'.*unknown"),
        ('"closedloop/ECAPClinic-Test-v0" = "n_pulses"', "no better direction"),
        ('"closedloop/Nope-v0" = "mad_uv"', "primary_metrics key='closedloop/Nope-v0' is unknown"),
    ],
)
def test_suite_with_an_unknown_primary_metric_or_env_is_refused(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "bad"\n[primary_metrics]\n{table}\n')
    with pytest.raises(ConfigError, match=message):
        load_suite(path)
    with pytest.raises(ConfigError, match="primary_metrics=.*must be a table"):
        Suite.from_dict({"primary_metrics": "mad_uv"})


def test_changing_only_the_primary_metrics_keeps_the_run_folder(tmp_path):
    import dataclasses

    from closedloop.benchmark import SUITE_FILE, _claim_folder

    suite = Suite(name="s")
    _claim_folder(tmp_path, suite, fresh=False)
    record = json.loads((tmp_path / SUITE_FILE).read_text())
    del record["primary_metrics"]  # a run folder from before the field
    (tmp_path / SUITE_FILE).write_text(json.dumps(record))
    _claim_folder(tmp_path, suite, fresh=False)
    _claim_folder(
        tmp_path, dataclasses.replace(suite, primary_metrics=((ENV, "rmse_uv"),)), fresh=False
    )
    with pytest.raises(ConfigError, match="another suite"):
        _claim_folder(tmp_path, dataclasses.replace(suite, seeds=(5,)), fresh=False)
