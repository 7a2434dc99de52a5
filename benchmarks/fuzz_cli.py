"""Fuzz cases of the command line: one bad option value per case, for every subcommand.

A case runs ``closedloop.cli.main(argv)`` in-process. Exit status 2 (argparse's usage error or
a ``ConfigError`` turned into status 2) is a refusal; status 0 means the bad value was accepted,
any other status or exception is a failure. Each subcommand starts from a cheap, valid command
line (tiny budgets, a new temporary ``--out``) and replaces one option by a bad value; the real
work (episodes, training, trials, long pulse trains) is guarded by :func:`fuzz_inputs.guard`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import shlex
from pathlib import Path
from typing import Any

from fuzz_inputs import Case
from fuzz_values import TEXT
from hypothesis import strategies as st

RUNS = itertools.count()
"""Numbers of the temporary folders of CLI cases (each case gets a new one)."""

NEG = st.integers(max_value=-1).map(str)
NONPOS = st.integers(max_value=0).map(str)
NOT_FINITE = st.sampled_from(["nan", "inf", "-inf"])
NOT_INT = st.sampled_from(["abc", "2.5", "", "1e3"])
COMMA_INTS = st.sampled_from(["a", "-1", "", ",", "0,0", "1.5", "0,-1", "0,,x"])

BAD = {
    "benchmark": (
        ["--quick", "--no-plots", "--no-progress", "--workers", "1", "--out", "{out}"],
        {
            "--controllers": st.one_of(st.sampled_from(["", ",", " , ", "open-loop,nope"]), TEXT),
            "--envs": st.one_of(
                st.sampled_from(["CartPole-v1", "", ",", "closedloop/ECAPTracking-v0,CartPole-v1"]),
                TEXT,
            ),
            "--patients": st.one_of(NONPOS, NOT_INT),
            "--seeds": COMMA_INTS,
            "--workers": st.one_of(NONPOS, NOT_INT),
            "--suite": st.sampled_from(
                [
                    "{tmp}/missing.toml",
                    "{tmp}",
                    "{file:seeds = = 1}",
                    "{file:seeds = [-1]}",
                    "{file:env_ids = ['CartPole-v1']}",
                    "{file:zz = 1}",
                    "{file:env_overrides = 'abc'}",
                ]
            ),
        },
    ),
    "tune": (
        ["pid", "--out", "{out}/pid.toml", "--workers", "1", "--budget", "2", "--patients", "1"],
        {
            "--budget": st.one_of(NONPOS, NOT_INT),
            "--patients": st.one_of(NONPOS, NOT_INT),
            "--split": st.one_of(st.sampled_from(["test", "", "TRAIN"]), TEXT),
            "--seeds": COMMA_INTS,
            "--workers": st.one_of(NONPOS, NOT_INT),
            "--out": st.sampled_from(["{tmp}/missing/x.toml", "{tmp}"]),
        },
    ),
    "train": (
        ["--steps", "64", "--n-envs", "1", "--out", "{out}", "--no-progress", "--no-tensorboard"],
        {
            "--agent": st.one_of(TEXT, st.sampled_from(["{tmp}/missing.toml", "{file:name = 5}"])),
            "--env": st.one_of(st.sampled_from(["CartPole-v1", "closedloop/Nope-v0", ""]), TEXT),
            "--steps": st.one_of(NONPOS, NOT_INT),
            "--seed": st.one_of(NEG, NOT_INT),
            "--n-envs": st.one_of(NONPOS, NOT_INT),
            "--set": st.sampled_from(
                [
                    "learning_rate=-1",
                    "n_steps=0",
                    "batch_size=abc",
                    "zz=1",
                    "gamma=2",
                    "noequals",
                    "=1",
                    "policy_kwargs=abc",
                    "learning_rate=nan",
                    "n_epochs=0",
                    "learning_rate=[1]",
                    "n_steps=2.5",
                ]
            ),
            "--env-kw": st.sampled_from(
                [
                    "rate_hz=-1",
                    "zz=1",
                    "episode_s=abc",
                    "episode_s=0.01",
                    "pulses_per_step=2.5",
                    "device={max_current_ma=100}",
                    "noequals",
                    "history=[1]",
                    "reward='abc'",
                ]
            ),
            "--eval-every": NEG,
            "--eval-patients": st.sampled_from(["0", "-1", "999"]),
            "--eval-seeds": COMMA_INTS,
            "--eval-episode-s": st.one_of(NEG, NOT_FINITE),
            "--checkpoint-every": NEG,
            "--keep-checkpoints": NONPOS,
            "--log-every": NONPOS,
            "--max-wall-s": st.one_of(NEG, st.just("nan")),
            "--torch-threads": st.sampled_from(["-1", "100000"]),
            "--resume": st.just(None),
        },
    ),
    "hpsearch": (
        ["--trials", "1", "--steps", "64", "--eval-patients", "1", "--out", "{out}"],
        {
            "--env": st.one_of(st.sampled_from(["CartPole-v1", ""]), TEXT),
            "--trials": NONPOS,
            "--steps": NONPOS,
            "--seed": NEG,
            "--ranges": st.one_of(
                TEXT, st.sampled_from(["{tmp}/missing.toml", "{file:[search\n", "{file:zz = 1}"])
            ),
            "--storage": st.sampled_from(
                ["nope://x", "sqlite:////nonexistent-dir/x.db", "abc", ""]
            ),
            "--eval-patients": st.sampled_from(["0", "-1", "999"]),
            "--eval-seeds": COMMA_INTS,
            "--episode-s": st.one_of(NONPOS, NOT_FINITE),
            "--eval-episode-s": st.one_of(NONPOS, NOT_FINITE, st.just("0.01")),
            "--threads": NONPOS,
            "--out": st.just("{file:x}"),
        },
    ),
    "growth-curve": (
        ["--pulses-per-level", "4", "--currents", "0:3:1"],
        {
            "--patient": st.one_of(TEXT, st.just("train-99999")),
            "--csf-mm": st.one_of(NONPOS, NOT_FINITE, st.just("1e9")),
            "--pw-us": st.one_of(NONPOS, NOT_FINITE, st.just("1e9")),
            "--rate-hz": st.one_of(NONPOS, NOT_FINITE, st.just("1e9")),
            "--currents": st.sampled_from(
                [
                    "a",
                    "5:1:1",
                    "0:1:0",
                    "0:1:-1",
                    "nan:1:1",
                    "0:1e9:1e-3",
                    "0:100:1",
                    "-5:1:1",
                    "0:inf:1",
                ]
            ),
            "--pulses-per-level": st.sampled_from(
                ["0", "1", "-1", "100000000", "100000000000", "abc"]
            ),
            "--plot": st.just("{tmp}/missing/x.png"),
            "--waveform-currents": st.just("1"),
        },
    ),
    "model-card": ([], {"--output": st.sampled_from(["{tmp}/missing/x.md", "{tmp}"])}),
    "validate": (
        ["--json", "{tmp}/v.json"],
        {
            "--reference": st.sampled_from(
                ["{tmp}/missing.json", "{tmp}", "{file:[1, 2}", '{file:{"thresholds": 5}}']
            ),
            "--json": st.sampled_from(["{tmp}/missing/x.json", "{tmp}"]),
            "--plot": st.sampled_from(["{tmp}/missing/x.png", "{tmp}"]),
            "--processes": st.one_of(NONPOS, NOT_INT),
        },
    ),
    "cohort": (
        ["--n", "1", "--split", "test"],
        {
            "--n": st.one_of(NONPOS, NOT_INT),
            "--split": TEXT,
            "--workers": st.one_of(NONPOS, NOT_INT),
        },
    ),
    "scenario": (
        ["clinic", "--duration-s", "2"],
        {
            "name": st.one_of(TEXT, st.just("{tmp}/missing.toml")),
            "--patient": TEXT,
            "--seed": NEG,
            "--rate-hz": st.one_of(NONPOS, NOT_FINITE, st.just("1e9")),
            "--duration-s": st.one_of(NONPOS, NOT_FINITE, st.just("1e9")),
            "--plot": st.just("{tmp}/missing/x.png"),
        },
    ),
    "calibrate": (
        ["--patient", "default"],
        {
            "--patient": st.one_of(TEXT, st.sampled_from(["train-99999", ""])),
            "--postures": st.sampled_from(["nope", "", "supine", ",", "supine,nope"]),
            "--output": st.sampled_from(["{tmp}/missing/x.json", "{tmp}"]),
            "--plot": st.just("{tmp}/missing/x.png"),
        },
    ),
    "open-loop": (
        ["--patient", "default", "--duration-s", "12"],
        {
            "--patient": TEXT,
            "--scenario": st.one_of(TEXT, st.just("{tmp}/missing.toml")),
            "--current-ma": st.one_of(NEG, NOT_FINITE, st.sampled_from(["30", "1e9"])),
            "--seed": st.one_of(NEG, st.just("2.5")),
            "--duration-s": st.one_of(NONPOS, NOT_FINITE, st.just("1e9")),
            "--plot": st.just("{tmp}/missing/x.png"),
            "--save-trajectory": st.just("{tmp}/missing/x.npz"),
        },
    ),
    "evaluate": (
        ["open-loop", "--episode-s", "12"],
        {
            "controller": st.one_of(
                TEXT, st.sampled_from(["{tmp}/missing.toml", "{tmp}", "nope:X", "..:x"])
            ),
            "--env": st.one_of(st.sampled_from(["CartPole-v1", ""]), TEXT),
            "--patient": st.one_of(TEXT, st.just("train-99999")),
            "--seed": st.one_of(NEG, NOT_INT),
            "--episode-s": st.one_of(NONPOS, NOT_FINITE, st.sampled_from(["1e9", "5"])),
            "--plot": st.sampled_from(["{tmp}/missing/x.png", "{tmp}"]),
            "--save-trajectory": st.sampled_from(["{tmp}/missing/x.npz", "{tmp}"]),
        },
    ),
    "report": (
        ["{run}", "--no-plots"],
        {
            "run_dir": st.one_of(TEXT, st.sampled_from(["{tmp}/missing", "{tmp}"])),
            "--baseline": st.one_of(TEXT, st.just("nope")),
        },
    ),
    "compare": (
        ["{run}", "{run}"],
        {
            "run_a": st.one_of(TEXT, st.sampled_from(["{tmp}/missing", "{tmp}"])),
            "--metric": st.one_of(TEXT, st.sampled_from(["nope", "mad"])),
        },
    ),
}
"""Subcommand -> (cheap valid arguments, option -> strategy of bad values)."""

EITHER = ("100000000",)
"""Values that may be refused or accepted: 1e8 pulses per level is a long job that fits in
memory (an output into a folder that does not exist yet, too, may be refused or created)."""

QUOTAS = {
    "benchmark": 40,
    "tune": 30,
    "train": 60,
    "hpsearch": 40,
    "growth-curve": 40,
    "model-card": 4,
    "validate": 12,
    "cohort": 15,
    "scenario": 30,
    "calibrate": 20,
    "open-loop": 30,
    "evaluate": 30,
    "report": 12,
    "compare": 12,
}

_TINY_RUN: list[Path] = []
"""The run folder that ``{run}`` copies (made once per process by :func:`_tiny_run`)."""


def _tiny_run(folder: Path) -> str:
    """A fresh copy of a small run folder (open loop and P, one 12-s clinic episode each)."""
    import shutil
    import tempfile

    if not _TINY_RUN or not _TINY_RUN[0].is_dir():
        from closedloop.controllers import make_controller
        from closedloop.evaluation import run_episode, write_report

        src = Path(tempfile.mkdtemp(prefix="closedloop-fuzz-run-"))
        rows = [
            {
                "episode": f"{c}-0",
                **run_episode(
                    make_controller(c),
                    "closedloop/ECAPClinic-Test-v0",
                    "test-000",
                    0,
                    {"episode_s": 12.0},
                ).row(),
            }
            for c in ("open-loop", "p")
        ]
        write_report(rows, src, baseline="open-loop", plots=False)
        _TINY_RUN[:] = [src]
    dst = folder / f"run{next(RUNS)}"
    shutil.copytree(_TINY_RUN[0], dst)
    return str(dst)


def _fill(text: str, tmp: Path, out: Path) -> str:
    """Replace ``{tmp}``, ``{out}`` and ``{file:TEXT}`` (a new file holding TEXT)."""
    if text.startswith("{file:"):
        path = out / "input.toml"
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text[len("{file:") : -1], encoding="utf-8")
        return str(path)
    if text == "{run}":
        return _tiny_run(tmp)
    return text.replace("{tmp}", str(tmp)).replace("{out}", str(out))


def with_option(base: list[str], option: str, value: str | None) -> list[str]:
    """``base`` with ``option`` set to ``value`` (a positional if ``option`` has no dashes)."""
    if not option.startswith("--"):
        return [value or "", *base[1:]]
    argv = list(base)
    if option in argv and value is not None:
        i = argv.index(option)
        return argv[: i + 1] + [value] + argv[i + 2 :]
    return argv + ([option] if value is None else [f"{option}={value}"])


class CliExitError(Exception):
    """A command exited with a status other than 0 (accepted) and 2 (refused)."""


def run_cli(argv: list[str]) -> int:
    """``closedloop.cli.main(argv)``; status 2 raises ConfigError, other failures raise."""
    from closedloop import ConfigError
    from closedloop.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    text = " ".join(err.getvalue().split())
    if code == 2:
        raise ConfigError(f"exit status 2: {text}")
    if code != 0:
        raise CliExitError(f"exit status {code}: {text}")
    return code


@st.composite
def cli_cases(draw: Any, command: str, tmp: Path) -> Case:
    """One bad option of ``closedloop <command>``."""
    base, options = BAD[command]
    option = draw(st.sampled_from(sorted(options)))
    value = draw(options[option])
    folder = tmp / f"{command}{next(RUNS)}"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "out"
    argv = [command] + with_option(
        [_fill(a, folder, out) for a in base],
        option,
        None if value is None else _fill(value, folder, folder),
    )
    if not option.startswith("--"):
        argv = [command, _fill(value, folder, folder), *[_fill(a, folder, out) for a in base[1:]]]
    text = "closedloop " + shlex.join(argv[:1] + [a.replace(str(folder), "$TMP") for a in argv[1:]])
    bare = option.lstrip("-")
    names = (option, bare, bare.replace("-", "_")) if option.startswith("--") else ()
    if option in ("--set", "--env-kw") and value and "=" in value:
        names = (*names, value.split("=")[0])  # the message names the key, not the option
    refuse = value is None or not (value.startswith("{tmp}/missing/") or value in EITHER)
    return Case(f"cli.{command}", text, functools.partial(run_cli, argv), refuse, names=names)


def strategies(tmp: Path) -> dict[str, tuple[Any, int]]:
    """Entry point -> (strategy, quota of a full run), one per subcommand."""
    return {f"cli.{c}": (cli_cases(c, tmp / "cli"), QUOTAS[c]) for c in BAD}


def base_case(command: str, tmp: Path) -> Case:
    """The valid command line the cases of ``command`` start from (it must be accepted)."""
    folder = tmp / f"{command}-base"
    folder.mkdir(parents=True, exist_ok=True)
    argv = [command, *[_fill(a, folder, folder / "out") for a in BAD[command][0]]]
    return Case(
        f"cli.{command}",
        "closedloop " + shlex.join(argv),
        functools.partial(run_cli, argv),
        refuse=False,
    )
