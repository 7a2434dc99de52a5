"""report.html, ``closedloop report`` and ``closedloop compare`` on a tiny real run folder."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from closedloop._config import ConfigError
from closedloop.cli import main
from closedloop.evaluation import rows_from_folder, run_grid, write_html_report, write_report
from closedloop.evaluation.html_tables import parse_report_card
from closedloop.evaluation.numbers import readable
from closedloop.evaluation.reopen import rankable

ENV = "closedloop/ECAPClinic-Test-v0"
PATIENTS = ["test-000", "test-001"]
GRID = {
    "env_ids": [ENV],
    "seeds": [0],
    "workers": 1,
    "progress": False,
    "env_overrides": {"episode_s": 20},
}
RAW = (
    "results.json",
    "results.csv",
    "summary.json",
    "summary.csv",
    "leaderboard.md",
    "report_card.md",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Open loop and the clinical loop on two patients, 20-s episodes, with the report."""
    out = tmp_path_factory.mktemp("run")
    rows = run_grid(
        ["open-loop", "clinical-loop"],
        patients=PATIENTS,
        out_dir=out,
        save_trajectories=True,
        **GRID,
    )
    write_report(rows, out, baseline="open-loop")
    write_html_report(out)
    return out


def _copy(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


def _text(path: Path) -> str:
    """report.html without its embedded images."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "IMG", path.read_text(encoding="utf-8"))


def test_report_html_is_self_contained_with_figures_and_links(run):
    page = (run / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*['"]?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "<script" not in page
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) >= 3  # forest, strip, traces
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    text = _text(run / "report.html")
    assert "traces-ECAPClinic-Test-v0" in text and "forest-ECAPClinic-Test-v0" in text
    for name in ("open-loop", "clinical-loop"):
        assert f">{name}</td>" in text
    for name in RAW:
        assert f"href='{name}'" in text
    assert "Machine: not recorded" in text and "Suite: not recorded" in text
    assert (
        text.count("<td class=flag>")
        == (run / "report_card.md").read_text(encoding="utf-8").count("⚠") - 1
    )  # the legend's ⚠ is not a cell


def test_readable_numbers_and_report_card_parsing():
    assert readable(2265.3, "count") == "2,265"
    assert readable(2.5, "count") == "2.5"
    assert readable(12345.6) == "12,346"
    assert readable(0.0000099) == "0.0000099"
    assert readable(-14.139) == "-14.1"
    assert readable(math.nan) == readable(None) == "–"
    legend, cards = parse_report_card(
        "# Card\n\nMeans.\n\n## env/A\n\n### p1\n\n| controller | "
        "m |\n|---|---|\n| a | 2.27e+03 ⚠ |\n| b | 1 |\n"
    )
    assert legend == "Means."
    assert cards == {"env/A": [("p1", ["controller", "m"], [["a", "2.27e+03 ⚠"], ["b", "1"]])]}


def test_rows_from_folder_reads_episodes_then_json_then_csv(run, tmp_path):
    rows = rows_from_folder(run)
    assert len(rows) == 4 and len({r["episode"] for r in rows}) == 4
    folder = _copy(run, tmp_path)
    shutil.rmtree(folder / "episodes")
    from_json = {r["episode"]: r for r in rows_from_folder(folder)}
    (folder / "results.json").unlink()
    from_csv = {r["episode"]: r for r in rows_from_folder(folder)}
    for row in rows:
        for source in (from_json, from_csv):
            other = source[row["episode"]]
            assert set(other) == set(row)
            for k, v in row.items():
                assert type(other[k]) is type(v), k
                assert other[k] == v or (isinstance(v, float) and math.isnan(other[k])), k
    (folder / "results.csv").unlink()
    with pytest.raises(ConfigError, match="holds no results"):
        rows_from_folder(folder)


def test_damaged_episode_file_is_named_and_other_records_ignored(run, tmp_path):
    folder = _copy(run, tmp_path)
    (folder / "episodes" / "zz-other.json").write_text('{"format": "something/1"}')
    assert len(rows_from_folder(folder)) == 4
    bad = sorted((folder / "episodes").glob("*.json"))[0]
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(bad.name)):
        rows_from_folder(folder)
    assert main(["report", str(folder), "--no-plots"]) == 2


def test_report_cli_covers_rows_added_later_and_names_what_it_leaves_out(run, tmp_path, capsys):
    folder = _copy(run, tmp_path)
    run_grid({"p <i>&": "p"}, patients=PATIENTS, out_dir=folder, **GRID)  # escaped in HTML
    run_grid(["pi"], patients=PATIENTS[:1], out_dir=folder, **GRID)
    capsys.readouterr()
    assert main(["report", str(folder), "--no-plots"]) == 0
    out, err = capsys.readouterr()
    assert f"report: {folder / 'report.html'}" in out
    assert f"left out: pi on {ENV}: played other episodes than open-loop" in err
    paired = json.loads((folder / "summary.json").read_text())["paired"]
    assert {p["controller"] for p in paired} == {"open-loop", "clinical-loop", "p <i>&"}
    assert "| p <i>& |" in (folder / "leaderboard.md").read_text()
    text = _text(folder / "report.html")
    assert ">p &lt;i&gt;&amp;</td>" in text and "<i>" not in text
    assert "Left out of the ranking" in text
    assert "pi</td>" in text and "1 of its 2 (patient, seed) missing" in text
    results = json.loads((folder / "results.json").read_text())["rows"]
    assert sorted(r["controller"] for r in results).count("pi") == 1 and len(results) == 7
    shutil.rmtree(folder / "episodes")  # reopened from results.json alone
    assert main(["report", str(folder), "--no-plots"]) == 0
    assert f"left out: pi on {ENV}" in capsys.readouterr().err


def test_rankable_keeps_envs_without_the_controller_and_drops_envs_without_baseline():
    def row(c, env, patient):
        return {"controller": c, "env_id": env, "patient": patient, "seed": 0}

    rows = [row("a", "e1", "x"), row("b", "e1", "x"), row("b", "e2", "x"), row("c", "e1", "y")]
    kept, left = rankable(rows, "a")
    assert kept == rows[:1] + rows[1:2]
    assert {(x["controller"], x["env_id"]) for x in left} == {
        ("a", "e2"),
        ("b", "e2"),
        ("c", "e2"),
        ("c", "e1"),
    }


def test_compare_reports_added_controllers_and_paired_differences(run, tmp_path, capsys):
    later = _copy(run, tmp_path, "later")
    run_grid(["p"], patients=PATIENTS, out_dir=later, **GRID)
    path = next(
        p
        for p in (later / "episodes").glob("*.json")
        if json.loads(p.read_text())["row"]["controller"] == "clinical-loop"
    )
    doc = json.loads(path.read_text())
    doc["row"]["mad_uv"] += 1.0
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["compare", str(run), str(later), "--metric", "mad_uv", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["controllers"] == {"added": ["p"], "removed": []}
    assert got["patients"] == got["seeds"] == {"added": [], "removed": []}
    assert got["only_b"] == [["p", ENV]]
    cells = {c["controller"]: c for c in got["cells"]}
    assert set(cells) == {"open-loop", "clinical-loop"}
    assert cells["open-loop"]["diff"] == 0.0 and cells["open-loop"]["change"] == "same"
    assert cells["clinical-loop"]["diff"] == pytest.approx(0.5)
    assert cells["clinical-loop"]["n_paired"] == 2
    assert cells["clinical-loop"]["change"] == "worse"  # mad_uv: lower is better
    assert main(["compare", str(run), str(later)]) == 0
    table = capsys.readouterr().out
    assert "controllers added: p" in table and "only in B: p on " + ENV in table
    assert main(["compare", str(run), str(later), "--metric", "nope"]) == 2


@pytest.mark.slow
def test_report_html_renders_in_headless_chromium(run, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.is_file():
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            str(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1400,4000",
            (run / "report.html").resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert shot.is_file() and shot.stat().st_size > 50_000
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (4000, 1400)
    assert pixels.std() > 0.05  # not a blank page
    ink = (pixels < 0.9).any(axis=2)
    assert ink[:1000].mean() > 0.01 and ink[1000:].mean() > 0.01  # drawn top to bottom
    assert np.unique(pixels.reshape(-1, 3), axis=0).shape[0] > 100  # figures: many colours
